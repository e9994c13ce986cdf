"""The Explore tab's picture of a neighbourhood: an interactive vis-network graph.

``graph_data(facts, focus=...)`` turns facts into the nodes and edges the browser draws (readable
relation names, colours by status, literal values as small boxes, each edge carrying its fact for
the click panel); ``graph_component(expand_node)`` is the ``gr.HTML`` that draws them. Drag moves a
node, a click on an entity asks ``expand_node`` (a Gradio server function) for its neighbours and
adds them, a click on an edge shows its fact (subject, relation, object, status, provenance).

Offline: vis-network's JavaScript and CSS come from the installed ``pyvis`` package (which bundles
them) and are served by the app itself through Gradio's static file route; no CDN is involved.
The browser's copy of the network is on ``window.qaExploreGraph`` ({network, nodes, edges}).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr

from qa_system.relations import readable_relation
from qa_system.types import FactView, is_literal
from ui.format import STATUS_COLOURS, provenance_text

STATUS_RANK = {"verified": 0, "extracted": 1, "proposed": 2, "rejected": 3}
LITERAL_FILL = "#f6f8fa"
MAX_GRAPH_FACTS = 300  # more than this is unreadable as a picture; the table has them all
LABEL_CHARS = 28


def _short(text: str, n: int = LABEL_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def fact_summary(fact: FactView) -> dict[str, Any]:
    """What the edge click panel shows: names, readable relation (raw id kept), status, provenance."""

    return {
        "id": fact.id, "subject": fact.subject_name, "subject_id": fact.subject, "relation": readable_relation(fact.relation),
        "relation_id": fact.relation, "object": fact.object_name, "object_id": fact.object, "status": fact.status.value,
        "confidence": round(float(fact.confidence), 3), "provenance": provenance_text(fact.provenance),
    }  # fmt: skip


def _node(node_id: str, name: str, status: str, focus: str | None) -> dict[str, Any]:
    colour = STATUS_COLOURS.get(status, "#6e7781")
    if is_literal(node_id):
        return {
            "id": node_id, "label": _short(name, 24), "name": name, "title": f"value: {name}", "literal": True, "status": status,
            "shape": "box", "margin": 4, "borderWidth": 1, "font": {"size": 11, "color": "#24292f"},
            "color": {"background": LITERAL_FILL, "border": colour, "highlight": {"background": "#ffffff", "border": colour}},
        }  # fmt: skip
    is_focus = node_id == focus
    return {
        "id": node_id, "label": _short(name), "name": name, "title": f"{name}\n{node_id}\nclick to expand", "literal": False,
        "status": status, "focus": is_focus, "expanded": is_focus, "shape": "dot", "size": 22 if is_focus else 13,
        "borderWidth": 4 if is_focus else 1, "font": {"size": 15 if is_focus else 13, "color": "#24292f"},
        "color": {"background": colour, "border": "#24292f" if is_focus else colour, "highlight": {"background": colour, "border": "#24292f"}},
    }  # fmt: skip


def _edge(fact: FactView) -> dict[str, Any]:
    status = fact.status.value
    colour = STATUS_COLOURS.get(status, "#6e7781")
    relation = readable_relation(fact.relation)
    return {
        "id": fact.id, "from": fact.subject, "to": fact.object, "label": _short(relation, 24), "title": f"{relation}\n{fact.relation}",
        "arrows": "to", "status": status, "dashes": status == "proposed", "font": {"size": 10, "color": "#57606a", "strokeWidth": 3},
        "color": {"color": colour, "highlight": colour, "hover": colour}, "fact": fact_summary(fact),
    }  # fmt: skip


def graph_data(
    facts: Iterable[FactView], *, focus: str | None = None, limit: int | None = None, max_facts: int = MAX_GRAPH_FACTS
) -> dict[str, Any]:
    """Nodes and edges for vis-network: one edge per fact (nearest hops first, at most ``max_facts``),
    one node per end. A node takes the colour of the strongest status among its facts (verified >
    extracted > proposed > rejected); ``focus`` is drawn larger and counts as expanded; literal
    values (``lit:`` ids) are small boxes that do not expand."""

    ordered = sorted(facts, key=lambda f: (f.hop, f.relation, f.subject_name, f.object_name, f.id))
    shown = ordered[:max_facts]
    names: dict[str, str] = {}
    best: dict[str, str] = {}
    for f in shown:
        for node_id, name in ((f.subject, f.subject_name), (f.object, f.object_name)):
            names.setdefault(node_id, name or node_id)
            if node_id not in best or STATUS_RANK.get(f.status.value, 9) < STATUS_RANK.get(best[node_id], 9):
                best[node_id] = f.status.value
    if focus is not None and focus not in names:  # an entity without (shown) facts is still drawn
        names[focus], best[focus] = focus, "verified"
    edges = {f.id: _edge(f) for f in shown}
    return {
        "focus": focus, "limit": limit, "total": len(ordered), "truncated": len(ordered) > len(shown),
        "nodes": [_node(i, names[i], best[i], focus) for i in names], "edges": list(edges.values()),
    }  # fmt: skip


def vis_assets() -> Path | None:
    """The folder of vis-network's JS and CSS inside the installed ``pyvis`` package (None without it)."""

    try:
        import pyvis
    except ImportError:
        return None
    folder = Path(pyvis.__file__).resolve().parent / "lib" / "vis-9.1.2"
    return folder if (folder / "vis-network.min.js").is_file() else None


def vis_head() -> str:
    """``<head>`` tags loading vis-network from the app's own static file route (relative URLs, so a
    root path or proxy prefix still works)."""

    folder = vis_assets()
    if folder is None:
        return ""
    gr.set_static_paths([folder])
    url = lambda name: "gradio_api/file=" + quote(str(folder / name))
    return f'<link rel="stylesheet" href="{url("vis-network.css")}"><script src="{url("vis-network.min.js")}"></script>'


LEGEND = "".join(
    f'<span style="margin-right:12px"><span style="display:inline-block;width:10px;height:10px;border-radius:50%;'
    f'background:{STATUS_COLOURS[s]};margin-right:4px"></span>{s}</span>'
    for s in ("verified", "extracted", "proposed")
)

TEMPLATE = f"""<div class="qa-graph">
<div class="qa-graph-legend" style="font-size:0.85em;color:#57606a;margin-bottom:4px">{LEGEND}<span style="margin-right:12px">
<span style="display:inline-block;padding:0 4px;border:1px solid #8c959f;background:{LITERAL_FILL};font-size:0.85em">value</span> literal</span>
<span>dashed: proposed, awaiting review</span></div>
<div class="qa-graph-canvas" style="height:520px;border:1px solid #d0d7de;border-radius:8px;background:#fff"></div>
<div class="qa-graph-info" aria-live="polite" style="font-size:0.9em;color:#57606a;margin-top:4px">Show an entity to draw its neighbourhood.</div>
<div class="qa-graph-fact" style="margin-top:6px"></div>
</div>"""

# Runs once when the component loads; ``watch`` redraws on every new value (a JSON string of
# ``graph_data``). Text from data is only ever set with ``textContent`` (never as HTML).
JS = r"""
const canvas = element.querySelector('.qa-graph-canvas');
const info = element.querySelector('.qa-graph-info');
const factBox = element.querySelector('.qa-graph-fact');
const state = { network: null, nodes: null, edges: null, limit: 25, focus: null, stable: false };
window.qaExploreGraph = state;
const say = (text) => { info.textContent = text; };
const OPTIONS = {
  interaction: { hover: true, dragNodes: true, tooltipDelay: 200 },
  physics: { stabilization: { iterations: 150 }, barnesHut: { springLength: 140, avoidOverlap: 0.2 } },
  edges: { smooth: { type: 'continuous' }, selectionWidth: 2, width: 1.5 },
  nodes: { font: { face: 'sans-serif' } },
};
function ensure() {
  if (state.network) return true;
  if (typeof vis === 'undefined') { say('The graph library did not load; the Table view lists the same facts.'); return false; }
  state.nodes = new vis.DataSet();
  state.edges = new vis.DataSet();
  state.network = new vis.Network(canvas, { nodes: state.nodes, edges: state.edges }, OPTIONS);
  state.network.on('click', onClick);
  state.network.on('startStabilizing', () => { state.stable = false; });
  state.network.on('stabilized', () => { state.stable = true; if (state.refit) { state.refit = false; state.network.fit(); } });
  return true;
}
function addNew(data) {
  const nodes = (data.nodes || []).filter((n) => !state.nodes.get(n.id));
  const edges = (data.edges || []).filter((e) => !state.edges.get(e.id));
  state.nodes.add(nodes);
  state.edges.add(edges);
  return [nodes.length, edges.length];
}
function row(label, value) {
  const tr = document.createElement('tr');
  const th = document.createElement('th');
  const td = document.createElement('td');
  th.textContent = label; td.textContent = value;
  th.style.cssText = 'text-align:left;padding:2px 8px;color:#57606a;font-weight:600;vertical-align:top';
  td.style.cssText = 'padding:2px 8px';
  tr.append(th, td);
  return tr;
}
function panel(title, rows, colour) {
  const box = document.createElement('div');
  box.className = 'qa-graph-panel';
  box.style.cssText = `border:1px solid #d0d7de;border-left:4px solid ${colour};border-radius:6px;padding:6px 8px`;
  const head = document.createElement('div');
  head.style.fontWeight = '600'; head.textContent = title;
  const table = document.createElement('table');
  table.style.cssText = 'border-collapse:collapse;font-size:0.9em';
  rows.forEach(([k, v]) => table.append(row(k, v)));
  box.append(head, table);
  factBox.replaceChildren(box);
}
function showFact(fact) {
  const colour = (fact.status === 'verified') ? '#1a7f37' : (fact.status === 'extracted') ? '#0969da' : (fact.status === 'proposed') ? '#9a6700' : '#cf222e';
  panel(`${fact.subject} — ${fact.relation} → ${fact.object}`, [
    ['subject', `${fact.subject} (${fact.subject_id})`], ['relation', `${fact.relation} (${fact.relation_id})`],
    ['object', `${fact.object} (${fact.object_id})`],
    ['status', fact.status + (fact.confidence < 1 ? ` (confidence ${fact.confidence})` : '')],
    ['provenance', fact.provenance],
  ], colour);
}
async function expandNode(node) {
  if (node.expanded) { say(`${node.name}: already expanded.`); return; }
  say(`Expanding ${node.name}…`);
  let data;
  try { data = await server.expand_node({ entity: node.id, limit: state.limit }); } catch (e) { say(`Could not expand ${node.name}: ${e}`); return; }
  if (!data || data.error) { say(`Could not expand ${node.name}: ${data ? data.error : 'no answer'}`); return; }
  const [n, e] = addNew(data);
  state.nodes.update({ id: node.id, expanded: true, borderWidth: 3 });
  if (n) state.refit = true;  // once the new nodes settle, zoom so that all are in view
  say(`Expanded ${node.name}: +${n} nodes, +${e} facts` + (data.truncated ? ` (first ${data.edges.length} of ${data.total})` : '') + '.');
}
function onClick(params) {
  if (params.nodes && params.nodes.length) {
    const node = state.nodes.get(params.nodes[0]);
    if (!node) return;
    if (node.literal) { panel(`value: ${node.name}`, [['value', node.name], ['id', node.id]], '#8c959f'); return; }
    expandNode(node);
    return;
  }
  if (params.edges && params.edges.length) {
    const edge = state.edges.get(params.edges[0]);
    if (edge) showFact(edge.fact);
  }
}
state.expand = expandNode;
function render() {
  let data = null;
  try { data = props.value ? JSON.parse(props.value) : null; } catch (e) { data = null; }
  factBox.replaceChildren();
  if (!data || !data.nodes) {
    if (state.nodes) { state.nodes.clear(); state.edges.clear(); }
    say('Show an entity to draw its neighbourhood.');
    return;
  }
  if (!ensure()) return;
  state.limit = data.limit || 25;
  state.focus = data.focus;
  state.nodes.clear(); state.edges.clear();
  addNew(data);
  state.network.fit();
  say(`${data.edges.length} facts` + (data.truncated ? ` (the first ${data.edges.length} of ${data.total}; the Table lists all)` : '') +
      '. Drag to move; click an entity to expand it, an edge to see its fact.');
}
watch('value', render);
render();
"""


def graph_json(facts: Iterable[FactView], *, focus: str | None = None, limit: int | None = None) -> str:
    return json.dumps(graph_data(facts, focus=focus, limit=limit), ensure_ascii=False)


def graph_component(expand_node: Callable[..., dict[str, Any]], **kwargs: Any) -> gr.HTML:
    """The graph view; ``expand_node({"entity": id, "limit": n})`` (a Gradio server function: one
    argument, what the browser sends) returns ``graph_data`` of that entity's neighbours."""

    return gr.HTML(
        value="", html_template=TEMPLATE, js_on_load=JS, head=vis_head(), server_functions=[expand_node],
        padding=False, **kwargs,
    )  # fmt: skip
