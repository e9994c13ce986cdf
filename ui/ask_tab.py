"""Ask tab: a question in, the pipeline's ``Answer`` out, shown with its evidence.

Thin layer: ``AskPipeline.ask`` (the same call as ``qa-system ask``) does all the work; this module
only renders the ``Answer``: a source badge, the confidence, the answer entity's card, a picture of
the evidence path (topic → facts → answer, an inline SVG), the supporting facts with provenance,
the alternatives and the session's history. Every value from users or data is escaped.
"""

from __future__ import annotations

import html
import logging
import time
from typing import Any

import gradio as gr

from qa_system.errors import QAError
from qa_system.relations import readable_relation
from qa_system.types import Answer, FactView
from ui.format import card_html, provenance_text, relation_label
from ui.messages import message_html

log = logging.getLogger(__name__)

EVIDENCE_COLUMNS = ["subject", "relation", "object", "status", "provenance"]
ALTERNATIVE_COLUMNS = ["candidate", "confidence", "description"]
HISTORY_COLUMNS = ["time", "question", "answer", "confidence", "source"]
MAX_HISTORY = 50
EXAMPLES = ["Who directed Inception?", "What is the nationality of Christopher Nolan?", "Which films did Leonardo DiCaprio star in?"]
NO_READER = (
    "<b>The reader model is not available on this server yet</b>, so questions cannot be answered. "
    "Train it with <code>qa-system train reader</code> (or install the shipped checkpoint) and restart "
    "<code>qa-system serve</code>. Explore and the Dashboard work meanwhile."
)

# source -> (label, colour, explanation)
BADGES: dict[str, tuple[str, str, str]] = {
    "graph": ("Graph", "#15803d", "answered by the reader from facts in the graph"),
    "graph-unsure": ("Graph · not sure", "#b45309", "the reader's best answer is below the calibrated threshold"),
    "llm-validated": ("LLM · validated", "#1d4ed8", "an LLM answered; entailment validated its supporting facts"),
    "llm-unvalidated": ("LLM · unvalidated", "#b91c1c", "an LLM answered; its claim could not be validated — treat with care"),
    "none": ("No answer", "#4b5563", "no answer could be given"),
}


def source_key(answer: Any) -> str:
    """The badge for an answer: ``graph``, ``graph-unsure``, ``llm-validated``, ``llm-unvalidated`` or ``none``."""

    source = str(getattr(answer, "source", "none") or "none")
    if source in BADGES:
        return source
    if source.startswith("llm"):
        validated = getattr(answer, "validated", None)
        if validated is None:
            validated = "unvalidated" not in source and "validated" in source
        return "llm-validated" if validated else "llm-unvalidated"
    return "none"


def badge_html(answer: Any) -> str:
    label, colour, why = BADGES[source_key(answer)]
    return (
        f'<span class="qa-badge" title="{html.escape(why, quote=True)}" style="background:{colour};color:#fff;'
        f'padding:2px 10px;border-radius:999px;font-size:0.85em;font-weight:600;white-space:nowrap">{html.escape(label)}</span>'
    )


def evidence_rows(facts: list[FactView]) -> list[list[Any]]:
    return [
        [f.subject_name, relation_label(f.relation), f.object_name,
         f.status.value + (f" ({f.confidence:.2f})" if f.confidence < 1 else ""), provenance_text(f.provenance)]
        for f in facts
    ]


def confidence_html(confidence: float) -> str:
    pct = max(0.0, min(1.0, confidence)) * 100
    colour = "#15803d" if pct >= 50 else "#b45309"
    return (
        f'<div class="qa-confidence" title="confidence {pct:.0f}%" style="display:flex;align-items:center;gap:8px">'
        f'<div style="flex:0 0 160px;height:8px;background:#e5e7eb;border-radius:4px;overflow:hidden">'
        f'<div style="width:{pct:.0f}%;height:100%;background:{colour}"></div></div>'
        f"<span>confidence <b>{pct:.0f}%</b></span></div>"
    )


def answer_html(answer: Answer) -> str:
    esc = html.escape
    topics = ", ".join(esc(t.name) for t in answer.topic_entities[:3])
    about = f"<div style='color:#6b7280;font-size:0.9em'>about: {topics}</div>" if topics else ""
    message = f"<div class='qa-note' style='margin-top:6px;color:#92400e'>{esc(answer.message)}</div>" if answer.message else ""
    if answer.answer is None:
        return (
            f"<div class='qa-answer' style='padding:14px;border:1px solid #e5e7eb;border-radius:12px'>"
            f"<div style='display:flex;gap:10px;align-items:center'><span style='font-size:1.2em'>No answer</span>{badge_html(answer)}</div>"
            f"{about}{message}</div>"
        )
    desc = f"<div style='color:#4b5563'>{esc(answer.answer.description)}</div>" if answer.answer.description else ""
    if answer.answer.kind == "value" and answer.evidence:  # a literal: say which attribute it is
        desc = f"<div style='color:#4b5563'>value of <i>{esc(readable_relation(answer.evidence[0].relation))}</i></div>"
    return (
        f"<div class='qa-answer' style='padding:14px;border:1px solid #e5e7eb;border-radius:12px'>"
        f"<div style='display:flex;gap:12px;align-items:center;flex-wrap:wrap'>"
        f"<span class='qa-answer-name' style='font-size:1.6em;font-weight:700'>{esc(answer.answer.name)}</span>{badge_html(answer)}</div>"
        f"{desc}<div style='margin-top:8px'>{confidence_html(answer.confidence)}</div>{about}{message}{fallback_html(answer)}</div>"
    )


def fallback_html(answer: Answer) -> str:
    """What the LLM proposed and what entailment made of each claim (empty for graph answers)."""

    summary = getattr(answer, "fallback", None)
    if summary is None or not summary.decisions:
        return ""
    esc = html.escape
    rows = "".join(
        f"<li><span style='color:{'#15803d' if d.get('decision') == 'entailed' else '#b91c1c'}'>"
        f"{'✓ entailed' if d.get('decision') == 'entailed' else '✗ not entailed'}</span> "
        f"({float(d.get('score', 0.0)):.2f}) {esc(str(d.get('triple', '')))}</li>"
        for d in summary.decisions
    )
    pending = f"{len(summary.proposed)} proposed for review" if summary.proposed else "nothing inserted"
    return (
        f"<details class='qa-fallback' style='margin-top:8px'><summary>LLM claims checked by entailment "
        f"({esc(summary.model)}; {pending})</summary><ul style='margin:4px 0 0 16px'>{rows}</ul></details>"
    )


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_svg(answer: Answer) -> str:
    """The evidence path as an inline SVG: topic → (middle) → answer (→ an entity the question
    also names, when question constraints tied the answer to it), one box per entity, one
    labelled arrow per fact (arrows follow the fact's direction). Empty when there is no answer."""

    if answer.answer is None:
        return ""
    names: dict[str, str] = {t.id: t.name for t in answer.topic_entities}
    names[answer.answer.id] = answer.answer.name
    topic = answer.topic_entities[0].id if answer.topic_entities else None
    facts = list(answer.evidence)
    for f in facts:
        names.setdefault(f.subject, f.subject_name)
        names.setdefault(f.object, f.object_name)
    # walk the path from the topic so nodes come out in reading order
    order: list[str] = [topic] if topic else []
    remaining = facts[:]
    while remaining:
        current = order[-1] if order else remaining[0].subject
        if not order:
            order.append(current)
        nxt = next((f for f in remaining if current in (f.subject, f.object)), remaining[0])
        remaining.remove(nxt)
        for end in (nxt.subject, nxt.object):
            if end not in order:
                order.append(end)
    if answer.answer.id not in order:
        order.append(answer.answer.id)
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for f in facts:
        a, b = sorted((f.subject, f.object), key=order.index)
        arrow = "→" if f.subject == a else "←"
        edges.setdefault((a, b), []).append((arrow, f.relation))
    node_w, node_h, gap, top = 200, 54, 190, 30
    # an edge between boxes that are not side by side (the answer and a second entity the question
    # names, when there are two) is an arc under the boxes, not a line through the one between
    span = {key: order.index(key[1]) - order.index(key[0]) for key in edges}  # 1: side by side
    skips = [key for key in edges if span[key] > 1]
    max_labels = max((len(v) for k, v in edges.items() if k not in skips), default=1)
    label_h = 16 * min(max_labels, 4)
    arc_depth = 34  # how far under the boxes the shortest arc dips; longer spans dip further
    arc_h = (arc_depth * max(span[k] - 1 for k in skips) + 16 * min(max(len(edges[k]) for k in skips), 4) + 12) if skips else 0
    height = top + node_h + 24 + label_h + arc_h
    width = len(order) * node_w + (len(order) - 1) * gap + 20
    y = top + label_h
    x_of = {entity: 10 + i * (node_w + gap) for i, entity in enumerate(order)}
    parts = [
        (
            f'<svg class="qa-evidence-graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 10}" '
            f'style="width:100%;max-width:{width}px;height:auto;font-family:system-ui,sans-serif" role="img" '
            f'aria-label="evidence path">'
        ),
        (
            '<defs><marker id="qa-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>'
        ),
    ]
    for (a, b), labels in edges.items():
        x1, x2 = x_of[a] + node_w, x_of[b]
        forward = any(arrow == "→" for arrow, _ in labels)
        backward = any(arrow == "←" for arrow, _ in labels)
        markers = (' marker-end="url(#qa-arrow)"' if forward else "") + (' marker-start="url(#qa-arrow)"' if backward else "")
        if (a, b) in skips:
            parts.extend(_arc(x_of[a] + node_w / 2, x_of[b] + node_w / 2, y + node_h, arc_depth * (span[(a, b)] - 1) + 18, labels, markers))
            continue
        cy = y + node_h / 2
        parts.append(f'<line x1="{x1 + 2}" y1="{cy}" x2="{x2 - 2}" y2="{cy}" stroke="#9ca3af" stroke-width="2"{markers}/>')
        shown = labels[:4]
        for i, (arrow, relation) in enumerate(shown):
            parts.append(_edge_label((x1 + x2) / 2, cy - 8 - 16 * (len(shown) - 1 - i), arrow, relation))
    if not edges and topic and topic != answer.answer.id:
        x1, x2 = x_of[order[0]] + node_w, x_of[order[-1]]
        cy = y + node_h / 2
        parts.append(f'<line x1="{x1 + 2}" y1="{cy}" x2="{x2 - 2}" y2="{cy}" stroke="#d1d5db" stroke-width="2" stroke-dasharray="6 5"/>')
        parts.append(f'<text x="{(x1 + x2) / 2}" y="{cy - 8}" text-anchor="middle" font-size="13" fill="#6b7280">no supporting fact</text>')
    after_answer = set(order[order.index(answer.answer.id) + 1 :])  # reached through the answer: named in the question
    for entity in order:
        if entity == topic:
            role, fill, stroke = "topic", "#eff6ff", "#3b82f6"
        elif entity == answer.answer.id:
            role, fill, stroke = "answer", "#f0fdf4", "#16a34a"
        elif entity in after_answer:
            role, fill, stroke = "also in the question", "#fefce8", "#ca8a04"
        else:
            role, fill, stroke = "via", "#f9fafb", "#9ca3af"
        x = x_of[entity]
        name = names.get(entity, entity)
        parts.append(
            f'<g><title>{html.escape(name)} ({html.escape(entity)})</title>'
            f'<text x="{x + node_w / 2}" y="{y - 8}" text-anchor="middle" font-size="11" fill="#6b7280" '
            f'letter-spacing="1">{role.upper()}</text>'
            f'<rect x="{x}" y="{y}" width="{node_w}" height="{node_h}" rx="12" fill="{fill}" stroke="{stroke}" stroke-width="2"/>'
            f'<text x="{x + node_w / 2}" y="{y + node_h / 2 + 5}" text-anchor="middle" font-size="15" font-weight="600" '
            f'fill="#111827">{html.escape(_short(name))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _arc(x1: float, x2: float, bottom: float, depth: float, labels: list[tuple[str, str]], markers: str) -> list[str]:
    """SVG parts of a labelled arc from under one box (centre ``x1``) to under another (``x2``):
    a quadratic curve that dips ``depth`` below the boxes' bottom edge, labels under its lowest point."""

    control_y = bottom + 2 * depth  # a quadratic curve reaches half-way to its control point
    parts = [f'<path d="M{x1},{bottom + 2} Q{(x1 + x2) / 2},{control_y} {x2},{bottom + 2}" fill="none" stroke="#9ca3af" '
             f'stroke-width="2"{markers}/>']
    for i, (arrow, relation) in enumerate(labels[:4]):
        parts.append(_edge_label((x1 + x2) / 2, bottom + depth + 16 * (i + 1), arrow, relation))
    return parts


def _edge_label(x: float, y: float, arrow: str, relation: str) -> str:
    """One fact's relation as SVG text centred at (``x``, ``y``), an arrow on the side it points to,
    the full relation id as its tooltip."""

    text = ("" if arrow == "→" else "← ") + _short(relation_label(relation), 21) + (" →" if arrow == "→" else "")
    return (f'<text x="{x}" y="{y}" text-anchor="middle" font-size="13" fill="#374151">'
            f"<title>{html.escape(relation)}</title>{html.escape(text)}</text>")


def alternative_rows(answer: Answer) -> list[list[Any]]:
    return [[a.name, f"{a.confidence:.0%}", a.description] for a in answer.alternatives]


def history_rows(history: list[dict[str, Any]]) -> list[list[Any]]:
    return [[h["time"], h["question"], h["answer"], h["confidence"], h["source"]] for h in reversed(history)]


def build_ask_tab(pipeline: Any | None, *, store: Any | None = None) -> None:
    """The Ask tab. ``pipeline`` is the app's one shared ``AskPipeline`` (None: no reader available)."""

    entity_store = getattr(pipeline, "store", None) or store

    def ask(question: str, history: list[dict[str, Any]] | None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (Gradio's idiom)
        history = list(history or [])
        empty = ("", "", "", [], [], history, history_rows(history))
        if pipeline is None:
            return (message_html("The reader model is not available on this server yet; see the note above.", "info"), *empty[1:])
        progress(0.05, desc="Linking entities and reading the graph…")
        started = time.perf_counter()
        try:
            answer = pipeline.ask(question, fallback=False)
            if getattr(pipeline, "wants_fallback", None) and pipeline.wants_fallback(answer):
                progress(0.3, desc="The graph is not sure: asking the LLM and checking its claims…")
                answer = pipeline.fall_back(answer)
        except QAError as e:
            return (message_html(str(e)), *empty[1:])
        except Exception:  # a bug: log it, keep the page alive
            log.exception("ask failed")
            return (message_html("Something went wrong while answering; the error was logged.", "error"), *empty[1:])
        progress(0.9, desc="Rendering the evidence…")
        took = time.perf_counter() - started
        card = ""
        if answer.answer is not None and answer.answer.kind == "entity" and entity_store is not None:  # a value has no card
            entity = entity_store.get_entity(answer.answer.id)
            card = card_html(entity) if entity is not None else ""
        history.append(
            {
                "time": time.strftime("%H:%M:%S"),
                "question": answer.question[:200],
                "answer": answer.answer.name if answer.answer else "—",
                "confidence": f"{answer.confidence:.0%}" if answer.answer else "",
                "source": BADGES[source_key(answer)][0],
            }
        )
        history = history[-MAX_HISTORY:]
        status = f"<div class='qa-took' style='color:#6b7280;font-size:0.85em'>answered in {took * 1000:.0f} ms</div>"
        return (
            answer_html(answer) + status,
            evidence_svg(answer),
            card,
            evidence_rows(answer.evidence),
            alternative_rows(answer),
            history,
            history_rows(history),
        )

    if pipeline is None:
        gr.HTML(message_html(NO_READER, "info", markup=True), elem_id="ask-no-reader")
    with gr.Row(equal_height=True):
        question = gr.Textbox(
            label="Question", placeholder="e.g. Who directed Inception?", scale=5, lines=1, max_lines=4,
            elem_id="ask-question", autofocus=True,
        )
        submit = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-submit", interactive=pipeline is not None)
    gr.Examples(EXAMPLES, inputs=question, label="Try")
    with gr.Row(visible=pipeline is not None):
        with gr.Column(scale=3):
            result = gr.HTML(elem_id="ask-answer")
            graph = gr.HTML(elem_id="ask-graph")
            gr.Markdown("#### Supporting facts")
            evidence = gr.Dataframe(headers=EVIDENCE_COLUMNS, interactive=False, wrap=True, elem_id="ask-evidence",
                                    column_widths=["20%", "22%", "20%", "12%", "26%"])
        with gr.Column(scale=2):
            card = gr.HTML(elem_id="ask-card")
            gr.Markdown("#### Alternatives")
            alternatives = gr.Dataframe(headers=ALTERNATIVE_COLUMNS, interactive=False, wrap=True, elem_id="ask-alternatives",
                                        column_widths=["36%", "18%", "46%"])
    with gr.Accordion("This session's questions", open=False, elem_id="ask-history-box", visible=pipeline is not None):
        history_table = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True, elem_id="ask-history",
                                     column_widths=["10%", "45%", "25%", "10%", "10%"])
    history = gr.State([])

    outputs = [result, graph, card, evidence, alternatives, history, history_table]
    submit.click(ask, inputs=[question, history], outputs=outputs, api_name="ask")
    question.submit(ask, inputs=[question, history], outputs=outputs, api_visibility="private")

    def pick(history_value: list[dict[str, Any]], event: gr.SelectData) -> Any:
        rows = history_rows(history_value or [])
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return rows[row][1] if 0 <= row < len(rows) else gr.update()

    history_table.select(pick, inputs=[history], outputs=question, api_visibility="private")
