"""Explore tab: search an entity by name (prefix and fuzzy), see its card (with its facts counted by
relation and status) and its neighbourhood, filter that by relation type and expand it hop by hop.
The neighbourhood is drawn as an interactive graph (``ui.graph_view``: click an entity to add its
neighbours, an edge to see its fact) and listed in a table, both with readable relation names.

Thin layer: lookups, grouping and filtering go through ``qa_system.explore`` and the store, exactly
as the CLI does; this module only renders and wires Gradio events.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from qa_system.errors import QAError
from qa_system.explore import (
    MAX_HOPS,
    entity_fact_counts,
    filter_by_relations,
    next_hops,
    relations_present,
    resolve_entity,
)
from qa_system.relations import readable_relation
from qa_system.types import FactView, is_literal
from ui.format import card_html, relation_label
from ui.graph_view import graph_component, graph_data, graph_json

NEIGHBOUR_COLUMNS = ["hop", "subject", "relation", "object", "status"]
MAX_EXPAND_LIMIT = 200


def neighbour_rows(facts: list[FactView]) -> list[list[Any]]:
    ordered = sorted(facts, key=lambda f: (f.hop, f.relation, f.subject_name, f.object_name))
    return [[f.hop, f.subject_name, readable_relation(f.relation), f.object_name, f.status.value] for f in ordered]


def neighbour_note(shown: int, view: dict[str, Any]) -> str:
    total, hops = len(view.get("facts", [])), int(view.get("hops", 1))
    count = f"{shown} of {total} facts" if shown != total else f"{total} facts"
    sampled = f" (sampled: at most {int(view['limit'])} per entity per hop)" if view.get("truncated") else ""
    capped = f" · {MAX_HOPS} hops is the maximum" if view.get("at_max") else ""
    return f"{count} within {hops} hop{'s' if hops != 1 else ''}{sampled}{capped}"


class ExploreHandlers:
    """The tab's event handlers, callable without a browser (tests call them directly).

    The neighbourhood last shown lives in a ``gr.State`` dict ({facts, hops, limit, truncated}) so
    that changing the relation filter re-filters it without asking the store again.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def suggest(self, text: str) -> Any:
        text = (text or "").strip()
        if len(text) < 2:
            return gr.update(choices=[], value=None)
        choices = [
            (f"{e.name} — {e.description[:60]}" if e.description else e.name, e.id)
            for e in self.store.search_entities(text, limit=12)
        ]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def show(
        self, entity_ref: str | None, typed: str, hops: int, limit: int, selected: list[str] | None = None
    ) -> tuple[str, list[list[Any]], str, Any, dict[str, Any]]:
        """Card, filtered rows, note, the relation filter's new choices (selection kept where it
        still applies), and the full neighbourhood for the state."""

        return self._show(entity_ref, typed, hops, limit, selected, at_max=False)

    def _show(
        self, entity_ref: str | None, typed: str, hops: int, limit: int, selected: list[str] | None, *, at_max: bool
    ) -> tuple[str, list[list[Any]], str, Any, dict[str, Any]]:
        hops = max(1, min(int(hops), MAX_HOPS))
        try:
            entity = resolve_entity(self.store, entity_ref or typed)
            subgraph = self.store.neighbors([entity.id], hops=hops, limit_per_entity=int(limit))
            counts = entity_fact_counts(self.store, entity.id)
        except QAError as e:
            return "", [], f"⚠️ {html.escape(str(e))}", gr.update(choices=[], value=[]), {}
        present = relations_present(subgraph.facts)
        kept = [r for r in (selected or []) if r in present]
        view = {"facts": list(subgraph.facts), "hops": hops, "limit": int(limit), "truncated": subgraph.truncated, "at_max": at_max,
                "entity": entity.id}
        shown = filter_by_relations(subgraph.facts, kept)
        relation_filter = gr.update(choices=[(relation_label(r), r) for r in present], value=kept)
        return card_html(entity, counts), neighbour_rows(shown), neighbour_note(len(shown), view), relation_filter, view

    def expand(
        self, entity_ref: str | None, typed: str, hops: int, limit: int, selected: list[str] | None = None
    ) -> tuple[int, str, list[list[Any]], str, Any, dict[str, Any]]:
        """One more hop (up to ``MAX_HOPS``), keeping the relation filter; the slider shows the new value."""

        more = next_hops(hops)
        return (more, *self._show(entity_ref, typed, more, limit, selected, at_max=int(hops) >= MAX_HOPS))

    def refilter(self, view: dict[str, Any] | None, selected: list[str] | None) -> tuple[list[list[Any]], str]:
        """Re-filter the neighbourhood shown last; nothing shown yet → nothing to filter."""

        if not view or "facts" not in view:
            return [], ""
        shown = filter_by_relations(view["facts"], selected)
        return neighbour_rows(shown), neighbour_note(len(shown), view)

    def graph(self, view: dict[str, Any] | None, selected: list[str] | None) -> str:
        """The graph view's value (``ui.graph_view.graph_data`` as JSON) for the neighbourhood shown,
        filtered like the table; nothing shown → an empty picture."""

        if not view or "facts" not in view:
            return ""
        shown = filter_by_relations(view["facts"], selected)
        return graph_json(shown, focus=view.get("entity"), limit=int(view.get("limit", 50)))

    def expand_node(self, entity_id: str, limit: int | None = None) -> dict[str, Any]:
        """A node clicked in the graph: its one-hop neighbours as ``graph_data`` (the browser adds the
        new ones); literal values have no neighbours to add."""

        entity_id = str(entity_id or "")
        if not entity_id or is_literal(entity_id):
            return {"error": "a literal value has no neighbours to expand" if entity_id else "no entity"}
        try:
            limit = max(1, min(int(limit or 50), MAX_EXPAND_LIMIT))
        except (TypeError, ValueError):  # what a browser sent
            limit = 50
        try:
            subgraph = self.store.neighbors([entity_id], hops=1, limit_per_entity=limit)
        except QAError as e:
            return {"error": str(e)}
        return graph_data(subgraph.facts, limit=limit)


def build_explore_tab(store: Any, *, gate: Any = None, workspace: Any = None) -> None:
    """``gate`` and ``workspace`` add the curators' "Merge into…" panel (``ui.maintain_panels``)."""

    from ui.maintain_panels import build_merge_panel

    h = ExploreHandlers(store)
    with gr.Row():
        query = gr.Textbox(label="Entity name", placeholder="e.g. Christopher Nolan", scale=3, elem_id="explore-query")
        matches = gr.Dropdown(label="Matches", choices=[], scale=3, elem_id="explore-matches")
    with gr.Row():
        hops = gr.Slider(1, MAX_HOPS, value=1, step=1, label="Hops", elem_id="explore-hops")
        limit = gr.Slider(5, 200, value=50, step=5, label="Facts per entity per hop")
        go = gr.Button("Show", variant="primary", elem_id="explore-show")
    status = gr.Markdown(elem_id="explore-status")
    card = gr.HTML(elem_id="explore-card")
    with gr.Row():
        relation_filter = gr.Dropdown(
            label="Relation types (none selected = all)", choices=[], value=[], multiselect=True, scale=4,
            elem_id="explore-relations",
        )
        expand = gr.Button(f"Expand one hop (max {MAX_HOPS})", scale=1, elem_id="explore-expand")

    def expand_node(request: Any) -> dict[str, Any]:
        # A Gradio server function receives the browser's call as one value: here {"entity", "limit"}.
        # (A plain function, not the bound method: Gradio marks server functions with an attribute.)
        request = request if isinstance(request, dict) else {"entity": request}
        return h.expand_node(request.get("entity"), request.get("limit"))

    with gr.Tabs(elem_id="explore-views"):
        with gr.Tab("Graph", elem_id="explore-graph-tab"):
            graph = graph_component(expand_node, elem_id="explore-graph")
        with gr.Tab("Table", elem_id="explore-table-tab"):
            table = gr.Dataframe(headers=NEIGHBOUR_COLUMNS, interactive=False, wrap=True, elem_id="explore-neighbours")
    view = gr.State({})
    show_in = [matches, query, hops, limit, relation_filter]
    show_out = [card, table, status, relation_filter, view]
    query.change(h.suggest, inputs=query, outputs=matches)
    redraw = dict(fn=h.graph, inputs=[view, relation_filter], outputs=graph, api_visibility="private")
    query.submit(h.show, inputs=show_in, outputs=show_out).then(**redraw)
    go.click(h.show, inputs=show_in, outputs=show_out).then(**redraw)
    expand.click(h.expand, inputs=show_in, outputs=[hops, *show_out]).then(**redraw)
    relation_filter.input(h.refilter, inputs=[view, relation_filter], outputs=[table, status]).then(**redraw)
    merged = build_merge_panel(store, workspace, gate, view, matches)
    if merged is not None:  # after a merge, show the kept entity
        merged.then(h.show, inputs=show_in, outputs=show_out, api_visibility="private").then(**redraw)
