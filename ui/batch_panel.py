"""The Review tab's "Decide a batch" (issue 27 item 7): accept or reject every proposed fact that
matches the tab's filters (relation, minimum score, age) and an upper score bound, with one reason
(e.g. "reject all with score < 0.7").

Preview first: the batch is the fact ids listed then, so facts proposed after the preview are not
swept in. Apply decides them one by one through the same ``ReviewQueue.accept`` / ``reject`` as a
single decision (compare-and-set each, under the logged-in maintainer's name); a fact someone else
decided meanwhile is counted and skipped, not overwritten. Reviewers and curators may both do it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from qa_system.errors import QAError, ReviewConflictError
from ui.auth import MaintainerGate, Session, maintainer_only
from ui.messages import message_html

MAX_BATCH = 500
SHOWN = 5


def batch_filters(relation: str | None, min_score: float, age: str | None, max_score: float, *,
                  age_filter: Callable[[str | None], dict[str, Any]], any_relation: str) -> dict[str, Any]:  # fmt: skip
    """The Review tab's filters (its ``age_filter`` and "any relation" choice) plus the upper score bound."""

    filters = age_filter(age)
    if relation not in (None, "", any_relation):
        filters["relation"] = relation
    if min_score:
        filters["min_score"] = float(min_score)
    if max_score is not None and float(max_score) < 1.0:
        filters["max_score"] = float(max_score)
    return filters


class BatchPanel:
    """``refresh(relation, min_score, age)`` gives the Review tab's listed outputs; ``age_filter``,
    ``any_relation`` and ``label`` are the tab's own (passed in: the tab imports this module)."""

    def __init__(self, queue: Any, refresh: Callable[..., tuple[Any, ...]], *, age_filter: Callable[[str | None], dict[str, Any]],
                 any_relation: str, label: Callable[[Any], str]) -> None:  # fmt: skip
        self.queue = queue
        self.refresh = refresh
        self.age_filter, self.any_relation, self.label = age_filter, any_relation, label

    def preview(self, session: Session, relation: str | None, min_score: float, age: str | None, max_score: float,
                action: str) -> tuple[Any, ...]:  # fmt: skip
        """(message, pending {action, ids}, apply button)."""

        try:
            filters = batch_filters(relation, min_score, age, max_score, age_filter=self.age_filter, any_relation=self.any_relation)
            facts = self.queue.list(limit=MAX_BATCH, **filters)
        except QAError as e:
            return message_html(str(e)), {}, gr.update(interactive=False)
        if not facts:
            return message_html("No proposed fact matches these filters.", "info"), {}, gr.update(interactive=False)
        sample = "".join(f"<li>{html.escape(self.label(f))}</li>" for f in facts[:SHOWN])
        more = f"<li>… and {len(facts) - SHOWN} more</li>" if len(facts) > SHOWN else ""
        cap = f" (the first {MAX_BATCH}; apply again for the rest)" if len(facts) >= MAX_BATCH else ""
        text = (f"<div id='batch-summary'><b>{action.capitalize()} {len(facts)} proposed fact(s)</b>{cap}:"
                f"<ul>{sample}{more}</ul>Press <b>Apply to the batch</b> to decide them.</div>")  # fmt: skip
        label = f"{action.capitalize()} {len(facts)} fact(s)"
        return text, {"action": action, "ids": [f.id for f in facts]}, gr.update(interactive=True, value=label)

    def apply(self, session: Session, pending: dict[str, Any] | None, reason: str, relation: str | None,
              min_score: float, age: str | None) -> tuple[Any, ...]:  # fmt: skip
        """(message, pending cleared, apply button, *the Review tab's listed outputs)."""

        idle = gr.update(interactive=False, value="Apply to the batch")
        if not pending or not pending.get("ids"):
            return (message_html("Preview the batch first.", "info"), {}, idle, *[gr.update()] * 6)
        action, reason = pending["action"], (reason or "").strip()
        if action == "reject" and not reason:
            return (message_html("A reason is required to reject (one reason for the whole batch); nothing was decided."),
                    pending, gr.update(), *[gr.update()] * 6)  # fmt: skip
        decide = self.queue.accept if action == "accept" else self.queue.reject
        done, lost, failed = 0, 0, []
        for fact_id in pending["ids"]:
            try:
                decide(fact_id, reviewer=session.user, reason=reason)
                done += 1
            except ReviewConflictError:
                lost += 1
            except QAError as e:  # e.g. the fact was deleted meanwhile
                failed.append(f"{fact_id}: {e}")
        verb = {"accept": "Accepted", "reject": "Rejected"}[action]
        text = f"{verb} {done} fact(s) by {session.user}."
        if lost:
            text += f" {lost} had been decided by someone else meanwhile (skipped, logged)."
        if failed:
            text += f" {len(failed)} failed: {'; '.join(failed[:3])}."
        return (message_html(text, "ok" if not (lost or failed) else "warning"), {}, idle, *self.refresh(relation, min_score, age))


def build_batch_panel(queue: Any, gate: MaintainerGate, filters: list[Any], listed: list[Any],
                      refresh: Callable[..., tuple[Any, ...]], **tab_helpers: Any) -> None:  # fmt: skip
    """Inside the Review tab: ``filters`` are its (relation, min score, age) inputs, ``listed`` the six
    outputs ``refresh(relation, min_score, age)`` fills; ``tab_helpers``: ``BatchPanel``'s keywords."""

    panel = BatchPanel(queue, refresh, **tab_helpers)
    with gr.Accordion("Decide a batch", open=False, elem_id="batch-panel"):
        gr.Markdown("Every proposed fact matching the filters above, and scoring below the bound here, decided at once "
                    "with one reason (e.g. reject all with score < 0.7). Preview first.")
        with gr.Row():
            max_score = gr.Slider(0, 1, value=1, step=0.05, label="Score below (1 = any)", scale=2, elem_id="batch-max-score")
            action = gr.Radio(["reject", "accept"], value="reject", label="Decision", scale=1, elem_id="batch-action")
        reason = gr.Textbox(label="Reason (required to reject)", max_lines=2, elem_id="batch-reason")
        with gr.Row():
            preview = gr.Button("Preview batch", elem_id="batch-preview")
            apply = gr.Button("Apply to the batch", variant="stop", interactive=False, elem_id="batch-apply")
        message = gr.HTML(elem_id="batch-message")
    pending = gr.State({})
    private = {"api_visibility": "private"}
    preview.click(maintainer_only(panel.preview), inputs=[gate.session, *filters, max_score, action],
                  outputs=[message, pending, apply], **private)  # fmt: skip
    apply.click(maintainer_only(panel.apply), inputs=[gate.session, pending, reason, *filters],
                outputs=[message, pending, apply, *listed], **private)  # fmt: skip


# -- what the graph already says (shown beside a proposed fact) ------------------------------------------------
KNOWN_ROWS = 12


def known_facts_html(store: Any, fact: Any) -> str:
    """The other facts with the proposed fact's subject and relation (any status but rejected): a
    conflicting or duplicate proposal is visible before deciding. Every value escaped."""

    from qa_system.types import FactStatus

    esc = html.escape
    try:
        around = store.neighbors([fact.subject], hops=1, relations=[fact.relation], direction="out",
                                 statuses=[s for s in FactStatus if s != FactStatus.REJECTED], limit_per_entity=KNOWN_ROWS + 1)  # fmt: skip
    except QAError as e:
        return f"<div class='qa-known-facts' style='color:#6b7280'>What the graph says could not be read: {esc(str(e))}</div>"
    others = [f for f in around.facts if f.id != fact.id and f.subject == fact.subject and f.relation == fact.relation]
    if not others:
        return ("<div class='qa-known-facts' style='margin-top:8px;color:#6b7280'>The graph says nothing else about this "
                "subject and relation.</div>")  # fmt: skip
    rows = "".join(f"<li>{esc(f.subject_name)} → <b>{esc(f.object_name)}</b> <small>({esc(f.status.value)})</small></li>"
                   for f in others[:KNOWN_ROWS])  # fmt: skip
    more = "<li>…</li>" if len(others) > KNOWN_ROWS else ""
    return (f"<div class='qa-known-facts' style='margin-top:8px'><b>The graph already says</b> (same subject and relation):"
            f"<ul>{rows}{more}</ul></div>")
