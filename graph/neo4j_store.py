"""Graph store on Neo4j (or any Bolt server: ArcadeDB's Bolt plugin in the tests) via the official driver.

Same behaviour as ``graph.embedded.EmbeddedStore``: one ``:Entity`` label, one ``:Fact`` relationship
type with a ``rel_type`` property, facts keyed by ``Fact.id``, idempotent bulk writes. Bulk writes
are ``UNWIND $rows`` statements of a few thousand rows per write transaction. Names are stored on
the nodes (``name_key``, ``alias_keys``, ``name_tokens``) for other clients; this store looks them up
in a local SQLite index kept in step with the database (``graph.name_index.MirroredNameIndex``).

The read-only Cypher path has three locks: the statement check (``graph.readonly``), a transaction
opened in READ access mode (Neo4j refuses writes in it), and an unconditional rollback at the end
(ArcadeDB, for one, ignores the access mode; nothing a query did can be committed).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import neo4j
import neo4j.graph
from neo4j import exceptions as neo4j_errors

from graph import rows as R
from graph.cypher_store import ID_CHUNK, CypherStoreBase
from graph.name_index import MirroredNameIndex, NameIndex, NameLookups, names_path_for, normalise
from graph.queries import (
    NEO4J as Q,
    NEO4J_CLEAR_BATCH,
    NEO4J_CLEAR_EVENTS_BATCH,
    NEO4J_COUNT_ENTITY_NODES,
    NEO4J_COUNT_IN,
    NEO4J_COUNT_OUT,
    NEO4J_INSERT_FACTS,
    NEO4J_UPSERT_ENTITIES,
    NEO4J_WINDOW_IN,
    NEO4J_WINDOW_OUT,
)
from graph.readonly import check_read_only
from graph.store import Change, Progress, UpsertResult
from qa_system.errors import (
    ConfigError,
    EntityNotFoundError,
    GraphUnavailableError,
    QueryError,
    ReadOnlyViolationError,
)
from qa_system.types import Entity, Fact, FactView, is_literal

log = logging.getLogger(__name__)
T = TypeVar("T")

_ENTITY_BATCH = 2_000  # rows per write transaction (entities carry descriptions: bigger rows)
_FACT_BATCH = 5_000
READ_QUERY_TIMEOUT_S = 60.0  # a user's Cypher query; the server ends the transaction after this

# Neo4j status codes that mean "the server refused to write here".
_WRITE_REFUSED_CODES = ("AccessMode", "ForbiddenOnReadOnlyDatabase", "NotALeader", "WriteOnReadOnlyAccessDbException")
_WRITE_REFUSED_WORDS = ("read access mode", "read only", "read-only", "readonly")

_CHANGE_ATTEMPTS = 8  # a change that raced another transaction (ArcadeDB) is retried this often
_RACE_WORDS = ("concurrent", "deadlock", "please retry")


def _raced(error: BaseException) -> bool:
    """A transaction failed because another one changed the same records first (worth running again)."""

    cause = error.__cause__
    code = str(getattr(cause, "code", "") or "")
    if "TransientError" in code or (cause is not None and isinstance(cause, neo4j_errors.TransientError)):
        return True
    text = str(error).lower()
    return any(w in text for w in _RACE_WORDS)


_UNREACHABLE = (
    neo4j_errors.ServiceUnavailable,
    neo4j_errors.SessionExpired,
    neo4j_errors.ConnectionAcquisitionTimeoutError,
    neo4j_errors.DatabaseUnavailable,
)


def first_line(error: BaseException, limit: int = 400) -> str:
    """The driver's error as one line of at most ``limit`` characters (the CLI prints ``error: <message>``,
    never a stack trace)."""

    text = " ".join(str(getattr(error, "message", None) or error).split())
    return (text[:limit] + "...") if len(text) > limit else (text or type(error).__name__)


def _tokens(entity: Entity) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\w+", " ".join([entity.name, *entity.aliases]).lower())))


def _entity_row(entity: Entity) -> dict[str, Any]:
    # A literal attribute value gets empty name keys: name lookups never return a value (a birth year).
    literal = is_literal(entity.id)
    return {
        "id": entity.id,
        "name": entity.name,
        "name_key": "" if literal else normalise(entity.name),
        "aliases": list(entity.aliases),
        "alias_keys": [] if literal else list(dict.fromkeys(normalise(a) for a in entity.aliases if a.strip())),
        "name_tokens": [] if literal else _tokens(entity),
        "type": entity.type,
        "description": entity.description,
        "image_url": entity.image_url,
        "url": entity.url,
    }


def plain(value: Any) -> Any:
    """Driver values as plain JSON values: nodes, relationships and paths become dicts (the shape
    LadybugDB returns: properties plus ``_id``/``_label``), temporal values ISO strings."""

    if isinstance(value, neo4j.graph.Node):
        labels = sorted(value.labels)
        return {"_id": value.element_id, "_label": labels[0] if len(labels) == 1 else labels, **plain(dict(value))}
    if isinstance(value, neo4j.graph.Relationship):
        start, end = value.start_node, value.end_node
        return {
            "_id": value.element_id,
            "_label": value.type,
            "_src": start.element_id if start is not None else None,
            "_dst": end.element_id if end is not None else None,
            **plain(dict(value)),
        }
    if isinstance(value, neo4j.graph.Path):
        return {"_nodes": [plain(n) for n in value.nodes], "_rels": [plain(r) for r in value.relationships]}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "iso_format"):  # neo4j.time Date/DateTime/Time/Duration
        return value.iso_format()
    return R.json_safe(value)


class Neo4jStore(NameLookups, CypherStoreBase):
    """``GraphStore`` over Bolt. Thread-safe: the driver pools connections; writes are serialised."""

    backend = "neo4j"
    queries = Q

    def __init__(
        self,
        uri: str,
        user: str = "neo4j",
        password: str = "",
        database: str | None = None,
        *,
        connect_timeout_s: float = 5.0,
        names_path: Path | str = ":memory:",
    ) -> None:
        self.uri = uri
        self.database = database or None
        self._write_lock = threading.RLock()
        where = f"{uri}" + (f" (database {database!r})" if database else "")
        try:
            self._driver = neo4j.GraphDatabase.driver(
                uri,
                auth=(user, password),
                connection_timeout=connect_timeout_s,
                connection_acquisition_timeout=max(connect_timeout_s, 1.0) * 2,
                max_transaction_retry_time=max(connect_timeout_s, 1.0) * 2,
            )
        except (neo4j_errors.ConfigurationError, ValueError) as e:
            raise ConfigError(f"bad Neo4j URI {uri!r}: {first_line(e)}") from e
        try:
            self._driver.verify_connectivity()
            self._agent = str(self._driver.get_server_info().agent)
            self._ensure_schema()
            # Name lookups read a local index in step with the database (``graph.name_index``), not
            # every node's name keys on the server (~19 ms a lookup on ArcadeDB's demo graph).
            self.names = MirroredNameIndex(
                NameIndex(names_path),
                lambda: int(self._rows(NEO4J_COUNT_ENTITY_NODES)[0][0]),
                lambda: (R.entity_from_row(r) for r in self._rows(Q.all_entities)),
            )
        except GraphUnavailableError:
            self._driver.close()
            raise
        except neo4j_errors.AuthError as e:
            self._driver.close()
            raise GraphUnavailableError(f"cannot log in to the graph database at {where} as {user!r}: {first_line(e)}") from e
        except (neo4j_errors.DriverError, neo4j_errors.Neo4jError, OSError) as e:
            self._driver.close()
            raise GraphUnavailableError(f"cannot reach the graph database at {where}: {first_line(e)}") from e

    @classmethod
    def from_settings(cls, settings: Any) -> "Neo4jStore":
        if not settings.neo4j_uri:
            raise ConfigError("NEO4J_URI is not set (the Neo4j backend needs a bolt:// or neo4j:// URI)")
        return cls(
            settings.neo4j_uri,
            settings.neo4j_user,
            settings.neo4j_password.get_secret_value(),
            settings.neo4j_database,
            connect_timeout_s=settings.neo4j_connect_timeout_s,
            names_path=names_path_for(settings),
        )

    # -- plumbing --------------------------------------------------------------------------
    @property
    def is_arcadedb(self) -> bool:
        return "arcadedb" in self._agent.lower()

    def _session(self, *, read: bool = False) -> Any:
        mode = neo4j.READ_ACCESS if read else neo4j.WRITE_ACCESS
        return self._driver.session(database=self.database, default_access_mode=mode)

    def _guard(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except _UNREACHABLE as e:
            raise GraphUnavailableError(f"lost the graph database at {self.uri}: {first_line(e)}") from e
        except neo4j_errors.Neo4jError as e:
            if e.code and "DatabaseNotFound" in e.code:
                raise GraphUnavailableError(f"no database {self.database!r} at {self.uri}: {first_line(e)}") from e
            raise QueryError(f"graph query failed: {first_line(e)}") from e
        except neo4j_errors.DriverError as e:
            raise QueryError(f"graph query failed: {first_line(e)}") from e

    def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        def work(tx: Any) -> list[list[Any]]:
            return [record.values() for record in tx.run(query, params or {})]

        def action() -> list[list[Any]]:
            with self._session(read=True) as session:
                return session.execute_read(work)

        return self._guard(action)

    def _write(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        def work(tx: Any) -> list[list[Any]]:
            return [record.values() for record in tx.run(query, params or {})]

        def action() -> list[list[Any]]:
            with self._session() as session:
                return session.execute_write(work)

        return self._guard(action)

    def _in_transaction(self, work: Callable[[Any], T]) -> T:
        """One write transaction (``CypherStoreBase.apply_change``). The driver retries transient
        errors (Neo4j deadlocks); ArcadeDB, optimistic, fails a commit that raced another one on the
        same record with a concurrent-modification error: retried here, from the start (the checks
        then read what the winner wrote). A ``QAError`` raised by ``work`` rolls back and propagates."""

        def tx_work(tx: Any) -> T:
            return work(lambda query, params=None: [record.values() for record in tx.run(query, params or {})])

        def action() -> T:
            with self._session() as session:
                return session.execute_write(tx_work)

        for attempt in range(1, _CHANGE_ATTEMPTS + 1):
            try:
                return self._guard(action)
            except QueryError as e:
                if attempt == _CHANGE_ATTEMPTS or not _raced(e):
                    raise
                log.debug("change raced another transaction (attempt %d), retrying: %s", attempt, e)
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    def _entities_statement(self, entities: Sequence[Entity], now: str) -> tuple[str, dict[str, Any]]:
        return NEO4J_UPSERT_ENTITIES, {"rows": [_entity_row(e) for e in entities], "now": now}

    def _insert_facts_statement(self, facts: Sequence[Fact], now: str) -> tuple[str, dict[str, Any]]:
        rows, variants = [], []  # see NEO4J_INSERT_FACTS for the row layout
        for fact in facts:
            p = R.fact_params(fact, now)
            rows.append([p["id"], p["subject"], p["relation"], p["object"], len(variants), p["rnd"]])
            variants.append([p["status"], p["confidence"], p["split"], p["source_kind"], p["dataset"], p["provenance"]])
        return NEO4J_INSERT_FACTS, {"rows": rows, "variants": variants, "now": now}

    def _after_change(self, change: Change, added: int, deleted: Sequence[str]) -> None:
        names = getattr(self, "names", None)  # a local mirror of the name lookups, where the store keeps one
        if change.put_entities and hasattr(names, "written"):
            names.written(change.put_entities, added)  # type: ignore[union-attr]
        if deleted:
            self._after_delete(deleted)

    def _ensure_schema(self) -> None:
        for statement in Q.schema:
            try:
                self._write(statement)
            except QueryError as e:
                if not self.is_arcadedb:
                    raise
                log.warning("ArcadeDB refused a schema statement, skipped (%s): %s", statement, e)

    def close(self) -> None:
        self._driver.close()
        self.names.close()

    def clear(self) -> None:
        """Delete every entity and fact (tests, fresh imports). Not part of ``GraphStore``."""

        with self._write_lock:
            while self._write(NEO4J_CLEAR_BATCH, {"limit": 5_000})[0][0]:
                pass
            while self._write(NEO4J_CLEAR_EVENTS_BATCH, {"limit": 5_000})[0][0]:
                pass
            self.names.cleared()

    # -- writes ----------------------------------------------------------------------------
    def _scan_ids(self, query: str) -> set[str]:
        # Neo4j's id scans are ``collect()`` queries: one record holding the whole list.
        return set(self._rows(query)[0][0])

    def upsert_entities(self, entities: Iterable[Entity], *, progress: Progress | None = None) -> UpsertResult:
        batch = list({e.id: e for e in entities}.values())
        if not batch:
            return UpsertResult()
        with self._write_lock:
            existing = self._existing_entity_ids([e.id for e in batch])
            fresh = [e for e in batch if e.id not in existing]
            to_write = fresh + self._changed([e for e in batch if e.id in existing])
            now = R.now_iso()
            unchanged = len(batch) - len(to_write)
            if progress and unchanged:
                progress(unchanged, len(batch))
            for start in range(0, len(to_write), _ENTITY_BATCH):
                chunk = to_write[start : start + _ENTITY_BATCH]
                self._write(NEO4J_UPSERT_ENTITIES, {"rows": [_entity_row(e) for e in chunk], "now": now})
                if progress:
                    progress(unchanged + start + len(chunk), len(batch))
            self.names.written(to_write, len(fresh))
        return UpsertResult(added=len(fresh), merged=len(batch) - len(fresh))

    def upsert_facts(self, facts: Iterable[Fact], *, progress: Progress | None = None) -> UpsertResult:
        batch = list({f.id: f for f in facts}.values())
        if not batch:
            return UpsertResult()
        with self._write_lock:
            self._require_ends(batch)
            existing = self._existing_fact_ids([f.id for f in batch])
            fresh = [f for f in batch if f.id not in existing]
            now = R.now_iso()
            merged = len(batch) - len(fresh)
            for start in range(0, len(fresh), _FACT_BATCH):
                chunk = fresh[start : start + _FACT_BATCH]
                rows, variants = [], {}  # see NEO4J_INSERT_FACTS for the row layout
                for fact in chunk:
                    p = R.fact_params(fact, now)
                    variant = (p["status"], p["confidence"], p["split"], p["source_kind"], p["dataset"], p["provenance"])
                    rows.append([p["id"], p["subject"], p["relation"], p["object"], variants.setdefault(variant, len(variants)), R.fact_rank(p["id"])])
                params = {"rows": rows, "variants": [list(v) for v in variants], "now": now}
                written = self._write(NEO4J_INSERT_FACTS, params)[0][0]
                if written != len(rows):  # an end vanished between the check and the write
                    raise EntityNotFoundError(
                        f"wrote {written} of {len(rows)} facts: some fact ends were deleted meanwhile; upsert entities first"
                    )
                if progress:
                    progress(merged + start + len(chunk), len(batch))
        return UpsertResult(added=len(fresh), merged=merged)

    # -- reads -----------------------------------------------------------------------------
    def _after_delete(self, entity_ids: Sequence[str] = ()) -> None:
        if entity_ids:
            self.names.deleted(entity_ids)

    def _fetch(self, statuses: list[str], relations: Sequence[str] | None, limit: int | None, seed: int):
        """Batched neighbour reads (``IN $ids`` seeks the id index). With a cap, entities with more
        than 3x ``limit`` facts are read through a random-rank window of about 3x ``limit`` facts
        (as the embedded store does); ``expand`` then samples ``limit`` of them uniformly."""

        base = {"statuses": statuses, "relations": list(relations or [""]), "all_relations": not relations}
        offset = (seed * 0.6180339887498949) % 1.0
        full = {"out": Q.facts_out, "in": Q.facts_in}
        windowed = {"out": NEO4J_WINDOW_OUT, "in": NEO4J_WINDOW_IN}
        counting = {"out": NEO4J_COUNT_OUT, "in": NEO4J_COUNT_IN}

        def batched(query: str, ids: list[str]) -> list[list[Any]]:
            return [r for start in range(0, len(ids), ID_CHUNK) for r in self._rows(query, {**base, "ids": ids[start : start + ID_CHUNK]})]

        def fetch(ids: list[str], direction: str) -> list[FactView]:
            # "both" is the out and the in query (two index seeks), each fact kept once; not
            # ``Q.facts_both``: ArcadeDB's ``UNION`` keeps duplicate rows when they hold nodes.
            sides = ("out", "in") if direction == "both" else (direction,)
            small, hubs = list(ids), {}
            if limit is not None:
                counts: dict[str, int] = {}
                for side in sides:
                    for entity_id, n in batched(counting[side], ids):
                        counts[entity_id] = counts.get(entity_id, 0) + int(n)
                hubs = {i: n for i, n in counts.items() if n > 3 * limit}
                small = [i for i in ids if i not in hubs]
            rows = [r for side in sides for r in batched(full[side], small)] if small else []
            for entity_id, count in hubs.items():
                width = 3.0 * limit / count  # type: ignore[operator]
                window = {"lo": offset, "hi": min(offset + width, 1.0), "wrap": max(0.0, offset + width - 1.0)}
                got = [r for side in sides for r in self._rows(windowed[side], {**base, **window, "id": entity_id})]
                if len(got) < limit:  # an unlucky window (or facts written without ``rnd``): read all
                    got = [r for side in sides for r in self._rows(full[side], {**base, "ids": [entity_id]})]
                rows += got
            facts: dict[str, FactView] = {}
            for row in rows:
                if row[0] not in facts:
                    facts[row[0]] = R.fact_from_row(row)
            return list(facts.values())

        return fetch

    def run_read_query(self, query: str, params: dict[str, Any] | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        statement = check_read_only(query)
        return self._run_in_read_transaction(statement, params or {}, limit)

    def _run_in_read_transaction(self, statement: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """The second and third locks: READ access mode, and a rollback whatever happened."""

        try:
            with self._session(read=True) as session:
                tx = session.begin_transaction(timeout=READ_QUERY_TIMEOUT_S)
                try:
                    result = tx.run(statement, params)
                    columns = list(result.keys())
                    out: list[dict[str, Any]] = []
                    for record in result:
                        if len(out) >= limit:
                            break
                        out.append({c: plain(v) for c, v in zip(columns, record.values())})
                    return out
                finally:
                    try:
                        tx.rollback()
                    except (neo4j_errors.DriverError, neo4j_errors.Neo4jError):
                        pass  # a failed transaction is already rolled back (and closed)
        except _UNREACHABLE as e:
            raise GraphUnavailableError(f"lost the graph database at {self.uri}: {first_line(e)}") from e
        except neo4j_errors.Neo4jError as e:
            message = first_line(e)
            code = e.code or ""
            if any(c in code for c in _WRITE_REFUSED_CODES) or any(w in message.lower() for w in _WRITE_REFUSED_WORDS):
                raise ReadOnlyViolationError(f"read-only workbench: the database refused a write ({message})") from e
            raise QueryError(f"query failed: {message}") from e
        except neo4j_errors.DriverError as e:
            raise QueryError(f"query failed: {first_line(e)}") from e
