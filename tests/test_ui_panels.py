"""The Index tab and header HTML: the index's state and settings, escaped."""

from __future__ import annotations

import html

from rag.store import index_status, read_manifest
from ui import panels


def test_index_panel_reports_state_and_settings(built_index):
    seeds, index = built_index
    manifest = read_manifest(index)
    status = index_status(seeds, index)
    summary = panels.index_summary_html(manifest, status)
    assert "Up to date" in summary and manifest["settings"]["model"] in summary
    status = {**status, "new.txt": "new", "volcanoes.txt": "changed"}
    summary = panels.index_summary_html(manifest, status)
    assert "Out of date" in summary and "1 changed" in summary and "1 new" in summary
    table = panels.documents_table_html(manifest, status)
    for source in status:
        assert html.escape(source) in table
    assert "rag-state-new" in table and "rag-state-changed" in table
    head = panels.header_html(manifest, status, "seeds")
    assert "2 documents changed since the last build" in head
