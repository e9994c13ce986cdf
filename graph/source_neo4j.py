"""Importing a property graph from a running Neo4j (or any Bolt server) with the official driver.

Why read this way:

* Read-only by construction: every query runs in ``session.execute_read`` (a READ transaction, so
  Neo4j refuses writes in it), and the queries are constant strings with parameters. Labels,
  relationship types and property names are read as data (``labels(n)``, ``type(r)``,
  ``properties(n)``), never pasted into Cypher, so no name in the source can change a query.
* Nothing is written before the source is known to work: the connection, the login and the two
  counts are checked first, so an unreachable host or a wrong password is one line and an untouched
  store.
* Large graphs stream: nodes, then relationships, are each read by one query in one read
  transaction, handed over in pages of ``Mapping.batch_size`` records as the driver fetches them,
  and each page is written before the next is fetched. Writes are idempotent, so an import cut
  short (the source went away) is finished by running it again.

Node ids are ``elementId(n)`` (Neo4j 5), or ``id(n)`` as text on servers without ``elementId``,
unless ``--id-property`` names a property. The mapping itself is ``graph.source_mapping``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from graph.source_mapping import GraphMapper, ImportCounts, Mapping, StageProgress, batch_writer, paused_gc, warn_unnamed
from graph.store import GraphStore
from qa_system.errors import ConfigError, GraphUnavailableError, QueryError

log = logging.getLogger(__name__)

BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
PASSWORD_ENV = "QA_SOURCE_NEO4J_PASSWORD"

# Constant statements; only parameters vary. ``{node_id}`` is one of two fixed expressions (never user text).
_PROBE_ELEMENT_ID = "MATCH (n) RETURN elementId(n) AS id LIMIT 1"
_COUNT_NODES = "MATCH (n) RETURN count(n) AS n"
_COUNT_RELATIONSHIPS = "MATCH ()-[r]->() RETURN count(r) AS n"
_NODE_ID = {"element": "elementId({v})", "legacy": "toString(id({v}))"}
_NODES = "MATCH (n) RETURN {n} AS id, labels(n) AS labels, properties(n) AS props"
_RELATIONSHIPS = "MATCH (a)-[r]->(b) RETURN {a} AS start, type(r) AS type, {b} AS end, properties(r) AS props"


class _Stopped(Exception):
    """The reading side gave up (its handler raised): the source's transaction ends."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """``graph.neo4j_store.first_line``, imported when a Bolt source is read: ``import_kg`` imports
    this module for every source, and the driver's import alone took 0.5 s of a file import."""

    from graph.neo4j_store import first_line as one_line

    return one_line(error, limit)


def is_bolt_uri(source: str) -> bool:
    return "://" in source and source.split("://", 1)[0].lower() in BOLT_SCHEMES


def source_name(uri: str, database: str | None) -> str:
    """The provenance ``dataset`` of facts from this source: ``neo4j:<host>:<port>/<database>``."""

    parts = urlsplit(uri)
    host = parts.hostname or ""
    where = f"{host}:{parts.port}" if parts.port else host
    return f"neo4j:{where}/{database or 'default'}"


class BoltSource:
    """A read-only view of a Bolt server: counts and pages of nodes and relationships."""

    def __init__(self, uri: str, user: str, password: str, database: str | None = None, *, connect_timeout_s: float = 10.0) -> None:
        import neo4j
        from neo4j import exceptions as errors

        self._neo4j, self._errors = neo4j, errors
        self.uri, self.user, self.database = uri, user, database or None
        self.where = uri + (f" (database {database!r})" if database else "")
        try:
            self._driver = neo4j.GraphDatabase.driver(
                uri, auth=(user, password), connection_timeout=connect_timeout_s,
                connection_acquisition_timeout=max(connect_timeout_s, 1.0) * 2,
                max_transaction_retry_time=max(connect_timeout_s, 1.0) * 2,
            )
        except (errors.ConfigurationError, ValueError) as e:
            raise ConfigError(f"bad source URI {uri!r}: {first_line(e, 300)}") from e
        try:
            self._guarded(self._driver.verify_connectivity)
            self.id_form = self._probe_id_form()
        except BaseException:
            self._driver.close()
            raise

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> BoltSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        """One READ transaction; driver errors become our one-line errors."""

        def work(tx: Any) -> list[list[Any]]:
            return [record.values() for record in tx.run(query, params or {})]

        def action() -> list[list[Any]]:
            with self._driver.session(database=self.database, default_access_mode=self._neo4j.READ_ACCESS) as session:
                return session.execute_read(work)

        return self._guarded(action)

    def _guarded(self, action: Any) -> Any:
        errors = self._errors
        try:
            return action()
        except errors.AuthError as e:
            raise GraphUnavailableError(f"cannot log in to the source graph at {self.where} as {self.user!r}: {first_line(e, 300)}") from e
        except (errors.ServiceUnavailable, errors.SessionExpired, errors.DatabaseUnavailable) as e:
            raise GraphUnavailableError(f"cannot reach the source graph at {self.where}: {first_line(e, 300)}") from e
        except errors.Neo4jError as e:
            if e.code and "DatabaseNotFound" in e.code:
                raise GraphUnavailableError(f"no database {self.database!r} at {self.uri}: {first_line(e, 300)}") from e
            raise QueryError(f"reading the source graph at {self.where} failed: {first_line(e, 300)}") from e
        except errors.DriverError as e:
            raise GraphUnavailableError(f"cannot read the source graph at {self.where}: {first_line(e, 300)}") from e
        except OSError as e:
            raise GraphUnavailableError(f"cannot reach the source graph at {self.where}: {first_line(e, 300)}") from e

    def _probe_id_form(self) -> str:
        try:
            self.read(_PROBE_ELEMENT_ID)
            return "element"
        except QueryError:  # a server without elementId() (older Neo4j, some Bolt servers)
            log.info("%s has no elementId(); node ids are id(n)", self.where)
            return "legacy"

    def count_nodes(self) -> int:
        return int(self.read(_COUNT_NODES)[0][0])

    def count_relationships(self) -> int:
        return int(self.read(_COUNT_RELATIONSHIPS)[0][0])

    def stream(self, query: str, size: int, handle: Callable[[list[list[Any]]], None]) -> None:
        """Run one query in one READ transaction and hand its records to ``handle`` in lists of
        ``size`` as the driver streams them (memory stays flat: at most two lists wait).

        One query, not ``SKIP``/``LIMIT`` pages: a server walks past every skipped record again for
        each page (31 pages of the demo graph's 310k relationships read 15x the records), and the
        pages of an unordered query are not guaranteed to be disjoint. The transaction runs in a
        thread of its own, so the server produces the next records while ``handle`` maps and writes
        the last ones. Should the driver retry the transaction, the records come again from the
        start (the writes are idempotent)."""

        pages: queue.Queue[Any] = queue.Queue(maxsize=2)
        stop = threading.Event()
        done = object()

        def put(item: Any) -> None:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue
            raise _Stopped

        def work(tx: Any) -> None:
            rows: list[list[Any]] = []
            for record in tx.run(query):
                rows.append(record.values())
                if len(rows) >= size:
                    put(rows)
                    rows = []
            if rows:
                put(rows)

        def produce() -> None:
            try:
                with self._driver.session(database=self.database, default_access_mode=self._neo4j.READ_ACCESS, fetch_size=size) as session:
                    self._guarded(lambda: session.execute_read(work))
                put(done)
            except _Stopped:
                pass
            except BaseException as e:  # noqa: BLE001 - handed to the reading thread, raised there
                try:
                    put(e)
                except _Stopped:
                    pass

        reader = threading.Thread(target=produce, name="bolt-source-reader", daemon=True)
        reader.start()
        try:
            while True:
                item = pages.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                handle(item)
        finally:
            stop.set()
            reader.join(timeout=30)

    def each_node_page(self, size: int, handle: Callable[[list[list[Any]]], None]) -> None:
        """``[id, labels, properties]`` rows, ``size`` at a time."""

        self.stream(_NODES.format(n=_NODE_ID[self.id_form].format(v="n")), size, handle)

    def each_relationship_page(self, size: int, handle: Callable[[list[list[Any]]], None]) -> None:
        """``[start id, type, end id, properties]`` rows, ``size`` at a time."""

        expr = _NODE_ID[self.id_form]
        self.stream(_RELATIONSHIPS.format(a=expr.format(v="a"), b=expr.format(v="b")), size, handle)


def resolve_password(password: str | None) -> str:
    """``--source-password``, else ``$QA_SOURCE_NEO4J_PASSWORD`` (keeps it out of shell history), else empty."""

    return password if password is not None else os.environ.get(PASSWORD_ENV, "")


def import_bolt_graph(
    store: GraphStore,
    uri: str,
    mapping: Mapping,
    *,
    user: str = "neo4j",
    password: str | None = None,
    database: str | None = None,
    progress: StageProgress | None = None,
    connect_timeout_s: float = 10.0,
) -> tuple[str, ImportCounts]:
    """Stream the source graph into ``store``: every node page, then every relationship page."""

    dataset = source_name(uri, database)
    mapper = GraphMapper(mapping, dataset)
    counts = ImportCounts()
    writer = batch_writer(store)
    skipped = [0]
    with BoltSource(uri, user, resolve_password(password), database, connect_timeout_s=connect_timeout_s) as source:
        total_nodes, total_rels = source.count_nodes(), source.count_relationships()  # before any write
        ids: dict[str, str] = {}  # source node id -> entity id (the same unless --id-property)
        done = [0, 0]

        def nodes(rows: list[list[Any]]) -> None:
            with paused_gc():
                batch = mapper.batch(len(rows))
                for raw_id, labels, props in rows:
                    ids[str(raw_id)] = mapper.node(str(raw_id), sorted(labels or []), dict(props or {}), batch)
                writer.write(batch, counts)
            done[0] += len(rows)
            if progress:
                progress("nodes", done[0], max(done[0], total_nodes))

        def relationships(rows: list[list[Any]]) -> None:
            with paused_gc():
                batch = mapper.batch(len(rows))
                for start, rel_type, end, props in rows:
                    start, end = ids.get(str(start)), ids.get(str(end))
                    if start is None or end is None:  # a node created after the node pass
                        skipped[0] += 1
                        continue
                    mapper.link(batch, start, str(rel_type), end, props)
                writer.write(batch, counts)
            done[1] += len(rows)
            if progress:
                progress("relationships", done[1], max(done[1], total_rels))

        source.each_node_page(mapping.page_size, nodes)
        source.each_relationship_page(mapping.page_size, relationships)
        writer.flush()
    if skipped[0]:
        log.warning("%s: %d relationship(s) skipped: an end node appeared after the node pass (re-run the import)", dataset, skipped[0])
    warn_unnamed(counts, dataset)
    return dataset, counts
