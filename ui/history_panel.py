"""The Review tab's "Recent maintainer actions": the store's audit trail, newest first, and **Undo**.

Thin layer over ``qa_system.maintain.events`` (``list_events``, ``get_event``) and
``qa_system.maintain.actions.undo`` (the graph, and a forgotten document's passages), the same functions ``qa-system review log`` / ``review undo`` call; the undo is recorded under the logged-in
maintainer. A curator may undo any event; a reviewer only their own review decisions (accept,
reject, edit). What ``undo`` refuses (an unknown event, one already undone, one a later event
depends on: it names that event) is one line, and nothing changes.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from qa_system.errors import QAError
from qa_system.maintain.accounts import AccessDeniedError, allowed
from ui.auth import MaintainerGate, Session, maintainer_only
from ui.messages import message_html

EVENT_ROWS = 25
EVENT_COLUMNS = ["time (UTC)", "action", "by", "what", "reason", "state", "event id"]
REVIEW_ACTIONS = ("accept", "reject", "edit")


def event_what(event: Any) -> str:
    """What an event touched, in a few words (the CLI's ``describe`` without id, time and actor)."""

    data = event.data
    if event.action == "forget":
        return "document " + ", ".join(data.get("document_ids", []))
    if event.action == "merge":
        return f"{', '.join(data.get('duplicates', []))} into {data.get('keep', '?')}"
    if event.action == "undo":
        return f"event {event.undoes} ({data.get('undone_action', '?')})"
    facts = data.get("facts_after") or data.get("facts_before") or []
    shown = [f"{f.get('subject_name') or f.get('subject')} · {f.get('relation')} · {f.get('object_name') or f.get('object')}"
             for f in facts[:2]]  # fmt: skip
    return "; ".join(shown) + (f" (+{len(facts) - 2})" if len(facts) > 2 else "")


def event_rows(events: list[Any]) -> list[list[Any]]:
    return [[e.at[:19].replace("T", " "), e.action, e.actor, event_what(e), e.reason,
             f"undone by {e.undone_by}" if e.undone_by else ("—" if e.action == "undo" else "in effect"), e.id]
            for e in events]  # fmt: skip


def check_undo(session: Session, event: Any) -> None:
    """A curator may undo anything; a reviewer only their own review decisions (``AccessDeniedError``)."""

    if allowed(session.role, "undo"):
        return
    if event.action in REVIEW_ACTIONS and event.actor == session.user:
        return
    raise AccessDeniedError(
        f"a {session.role} may undo only their own review decisions; event {event.id} is a {event.action} by "
        f"{event.actor or '?'} (nothing changed)"
    )


class HistoryPanel:
    def __init__(self, store: Any, workspace: Path | None) -> None:
        self.store = store
        self.workspace = Path(workspace) if workspace is not None else None

    def load(self, session: Session) -> tuple[Any, ...]:
        """(rows, event choices) of the newest events."""

        from qa_system.maintain.events import list_events

        try:
            events = list_events(self.store, EVENT_ROWS)
        except QAError as e:
            return [], gr.update(choices=[], value=None, label=f"Event to undo ({e})")
        choices = [(f"{e.at[:19].replace('T', ' ')} · {e.action} by {e.actor} · {event_what(e)[:60]}", e.id)
                   for e in events if e.action != "undo" and not e.undone_by]  # fmt: skip
        return event_rows(events), gr.update(choices=choices, value=choices[0][1] if choices else None)

    def undo(self, session: Session, event_id: str | None, reason: str) -> tuple[Any, ...]:
        """(message, rows, choices): the undo under the session's name, or one line saying why not."""

        from qa_system.maintain import actions
        from qa_system.maintain.events import get_event, undo

        if not (event_id or "").strip():
            return (message_html("Pick an event to undo.", "info"), *self.load(session))
        try:
            event = get_event(self.store, event_id)
            check_undo(session, event)
            if hasattr(actions, "undo") and self.workspace is not None:  # the graph, and what the workspace held
                done = actions.undo(self.store, self.workspace, event.id, session.user, reason=reason or "")
            else:
                done = undo(self.store, event.id, session.user, reason=reason or "")
        except QAError as e:  # unknown, already undone, blocked by a later event, a reviewer's limit
            return (message_html(str(e)), *self.load(session))
        text = f"Undid the {event.action} of {html.escape(event.actor or '?')} (event {event.id}) as {html.escape(session.user)}: event {done.id}."
        return (message_html(text, "ok"), *self.load(session))


def build_undo_panel(store: Any, workspace: Path | None, gate: MaintainerGate, tab: gr.Tab | None = None) -> None:
    """Inside the Review tab, under the audit log. Skipped when the store keeps no audit trail."""

    import importlib.util

    if not hasattr(store, "list_events") or importlib.util.find_spec("qa_system.maintain.events") is None:
        return
    panel = HistoryPanel(store, workspace)
    with gr.Accordion("Recent maintainer actions (undo)", open=False, elem_id="undo-panel"):
        gr.Markdown("Every maintainer action, newest first, from the graph store's audit trail (shared by every app "
                    "server on this database). **Undo** reverts one when no later action depends on it; curators may "
                    "undo any action, reviewers their own review decisions.")  # fmt: skip
        table = gr.Dataframe(headers=EVENT_COLUMNS, interactive=False, wrap=True, max_height=300, elem_id="undo-events")
        with gr.Row():
            event = gr.Dropdown(label="Event to undo", choices=[], allow_custom_value=True, scale=3, elem_id="undo-event")
            reason = gr.Textbox(label="Reason", max_lines=1, scale=2, elem_id="undo-reason")
        with gr.Row():
            reload = gr.Button("Refresh", size="sm", elem_id="undo-refresh")
            run = gr.Button("Undo", variant="stop", elem_id="undo-button")
        message = gr.HTML(elem_id="undo-message")
    private = {"api_visibility": "private"}
    for trigger in [reload.click] + ([tab.select] if tab is not None else []):
        trigger(maintainer_only(panel.load), inputs=[gate.session], outputs=[table, event], **private)
    run.click(maintainer_only(panel.undo), inputs=[gate.session, event, reason], outputs=[message, table, event], **private)
