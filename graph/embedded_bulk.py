"""Bulk writes of an import into the embedded store: the same stored result as
``EmbeddedStore.upsert_entities`` + ``upsert_facts``, in fewer and cheaper steps.

Why a path of its own: an import of 100k facts spent most of its time around the ``COPY``s, not
in them. Per batch the store scanned every entity id and every fact id (twice: the ends check and
the existing-facts check), built a ``Fact`` model, its id and a parameter dict per fact, and wrote
nodes, literals, attribute facts and links as four ``COPY``s. Here:

* one ``COPY`` of every new node (entities and literal values) and one of every new fact per
  write: a file source is one write, a Bolt source's pages are gathered into writes of up to
  ``flush_rows`` rows (the caller ends with ``flush``);
* the ids already in the store are scanned once per import (as Arrow columns) and then kept up to
  date by the writer itself; a count check before each write notices another writer and rescans;
* facts arrive as plain ``(subject, relation, object, properties)`` rows
  (``graph.import_batch.FactRow``) and become columns directly; a relationship's properties are
  serialised into the same provenance JSON ``Provenance.model_dump_json`` gives.

Unchanged from the store's own upserts: new entities are ``COPY``'d and entities whose stored
fields differ are updated in place (``MERGE``) and re-indexed by name; facts already stored (same
id) are left as they are; a fact whose end is no entity is refused before any fact is written;
literal values never enter the name index. Statements come from ``graph.queries``; ``COPY`` reads
our own temporary Parquet file (``EmbeddedStore._copy``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from graph import rows as R
from graph.queries import EMBEDDED as Q
from graph.store import UpsertResult
from qa_system.errors import EntityNotFoundError, QueryError
from qa_system.types import Entity, FactStatus, Provenance, SourceKind, is_literal

if TYPE_CHECKING:
    from graph.import_batch import FactRow, GraphBatch, ImportCounts

_PROPERTIES = TypeAdapter(dict[str, Any])  # the serialiser ``Provenance.properties`` uses
_EMPTY_PROPERTIES = '"properties":{}'


class BulkWriter:
    """``write(batch, counts)`` for ``graph.source_mapping``; one writer per import."""

    whole_source = True  # a file source is written as one batch: one COPY per table
    # Pages of a streamed source are gathered up to this many rows (nodes + facts) per write: a COPY
    # into a relationship table that holds facts costs time in proportion to what it holds (31
    # COPYs of 10k facts: 33 s of CPU; one of 310k: 4 s). ~200 bytes a row: ~100 MB pending at most.
    flush_rows = 500_000

    @staticmethod
    def supports(store: Any) -> bool:
        from graph.embedded import EmbeddedStore

        return isinstance(store, EmbeddedStore) and not store.read_only

    def __init__(self, store: Any) -> None:
        self.store = store
        self._entity_ids: set[str] | None = None
        self._entity_count = -1
        self._fact_ids: set[str] | None = None
        self._fact_count = -1
        self._provenance: dict[str, tuple[str, str]] = {}
        self._pending: GraphBatch | None = None
        self._counts: ImportCounts | None = None

    # -- what the store holds ---------------------------------------------------------------
    def _count(self, *queries: str) -> int:
        return sum(int(self.store._rows(q)[0][0]) for q in queries)

    def _scan(self, query: str) -> set[str]:
        """Every id a whole-table id query returns, read as one Arrow column (5-10x faster than rows)."""

        try:
            table = self.store._conn().execute(query).get_as_arrow()
        except RuntimeError as e:
            raise QueryError(f"graph query failed: {e}") from e
        return set(table.column(0).to_pylist()) if table.num_rows else set()

    def _known_entities(self) -> set[str]:
        count = self._count(Q.count_entities, Q.count_literals)
        if self._entity_ids is None or count != self._entity_count:
            self._entity_ids = self._scan(Q.all_entity_ids) if count else set()
            self._entity_count = count
        return self._entity_ids

    def _known_facts(self) -> set[str]:
        count = self._count(Q.count_facts)
        if self._fact_ids is None or count != self._fact_count:
            self._fact_ids = self._scan(Q.all_fact_ids) if count else set()
            self._fact_count = count
        return self._fact_ids

    # -- writes -----------------------------------------------------------------------------
    def write(self, batch: GraphBatch, counts: ImportCounts) -> None:
        """Take a batch; it is written when the pending rows reach ``flush_rows`` or on ``flush``."""

        from graph.import_batch import GraphBatch

        if self._pending is None:
            self._pending = GraphBatch(dataset=batch.dataset)
        elif batch.dataset != self._pending.dataset:
            self.flush()
            self._pending = GraphBatch(dataset=batch.dataset)
        self._pending.extend(batch)
        self._pending.unnamed = 0
        counts.unnamed += batch.unnamed
        self._counts = counts
        if len(self._pending) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write what is pending (entities, then facts), adding to the counts ``write`` was given."""

        pending, counts = self._pending, self._counts
        self._pending = None
        if pending is not None and counts is not None and len(pending):
            self._write(pending, counts)

    def _write(self, batch: GraphBatch, counts: ImportCounts) -> None:
        with self.store._write_lock:
            known = self._known_entities()
            entities = list({e.id: e for e in batch.entities}.values())
            literals = list({e.id: e for e in batch.literals}.values())
            fresh = [e for e in entities if e.id not in known]
            fresh_literals = [e for e in literals if e.id not in known]
            if fresh or fresh_literals:
                self.store._copy_entities(list({e.id: e for e in [*fresh, *fresh_literals]}.values()), R.now_iso())
            changed = self._update([e for e in [*entities, *literals] if e.id in known])
            self.store.names.add([e for e in [*fresh, *changed] if not is_literal(e.id)])
            for e in [*fresh, *fresh_literals]:
                known.add(e.id)
            self._entity_count = len(known)
            counts.add("entities", UpsertResult(added=len(fresh), merged=len(entities) - len(fresh)))
            counts.add("literals", UpsertResult(added=len(fresh_literals), merged=len(literals) - len(fresh_literals)))
            if batch.rows:
                counts.add("facts", self._write_facts(batch.rows, batch.dataset, known))

    def _update(self, stored: list[Entity]) -> list[Entity]:
        """Entities already stored: those whose fields differ are updated (as ``upsert_entities`` does)."""

        changed = self.store._changed(stored)
        now = R.now_iso()
        for entity in changed:
            self.store._rows(Q.upsert_entity, R.entity_params(entity, now))
        return changed

    def _provenance_json(self, dataset: str, properties: dict[str, Any]) -> str:
        """``Provenance(source_kind=dataset, dataset=..., properties=...).model_dump_json()``, from a
        template made once per dataset (``created_at``: when the template was made)."""

        parts = self._provenance.get(dataset)
        if parts is None:
            text = Provenance(source_kind=SourceKind.DATASET, dataset=dataset).model_dump_json()
            head, sep, tail = text.rpartition(_EMPTY_PROPERTIES)
            assert sep, "Provenance JSON without its properties field"
            parts = self._provenance[dataset] = (head + '"properties":', tail)
        return parts[0] + _PROPERTIES.dump_json(properties).decode("utf-8") + parts[1]

    def _write_facts(self, rows: list[FactRow], dataset: str, entities: set[str]) -> UpsertResult:
        sha1 = hashlib.sha1
        unique: dict[str, FactRow] = {}
        for row in rows:  # the last of the same triple wins, as in ``upsert_facts``
            unique[sha1(f"{row[0]}\t{row[1]}\t{row[2]}".encode("utf-8")).hexdigest()[:20]] = row
        missing = sorted({s for s, _r, _o, _p in unique.values() if s not in entities} | {o for _s, _r, o, _p in unique.values() if o not in entities})
        if missing:
            raise EntityNotFoundError(
                f"{len(missing)} fact end(s) are not entities in the graph, e.g. {missing[:3]}; upsert entities first"
            )
        known = self._known_facts()
        fresh = [(fid, row) for fid, row in unique.items() if fid not in known]
        if fresh:
            self.store._degrees = None
            now = R.now_iso()
            n = len(fresh)
            subjects = [row[0] for _fid, row in fresh]
            ids = [fid for fid, _row in fresh]
            self.store._copy(
                "Fact",
                {
                    "from": subjects,
                    "to": [row[2] for _fid, row in fresh],
                    "id": ids,
                    "subject": subjects,
                    "rnd": [int(fid[:8], 16) / 2**32 for fid in ids],  # graph.rows.fact_rank
                    "rel_type": [row[1] for _fid, row in fresh],
                    "status": [FactStatus.VERIFIED.value] * n,
                    "confidence": [1.0] * n,
                    "split": [""] * n,
                    "source_kind": [SourceKind.DATASET.value] * n,
                    "dataset": [dataset] * n,
                    "provenance": [self._provenance_json(dataset, row[3]) if row[3] else "" for _fid, row in fresh],
                    "created_at": [now] * n,
                    "updated_at": [now] * n,
                },
            )
            known.update(ids)
            self._fact_count = len(known)
        return UpsertResult(added=len(fresh), merged=len(unique) - len(fresh))
