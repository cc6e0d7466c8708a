"""The page built in-process (ui/layout.py): what Gradio is told, without a server."""

from __future__ import annotations

from pathlib import Path

from ui.handlers import Service
from ui.layout import UPLOAD_CACHE, _discard_upload, build_app


def test_the_app_sweeps_gradios_upload_cache(assistant, built_index):
    seeds, index = built_index
    service = Service(assistant, seeds, index, Path("evals"), k=5, mode="hybrid")
    demo = build_app(service)
    frequency, age = demo.delete_cache
    assert demo.delete_cache == UPLOAD_CACHE and 0 < frequency <= age <= 24 * 3600


def test_discard_upload_never_deletes_outside_gradios_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    inside = tmp_path / "gradio" / "abc" / "a.txt"
    inside.parent.mkdir(parents=True)
    inside.write_text("x")
    outside = tmp_path / "seeds" / "a.txt"
    outside.parent.mkdir()
    outside.write_text("x")
    _discard_upload(outside)
    _discard_upload(inside)
    assert outside.exists() and not inside.exists()
