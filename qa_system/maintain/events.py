"""The maintainers' audit trail, kept in the graph store, and ``undo``.

Every maintainer action (``ACTIONS``: review decisions, forget, merge, curation, undo) is one
``graph.store.AuditEvent`` that the store writes in the same transaction as the action's changes
(``GraphStore.apply_change``): app servers sharing one database share one trail, and a change that
lost a race (the fact is no longer in the state the maintainer saw) writes neither the change nor
its event. An event keeps the facts and entities it touched as they were before and after, which
is all ``undo`` needs: it writes the "before" back, in one transaction that first checks every fact
is still as the event left it and that the event was not undone meanwhile.

An event can be undone while no later event (not itself undone, and not an ``undo``) touches a fact
or entity it touched; otherwise ``undo`` names that event, to be undone first. An ``undo`` cannot
be undone (repeat the action instead). Outside the graph: undoing a ``forget`` puts the document's
passages back in the workspace (``actions.undo``); undoing a ``merge`` brings the duplicates back,
their ids resolve to them again (the merge memo is only read for ids that no longer exist), and
remembered mentions spelled like a duplicate's names resolve to it again; mentions ingest matched
to a duplicate by similarity stay on the kept entity.

Public functions: ``record(store, change)`` (used by the actions), ``list_events(store, limit)``,
``get_event(store, event_id)``, ``undo(store, event_id, actor)`` (the graph only; the CLI and the
app call ``qa_system.maintain.actions.undo(store, workspace, event_id, actor)``, which also puts a
forgotten document's passages back), ``default_actor()``, ``describe(event)``, ``summary(event)``.
"""

from __future__ import annotations

import getpass
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any

from graph.store import AuditEvent, Change, StaleChangeError
from qa_system.errors import InputError, ReviewConflictError
from qa_system.types import Entity, Fact, FactView, Provenance, utc_now

log = logging.getLogger(__name__)

ACTIONS = ("accept", "reject", "edit", "forget", "merge", "retract", "add", "rename", "undo")
MAX_EVENTS = 1000  # at most this many events per ``list_events`` call
MAX_ACTOR_CHARS = 200
MAX_REASON_CHARS = 2000


class UndoBlockedError(ReviewConflictError):
    """A later event depends on the one to undo (``blocking`` is it); nothing was changed."""

    def __init__(self, message: str, blocking: AuditEvent) -> None:
        super().__init__(message)
        self.blocking = blocking


def default_actor() -> str:
    """The maintainer name the CLI uses when none is given: ``$QA_REVIEWER`` or the login name."""

    try:
        return os.environ.get("QA_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):
        return ""


def now_iso() -> str:
    return utc_now().isoformat(timespec="microseconds")


def new_event_id() -> str:
    return uuid.uuid4().hex[:16]


# -- what an event keeps ------------------------------------------------------------------------------
def fact_record(fact: Fact | FactView) -> dict[str, Any]:
    """A fact as an event keeps it: enough to write it back (``fact_from_record``) and to read it."""

    record = {
        "id": fact.id, "subject": fact.subject, "relation": fact.relation, "object": fact.object,
        "status": fact.status.value, "confidence": fact.confidence, "provenance": fact.provenance.model_dump(mode="json"),
    }  # fmt: skip
    if isinstance(fact, FactView):
        record |= {"subject_name": fact.subject_name, "object_name": fact.object_name}
    return record


def fact_from_record(record: dict[str, Any]) -> Fact:
    return Fact(
        subject=record["subject"], relation=record["relation"], object=record["object"], status=record["status"],
        confidence=record["confidence"], provenance=Provenance.model_validate(record["provenance"]),
    )  # fmt: skip


def as_fact(view: FactView | Fact) -> Fact:
    if isinstance(view, Fact):
        return view
    return Fact(subject=view.subject, relation=view.relation, object=view.object, status=view.status,
                confidence=view.confidence, provenance=view.provenance)  # fmt: skip


def make_change(
    action: str,
    actor: str,
    reason: str = "",
    *,
    facts_before: Sequence[Fact | FactView] = (),
    facts_after: Sequence[Fact | FactView] = (),
    entities_before: Sequence[Entity] = (),
    entities_after: Sequence[Entity] = (),
    expect: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    undo_of: str = "",
) -> Change:
    """The ``Change`` that takes the graph from the "before" facts and entities to the "after" ones
    (absent from "after": deleted; in "after": written as given), with its event. ``expect`` is
    what each fact must still be (default: the status of every "before" fact)."""

    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    after_fact_ids = {f.id for f in facts_after}
    after_entity_ids = {e.id for e in entities_after}
    targets = list(dict.fromkeys([*(f.id for f in facts_before), *(f.id for f in facts_after),
                                  *(e.id for e in entities_before), *(e.id for e in entities_after)]))  # fmt: skip
    data = {
        "facts_before": [fact_record(f) for f in facts_before],
        "facts_after": [fact_record(f) for f in facts_after],
        "entities_before": [e.model_dump(mode="json") for e in entities_before],
        "entities_after": [e.model_dump(mode="json") for e in entities_after],
        **(extra or {}),
    }
    event = AuditEvent(
        id=new_event_id(), action=action, actor=actor, at=now_iso(), reason=reason, targets=tuple(targets), data=data, undoes=undo_of,
    )  # fmt: skip
    return Change(
        event=event,
        expect=dict(expect) if expect is not None else {f.id: f.status.value for f in facts_before},
        put_entities=tuple(entities_after),
        delete_facts=tuple(dict.fromkeys(f.id for f in facts_before if f.id not in after_fact_ids)),
        put_facts=tuple(as_fact(f) for f in facts_after),
        delete_entities=tuple(dict.fromkeys(e.id for e in entities_before if e.id not in after_entity_ids)),
        undo_of=undo_of,
        subjects={f.id: f.subject for f in (*facts_before, *facts_after)},
    )


def record(store: Any, change: Change) -> AuditEvent:
    """Apply ``change`` with its event in one transaction; ``StaleChangeError`` (nothing written)
    when a fact is no longer as ``change.expect`` says."""

    store.apply_change(change)
    log.info("event %s: %s by %s", change.event.id, change.event.action, change.event.actor)
    return change.event


# -- reading the trail ----------------------------------------------------------------------------------
def list_events(store: Any, limit: int = 50, offset: int = 0, *, about: str | None = None) -> list[AuditEvent]:
    """The newest ``limit`` events (after skipping ``offset``), newest first; with ``about`` (a fact
    or entity id) only the events that touched it."""

    if not 1 <= limit <= MAX_EVENTS:
        raise InputError(f"limit must be between 1 and {MAX_EVENTS}, got {limit}")
    if offset < 0:
        raise InputError(f"offset must be 0 or more, got {offset}")
    if about is not None:
        about = about.strip()
        if not about:
            raise InputError("--about needs a fact or entity id")
        return list(reversed(store.events_touching([about])))[offset : offset + limit]
    return store.list_events(limit=limit, offset=offset)


def get_event(store: Any, event_id: str) -> AuditEvent:
    """The event with this id; ``InputError`` when there is none."""

    event_id = (event_id or "").strip()
    event = store.get_event(event_id) if event_id else None
    if event is None:
        raise InputError(f"unknown event {event_id!r} (see `qa-system review log`; nothing changed)")
    return event


def describe(event: AuditEvent) -> str:
    """One line: id, time, action, actor, what it touched, reason, state."""

    data = event.data
    what = {
        "forget": lambda: "documents " + ", ".join(data.get("document_ids", [])),
        "merge": lambda: f"{', '.join(data.get('duplicates', []))} into {data.get('keep', '?')}",
        "undo": lambda: f"event {event.undoes}",
        "rename": lambda: f"{data.get('entity', '?')}: {data.get('old_name', '?')} -> {data.get('new_name', '?')}",
    }.get(event.action, lambda: ", ".join(_fact_line(f) for f in data.get("facts_after", data.get("facts_before", []))[:2]))()
    counts = f"{len(data.get('facts_before', []))} fact(s) before, {len(data.get('facts_after', []))} after"
    state = f"  [undone by {event.undone_by}]" if event.undone_by else ""
    reason = f"  reason: {event.reason}" if event.reason else ""
    return f"{event.id}  {event.at[:19]}  {event.action:<7} by {event.actor or '?'}: {what} ({counts}){reason}{state}"


def _fact_line(record: dict[str, Any]) -> str:
    subject = record.get("subject_name") or record.get("subject")
    obj = record.get("object_name") or record.get("object")
    return f"{subject} | {record.get('relation')} | {obj} [{record.get('status')}]"


def blocking_event(store: Any, event: AuditEvent) -> AuditEvent | None:
    """The first later event in effect (not undone, not an ``undo``) that touches what ``event`` touched."""

    for later in store.events_touching(list(event.targets), after=event.at):
        if later.id != event.id and not later.undone_by and later.action != "undo":
            return later
    return None


def last_event_on(store: Any, target: str) -> AuditEvent | None:
    """The latest event that touched ``target`` (a fact or entity id)."""

    events = store.events_touching([target])
    return events[-1] if events else None


# -- undo ------------------------------------------------------------------------------------------------
def undo(store: Any, event_id: str, actor: str | None = None, *, reason: str = "") -> AuditEvent:
    """Revert event ``event_id`` in the graph as ``actor`` (default ``default_actor()``) and return
    the ``undo`` event (``actions.undo`` also puts back what the workspace held). Bad input raises
    one clear error and changes nothing: ``InputError`` for an unknown event or an ``undo`` event,
    ``ReviewConflictError`` when it was already undone or a fact changed since, ``UndoBlockedError``
    naming the later event that depends on it."""

    actor = " ".join((actor if actor is not None else default_actor()).split())
    reason = " ".join((reason or "").split())
    if not actor or len(actor) > MAX_ACTOR_CHARS:
        raise InputError(f"a maintainer name of 1 to {MAX_ACTOR_CHARS} characters is required to undo (nothing changed)")
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(f"reason is {len(reason)} characters; the limit is {MAX_REASON_CHARS} (nothing changed)")
    event = get_event(store, event_id)
    if event.action == "undo":
        raise InputError(f"event {event.id} is itself an undo (of {event.undoes}); it cannot be undone: repeat the action instead")
    if event.undone_by:
        raise ReviewConflictError(f"event {event.id} was already undone by event {event.undone_by}; nothing changed")
    later = blocking_event(store, event)
    if later is not None:
        raise UndoBlockedError(
            f"event {later.id} ({later.action} by {later.actor or '?'} at {later.at[:19]}) came later and touches the same "
            f"facts or entities; undo it first (nothing changed)",
            later,
        )
    data = event.data
    facts_before = [fact_from_record(r) for r in data.get("facts_before", [])]
    facts_after = [fact_from_record(r) for r in data.get("facts_after", [])]
    entities_before = [Entity.model_validate(r) for r in data.get("entities_before", [])]
    entities_after = [Entity.model_validate(r) for r in data.get("entities_after", [])]
    extra = {k: v for k, v in data.items() if not k.startswith(("facts_", "entities_"))}
    change = make_change(
        "undo", actor, reason, facts_before=facts_after, facts_after=facts_before, entities_before=entities_after,
        entities_after=entities_before, expect={f.id: f.status.value for f in facts_after},
        extra={"undone_action": event.action, **extra}, undo_of=event.id,
    )  # fmt: skip
    try:
        record(store, change)
    except StaleChangeError as e:
        if e.undone_by:
            raise ReviewConflictError(f"event {event.id} was already undone by event {e.undone_by}; nothing changed") from e
        raise ReviewConflictError(
            f"cannot undo event {event.id}: fact {e.fact_id} is {('now ' + e.found) if e.found else 'gone'}, "
            f"not as the event left it; nothing changed"
        ) from e
    return change.event


def summary(event: AuditEvent, *, with_data: bool = False) -> dict[str, Any]:
    """An event as JSON for the CLI, the API and the app: its fields, counts of what it touched,
    the action's own keys (document ids, kept entity...), and its full ``data`` when asked."""

    data = event.data
    out: dict[str, Any] = {
        "id": event.id, "action": event.action, "actor": event.actor, "at": event.at, "reason": event.reason,
        "undoes": event.undoes or None, "undone_by": event.undone_by or None, "targets": len(event.targets),
        "facts_before": len(data.get("facts_before", [])), "facts_after": len(data.get("facts_after", [])),
        "entities_before": len(data.get("entities_before", [])), "entities_after": len(data.get("entities_after", [])),
        "line": describe(event),
    }  # fmt: skip
    out |= {k: v for k, v in data.items() if not k.startswith(("facts_", "entities_")) and k != "passages"}
    if with_data:
        out["data"] = data
    return out
