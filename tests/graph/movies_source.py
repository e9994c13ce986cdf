"""A small Movies graph (the Neo4j tutorial's shape) in a Bolt server's source database, created
through the driver: what ``import-kg bolt://`` reads in the source tests.

``movies_source`` (function scope) empties the source database, creates the graph, yields where it
is, and deletes it again. On the ArcadeDB test server it lives in its own database (``source``);
with ``NEO4J_URI`` set it shares the configured database (and, like ``neo4j_store``, wipes it).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.graph.bolt_server import SOURCE_DATABASE, BoltServer

# One statement, constant text: 5 named nodes, 1 without a name, 3 ACTED_IN (with roles), 2 DIRECTED.
MOVIES = """
CREATE (keanu:Person {name: 'Keanu Reeves', born: 1964, uid: 'p1', nicknames: ['The One', 'Johnny']})
CREATE (carrie:Person {name: 'Carrie-Anne Moss', born: 1967, uid: 'p2'})
CREATE (lana:Person:Director {name: 'Lana Wachowski', born: 1965, uid: 'p3'})
CREATE (matrix:Movie {title: 'The Matrix', released: 1999, tagline: 'Welcome to the Real World', uid: 'm1'})
CREATE (reloaded:Movie {title: 'The Matrix Reloaded', released: 2003, tagline: 'Free your mind', uid: 'm2'})
CREATE (:Thing {uid: 't1', weight: 1.5})
CREATE (keanu)-[:ACTED_IN {roles: ['Neo']}]->(matrix)
CREATE (carrie)-[:ACTED_IN {roles: ['Trinity']}]->(matrix)
CREATE (keanu)-[:ACTED_IN {roles: ['Neo', 'The One']}]->(reloaded)
CREATE (lana)-[:DIRECTED]->(matrix)
CREATE (lana)-[:DIRECTED]->(reloaded)
"""
NODES, RELATIONSHIPS = 6, 5


@dataclass(frozen=True)
class MoviesSource:
    uri: str
    user: str
    password: str
    database: str | None


def _run(source: MoviesSource, statement: str) -> list[list[object]]:
    import neo4j

    with neo4j.GraphDatabase.driver(source.uri, auth=(source.user, source.password)) as driver:
        with driver.session(database=source.database) as session:
            return [record.values() for record in session.run(statement)]


def source_counts(source: MoviesSource) -> tuple[int, int]:
    nodes = _run(source, "MATCH (n) RETURN count(n)")[0][0]
    rels = _run(source, "MATCH ()-[r]->() RETURN count(r)")[0][0]
    return int(nodes), int(rels)  # type: ignore[call-overload]


@contextmanager
def loaded_movies(bolt_server: BoltServer) -> Iterator[MoviesSource]:
    """The Movies graph in the server's source database for the duration of the block."""

    database = SOURCE_DATABASE if bolt_server.process is not None else bolt_server.database
    source = MoviesSource(bolt_server.uri, bolt_server.user, bolt_server.password, database)
    _run(source, "MATCH (n) DETACH DELETE n")
    _run(source, MOVIES)
    try:
        yield source
    finally:
        _run(source, "MATCH (n) DETACH DELETE n")


@pytest.fixture()
def movies_source(bolt_server: BoltServer) -> Iterator[MoviesSource]:
    with loaded_movies(bolt_server) as source:
        yield source
