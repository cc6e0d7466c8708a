"""The Gradio chat UI (``rag serve``): a thin shell over the ``rag`` library."""
