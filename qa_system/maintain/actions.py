"""Maintainers' graph actions beyond review: forget a document, merge duplicate entities.

``forget_document`` takes back an ingested document: every fact whose provenance names it goes,
entities ingest created (``ext:`` ids) that are left with no fact go, and its sentences leave the
passage file (the evidence index drops them on its next refresh). ``merge_entities`` folds
duplicates into one entity: their facts are re-created on the kept entity (same relation, status,
confidence and provenance; a fact the kept entity already has is not doubled), their names become
aliases, the duplicates are deleted, and their ids keep resolving to the kept entity (the mention
memo's ``merged`` table: ``resolve_merged``; ingest's resolver follows it too).

Both write their graph changes in one transaction with their event in the store's audit trail
(``events``: what they removed and wrote, so ``qa-system review undo EVENT_ID`` reverts them; the
transaction fails, writing nothing, if a fact changed since it was read), hold the review lock
(``review.ReviewFiles.locked``) while they read and write, and append one record to the
workspace's audit log (``<workspace>/review/audit.jsonl``) with everything they removed (facts with
their provenance, entities, passages). A ``dry_run`` reports the same numbers and writes nothing; bad input (an unknown document
or entity, an entity merged into itself, a literal value) raises before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from qa_system.errors import EntityNotFoundError, InputError
from qa_system.ingest.entity_resolution import EXTRACTED_ENTITY_PREFIX, MEMO_FILE, MentionMemo
from qa_system.maintain import events
from qa_system.maintain.events import default_actor, make_change
from qa_system.maintain.events import record as record_event
from qa_system.maintain.review import MAX_REASON_CHARS, MAX_REVIEWER_CHARS, ReviewFiles, _append, _clean_text
from qa_system.types import Entity, Fact, FactStatus, FactView, is_literal, utc_now

log = logging.getLogger(__name__)

ALL_STATUSES = list(FactStatus)


class ForgetReport(BaseModel):
    """What ``forget_document`` removed (or, with ``dry_run``, would remove)."""

    document_ids: list[str]
    dry_run: bool = False
    facts: list[FactView] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    passages: int = 0
    reason: str = ""
    reviewer: str = ""
    event_id: str = ""  # its event in the store's audit trail (``qa-system review undo``); "" for a dry run

    def counts(self) -> dict[str, int]:
        return {"documents": len(self.document_ids), "facts": len(self.facts), "entities": len(self.entities), "passages": self.passages}


class MergeReport(BaseModel):
    """What ``merge_entities`` did: facts re-created on the kept entity, facts dropped (already on
    it, or a duplicate's fact with the kept entity that would become a self-loop), names added."""

    keep: str
    duplicates: list[str]
    moved: dict[str, str] = Field(default_factory=dict)  # old fact id -> the fact on the kept entity now
    created: list[str] = Field(default_factory=list)  # fact ids written on the kept entity
    already_present: list[str] = Field(default_factory=list)  # old fact ids whose moved copy existed
    dropped_self_loops: list[str] = Field(default_factory=list)
    aliases_added: list[str] = Field(default_factory=list)
    mentions_redirected: int = 0
    reason: str = ""
    reviewer: str = ""
    event_id: str = ""  # its event in the store's audit trail (``qa-system review undo``)


def _memo(workspace: Path) -> MentionMemo:
    return MentionMemo(Path(workspace) / MEMO_FILE)


def resolve_merged(workspace: Path, entity_id: str, store: Any | None = None) -> str:
    """``entity_id``, or the entity it was merged into when it no longer exists (one hop: merges
    re-point earlier ones, so the target is always the latest kept entity)."""

    if store is not None and store.get_entity(entity_id) is not None:
        return entity_id
    memo = _memo(workspace)
    try:
        return memo.merged_into(entity_id) or entity_id
    finally:
        memo.close()


# -- forget ---------------------------------------------------------------------------------------------
def document_ids_for(target: str, passages: Any) -> list[str]:
    """A document id, a document id's parts (``id#1``, ``id#2`` of a long text), or the documents
    of a file (the ids ``ingest`` gave them, read from the file)."""

    from qa_system.ingest.documents import read_documents

    path = Path(target).expanduser()
    if target and path.is_file():
        return list(dict.fromkeys(d.id for d in read_documents([path])))
    known = {p.document_id for p in passages if p.kind == "sentence"}
    if target in known:
        return [target]
    parts = sorted(d for d in known if d.startswith(f"{target}#"))
    return parts or [target]


def forget_document(
    store: Any, workspace: Path, target: str, *, dry_run: bool = False, reason: str = "", reviewer: str = ""
) -> ForgetReport:
    """Take back an ingested document (by id or by its file); see the module docstring."""

    from retrievers.passages import PassageStore

    target = (target or "").strip()
    if not target:
        raise InputError("which document? give a document id or the path of an ingested file")
    reason = _clean_text(reason, "reason", MAX_REASON_CHARS, required=False)
    reviewer = _clean_text(reviewer, "reviewer name", MAX_REVIEWER_CHARS, required=False)
    passages = PassageStore(workspace)
    files = ReviewFiles(workspace)
    with files.locked():
        document_ids = document_ids_for(target, passages)
        facts: dict[str, FactView] = {}
        for document_id in document_ids:
            facts.update((f.id, f) for f in store.facts_of_document(document_id))
        sentences = passages.of_documents(document_ids)
        if not facts and not sentences:
            raise InputError(f"unknown document {target!r}: no fact or passage comes from it (nothing changed)")
        orphans = _orphans(store, facts)
        report = ForgetReport(
            document_ids=document_ids, dry_run=dry_run, facts=sorted(facts.values(), key=lambda f: f.id),
            entities=orphans, passages=len(sentences), reason=reason, reviewer=reviewer,
        )  # fmt: skip
        if dry_run:
            return report
        change = make_change(
            "forget", reviewer or default_actor(), reason, facts_before=report.facts, entities_before=orphans,
            extra={"document_ids": document_ids, "passages": [p.model_dump(mode="json") for p in sentences]},
        )  # fmt: skip
        report.event_id = record_event(store, change).id  # one transaction; StaleChangeError if a fact changed meanwhile
        removed = passages.remove_documents(document_ids)
        report.passages = len(removed)
        record = {
            "at": utc_now().isoformat(), "action": "forget", "outcome": "applied", "reviewer": reviewer, "reason": reason,
            "event_id": report.event_id,
            "document_ids": document_ids, "counts": report.counts(),
            "facts": [_restorable(f) for f in report.facts],
            "entities": [e.model_dump(mode="json") for e in orphans],
            "passages": [p.model_dump(mode="json") for p in removed],
        }  # fmt: skip
        _append(files.audit, record)
    log.info("forget %s: %s", ", ".join(document_ids), report.counts())
    return report


def _orphans(store: Any, facts: dict[str, FactView]) -> list[Entity]:
    """Entities ingest created (``ext:``) at an end of ``facts`` that no other fact touches."""

    ends = sorted({i for f in facts.values() for i in (f.subject, f.object) if i.startswith(EXTRACTED_ENTITY_PREFIX)})
    if not ends:
        return []
    around = store.neighbors(ends, hops=1, statuses=ALL_STATUSES, direction="both")
    still_used = {i for f in around.facts if f.id not in facts for i in (f.subject, f.object)}
    from graph.store import entities_by_id

    found = entities_by_id(store, [i for i in ends if i not in still_used])
    return [found[i] for i in ends if i in found]


def _restorable(view: FactView) -> dict[str, Any]:
    """A fact as the audit log keeps it: enough to write it back (``Fact.model_validate``) and to read it."""

    return {
        "id": view.id, "subject": view.subject, "relation": view.relation, "object": view.object,
        "status": view.status.value, "confidence": view.confidence,
        "provenance": view.provenance.model_dump(mode="json"),
        "subject_name": view.subject_name, "object_name": view.object_name,
    }  # fmt: skip


# -- merge ------------------------------------------------------------------------------------------------
def merge_entities(
    store: Any, workspace: Path, keep: str, duplicates: Sequence[str], *, reason: str = "", reviewer: str = ""
) -> MergeReport:
    """Fold ``duplicates`` into ``keep``; see the module docstring."""

    keep = (keep or "").strip()
    duplicates = [d.strip() for d in dict.fromkeys(duplicates)]
    if not keep or not duplicates or not all(duplicates):
        raise InputError("merge needs the entity to keep and at least one duplicate")
    if keep in duplicates:
        raise InputError(f"cannot merge {keep!r} into itself")
    for entity_id in [keep, *duplicates]:
        if is_literal(entity_id):
            raise InputError(f"{entity_id!r} is a literal value, not an entity; only entities can be merged")
    reason = _clean_text(reason, "reason", MAX_REASON_CHARS, required=False)
    reviewer = _clean_text(reviewer, "reviewer name", MAX_REVIEWER_CHARS, required=False)
    files = ReviewFiles(workspace)
    with files.locked():
        from graph.store import entities_by_id

        found = entities_by_id(store, [keep, *duplicates])
        missing = [i for i in [keep, *duplicates] if i not in found]
        if missing:
            raise EntityNotFoundError(f"unknown entity id(s): {', '.join(repr(m) for m in missing)} (nothing changed)")
        kept, dups = found[keep], [found[d] for d in duplicates]
        moved_to = {d: keep for d in duplicates}
        around = store.neighbors(duplicates, hops=1, statuses=ALL_STATUSES, direction="both")
        old_facts = {f.id: f for f in around.facts}
        report = MergeReport(keep=keep, duplicates=duplicates, reason=reason, reviewer=reviewer)
        on_kept = {f.id for f in store.neighbors([keep], hops=1, statuses=ALL_STATUSES, direction="both").facts}
        new_facts: dict[str, Fact] = {}
        for view in sorted(old_facts.values(), key=lambda f: f.id):
            subject, obj = moved_to.get(view.subject, view.subject), moved_to.get(view.object, view.object)
            if subject == obj:
                report.dropped_self_loops.append(view.id)
                continue
            fact = Fact(subject=subject, relation=view.relation, object=obj, status=view.status,
                        confidence=view.confidence, provenance=view.provenance)  # fmt: skip
            if fact.id in new_facts or fact.id in on_kept:  # the kept entity has it already, or two duplicates had it
                report.already_present.append(view.id)
            else:
                new_facts[fact.id] = fact
            report.moved[view.id] = fact.id
        names = [n for d in dups for n in (d.name, *d.aliases)]
        known = {n.casefold() for n in (kept.name, *kept.aliases)}
        for name in names:
            if name.strip() and name.casefold() not in known:
                known.add(name.casefold())
                report.aliases_added.append(name)
        # one transaction: the kept entity's new names, the moved facts, then the duplicates go (with their old facts)
        renamed = kept.model_copy(update={"aliases": (*kept.aliases, *report.aliases_added)}) if report.aliases_added else kept
        report.created = sorted(new_facts)
        change = make_change(
            "merge", reviewer or default_actor(), reason, facts_before=sorted(old_facts.values(), key=lambda f: f.id),
            facts_after=[new_facts[i] for i in report.created], entities_before=[kept, *dups], entities_after=[renamed],
            extra={"keep": keep, "duplicates": duplicates, "aliases_added": report.aliases_added},
        )  # fmt: skip
        report.event_id = record_event(store, change).id
        memo = _memo(workspace)
        try:
            report.mentions_redirected = memo.redirect(duplicates, keep)
        finally:
            memo.close()
        record = {
            "at": utc_now().isoformat(), "action": "merge", "outcome": "applied", "reviewer": reviewer, "reason": reason,
            "event_id": report.event_id,
            "keep": keep, "duplicates": duplicates, "kept_aliases_before": list(kept.aliases),
            "aliases_added": report.aliases_added, "moved": report.moved, "created": report.created, "already_present": report.already_present,
            "dropped_self_loops": report.dropped_self_loops, "mentions_redirected": report.mentions_redirected,
            "entities": [d.model_dump(mode="json") for d in dups],
            "facts": [_restorable(f) for f in sorted(old_facts.values(), key=lambda f: f.id)],
        }  # fmt: skip
        _append(files.audit, record)
    log.info("merge %s into %s: %d fact(s) moved", ", ".join(duplicates), keep, len(report.moved))
    return report


# -- undo -------------------------------------------------------------------------------------------------
def undo(store: Any, workspace: Path, event_id: str, actor: str | None = None, *, reason: str = "") -> events.AuditEvent:
    """Revert event ``event_id`` (``events.undo``: the graph, in one transaction) and what the
    workspace held: a forgotten document's passages come back. One line goes to the workspace's
    audit log. Returns the ``undo`` event; errors as ``events.undo`` (nothing changed)."""

    from retrievers.passages import Passage, PassageStore

    done = events.undo(store, event_id, actor, reason=reason)
    undone = store.get_event(done.undoes)
    restored = 0
    if undone is not None and undone.action == "forget" and undone.data.get("passages"):
        restored = PassageStore(workspace).add_many(Passage.model_validate(p) for p in undone.data["passages"])
    mentions = _unmerge_mentions(workspace, undone.data) if undone is not None and undone.action == "merge" else 0
    files = ReviewFiles(workspace)
    with files.locked():
        _append(files.audit, {
            "at": done.at, "action": "undo", "outcome": "applied", "reviewer": done.actor, "reason": done.reason,
            "event_id": done.id, "undoes": done.undoes, "undone_action": undone.action if undone else "", "passages_restored": restored,
            "mentions_restored": mentions,
        })  # fmt: skip
    return done


def _unmerge_mentions(workspace: Path, data: dict[str, Any]) -> int:
    """After undoing a merge: a remembered mention spelled like a duplicate's name or alias that the
    merge redirected to the kept entity resolves to the duplicate again (mentions matched by
    similarity stay on the kept entity). The merged-id table needs nothing: it is only read for ids
    that no longer exist."""

    from graph.name_index import normalise

    keep = data.get("keep", "")
    rows = []
    memo = _memo(workspace)
    try:
        for record in data.get("entities_before", []):
            if record.get("id") == keep:
                continue
            keys = {normalise(n) for n in (record.get("name", ""), *record.get("aliases", [])) if n and n.strip()}
            rows += [(key, record["id"], None) for key, now in memo.get_many(keys).items() if now == keep]
        if rows:
            memo.put_many(rows)
    finally:
        memo.close()
    return len(rows)
