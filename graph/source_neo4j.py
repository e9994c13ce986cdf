"""Importing a property graph from a running Neo4j (or any Bolt server) with the official driver.

Why read this way:

* Read-only by construction: every query runs in ``session.execute_read`` (a READ transaction, so
  Neo4j refuses writes in it), and the queries are constant strings with parameters. Labels,
  relationship types and property names are read as data (``labels(n)``, ``type(r)``,
  ``properties(n)``), never pasted into Cypher, so no name in the source can change a query.
* Nothing is written before the source is known to work: the connection, the login and the two
  counts are checked first, so an unreachable host or a wrong password is one line and an untouched
  store.
* Large graphs stream: nodes, then relationships, are read in pages of ``Mapping.batch_size``
  (``SKIP``/``LIMIT``; the source should not change meanwhile) and each page is written before the
  next is read. Writes are idempotent, so an import cut short (the source went away) is finished by
  running it again.

Node ids are ``elementId(n)`` (Neo4j 5), or ``id(n)`` as text on servers without ``elementId``,
unless ``--id-property`` names a property. The mapping itself is ``graph.source_mapping``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from graph.source_mapping import GraphMapper, ImportCounts, Mapping, StageProgress, batch_writer, warn_unnamed
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
_NODES = "MATCH (n) RETURN {n} AS id, labels(n) AS labels, properties(n) AS props SKIP $skip LIMIT $limit"
_RELATIONSHIPS = (
    "MATCH (a)-[r]->(b) RETURN {a} AS start, type(r) AS type, {b} AS end, properties(r) AS props SKIP $skip LIMIT $limit"
)


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

    def node_page(self, skip: int, limit: int) -> list[list[Any]]:
        """``[id, labels, properties]`` rows."""

        expr = _NODE_ID[self.id_form]
        return self.read(_NODES.format(n=expr.format(v="n")), {"skip": skip, "limit": limit})

    def relationship_page(self, skip: int, limit: int) -> list[list[Any]]:
        """``[start id, type, end id, properties]`` rows."""

        expr = _NODE_ID[self.id_form]
        return self.read(_RELATIONSHIPS.format(a=expr.format(v="a"), b=expr.format(v="b")), {"skip": skip, "limit": limit})


def resolve_password(password: str | None) -> str:
    """``--source-password``, else ``$QA_SOURCE_NEO4J_PASSWORD`` (keeps it out of shell history), else empty."""

    return password if password is not None else os.environ.get(PASSWORD_ENV, "")


def _pages(fetch: Callable[[int, int], list[Any]], size: int) -> Iterator[tuple[int, list[Any]]]:
    """(records read so far, page) for each page ``fetch(skip, limit)`` returns, until a short or empty one."""

    done = 0
    while True:
        rows = fetch(done, size)
        if not rows:
            return
        done += len(rows)
        yield done, rows
        if len(rows) < size:
            return


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
    skipped = 0
    with BoltSource(uri, user, resolve_password(password), database, connect_timeout_s=connect_timeout_s) as source:
        total_nodes, total_rels = source.count_nodes(), source.count_relationships()  # before any write
        ids: dict[str, str] = {}  # source node id -> entity id (the same unless --id-property)
        for done, rows in _pages(source.node_page, mapping.page_size):
            batch = mapper.batch(len(rows))
            for raw_id, labels, props in rows:
                ids[str(raw_id)] = mapper.node(str(raw_id), sorted(labels or []), dict(props or {}), batch)
            writer.write(batch, counts)
            if progress:
                progress("nodes", done, max(done, total_nodes))
        for done, rows in _pages(source.relationship_page, mapping.page_size):
            batch = mapper.batch(len(rows))
            for start, rel_type, end, props in rows:
                start, end = str(start), str(end)
                if start not in ids or end not in ids:  # a node created after the node pass
                    skipped += 1
                    continue
                start, end = ids[start], ids[end]
                mapper.link(batch, start, str(rel_type), end, props)
            writer.write(batch, counts)
            if progress:
                progress("relationships", done, max(done, total_rels))
    if skipped:
        log.warning("%s: %d relationship(s) skipped: an end node appeared after the node pass (re-run the import)", dataset, skipped)
    warn_unnamed(counts, dataset)
    return dataset, counts
