"""Explore tab: search an entity by name (prefix and fuzzy), see its card and its neighbours.

Thin layer: lookups go through ``qa_system.explore`` and the store, exactly as the CLI does.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from qa_system.errors import QAError
from qa_system.explore import resolve_entity

NEIGHBOUR_COLUMNS = ["hop", "subject", "relation", "object", "status"]


def card_html(entity: Any) -> str:
    """Entity card; every value is escaped (names come from data and users)."""

    esc = html.escape
    image = (
        f'<img src="{esc(entity.image_url, quote=True)}" alt="" style="max-width:160px;float:right;border-radius:8px">'
        if entity.image_url
        else ""
    )
    link = (
        f'<a href="{esc(entity.url, quote=True)}" target="_blank" rel="noopener noreferrer">Wikipedia</a>'
        if entity.url.startswith(("https://", "http://"))
        else ""
    )
    aliases = f"<div><small>also: {esc(', '.join(entity.aliases[:8]))}</small></div>" if entity.aliases else ""
    return (
        f'<div class="entity-card" style="padding:12px;border:1px solid #ddd;border-radius:10px">{image}'
        f"<h3 style='margin:0'>{esc(entity.name)}</h3>"
        f"<div><code>{esc(entity.id)}</code> · <em>{esc(entity.type or 'entity')}</em></div>"
        f"<p>{esc(entity.description or 'No description.')}</p>{aliases}<div>{link}</div></div>"
    )


def build_explore_tab(store: Any) -> None:
    def suggest(text: str) -> Any:
        text = (text or "").strip()
        if len(text) < 2:
            return gr.update(choices=[], value=None)
        choices = [(f"{e.name} — {e.description[:60]}" if e.description else e.name, e.id) for e in store.search_entities(text, limit=12)]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def show(entity_ref: str | None, typed: str, hops: int, limit: int) -> tuple[str, list[list[Any]], str]:
        try:
            entity = resolve_entity(store, entity_ref or typed)
            subgraph = store.neighbors([entity.id], hops=int(hops), limit_per_entity=int(limit))
        except QAError as e:
            return "", [], f"⚠️ {html.escape(str(e))}"
        facts = sorted(subgraph.facts, key=lambda f: (f.hop, f.relation, f.subject_name, f.object_name))
        rows = [[f.hop, f.subject_name, f.relation, f.object_name, f.status.value] for f in facts]
        note = f"{len(rows)} facts" + (f" (sampled: at most {int(limit)} per entity per hop)" if subgraph.truncated else "")
        return card_html(entity), rows, note

    with gr.Row():
        query = gr.Textbox(label="Entity name", placeholder="e.g. Christopher Nolan", scale=3, elem_id="explore-query")
        matches = gr.Dropdown(label="Matches", choices=[], scale=3, elem_id="explore-matches")
    with gr.Row():
        hops = gr.Slider(1, 2, value=1, step=1, label="Hops")
        limit = gr.Slider(5, 200, value=50, step=5, label="Facts per entity per hop")
        go = gr.Button("Show", variant="primary", elem_id="explore-show")
    status = gr.Markdown(elem_id="explore-status")
    card = gr.HTML(elem_id="explore-card")
    table = gr.Dataframe(headers=NEIGHBOUR_COLUMNS, interactive=False, wrap=True, elem_id="explore-neighbours")
    query.change(suggest, inputs=query, outputs=matches)
    query.submit(show, inputs=[matches, query, hops, limit], outputs=[card, table, status])
    go.click(show, inputs=[matches, query, hops, limit], outputs=[card, table, status])
