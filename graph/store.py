"""The ``GraphStore`` protocol: everything the product asks of a graph database.

Two implementations pass one contract suite (``tests/graph/test_store_contract.py``):
``graph.embedded.EmbeddedStore`` (LadybugDB, in-process, the default) and
``graph.neo4j_store.Neo4jStore`` (the official driver, when ``NEO4J_URI`` is set).
Stores return plain values and our own types, never driver objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from qa_system.errors import ReviewConflictError
from qa_system.types import Direction, Entity, Fact, FactStatus, FactView, GraphStats, Subgraph

# Progress callback: (done, total) in rows. Importers wire tqdm to it, the app a progress bar.
Progress = Callable[[int, int], None]

# Statuses an answer may rely on. Proposed facts are shown only marked unreviewed; rejected never.
ANSWERABLE_STATUSES: tuple[FactStatus, ...] = (FactStatus.VERIFIED, FactStatus.EXTRACTED)


@dataclass(frozen=True)
class UpsertResult:
    """What a bulk write did: rows added, rows that already existed (merged/updated)."""

    added: int = 0
    merged: int = 0


@dataclass(frozen=True)
class AuditEvent:
    """One maintainer event of the audit trail the store keeps (``qa_system.maintain.events``).

    ``at`` is a UTC ISO time (microseconds), ``targets`` the fact and entity ids the event touched
    (what a later event must not touch for this one to be undone), ``data`` what it takes to revert
    it (JSON-able: the facts and entities before and after), ``undoes`` the event an ``undo`` event
    reverted, ``undone_by`` the ``undo`` event that reverted this one ("" while in effect)."""

    id: str
    action: str
    actor: str
    at: str
    reason: str = ""
    targets: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    undoes: str = ""
    undone_by: str = ""


@dataclass(frozen=True)
class Change:
    """Writes the store applies in one transaction with their ``event`` (``GraphStore.apply_change``).

    First the checks, on the state as it is inside the transaction: each fact of ``expect`` must
    exist with that status, and the event ``undo_of`` (when set) must not be undone yet; a failed
    check raises ``StaleChangeError`` and nothing is written. Then, in this order: ``put_entities``
    (insert or update), ``delete_facts`` (ids), ``put_facts`` (insert, or overwrite status,
    confidence and provenance of the fact with that id), ``delete_entities`` (with every fact that
    touches them), ``undo_of`` marked undone by ``event``, and ``event`` written."""

    event: AuditEvent
    expect: dict[str, str] = field(default_factory=dict)  # fact id -> the status it must still have
    put_entities: tuple[Entity, ...] = ()
    delete_facts: tuple[str, ...] = ()
    put_facts: tuple[Fact, ...] = ()
    delete_entities: tuple[str, ...] = ()
    undo_of: str = ""
    # fact id -> its subject id, for the facts of ``expect`` and ``delete_facts`` when known: the store
    # then reaches each through its subject's index instead of scanning every fact for the ids
    subjects: dict[str, str] = field(default_factory=dict)


class StaleChangeError(ReviewConflictError):
    """A ``Change`` found the graph no longer in the state it expected; nothing was written.

    ``fact_id`` and ``found`` (its status now, None when the fact is gone) name the first fact that
    failed its check; ``event_id`` and ``undone_by`` an event that was already undone."""

    def __init__(self, message: str, *, fact_id: str = "", found: str | None = None, event_id: str = "", undone_by: str = "") -> None:
        super().__init__(message)
        self.fact_id, self.found, self.event_id, self.undone_by = fact_id, found, event_id, undone_by


@runtime_checkable
class GraphStore(Protocol):
    """A small graph-store interface; see the module docstring."""

    backend: str

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None: ...

    # -- writes (idempotent: the same entity/fact written twice leaves one copy) ----------
    def upsert_entities(self, entities: Iterable[Entity], *, progress: Progress | None = None) -> UpsertResult: ...

    def upsert_entity(self, entity: Entity) -> bool:
        """Insert or update one entity; True when it was new."""
        ...

    def upsert_facts(self, facts: Iterable[Fact], *, progress: Progress | None = None) -> UpsertResult:
        """Insert facts whose ends exist; an existing fact (same id) is kept and counted as merged."""
        ...

    def upsert_fact(self, fact: Fact) -> bool: ...

    def set_fact_status(
        self, fact_id: str, status: FactStatus, *, reviewer: str = "", reason: str = ""
    ) -> FactView: ...

    # -- maintenance (``qa_system.maintain.actions``: forget a document, merge entities) ------------------
    def facts_of_document(self, document_id: str) -> list[FactView]:
        """Every fact (any status) whose provenance names ``document_id`` (extracted from that document)."""
        ...

    def delete_facts(self, ids: Sequence[str]) -> int:
        """Remove the facts with these ids (unknown ids ignored); how many were removed."""
        ...

    def delete_entities(self, ids: Sequence[str]) -> int:
        """Remove these entities with every fact that touches them (unknown ids ignored), and their
        names from the name lookups; how many entities were removed."""
        ...

    # -- the audit trail (``qa_system.maintain.events``) -----------------------------------
    def apply_change(self, change: Change) -> None:
        """Check, write and record ``change`` in one transaction (see ``Change``); raises
        ``StaleChangeError`` (nothing written) when the graph is no longer as it expected."""
        ...

    def get_event(self, event_id: str) -> AuditEvent | None: ...

    def list_events(self, *, limit: int = 50, offset: int = 0) -> list[AuditEvent]:
        """Events, newest first."""
        ...

    def events_touching(self, targets: Sequence[str], *, after: str = "") -> list[AuditEvent]:
        """Events whose targets share an id with ``targets`` and whose time is later than ``after``
        (an ISO time; "" for all), oldest first."""
        ...

    # -- reads -------------------------------------------------------------------------------
    def get_entity(self, entity_id: str) -> Entity | None: ...

    def find_entities(self, name: str, *, limit: int = 10) -> list[Entity]:
        """Entities whose name or an alias equals ``name`` (case-insensitive)."""
        ...

    def search_entities(self, prefix: str, *, limit: int = 10) -> list[Entity]:
        """Entities whose name or alias starts with ``prefix`` (case-insensitive), best first."""
        ...

    def neighbors(
        self,
        entity_ids: Sequence[str],
        *,
        hops: int = 1,
        relations: Sequence[str] | None = None,
        statuses: Sequence[FactStatus] | None = None,
        direction: Direction = "both",
        limit_per_entity: int | None = None,
        seed: int = 0,
    ) -> Subgraph:
        """Facts within ``hops`` of the seeds; each entity contributes at most ``limit_per_entity``
        facts per hop (uniformly sampled with ``seed`` when it has more)."""
        ...

    def facts_linking(
        self, anchors: Sequence[str], ids: Sequence[str], *, statuses: Sequence[FactStatus] | None = None
    ) -> list[FactView]:
        """The facts (``statuses``; default, as ``neighbors``: all but rejected) with one end among ``anchors`` and
        the other among ``ids``, each once, in either direction: what ties a candidate answer to
        another entity the question names (``qa_system.ask.constraints``)."""
        ...

    def get_fact(self, fact_id: str) -> FactView: ...

    def list_facts(
        self,
        *,
        statuses: Sequence[FactStatus] | None = None,
        relation: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[FactView]: ...

    def export_triples(
        self, statuses: Sequence[FactStatus | str] = ANSWERABLE_STATUSES
    ) -> list[tuple[str, str, str, str]]:
        """All (subject, relation, object, split) with these statuses: training data for HittER."""
        ...

    def stats(self) -> GraphStats: ...

    def run_read_query(self, query: str, params: dict[str, Any] | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Run a user's Cypher query that cannot write (statement check + read transaction)."""
        ...


def entities_by_id(store: Any, ids: Sequence[str]) -> dict[str, Entity]:
    """The entities of ``ids`` that ``store`` holds: one read through its ``get_entities`` (every
    real store, ``graph.cypher_store``), else one ``get_entity`` per id (a minimal store in tests)."""

    if hasattr(store, "get_entities"):
        return store.get_entities(ids)
    found = {}
    for entity_id in ids:
        entity = store.get_entity(entity_id)
        if entity is not None:
            found[entity_id] = entity
    return found
