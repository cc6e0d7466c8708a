"""Growth exponents: metric ~ c * size**b, fitted by least squares on log-log points."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Growth:
    """``value ≈ c * size ** exponent`` over the measured sizes."""

    exponent: float
    c: float
    points: int

    def at(self, size: float) -> float:
        """The fitted value at ``size`` (a projection outside the measured sizes)."""
        return self.c * size**self.exponent


def fit_growth(sizes: list[float], values: list[float | None]) -> Growth | None:
    """Least-squares line through (log size, log value) over the positive points.

    Returns:
        None with fewer than two usable points (or a single distinct size); else the fit,
        whose ``exponent`` is the slope (1.0 = linear growth, 0.0 = flat).
    """
    pts = [
        (math.log(s), math.log(v))
        for s, v in zip(sizes, values, strict=True)
        if v is not None and v > 0 and s > 0
    ]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    return Growth(exponent=b, c=math.exp(my - b * mx), points=len(pts))
