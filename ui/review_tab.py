"""Review tab (maintainers only): the proposed-facts queue and the decisions on it.

Thin layer over ``qa_system.maintain.review.ReviewQueue``, the same object ``qa-system review`` drives:
filtering (relation, minimum entailment score, age), a fact's evidence premises with their
entailment scores, accept, edit-then-accept, reject with a reason, and the append-only audit log.
The reviewer recorded on every decision is the logged-in maintainer (``Session.user``), never a
name typed into the page. A fact someone else decided first is a ``ReviewConflictError``: shown as
a clear notice, the queue refreshed, nothing applied (the attempt is in the audit log).

Counts: *pending* is the number of proposed facts in the graph; *accepted* (accept or edit) and
*rejected* count the applied decisions of the audit log, so they move with every decision.
Every handler is wrapped in ``maintainer_only`` (see ``ui.auth``).
"""

from __future__ import annotations

import html
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import gradio as gr

from qa_system.errors import QAError, ReviewConflictError
from qa_system.maintain.review import ReviewItem, ReviewQueue, fact_score, read_jsonl
from qa_system.types import FactStatus, FactView, parse_duration, utc_now
from ui.auth import MaintainerGate, Session, maintainer_only
from ui.format import relation_label
from ui.messages import message_html

log = logging.getLogger(__name__)

QUEUE_LIMIT = 200
AUDIT_ROWS = 25
ANY_RELATION = "(any relation)"
QUEUE_COLUMNS = ["subject", "relation", "object", "score", "age", "proposed by", "fact id"]
AUDIT_COLUMNS = ["time (UTC)", "action", "outcome", "fact", "reviewer", "reason"]
AGE_CHOICES = ["any age", "newer than 1 h", "newer than 24 h", "newer than 7 d", "older than 1 h", "older than 24 h", "older than 7 d"]
COUNT_COLOURS = {"pending": "#d97706", "accepted": "#16a34a", "rejected": "#dc2626", "conflicts": "#6b7280"}


# -- pure rendering (unit-tested without a server) -------------------------------------------------
def age_text(hours: float) -> str:
    if hours < 1:
        return f"{max(0, round(hours * 60))} min"
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} d"


def age_filter(choice: str | None) -> dict[str, Any]:
    """``"newer than 24 h"`` → ``{"newer_than": timedelta(hours=24)}`` (the CLI's duration syntax)."""

    if not choice or choice == AGE_CHOICES[0]:
        return {}
    side, _, amount = choice.partition(" than ")
    key = "newer_than" if side == "newer" else "older_than"
    return {key: parse_duration(amount.replace(" ", ""))}


def queue_rows(facts: list[FactView]) -> list[list[Any]]:
    now = utc_now()
    return [
        [f.subject_name, relation_label(f.relation), f.object_name, round(fact_score(f), 3),
         age_text((now - f.provenance.created_at).total_seconds() / 3600), f.provenance.model or "—", f.id]
        for f in facts
    ]  # fmt: skip


def fact_label(f: FactView) -> str:
    return f"{f.subject_name} · {relation_label(f.relation)} · {f.object_name}  ({fact_score(f):.2f})"


def decision_counts(audit: list[dict[str, Any]], pending: int) -> dict[str, int]:
    applied = Counter(r.get("action") for r in audit if r.get("outcome") == "applied")
    conflicts = sum(1 for r in audit if r.get("outcome") == "conflict")
    return {"pending": pending, "accepted": applied["accept"] + applied["edit"], "rejected": applied["reject"], "conflicts": conflicts}


def counts_html(counts: dict[str, int]) -> str:
    cells = "".join(
        f"<div class='qa-tile qa-count-{name}' style='flex:1 1 110px;padding:10px 14px;border:1px solid #e5e7eb;"
        f"border-radius:12px;border-top:4px solid {COUNT_COLOURS[name]}'>"
        f"<div style='color:#6b7280;font-size:0.78em;text-transform:uppercase;letter-spacing:1px'>{name}</div>"
        f"<div class='qa-count-value' style='font-size:1.5em;font-weight:700'>{counts[name]:,}</div></div>"
        for name in COUNT_COLOURS
    )
    return f"<div id='review-count-tiles' style='display:flex;gap:12px;flex-wrap:wrap'>{cells}</div>"


def _bar(score: float | None) -> str:
    if score is None:
        return "<span style='color:#6b7280'>no score</span>"
    pct = max(0.0, min(1.0, score)) * 100
    colour = "#15803d" if pct >= 50 else "#b45309"
    return (
        f"<span style='display:inline-block;width:90px;height:8px;background:#e5e7eb;border-radius:4px;vertical-align:middle'>"
        f"<span style='display:block;width:{pct:.0f}%;height:8px;background:{colour};border-radius:4px'></span></span>"
        f" <b>{score:.2f}</b>"
    )


def item_html(item: ReviewItem) -> str:
    """A fact with its provenance, premises (entailment score each) and history; all values escaped."""

    esc = html.escape
    f, p = item.fact, item.fact.provenance
    premises = "".join(
        f"<li style='margin:4px 0'>{_bar(e['score'])} &nbsp;{esc(str(e['premise']))}</li>" for e in item.evidence
    ) or "<li style='color:#6b7280'>no premises recorded</li>"
    history = "".join(
        f"<li>{esc(str(h.get('at', ''))[:19])} · {esc(str(h.get('action')))} by {esc(str(h.get('reviewer')))}: "
        f"{esc(str(h.get('outcome')))} {esc(str(h.get('reason') or ''))}</li>"
        for h in item.history
    )
    meta = [
        ("status", f.status.value), ("entailment score", f"{item.score:.3f}" if item.score is not None else "—"),
        ("age", age_text(item.age_hours)), ("model", p.model or "—"), ("endpoint", p.endpoint or "—"),
        ("validator", p.checkpoint or "—"), ("fact id", f.id),
    ]  # fmt: skip
    chips = "".join(
        f"<span style='display:inline-block;margin:2px 6px 2px 0;padding:2px 8px;border-radius:999px;background:#f1f5f9;"
        f"font-size:0.85em'><span style='color:#6b7280'>{esc(k)}</span> {esc(v)}</span>"
        for k, v in meta
    )
    question = f"<p><b>Question:</b> {esc(p.question)}</p>" if p.question else ""
    answer = f"<p><b>LLM answer:</b> {esc(p.raw_answer[:600])}</p>" if p.raw_answer else ""
    return (
        "<div class='qa-review-item' style='padding:12px 16px;border:1px solid #e5e7eb;border-radius:12px'>"
        f"<h3 style='margin:0 0 6px'>{esc(f.subject_name)} <span style='color:#2563eb'>— {esc(relation_label(f.relation))} →</span> "
        f"{esc(f.object_name)}</h3><div style='color:#6b7280;font-size:0.85em'><code>{esc(f.relation)}</code></div>"
        f"<div style='margin:8px 0'>{chips}</div>{question}{answer}"
        f"<div><b>Evidence premises</b> (entailment score each)</div><ul style='list-style:none;padding-left:4px'>{premises}</ul>"
        + (f"<div><b>History</b></div><ul>{history}</ul>" if history else "")
        + "</div>"
    )


def audit_rows(audit: list[dict[str, Any]], limit: int = AUDIT_ROWS) -> list[list[Any]]:
    """The latest ``limit`` audit entries, newest first."""

    rows = []
    for r in reversed(audit[-limit:]):
        fact = str(r.get("fact_id", ""))
        if r.get("new_fact_id") and r.get("new_fact_id") != r.get("fact_id"):
            fact += f" → {r['new_fact_id']}"
        rows.append([str(r.get("at", ""))[:19].replace("T", " "), r.get("action", ""), r.get("outcome", ""), fact,
                     r.get("reviewer", ""), r.get("reason", "")])
    return rows


# -- the tab -----------------------------------------------------------------------------------------
def build_review_tab(store: Any, workspace: Path | None, gate: MaintainerGate, tab: gr.Tab | None = None) -> None:
    """Build inside ``with gate.tab("Review") as tab:``; the queue loads when ``tab`` is opened.

    ``workspace`` is the folder holding ``review/audit.jsonl`` (the CLI's ``settings.workspace``).
    """

    if workspace is None:
        gr.HTML(message_html("The review queue needs a workspace folder; this app was started without one.", "info"))
        return
    queue = ReviewQueue(store, Path(workspace))

    def pending_count() -> int:
        return int(store.stats().facts_by_status.get(FactStatus.PROPOSED.value, 0))

    def refresh(relation: str | None, min_score: float, age: str | None, keep: str | None = None) -> tuple[Any, ...]:
        """Queue table, fact choices, counts and audit log; keeps ``keep`` selected while it is still queued."""

        filters = age_filter(age)
        if relation not in (None, "", ANY_RELATION):
            filters["relation"] = relation
        if min_score:
            filters["min_score"] = float(min_score)
        unfiltered = queue.list(limit=QUEUE_LIMIT)  # the relation choices, and the pending count when short
        facts = queue.list(limit=QUEUE_LIMIT, **filters) if filters else unfiltered
        pending = len(unfiltered) if len(unfiltered) < QUEUE_LIMIT else pending_count()
        audit = read_jsonl(queue.files.audit)
        relations = sorted({f.relation for f in unfiltered} | ({filters["relation"]} if "relation" in filters else set()))
        choices = [(fact_label(f), f.id) for f in facts]
        selected = keep if keep in {f.id for f in facts} else (facts[0].id if facts else None)
        shown = f"{len(facts)} proposed fact{'s' if len(facts) != 1 else ''} match" + (
            f" (showing the newest {QUEUE_LIMIT})" if len(facts) >= QUEUE_LIMIT else "")
        return (
            queue_rows(facts),
            gr.update(choices=choices, value=selected),
            gr.update(choices=[ANY_RELATION, *relations], value=relation if relation in relations else ANY_RELATION),
            counts_html(decision_counts(audit, pending)),
            audit_rows(audit),
            shown,
        )

    def load(_session: Session, relation: str | None, min_score: float, age: str | None, keep: str | None = None) -> tuple[Any, ...]:
        try:
            return (*refresh(relation, min_score, age, keep), gr.update())
        except QAError as e:
            return (gr.update(),) * 6 + (message_html(str(e)),)

    def show(_session: Session, fact: str | None) -> tuple[Any, ...]:
        if not fact:
            return "<div style='color:#6b7280'>No fact selected: the queue is empty or nothing matches the filters.</div>", "", "", ""
        try:
            item = queue.show(fact)
        except QAError as e:
            return message_html(str(e)), "", "", ""
        f = item.fact
        return item_html(item) + known_facts_html(store, f), f.subject_name, f.relation, f.object_name

    def decide(action: str):
        def handler(session: Session, fact: str | None, reason: str, subject: str, relation_text: str, obj: str,
                    relation: str | None, min_score: float, age: str | None) -> tuple[Any, ...]:
            if not fact:
                return (*refresh(relation, min_score, age), message_html("Select a proposed fact first."), gr.update())
            try:
                if action == "accept":
                    outcome = queue.accept(fact, reviewer=session.user, reason=reason)
                elif action == "reject":
                    outcome = queue.reject(fact, reviewer=session.user, reason=reason)
                else:
                    current = queue.store.get_fact(fact)
                    outcome = queue.edit(
                        fact, reviewer=session.user, reason=reason,
                        subject=subject if subject.strip() and subject.strip() != current.subject_name else None,
                        relation=relation_text if relation_text.strip() and relation_text.strip() != current.relation else None,
                        obj=obj if obj.strip() and obj.strip() != current.object_name else None,
                    )  # fmt: skip
            except ReviewConflictError as e:
                note = message_html(f"Not applied: {e}. The queue was refreshed.", "warning")
                return (*refresh(relation, min_score, age), note, gr.update())
            except QAError as e:  # bad input (no reason, unknown entity...): nothing applied, the form kept
                return (*[gr.update()] * 6, message_html(str(e)), gr.update())
            done = {"accept": "Accepted", "reject": "Rejected", "edit": "Edited and accepted"}[action]
            extra = f" (corrected fact {outcome.new_fact_id})" if outcome.new_fact_id and outcome.new_fact_id != outcome.fact_id else ""
            note = message_html(f"{done}: fact {outcome.fact_id} is now {outcome.status.value}{extra}; by {outcome.reviewer}.", "ok")
            return (*refresh(relation, min_score, age), note, "")

        return handler

    gr.Markdown(
        "Facts proposed by the LLM fallback that passed entailment wait here. **Accept** makes a fact verified; "
        "**Edit** corrects it and accepts the correction; **Reject** needs a reason. Every decision is recorded "
        "in the audit log under your login, as `qa-system review` does."
    )
    counts = gr.HTML(elem_id="review-counts")
    with gr.Row():
        relation = gr.Dropdown(choices=[ANY_RELATION], value=ANY_RELATION, label="Relation", scale=3, elem_id="review-relation")
        min_score = gr.Slider(0, 1, value=0, step=0.05, label="Minimum entailment score", scale=2, elem_id="review-min-score")
        age = gr.Dropdown(choices=AGE_CHOICES, value=AGE_CHOICES[0], label="Age", scale=2, elem_id="review-age")
        reload = gr.Button("Refresh", scale=0, size="sm", elem_id="review-refresh")
    shown = gr.Markdown(elem_id="review-shown")
    table = gr.Dataframe(headers=QUEUE_COLUMNS, interactive=False, wrap=True, elem_id="review-queue", max_height=320,
                         column_widths=["19%", "17%", "19%", "8%", "7%", "12%", "18%"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            # custom values allowed: the id is checked by ReviewQueue (a stale page gets a clear message)
            fact = gr.Dropdown(choices=[], label="Fact to review (or click a row above)", elem_id="review-fact", allow_custom_value=True)
            detail = gr.HTML(elem_id="review-detail")
        with gr.Column(scale=2):
            reason = gr.Textbox(label="Reason (required to reject)", lines=2, max_lines=4, elem_id="review-reason")
            with gr.Row():
                accept = gr.Button("Accept", variant="primary", elem_id="review-accept")
                reject = gr.Button("Reject", variant="stop", elem_id="review-reject")
            with gr.Accordion("Edit, then accept", open=False, elem_id="review-edit-box"):
                subject = gr.Textbox(label="Subject (entity id or exact name)", max_lines=1, elem_id="review-edit-subject")
                relation_text = gr.Textbox(label="Relation", max_lines=1, elem_id="review-edit-relation")
                obj = gr.Textbox(label="Object (entity id or exact name)", max_lines=1, elem_id="review-edit-object")
                edit = gr.Button("Save correction and accept", elem_id="review-edit")
            message = gr.HTML(elem_id="review-message")
    gr.Markdown(f"#### Audit log\nThe latest {AUDIT_ROWS} review attempts, newest first (conflicts included).")
    audit = gr.Dataframe(headers=AUDIT_COLUMNS, interactive=False, wrap=True, elem_id="review-audit", max_height=300,
                         column_widths=["16%", "9%", "10%", "30%", "13%", "22%"])

    filters = [relation, min_score, age]
    listed = [table, fact, relation, counts, audit, shown]
    private = {"api_visibility": "private"}
    triggers = [reload.click, relation.input, min_score.release, age.input] + ([tab.select] if tab is not None else [])
    for trigger in triggers:
        trigger(maintainer_only(load), inputs=[gate.session, *filters, fact], outputs=[*listed, message], **private)
    fact.change(maintainer_only(show), inputs=[gate.session, fact], outputs=[detail, subject, relation_text, obj], **private)

    def pick(_session: Session, rows: Any, event: gr.SelectData) -> Any:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        values = rows.values.tolist() if hasattr(rows, "values") else list(rows or [])
        return values[row][-1] if 0 <= row < len(values) else gr.update()

    table.select(maintainer_only(pick), inputs=[gate.session, table], outputs=fact, **private)
    form = [gate.session, fact, reason, subject, relation_text, obj, *filters]
    for button, action in ((accept, "accept"), (reject, "reject"), (edit, "edit")):
        button.click(maintainer_only(decide(action)), inputs=form, outputs=[*listed, message, reason], **private)

    from ui.batch_panel import build_batch_panel, known_facts_html
    from ui.history_panel import build_undo_panel

    build_batch_panel(queue, gate, filters, listed, refresh,  # decide a filtered batch with one reason
                      age_filter=age_filter, any_relation=ANY_RELATION, label=fact_label)
    build_undo_panel(store, workspace, gate, tab)  # the store's audit trail, newest first, and Undo
