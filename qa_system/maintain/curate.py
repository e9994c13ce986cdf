"""Curation by hand (issue 27 item 3): retract or correct any fact, add a fact with its source,
rename an entity. Each takes the maintainer's name and a reason, and is one event of the store's
audit trail written in the same transaction as its change (``events``), so ``qa-system review
undo EVENT_ID`` reverts it. A change that finds the fact no longer as it was read (another
maintainer decided it meanwhile) writes nothing and raises ``ReviewConflictError``.

Public functions (each returns the event; the CLI is ``qa-system curate ...``):
``retract(store, fact_id, actor, reason)``, ``correct(store, fact_id, actor, reason, subject=,
relation=, obj=)``, ``add_fact(store, subject, relation, obj, actor, reason, source)``,
``rename(store, entity_id, new_name, actor, reason)``.
"""

from __future__ import annotations

from typing import Any

from graph.store import AuditEvent, StaleChangeError
from qa_system.errors import EntityNotFoundError, FactNotFoundError, InputError, ReviewConflictError
from qa_system.maintain import decide
from qa_system.maintain.events import default_actor, make_change, record
from qa_system.types import FactStatus, FactView, Provenance, SourceKind, fact_id, is_literal, utc_now

MAX_REASON_CHARS = 2000
MAX_NAME_CHARS = 2048
MAX_SOURCE_CHARS = 4000


def _text(value: str | None, what: str, limit: int, *, required: bool = True) -> str:
    text = " ".join((value or "").split())
    if required and not text:
        raise InputError(f"a {what} is required (nothing changed)")
    if len(text) > limit:
        raise InputError(f"{what} is {len(text)} characters; the limit is {limit} (nothing changed)")
    return text


def _actor(actor: str | None) -> str:
    return _text(actor if actor is not None else default_actor(), "maintainer name", 200)


def _apply(store: Any, change: Any, action: str, actor: str) -> AuditEvent:
    try:
        return record(store, change)
    except StaleChangeError as e:
        raise ReviewConflictError(decide.conflict_message(store, e.fact_id, e.found, action, actor)) from e


def retract(store: Any, fact_id_: str, actor: str | None = None, reason: str = "") -> AuditEvent:
    """Take a fact of any status out of the answers: it becomes ``rejected`` (kept, with the reason)."""

    actor, reason = _actor(actor), _text(reason, "reason", MAX_REASON_CHARS)
    view = store.get_fact(fact_id_)  # FactNotFoundError: one line, nothing changed
    if view.status == FactStatus.REJECTED:
        raise InputError(f"fact {view.id} is already rejected (nothing changed)")
    after = decide.reviewed(view, FactStatus.REJECTED, actor, f"retracted: {reason}")
    return _apply(store, make_change("retract", actor, reason, facts_before=[view], facts_after=[after]), "retract", actor)


def correct(
    store: Any, fact_id_: str, actor: str | None = None, reason: str = "", *,
    subject: str | None = None, relation: str | None = None, obj: str | None = None,
) -> AuditEvent:  # fmt: skip
    """Correct a fact of any status: the corrected fact is ``verified``, the original ``rejected``."""

    from qa_system.explore import resolve_entity

    actor, reason = _actor(actor), _text(reason, "reason", MAX_REASON_CHARS)
    if subject is None and relation is None and obj is None:
        raise InputError("a correction needs at least one of subject, relation, object (nothing changed)")
    view = store.get_fact(fact_id_)
    triple = (
        resolve_entity(store, subject).id if subject is not None else view.subject,
        _text(relation, "relation", 500) if relation is not None else view.relation,
        resolve_entity(store, obj).id if obj is not None else view.object,
    )
    if fact_id(*triple) == view.id:
        raise InputError(f"the correction is the same fact {view.id} (nothing changed)")
    extra_before, after, new_id = decide.correction(store, view, triple, actor, reason)
    change = make_change("edit", actor, reason, facts_before=[view, *extra_before], facts_after=after,
                         extra={"correction": list(triple), "new_fact_id": new_id})  # fmt: skip
    return _apply(store, change, "edit", actor)


def add_fact(
    store: Any, subject: str, relation: str, obj: str, actor: str | None = None, reason: str = "", source: str = ""
) -> AuditEvent:
    """Add a ``verified`` fact between two existing entities (ids or exact names), citing its ``source``
    (a URL, a document, a reference: kept in the provenance as ``properties.source``)."""

    from qa_system.explore import resolve_entity

    actor, reason = _actor(actor), _text(reason, "reason", MAX_REASON_CHARS)
    source = _text(source, "source", MAX_SOURCE_CHARS)
    subject_entity, object_entity = resolve_entity(store, subject), resolve_entity(store, obj)
    s, o = subject_entity.id, object_entity.id
    relation = _text(relation, "relation", 500)
    if s == o:
        raise InputError("subject and object are the same entity (nothing changed)")
    new_id = fact_id(s, relation, o)
    try:
        existing = store.get_fact(new_id)
    except FactNotFoundError:  # the usual case
        existing = None
    if existing is not None:
        raise InputError(f"fact {new_id} is already in the graph ({existing.status.value}); retract or correct it instead (nothing changed)")
    now = utc_now()
    provenance = Provenance(source_kind=SourceKind.MAINTAINER, reviewer=actor, reviewed_at=now, review_reason=reason,
                            properties={"source": source}, created_at=now)  # fmt: skip
    fact = FactView(id=new_id, subject=s, subject_name=subject_entity.name, relation=relation, object=o, object_name=object_entity.name,
                    status=FactStatus.VERIFIED, confidence=1.0, provenance=provenance)  # with names: the event reads well
    return _apply(store, make_change("add", actor, reason, facts_after=[fact], extra={"source": source}), "add", actor)


def rename(store: Any, entity_id: str, new_name: str, actor: str | None = None, reason: str = "", *, keep_old_name: bool = True) -> AuditEvent:
    """Rename an entity; its old name becomes an alias (unless ``keep_old_name`` is false)."""

    actor, reason = _actor(actor), _text(reason, "reason", MAX_REASON_CHARS)
    new_name = _text(new_name, "new name", MAX_NAME_CHARS)
    entity_id = (entity_id or "").strip()
    if is_literal(entity_id):
        raise InputError(f"{entity_id!r} is a literal value, not an entity; it has no name to change")
    entity = store.get_entity(entity_id)
    if entity is None:
        raise EntityNotFoundError(f"unknown entity id {entity_id!r} (nothing changed)")
    if new_name == entity.name:
        raise InputError(f"{entity.id} is already named {new_name!r} (nothing changed)")
    aliases = [a for a in entity.aliases if a.casefold() != new_name.casefold()]
    if keep_old_name and entity.name.casefold() not in {a.casefold() for a in aliases} | {new_name.casefold()}:
        aliases.append(entity.name)
    renamed = entity.model_copy(update={"name": new_name, "aliases": tuple(aliases)})
    change = make_change("rename", actor, reason, entities_before=[entity], entities_after=[renamed],
                         extra={"entity": entity.id, "old_name": entity.name, "new_name": new_name})  # fmt: skip
    return _apply(store, change, "rename", actor)
