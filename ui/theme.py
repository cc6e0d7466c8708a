"""The look of the page: the Gradio theme, the stylesheet and the page scripts (``static/``)."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"

#: After an answer arrives: scroll the chat so the latest question sits at the top (a long
#: answer or an abstention's banner would otherwise be scrolled past). See static/app.js.
SCROLL_TO_QUESTION = "() => { window.ragShowLatest && window.ragShowLatest(); }"

#: The source viewer scrolls its highlighted sentence into view whenever its value changes.
VIEWER_JS = """
const body = () => element.querySelector('.rag-viewer-body');
const go = () => {
  const b = body(), m = element.querySelector('#rag-hl');
  if (!b || !m) return;
  b.scrollTop = Math.max(0, m.offsetTop - b.clientHeight / 3);
  const r = element.getBoundingClientRect();
  if (r.top < 0 || r.top > window.innerHeight - 80) element.scrollIntoView({block: 'start'});
};
watch('value', () => requestAnimationFrame(go));
requestAnimationFrame(go);
"""

# Plain font names: a local tool should not fetch fonts from the internet.
SANS = [
    "Inter",
    "ui-sans-serif",
    "system-ui",
    "-apple-system",
    "Segoe UI",
    "Roboto",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]


def theme():
    """The Gradio theme (gradio is imported here: only ``rag serve`` needs it)."""
    import gradio as gr

    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="slate",
        neutral_hue="slate",
        font=SANS,
        font_mono=MONO,
        radius_size="md",
    ).set(
        body_background_fill="#f6f7fb",
        block_border_width="1px",
        block_shadow="none",
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
    )


def launch_options() -> dict:
    """theme, css and head for ``launch()`` (Gradio 6 takes them there, not in Blocks)."""
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    return {
        "theme": theme(),
        "css": (STATIC / "style.css").read_text(encoding="utf-8"),
        "head": f"<script>{script}</script>",
    }
