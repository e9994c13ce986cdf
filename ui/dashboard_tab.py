"""Dashboard tab: what the graph holds (the numbers of ``qa-system stats``) and what changed last.

Thin layer: ``store.stats()`` and ``store.list_facts()`` (most recently written or reviewed first)
are the same calls the CLI makes; this module only draws them. Loaded when the tab is opened (and
on Refresh), not on every page load.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import pandas as pd

from qa_system.types import FactView, GraphStats
from ui.format import STATUS_COLOURS, provenance_text, relation_label

TOP_RELATIONS = 15
RECENT = 12
RECENT_COLUMNS = ["subject", "relation", "object", "status", "source"]
STATUS_ORDER = ["verified", "extracted", "proposed", "rejected"]



def tiles_html(stats: GraphStats) -> str:
    by_status = stats.facts_by_status
    tiles = [("entities", stats.entities), ("facts", stats.facts)] + [(s, by_status.get(s, 0)) for s in STATUS_ORDER]
    cells = "".join(
        f"<div class='qa-tile' style='flex:1 1 120px;padding:12px 16px;border:1px solid #e5e7eb;border-radius:12px;"
        f"border-top:4px solid {STATUS_COLOURS.get(name, '#6b7280')}'>"
        f"<div style='color:#6b7280;font-size:0.8em;text-transform:uppercase;letter-spacing:1px'>{html.escape(name)}</div>"
        f"<div style='font-size:1.6em;font-weight:700'>{value:,}</div></div>"
        for name, value in tiles
    )
    backend = f"<div style='color:#6b7280;font-size:0.85em;margin-top:6px'>graph store: {html.escape(stats.backend)}</div>"
    return f"<div id='dashboard-tiles' style='display:flex;gap:12px;flex-wrap:wrap'>{cells}</div>{backend}"


def status_frame(stats: GraphStats) -> pd.DataFrame:
    names = [s for s in STATUS_ORDER if s in stats.facts_by_status] + sorted(set(stats.facts_by_status) - set(STATUS_ORDER))
    return pd.DataFrame({"status": names, "facts": [stats.facts_by_status[s] for s in names]})


def relation_frame(stats: GraphStats, top: int = TOP_RELATIONS) -> pd.DataFrame:
    ranked = sorted(stats.facts_by_relation.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    labels: list[str] = []
    for relation, _ in ranked:  # short labels can collide: keep them unique
        label = relation_label(relation)
        while label in labels:
            label += " "
        labels.append(label)
    return pd.DataFrame({"relation": labels, "facts": [n for _, n in ranked], "id": [r for r, _ in ranked]})


def type_frame(stats: GraphStats, top: int = 10) -> pd.DataFrame:
    ranked = sorted(stats.entities_by_type.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return pd.DataFrame({"type": [t or "(none)" for t, _ in ranked], "entities": [n for _, n in ranked]})


def recent_rows(facts: list[FactView]) -> list[list[Any]]:
    return [[f.subject_name, relation_label(f.relation), f.object_name, f.status.value, provenance_text(f.provenance)] for f in facts]


def build_dashboard_tab(store: Any, tab: gr.Tab | None = None) -> None:
    """The Dashboard. Pass its ``gr.Tab`` so the numbers load when the tab is opened."""

    def load() -> tuple[Any, ...]:
        stats = store.stats()
        recent = store.list_facts(limit=RECENT)
        frames = status_frame(stats), relation_frame(stats), type_frame(stats)
        # bars start at zero (Gradio's default axis starts at the smallest value)
        plots = [gr.BarPlot(value=f, y_lim=[0, max(1, int(f.iloc[:, 1].max() if len(f) else 1) * 1.08)]) for f in frames]
        return tiles_html(stats), *plots, recent_rows(recent)

    with gr.Row():
        gr.Markdown("The graph's contents, the same numbers as `qa-system stats`.")
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="dashboard-refresh")
    tiles = gr.HTML(elem_id="dashboard-summary")
    with gr.Row():
        status_plot = gr.BarPlot(x="status", y="facts", color="status", color_map=STATUS_COLOURS, title="Facts by status",
                                 height=300, elem_id="dashboard-status", scale=1)
        type_plot = gr.BarPlot(x="type", y="entities", title="Entities by type (top 10)", sort="-y", x_label_angle=-35,
                               height=300, elem_id="dashboard-types", scale=2)
    relation_plot = gr.BarPlot(x="relation", y="facts", title=f"Facts by relation type (top {TOP_RELATIONS})", sort="-y",
                               x_label_angle=-35, height=380, tooltip=["id", "facts"], elem_id="dashboard-relations")
    gr.Markdown("#### Recent changes\nThe facts written or reviewed most recently.")
    recent = gr.Dataframe(headers=RECENT_COLUMNS, interactive=False, wrap=True, elem_id="dashboard-recent",
                          column_widths=["22%", "22%", "26%", "10%", "20%"])
    outputs = [tiles, status_plot, relation_plot, type_plot, recent]
    refresh.click(load, outputs=outputs, api_name="dashboard")
    if tab is not None:
        tab.select(load, outputs=outputs, api_visibility="private")
