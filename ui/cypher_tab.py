"""Cypher workbench (maintainers only): read-only queries, results as a table and as JSON.

Read-only by construction, exactly as ``qa-system cypher``: ``store.run_read_query`` first runs the
statement check of ``graph.readonly`` (one statement, no write clauses, only schema procedures),
then executes inside a read-only transaction. A write is refused with the reason, nothing runs.
Every handler is wrapped in ``maintainer_only`` (see ``ui.auth``).
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from qa_system.errors import QAError, ReadOnlyViolationError
from ui.auth import MaintainerGate, maintainer_only
from ui.messages import message_html

MAX_ROWS = 1000

# name -> (query, parameters). Parameterised: user values travel as parameters, never as Cypher.
TEMPLATES: dict[str, tuple[str, dict[str, Any]]] = {
    "Entity by name": (
        "MATCH (e:Entity) WHERE e.name = $name\nRETURN e.id AS id, e.name AS name, e.type AS type, e.description AS description",
        {"name": "Christopher Nolan"},
    ),
    "Facts about an entity": (
        ("MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.name = $name\n"
         "RETURN f.rel_type AS relation, o.name AS object, f.status AS status\nORDER BY relation LIMIT 50"),
        {"name": "Inception"},
    ),
    "Pairs of a relation type": (
        "MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.rel_type = $relation\nRETURN s.name AS subject, o.name AS object LIMIT 25",
        {"relation": "/film/director/film"},
    ),
    "Relations by status": (
        ("MATCH (:Entity)-[f:Fact]->(:Entity) WHERE f.status = $status\n"
         "RETURN f.rel_type AS relation, count(*) AS facts\nORDER BY facts DESC LIMIT 20"),
        {"status": "verified"},
    ),
    "Two-hop paths between entities": (
        ("MATCH (a:Entity)-[f1:Fact]->(m:Entity)-[f2:Fact]->(b:Entity)\nWHERE a.name = $source AND b.name = $target\n"
         "RETURN a.name AS source, f1.rel_type AS first, m.name AS via, f2.rel_type AS second, b.name AS target LIMIT 10"),
        {"source": "Christopher Nolan", "target": "Leonardo DiCaprio"},
    ),
}


def parse_params(text: str) -> dict[str, Any]:
    """Parameters as a JSON object (empty text: none), as the CLI's ``--params``."""

    text = (text or "").strip()
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the parameters are not JSON: {e}") from e
    if not isinstance(params, dict):
        raise ValueError(  # noqa: TRY004 (a user's input, reported like the JSON error)
            "the parameters must be a JSON object, e.g. {\"name\": \"Inception\"}")
    return params


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({"result": []})
    columns = list(rows[0])

    def cell(v: Any) -> Any:
        return v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, ensure_ascii=False)

    return pd.DataFrame([[cell(r.get(c)) for c in columns] for r in rows], columns=columns)


def build_cypher_tab(store: Any, gate: MaintainerGate) -> None:
    """Build inside ``with gate.tab("Cypher workbench"):``."""

    def run(_session: Any, query: str, params_text: str, limit: float) -> tuple[Any, Any, str]:
        try:
            params = parse_params(params_text)
            rows = store.run_read_query(query, params, limit=int(limit))
        except ReadOnlyViolationError as e:
            return rows_frame([]), None, message_html(f"Refused: {e}. Nothing was run.", "error")
        except (QAError, ValueError) as e:
            return rows_frame([]), None, message_html(str(e))
        more = " (limit reached)" if len(rows) >= int(limit) else ""
        return rows_frame(rows), rows, message_html(f"{len(rows)} row{'s' if len(rows) != 1 else ''}{more}", "info")

    def use_template(_session: Any, name: str) -> tuple[Any, Any]:
        query, params = TEMPLATES.get(name, ("", {}))
        return query, json.dumps(params, ensure_ascii=False)

    gr.Markdown(
        "Read-only Cypher over the graph: `(:Entity {id, name, aliases, type, description})-[:Fact {id, rel_type, "
        "status, confidence, split, source_kind}]->(:Entity)`. Writes are refused. Pass values as `$parameters`."
    )
    with gr.Row():
        template = gr.Dropdown(choices=list(TEMPLATES), value=None, label="Templates", scale=2, elem_id="cypher-template")
        limit = gr.Slider(1, MAX_ROWS, value=100, step=1, label="Row limit", scale=2)
    query = gr.Code(label="Query", language=None, lines=5, elem_id="cypher-query", interactive=True)
    params = gr.Textbox(label="Parameters (JSON object)", placeholder='{"name": "Inception"}', lines=1, elem_id="cypher-params")
    run_button = gr.Button("Run (read-only)", variant="primary", elem_id="cypher-run")
    status = gr.HTML(elem_id="cypher-status")
    with gr.Tab("Table"):
        table = gr.Dataframe(value=rows_frame([]), interactive=False, wrap=True, elem_id="cypher-table")
    with gr.Tab("JSON"):
        as_json = gr.JSON(elem_id="cypher-json")
    template.change(maintainer_only(use_template), inputs=[gate.session, template], outputs=[query, params], api_visibility="private")
    run_button.click(maintainer_only(run), inputs=[gate.session, query, params, limit], outputs=[table, as_json, status],
                     api_visibility="private")
