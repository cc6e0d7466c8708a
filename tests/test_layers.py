"""The project's layers point one way: ``rag`` (library) <- ``rag.cli`` and ``rag`` <- ``ui``.

Imports are read with ``ast`` from the source, including those inside functions (a
function-level import used to dodge a circle is still an edge of the graph).
"""

from __future__ import annotations

import ast
from pathlib import Path

import rag

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rag", "ui")
#: The CLI shell: ``rag/cli.py`` and ``python -m rag``, which only calls it.
CLI_MODULES = ("rag.cli", "rag.__main__")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            # `from pkg import mod` imports the module pkg.mod; `from mod import f`, mod.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_library_never_imports_its_cli_or_its_ui():
    graph = import_graph()
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == "rag" and module not in CLI_MODULES
        for target in targets
        if target == "rag.cli" or target.split(".")[0] == "ui"
    )
    assert not offenders, "the library imports what is built on it:\n" + "\n".join(offenders)


def test_the_ui_never_imports_the_cli():
    graph = import_graph()
    offenders = sorted(
        f"{m} imports rag.cli"
        for m, targets in graph.items()
        if m.startswith("ui") and "rag.cli" in targets
    )
    assert not offenders, "\n".join(offenders)


def test_the_project_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path):
    """The guard itself: a cycle hidden inside a function is still found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from rag.cli import main\n    import ui.server\n")
    modules = {"rag.cli": Path(), "ui.server": Path()}
    assert imports_of("rag.m", source, modules) == {"rag.cli", "ui.server"}


# --- issue 9 (hardening) -----------------------------------------------------------


def test_public_names_load_on_first_use():
    assert sorted(rag.__all__) == sorted(rag._WHERE)
    for name in rag.__all__:
        assert getattr(rag, name).__name__ == name
