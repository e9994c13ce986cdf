"""Embedded graph store on LadybugDB (Kùzu fork), in-process: the default backend.

One ``Entity`` node table and one ``Fact`` rel table with a ``rel_type`` property (one rel table
per relation was 5-15x slower). Bulk writes go through ``COPY FROM`` Parquet; single writes through
parameterised ``MERGE``/``CREATE``. Names are indexed in SQLite (``graph.name_index``) because the
full-text extension cannot be installed offline.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from graph import rows as R
from graph.cypher_store import CypherStoreBase
from graph.name_index import NameIndex, NameLookups
from graph.queries import EMBEDDED as Q
from graph.queries import (
    EMBEDDED_COPY,
    EMBEDDED_DEGREES,
    EMBEDDED_INSERT_FACTS,
    EMBEDDED_TABLES,
    EMBEDDED_UPSERT_ENTITIES,
    EMBEDDED_WINDOWED,
)
from graph.readonly import check_read_only
from graph.store import Change, Progress, UpsertResult
from qa_system.errors import (
    GraphUnavailableError,
    QueryError,
    ReadOnlyViolationError,
)
from qa_system.types import Entity, Fact, FactView
from qa_system.workspace import prepare_workspace

log = logging.getLogger(__name__)
T = TypeVar("T")



class EmbeddedStore(NameLookups, CypherStoreBase):
    """``GraphStore`` on LadybugDB. Thread-safe: one connection per thread, writes serialised."""

    backend = "embedded"
    queries = Q

    def __init__(self, db_path: Path, index_path: Path, *, read_only: bool = False) -> None:
        import ladybug

        self._ladybug = ladybug
        self.db_path = db_path
        self.read_only = read_only
        try:
            self._db = ladybug.Database(str(db_path), read_only=read_only)
            self._local = threading.local()
            self._connections: list[Any] = []  # every thread's connection, closed with the store
            self._write_lock = threading.RLock()
            if not read_only:
                for statement in Q.schema:
                    self._conn().execute(statement)
        except RuntimeError as e:
            raise GraphUnavailableError(f"cannot open the embedded graph at {db_path}: {e}") from e
        self.names = NameIndex(index_path)
        self._degrees: dict[str, int] | None = None

    @classmethod
    def open(cls, workspace: Path, *, read_only: bool = False) -> EmbeddedStore:
        root = prepare_workspace(workspace)
        graph_dir = root / "graph"
        graph_dir.mkdir(parents=True, exist_ok=True)
        return cls(graph_dir / "ladybug.db", graph_dir / "names.sqlite", read_only=read_only)

    # -- plumbing --------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._ladybug.Connection(self._db)
            self._local.conn = conn
            with self._write_lock:
                self._connections.append(conn)
        return conn

    def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        try:
            return self._conn().execute(query, params or {}).get_all()
        except RuntimeError as e:
            raise QueryError(f"graph query failed: {e}") from e

    def close(self) -> None:
        """Close every thread's connection, then the database: the file lock is released now, not
        when the garbage collector gets to the store (another process may open it right after)."""

        self.names.close()
        with self._write_lock:
            for conn in self._connections:
                try:
                    conn.close()
                except RuntimeError:
                    pass
            self._connections.clear()
        self._local = threading.local()
        self._db.close()

    # -- writes ----------------------------------------------------------------------------
    def _copy(self, table: str, columns: dict[str, list[Any]]) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="qa-copy-", dir=self.db_path.parent))
        try:
            path = tmp / f"{table}.parquet"
            pq.write_table(pa.table(columns), path)
            if table not in EMBEDDED_TABLES:
                raise ValueError(f"unknown table {table!r}")
            self._rows(EMBEDDED_COPY.format(table=table, path=path.as_posix()))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _copy_entities(self, entities: Sequence[Entity], now: str) -> None:
        """Entities none of which is stored yet, in one bulk load (``upsert_entities`` and the import's
        bulk writer, ``graph.embedded_bulk``)."""

        self._copy(
            "Entity",
            {
                "id": [e.id for e in entities],
                "name": [e.name for e in entities],
                "aliases": pa.array([list(e.aliases) for e in entities], type=pa.list_(pa.string())),
                "type": [e.type for e in entities],
                "description": [e.description for e in entities],
                "image_url": [e.image_url for e in entities],
                "url": [e.url for e in entities],
                "created_at": [now] * len(entities),
                "updated_at": [now] * len(entities),
            },
        )

    def upsert_entities(self, entities: Iterable[Entity], *, progress: Progress | None = None) -> UpsertResult:
        batch = list({e.id: e for e in entities}.values())
        if not batch:
            return UpsertResult()
        with self._write_lock:
            existing = self._existing_entity_ids([e.id for e in batch])
            fresh = [e for e in batch if e.id not in existing]
            changed = self._changed([e for e in batch if e.id in existing])
            now = R.now_iso()
            if fresh:
                self._copy_entities(fresh, now)
            if progress:
                progress(len(fresh), len(batch))
            for entity in changed:
                self._rows(Q.upsert_entity, R.entity_params(entity, now))
            if progress:
                progress(len(batch), len(batch))
            self.names.add(fresh + changed)
        return UpsertResult(added=len(fresh), merged=len(batch) - len(fresh))

    def upsert_facts(self, facts: Iterable[Fact], *, progress: Progress | None = None) -> UpsertResult:
        batch = list({f.id: f for f in facts}.values())
        if not batch:
            return UpsertResult()
        with self._write_lock:
            self._require_ends(batch)
            existing = self._existing_fact_ids([f.id for f in batch])
            fresh = [f for f in batch if f.id not in existing]
            self._degrees = None
            now = R.now_iso()
            params = [R.fact_params(f, now) for f in fresh]
            for start in range(0, len(params), 100_000):
                chunk = params[start : start + 100_000]
                columns = {"from": [p["subject"] for p in chunk], "to": [p["object"] for p in chunk]}
                for key in ("id", "subject", "rnd", "relation", "status", "confidence", "split", "source_kind", "dataset", "provenance"):
                    columns["rel_type" if key == "relation" else key] = [p[key] for p in chunk]
                columns["created_at"] = [now] * len(chunk)
                columns["updated_at"] = [now] * len(chunk)
                self._copy("Fact", columns)
                if progress:
                    progress(start + len(chunk), len(batch))
        return UpsertResult(added=len(fresh), merged=len(batch) - len(fresh))

    def _after_delete(self, entity_ids: Sequence[str] = ()) -> None:
        self._degrees = None
        if entity_ids:
            self.names.remove(entity_ids)

    # -- the audit trail's transactions (``CypherStoreBase.apply_change``) ------------------------
    def _in_transaction(self, work: Callable[[Any], T]) -> T:
        """One LadybugDB write transaction on this thread's connection, writers serialised by the lock."""

        with self._write_lock:
            conn = self._conn()
            self._rows("BEGIN TRANSACTION")
            try:
                result = work(self._rows)
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except RuntimeError:
                    pass  # a failed statement already rolled the transaction back
                raise
            self._rows("COMMIT")
            return result

    def _entities_statement(self, entities: Sequence[Entity], now: str) -> tuple[str, dict[str, Any]]:
        return EMBEDDED_UPSERT_ENTITIES, {"rows": [{k: v for k, v in R.entity_params(e, now).items() if k != "now"} for e in entities], "now": now}

    def _insert_facts_statement(self, facts: Sequence[Fact], now: str) -> tuple[str, dict[str, Any]]:
        rows = [{k: v for k, v in R.fact_params(f, now).items() if k != "now"} for f in facts]
        return EMBEDDED_INSERT_FACTS, {"rows": rows, "now": now}

    def _after_change(self, change: Change, added: int, deleted: Sequence[str]) -> None:
        self._degrees = None
        if change.put_entities:
            self.names.add(change.put_entities)
        self._after_delete(deleted)

    # -- reads -----------------------------------------------------------------------------
    def _entities(self, ids: list[str]) -> list[Entity]:
        if not ids:
            return []
        by_id = {r[0]: R.entity_from_row(r) for r in self._rows(Q.entities_by_ids, {"ids": ids})}
        return [by_id[i] for i in ids if i in by_id]

    def find_entities(self, name: str, *, limit: int = 10) -> list[Entity]:
        return self._entities(self.names.exact(name, limit))

    def search_entities(self, prefix: str, *, limit: int = 10) -> list[Entity]:
        ids = self.names.prefix(prefix, limit)
        if len(ids) < limit:
            ids += [i for i in self.names.search(prefix, limit) if i not in ids]
        return self._entities(ids[:limit])

    def _degree_map(self) -> dict[str, int]:
        """Facts per entity, read in one query and cached until the next fact write. Only used to
        size sampling windows, so a stale value costs speed, never correctness."""

        degrees = self._degrees
        if degrees is None:
            degrees = self._degrees = {r[0]: int(r[1]) for r in self._rows(EMBEDDED_DEGREES)}
        return degrees

    def _fetch(self, statuses: list[str], relations: Sequence[str] | None, limit: int | None, seed: int):
        """Per-entity neighbour reads (the primary-key lookup is what makes them fast). When an entity
        has far more facts than ``limit``, only a window of about 3x ``limit`` facts by random rank is
        read; ``expand`` then samples ``limit`` of them uniformly."""

        query = {"out": Q.facts_out, "in": Q.facts_in, "both": Q.facts_both}
        wanted_statuses, wanted_relations = frozenset(statuses), frozenset(relations or ())
        offset = (seed * 0.6180339887498949) % 1.0
        degrees = self._degree_map() if limit is not None else {}

        def read(entity_id: str, direction: str) -> list[list[Any]]:
            degree = degrees.get(entity_id, 0)
            if limit is None or degree <= 3 * limit:
                rows = self._rows(query[direction], {"id": entity_id})
            else:  # a hub: read a window of about 3 x limit facts by their fixed random rank
                width = 3.0 * limit / degree
                window = {"id": entity_id, "lo": offset, "hi": min(offset + width, 1.0), "wrap": max(0.0, offset + width - 1.0)}
                rows = self._rows(EMBEDDED_WINDOWED[direction], window)
                if sum(1 for r in rows if keep(r)) < limit:  # unlucky window, or a stale degree
                    rows = self._rows(query[direction], {"id": entity_id})
            rows = [r for r in rows if keep(r)]
            if limit is not None and len(rows) > limit + 1:
                # Thin to limit + 1 before building objects: still a uniform sample, and ``expand``
                # still sees more than ``limit`` (so it samples and reports the truncation).
                rows.sort(key=lambda r: r[0])
                rows = random.Random(f"{seed}:{entity_id}").sample(rows, limit + 1)
            return rows

        def keep(row: list[Any]) -> bool:
            return row[6] in wanted_statuses and (not wanted_relations or row[3] in wanted_relations)

        def fetch(ids: list[str], direction: str) -> list[FactView]:
            facts = []
            for entity_id in ids:
                for row in read(entity_id, direction):
                    facts.append(R.fact_from_row(R.oriented(row)))
            return facts

        return fetch

    def run_read_query(self, query: str, params: dict[str, Any] | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        statement = check_read_only(query)
        conn = self._ladybug.Connection(self._db)  # own connection: the transaction must not leak
        try:
            conn.execute("BEGIN TRANSACTION READ ONLY")
            try:
                result = conn.execute(statement, params or {})
                columns = result.get_column_names()
                out = []
                while result.has_next() and len(out) < limit:
                    out.append({c: R.json_safe(v) for c, v in zip(columns, result.get_next())})
                return out
            except RuntimeError as e:
                message = str(e)
                if "read only" in message.lower() or "read-only" in message.lower():
                    raise ReadOnlyViolationError(f"read-only workbench: the database refused a write ({message})") from e
                raise QueryError(f"query failed: {message}") from e
            finally:
                try:
                    conn.execute("ROLLBACK")
                except RuntimeError:  # a failed statement has already ended the transaction; keep the query's own error
                    pass
        finally:
            conn.close()

    def rebuild_name_index(self) -> None:
        """Re-index every entity's names (after a bulk import or a restore)."""

        self.names.rebuild(R.entity_from_row(r) for r in self._rows(Q.all_entities))
