"""The ``GraphStore`` protocol: everything the product asks of a graph database.

Two implementations pass one contract suite (``tests/graph/test_store_contract.py``):
``graph.embedded.EmbeddedStore`` (LadybugDB, in-process, the default) and
``graph.neo4j_store.Neo4jStore`` (the official driver, when ``NEO4J_URI`` is set).
Stores return plain values and our own types, never driver objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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
