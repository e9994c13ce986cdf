"""Insertion of validated LLM triples and the maintainers' review queue.

The product rule: no LLM-generated fact enters the graph unless entailment supports it, and then
only as ``proposed`` with full provenance (question, LLM endpoint and model, raw answer, premises,
entailment scores, time). Triples that are not entailed go to an append-only rejected log
(``<workspace>/review/rejected.jsonl``), never to the graph.

Maintainers then accept (→ ``verified``), edit then accept (the corrected fact is ``verified``, the
original ``rejected`` with reason "edited"), or reject (→ ``rejected``). Every attempt, won or lost,
is one line of the append-only audit log (``<workspace>/review/audit.jsonl``). A decision is a
compare-and-set under a lock (a thread lock plus ``flock`` on ``review/review.lock``): the fact
must still be ``proposed``, so two maintainers deciding at once, or one deciding twice, give
exactly one winner; the loser gets ``ReviewConflictError`` and its attempt is logged too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, Field

from qa_system.errors import InputError, ReviewConflictError
from qa_system.types import (
    Entity,
    Fact,
    FactStatus,
    FactView,
    Provenance,
    SourceKind,
    utc_now,
)
from qa_system.workspace import file_lock

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 2000
MAX_REVIEWER_CHARS = 200
LLM_ENTITY_PREFIX = "llm:"


class ValidationDecision(BaseModel):
    """What the entailment validator says about one candidate triple (``qa_system.fallback.validation``).

    ``score`` is the aggregated entailment probability; ``premise_scores`` align with ``premises``.
    """

    decision: Literal["entailed", "not_entailed"]
    score: float = Field(ge=0.0, le=1.0)
    premises: list[str] = Field(default_factory=list)
    premise_scores: list[float] = Field(default_factory=list)
    threshold: float | None = None
    hypothesis: str = ""
    model: str = ""
    version: str = ""
    reason: str = ""

    @property
    def entailed(self) -> bool:
        return self.decision == "entailed"


# -- files: append-only JSONL under a lock ---------------------------------------------------------


def _append(path: Path, record: dict[str, Any]) -> None:
    """One JSON line, flushed and fsynced (caller holds the review lock)."""

    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a log; a torn last line (crash mid-write) is skipped with a warning."""

    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                log.warning("%s:%d: unreadable log line skipped", path, number)
    return records


class ReviewFiles:
    """The review folder of a workspace."""

    def __init__(self, workspace: Path) -> None:
        self.dir = Path(workspace) / "review"
        self.audit = self.dir / "audit.jsonl"
        self.rejected = self.dir / "rejected.jsonl"
        self.lock = self.dir / "review.lock"

    @contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self.lock):
            yield


# -- insertion of validated triples ------------------------------------------------------------------
class InsertionReport(BaseModel):
    inserted: list[str] = Field(default_factory=list)  # fact ids now proposed
    already_present: list[str] = Field(default_factory=list)  # same triple already in the graph: untouched
    rejected: list[dict[str, Any]] = Field(default_factory=list)  # what went to the rejected log
    entities_created: list[str] = Field(default_factory=list)


def llm_entity_id(name: str) -> str:
    """Stable id for an entity first named by the LLM (the same name maps to the same id)."""

    return LLM_ENTITY_PREFIX + hashlib.sha1(" ".join(name.lower().split()).encode("utf-8")).hexdigest()[:16]


def _triple_record(triple: Any) -> dict[str, Any]:
    return triple.model_dump() if hasattr(triple, "model_dump") else dict(triple)


def record_decisions(
    store: Any,
    workspace: Path,
    result: Any,
    decisions: Sequence[tuple[Any, ValidationDecision]],
    *,
    create_missing_entities: bool = True,
) -> InsertionReport:
    """Insert the entailed triples of a fallback ``result`` as ``proposed``; log the rest as rejected.

    ``decisions`` pairs each ``fallback.ProposedTriple`` with its ``ValidationDecision``. An end the
    graph does not know becomes a new entity (id ``llm:<hash>``) when ``create_missing_entities``,
    else the triple is rejected with reason "unknown entity". A triple already in the graph is left
    exactly as it is (a verified fact is never downgraded).
    """

    files = ReviewFiles(workspace)
    report = InsertionReport()
    now = utc_now()
    with files.locked():
        for triple, decision in decisions:
            reason = ""
            if not decision.entailed:
                reason = decision.reason or (
                    f"not entailed (score {decision.score:.3f}"
                    + (f" < threshold {decision.threshold:.3f})" if decision.threshold is not None else ")")
                )
            elif not create_missing_entities and not (triple.subject_known and triple.object_known):
                reason = "unknown entity: " + ", ".join(f for f in triple.flags if f.startswith("unknown_"))
            elif triple.subject_name.strip().lower() == triple.object_name.strip().lower():
                reason = "subject and object are the same"
            if reason:
                record = {
                    "at": now.isoformat(),
                    "reason": reason,
                    "question": result.question,
                    "triple": _triple_record(triple),
                    "decision": decision.model_dump(),
                    "endpoint": result.endpoint,
                    "model": result.model,
                    "raw_answer": result.raw_answer,
                }
                _append(files.rejected, record)
                report.rejected.append({"triple": _triple_record(triple), "reason": reason})
                continue
            subject, obj = triple.subject, triple.object
            for known, name, attr in ((triple.subject_known, triple.subject_name, "s"), (triple.object_known, triple.object_name, "o")):
                if known:
                    continue
                entity = Entity(
                    id=llm_entity_id(name),
                    name=name,
                    description="first named by the LLM fallback in a proposed (unreviewed) fact",
                )
                if store.get_entity(entity.id) is None:
                    store.upsert_entity(entity)
                    report.entities_created.append(entity.id)
                if attr == "s":
                    subject = entity.id
                else:
                    obj = entity.id
            provenance = Provenance(
                source_kind=SourceKind.LLM,
                model=result.model,
                endpoint=result.endpoint,
                question=result.question,
                raw_answer=result.raw_answer,
                premises=list(decision.premises),
                scores=list(decision.premise_scores),
                score=decision.score,
                checkpoint=f"{decision.model}@{decision.version}" if decision.model else "",
                vocabulary="free-text" if triple.free_text_relation else "graph",
                created_at=now,
            )
            fact = Fact(
                subject=subject,
                relation=triple.relation,
                object=obj,
                status=FactStatus.PROPOSED,
                confidence=decision.score,
                provenance=provenance,
            )
            if store.upsert_fact(fact):
                report.inserted.append(fact.id)
            else:
                report.already_present.append(fact.id)
    return report


# -- the review queue ----------------------------------------------------------------------------------
class ReviewOutcome(BaseModel):
    fact_id: str
    action: Literal["accept", "edit", "reject"]
    outcome: Literal["applied", "conflict"]
    previous_status: FactStatus
    status: FactStatus
    reviewer: str
    reason: str = ""
    new_fact_id: str | None = None
    event_id: str = ""  # the decision's event in the store's audit trail (``qa-system review undo``)
    at: datetime = Field(default_factory=utc_now)


class ReviewItem(BaseModel):
    """One fact with its evidence and review history, for ``review show``."""

    fact: FactView
    score: float | None
    age_hours: float
    evidence: list[dict[str, Any]]
    history: list[dict[str, Any]]


def fact_score(view: FactView) -> float:
    return view.provenance.score if view.provenance.score is not None else view.confidence


def _clean_text(text: str | None, what: str, limit: int, *, required: bool) -> str:
    text = " ".join((text or "").split())
    if required and not text:
        raise InputError(f"a {what} is required")
    if len(text) > limit:
        raise InputError(f"{what} is {len(text)} characters; the limit is {limit}")
    return text


class ReviewQueue:
    """The proposed facts of a store, and the maintainers' decisions on them."""

    PAGE = 500

    def __init__(self, store: Any, workspace: Path) -> None:
        self.store = store
        self.files = ReviewFiles(workspace)

    # -- reading ---------------------------------------------------------------------------------------
    def list(
        self,
        *,
        relation: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        older_than: timedelta | None = None,
        newer_than: timedelta | None = None,
        limit: int = 50,
    ) -> list[FactView]:
        """Proposed facts, newest first, filtered by relation, score range and age."""

        if limit < 1:
            raise InputError(f"limit must be at least 1, got {limit}")
        now = utc_now()
        out: list[FactView] = []
        offset = 0
        while len(out) < limit:
            page = self.store.list_facts(statuses=[FactStatus.PROPOSED], relation=relation, limit=self.PAGE, offset=offset)
            for view in page:
                score, age = fact_score(view), now - view.provenance.created_at
                if min_score is not None and score < min_score:
                    continue
                if max_score is not None and score > max_score:
                    continue
                if older_than is not None and age < older_than:
                    continue
                if newer_than is not None and age > newer_than:
                    continue
                out.append(view)
                if len(out) >= limit:
                    break
            if len(page) < self.PAGE:
                break
            offset += self.PAGE
        return out

    def history(self, fact_id_: str) -> list[dict[str, Any]]:
        """This workspace's log lines about the fact (lost attempts too), plus the events of the store's
        audit trail that touched it and are not among them (decided through another app server)."""

        local = [r for r in read_jsonl(self.files.audit) if fact_id_ in (r.get("fact_id"), r.get("new_fact_id"))]
        seen = {r.get("event_id") for r in local}
        shared = [
            {"at": e.at, "action": e.action, "reviewer": e.actor, "outcome": "applied", "reason": e.reason, "event_id": e.id,
             "fact_id": fact_id_, "undone_by": e.undone_by or None}
            for e in (self.store.events_touching([fact_id_]) if hasattr(self.store, "events_touching") else [])
            if e.id not in seen
        ]  # fmt: skip
        return sorted(local + shared, key=lambda r: str(r.get("at") or "")) if shared else local

    def show(self, fact_id_: str) -> ReviewItem:
        view = self.store.get_fact(fact_id_)
        p = view.provenance
        evidence = [
            {"premise": premise, "score": p.scores[i] if i < len(p.scores) else None} for i, premise in enumerate(p.premises)
        ]
        age = (utc_now() - p.created_at).total_seconds() / 3600
        return ReviewItem(fact=view, score=fact_score(view), age_hours=round(age, 3), evidence=evidence, history=self.history(fact_id_))

    # -- deciding --------------------------------------------------------------------------------------
    def accept(self, fact_id_: str, *, reviewer: str, reason: str = "") -> ReviewOutcome:
        return self._decide(fact_id_, "accept", reviewer, reason)

    def reject(self, fact_id_: str, *, reviewer: str, reason: str) -> ReviewOutcome:
        return self._decide(fact_id_, "reject", reviewer, _clean_text(reason, "reason", MAX_REASON_CHARS, required=True))

    def edit(
        self,
        fact_id_: str,
        *,
        reviewer: str,
        subject: str | None = None,
        relation: str | None = None,
        obj: str | None = None,
        reason: str = "",
    ) -> ReviewOutcome:
        """Accept a corrected version: the new fact is ``verified``, the original ``rejected``."""

        from qa_system.explore import resolve_entity

        if subject is None and relation is None and obj is None:
            raise InputError("edit needs at least one of --subject, --relation, --object")
        original = self.store.get_fact(fact_id_)
        new_subject = resolve_entity(self.store, subject).id if subject is not None else original.subject
        new_object = resolve_entity(self.store, obj).id if obj is not None else original.object
        new_relation = _clean_text(relation, "relation", 500, required=True) if relation is not None else original.relation
        return self._decide(fact_id_, "edit", reviewer, reason, correction=(new_subject, new_relation, new_object))

    def _decide(
        self,
        fact_id_: str,
        action: Literal["accept", "edit", "reject"],
        reviewer: str,
        reason: str,
        *,
        correction: tuple[str, str, str] | None = None,
    ) -> ReviewOutcome:
        from graph.store import StaleChangeError
        from qa_system.maintain import decide
        from qa_system.maintain.events import make_change, record

        reviewer = _clean_text(reviewer, "reviewer name", MAX_REVIEWER_CHARS, required=True)
        reason = _clean_text(reason, "reason", MAX_REASON_CHARS, required=False)
        with self.files.locked():  # one workspace's writers in turn; the store's transaction is what makes it safe
            view = self.store.get_fact(fact_id_)  # FactNotFoundError: nothing to decide, nothing logged
            if view.status != FactStatus.PROPOSED:
                self._conflict(view.id, action, reviewer, reason, correction, view.status)
            new_fact_id, extra_before = None, []
            if action in ("accept", "reject"):
                status = FactStatus.VERIFIED if action == "accept" else FactStatus.REJECTED
                after = [decide.reviewed(view, status, reviewer, reason)]
            else:
                assert correction is not None
                extra_before, after, new_fact_id = decide.correction(self.store, view, correction, reviewer, reason)
                status = FactStatus.VERIFIED if new_fact_id == fact_id_ else FactStatus.REJECTED
            before = [view, *extra_before]
            change = make_change(action, reviewer, reason, facts_before=before, facts_after=after,
                                 extra={"correction": list(correction)} if correction else None)  # fmt: skip
            try:
                event = record(self.store, change)  # one transaction: only if every fact is still as read
            except StaleChangeError as e:
                self._conflict(e.fact_id or view.id, action, reviewer, reason, correction, e.found)
            outcome = ReviewOutcome(
                fact_id=fact_id_, action=action, outcome="applied", previous_status=view.status, status=status,
                reviewer=reviewer, reason=reason, new_fact_id=new_fact_id, event_id=event.id,
            )  # fmt: skip
            record_ = outcome.model_dump(mode="json")
            if correction is not None:
                record_["correction"] = list(correction)
            _append(self.files.audit, record_)
            log.info("review: %s %s by %s → %s (event %s)", action, fact_id_, reviewer, status.value, event.id)
            return outcome

    def _conflict(
        self, fid: str, action: str, reviewer: str, reason: str, correction: tuple[str, str, str] | None, found: Any
    ) -> NoReturn:
        """Log a lost decision and raise ``ReviewConflictError`` ("already decided by <actor> at <time>")."""

        from qa_system.maintain import decide

        who, when = decide.decided_by(self.store, fid)
        status = FactStatus(found) if found is not None else None
        outcome = ReviewOutcome(
            fact_id=fid, action=action, outcome="conflict", previous_status=status or FactStatus.PROPOSED,
            status=status or FactStatus.REJECTED, reviewer=reviewer, reason=reason,
        )  # fmt: skip
        record = outcome.model_dump(mode="json") | {"decided_by": who, "decided_at": when or None}
        if correction is not None:
            record["correction"] = list(correction)
        _append(self.files.audit, record)
        raise ReviewConflictError(decide.conflict_message(self.store, fid, found, action, reviewer) + " (logged)")


def rejected_log(workspace: Path) -> list[dict[str, Any]]:
    """The rejected (not entailed) triples, oldest first."""

    return read_jsonl(ReviewFiles(workspace).rejected)
