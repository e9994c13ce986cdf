"""Fact-level pieces shared by review decisions (``review.ReviewQueue``) and hand curation
(``curate``): a fact as a maintainer decided it, the facts of a correction, and the one-line
message of a decision that lost ("already decided by <actor> at <time>")."""

from __future__ import annotations

from typing import Any

from qa_system.errors import FactNotFoundError
from qa_system.maintain.events import last_event_on
from qa_system.types import Fact, FactStatus, FactView, SourceKind, fact_id, utc_now


def reviewed(view: FactView | Fact, status: FactStatus, reviewer: str, reason: str) -> Fact:
    """``view`` with ``status``, its provenance stamped with the reviewer, the time and the reason."""

    provenance = view.provenance.model_copy(update={"reviewer": reviewer, "reviewed_at": utc_now(), "review_reason": reason})
    return Fact(subject=view.subject, relation=view.relation, object=view.object, status=status,
                confidence=view.confidence, provenance=provenance)  # fmt: skip


def correction(
    store: Any, view: FactView, triple: tuple[str, str, str], reviewer: str, reason: str
) -> tuple[list[FactView], list[Fact], str]:
    """The facts of correcting ``view`` to ``triple``: (facts touched besides ``view`` as they are
    now, every fact as it will be, the corrected fact's id). The corrected fact is ``verified``
    (a new fact with maintainer provenance, or the existing one made verified) and the original
    ``rejected``; a correction to the same triple just verifies it."""

    new_id = fact_id(*triple)
    if new_id == view.id:  # nothing changed: an accept
        return [], [reviewed(view, FactStatus.VERIFIED, reviewer, reason or "edited: unchanged")], new_id
    try:
        existing: FactView | None = store.get_fact(new_id)
    except FactNotFoundError:
        existing = None
    if existing is None:
        now = utc_now()
        provenance = view.provenance.model_copy(
            update={
                "source_kind": SourceKind.MAINTAINER, "reviewer": reviewer, "reviewed_at": now,
                "review_reason": f"corrected from fact {view.id}" + (f": {reason}" if reason else ""), "vocabulary": "", "created_at": now,
            }
        )  # fmt: skip
        corrected: Fact | None = Fact(subject=triple[0], relation=triple[1], object=triple[2], status=FactStatus.VERIFIED,
                                      confidence=1.0, provenance=provenance)  # fmt: skip
    elif existing.status != FactStatus.VERIFIED:
        corrected = reviewed(existing, FactStatus.VERIFIED, reviewer, f"edited from {view.id}")
    else:
        corrected = None  # already verified: left as it is
    original = reviewed(view, FactStatus.REJECTED, reviewer, f"edited → {new_id}" + (f": {reason}" if reason else ""))
    return ([existing] if corrected is not None and existing is not None else []), [original, *([corrected] if corrected else [])], new_id


def decided_by(store: Any, fact_id_: str, view: FactView | None = None) -> tuple[str, str]:
    """(who, when) last decided the fact: its latest event in the store's trail, else its provenance."""

    event = last_event_on(store, fact_id_)
    if event is not None:
        return event.actor, event.at[:19]
    if view is not None and view.provenance.reviewer:
        at = view.provenance.reviewed_at
        return view.provenance.reviewer, at.isoformat(timespec="seconds")[:19] if at else "?"
    return "", ""


def conflict_message(store: Any, fact_id_: str, status: FactStatus | str | None, action: str, reviewer: str) -> str:
    """"fact F is already verified by ada at 2026-...; the reject by bob was not applied" (one line)."""

    if status is None:
        return f"fact {fact_id_} is gone (removed since it was read); the {action} by {reviewer} was not applied"
    view = None
    try:
        view = store.get_fact(fact_id_)
    except FactNotFoundError:
        pass
    who, when = decided_by(store, fact_id_, view)
    by = f" by {who}" + (f" at {when}" if when else "") if who else ""
    return f"fact {fact_id_} is already {FactStatus(status).value}{by}; the {action} by {reviewer} was not applied"
