"""The Gradio app. Tabs are built by small modules; all logic lives in ``qa_system`` and ``graph``."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.explore_tab import build_explore_tab


def build_app(store: Any) -> gr.Blocks:
    stats = store.stats()
    with gr.Blocks(title="qa-system") as app:
        gr.Markdown(
            f"# qa-system\nQuestion answering over a knowledge graph — {stats.entities:,} entities, "
            f"{stats.facts:,} facts ({stats.backend})."
        )
        with gr.Tab("Explore"):
            build_explore_tab(store)
    return app
