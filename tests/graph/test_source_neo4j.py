"""``import-kg bolt://``: a Movies graph created through the driver in a real Bolt server (ArcadeDB),
imported end to end into an embedded store."""

from __future__ import annotations

import pytest

from graph.embedded import EmbeddedStore
from graph.importers import SourceOptions, import_kg
from graph.source_mapping import Mapping
from graph.source_neo4j import is_bolt_uri, source_name
from qa_system.errors import GraphUnavailableError
from qa_system.types import is_literal
from tests.graph.movies_source import NODES, RELATIONSHIPS, MoviesSource, source_counts

pytestmark = pytest.mark.neo4j


def _options(source: MoviesSource, **kw: object) -> SourceOptions:
    return SourceOptions(user=source.user, password=source.password, database=source.database, **kw)  # type: ignore[arg-type]


def test_bolt_import_end_to_end(movies_source: MoviesSource, embedded_store: EmbeddedStore) -> None:
    summary = import_kg(embedded_store, movies_source.uri, options=_options(movies_source, mapping=Mapping(batch_size=2)))
    assert summary.dataset == source_name(movies_source.uri, movies_source.database)
    assert summary.dataset.startswith("neo4j:") and summary.dataset.endswith(f"/{movies_source.database or 'default'}")
    assert (summary.entities_added, summary.unnamed) == (NODES, 1)
    stats = embedded_store.stats()
    assert stats.entities == NODES and stats.facts_by_relation["ACTED_IN"] == 3 and stats.facts_by_relation["DIRECTED"] == 2
    for name in ("Keanu Reeves", "Carrie-Anne Moss", "Lana Wachowski", "The Matrix", "The Matrix Reloaded"):
        assert [e.name for e in embedded_store.find_entities(name)] == [name]
    keanu = embedded_store.find_entities("Keanu Reeves")[0]
    assert keanu.type == "Person" and embedded_store.find_entities("Lana Wachowski")[0].type == "Director;Person"
    facts = embedded_store.neighbors([keanu.id]).facts
    acted = {(f.object_name, tuple(f.provenance.properties["roles"])) for f in facts if f.relation == "ACTED_IN"}
    assert acted == {("The Matrix", ("Neo",)), ("The Matrix Reloaded", ("Neo", "The One"))}
    born = [f for f in facts if f.relation == "born"]
    assert [(f.object_name, is_literal(f.object)) for f in born] == [("1964", True)]
    assert embedded_store.get_entity(born[0].object).type == "literal:integer"
    assert {f.object_name for f in facts if f.relation == "nicknames"} == {"The One", "Johnny"}
    assert all(f.provenance.dataset == summary.dataset for f in facts)
    assert embedded_store.find_entities("1964") == []  # values are never names
    assert source_counts(movies_source) == (NODES, RELATIONSHIPS)  # the source is only read

    again = import_kg(embedded_store, movies_source.uri, options=_options(movies_source))
    assert (again.entities_added, again.facts_added, again.literals_added) == (0, 0, 0)
    after = embedded_store.stats()
    assert (after.entities, after.literals, after.facts) == (stats.entities, stats.literals, stats.facts)


def test_bolt_import_with_id_property_and_name_property(movies_source: MoviesSource, embedded_store: EmbeddedStore) -> None:
    mapping = Mapping(id_property="uid", name_properties={"Thing": "uid"})
    summary = import_kg(embedded_store, movies_source.uri, options=_options(movies_source, mapping=mapping))
    assert summary.unnamed == 0
    assert embedded_store.get_entity("p1").name == "Keanu Reeves" and embedded_store.get_entity("t1").name == "t1"
    assert {(f.subject, f.object) for f in embedded_store.neighbors(["p1"], relations=["ACTED_IN"]).facts} == {("p1", "m1"), ("p1", "m2")}
    assert not [f for f in embedded_store.neighbors(["p1"]).facts if f.relation == "uid"]  # the id is not an attribute


def test_wrong_password_is_one_clear_error_and_writes_nothing(movies_source: MoviesSource, embedded_store: EmbeddedStore) -> None:
    options = SourceOptions(user=movies_source.user, password="not-the-password", database=movies_source.database)
    with pytest.raises(GraphUnavailableError, match="cannot log in to the source graph"):
        import_kg(embedded_store, movies_source.uri, options=options)
    stats = embedded_store.stats()
    assert (stats.entities, stats.literals, stats.facts) == (0, 0, 0)


def test_unreachable_host_is_one_clear_error_and_writes_nothing(embedded_store: EmbeddedStore) -> None:
    options = SourceOptions(user="neo4j", password="x", connect_timeout_s=2.0)
    with pytest.raises(GraphUnavailableError, match=r"cannot reach the source graph at bolt://127\.0\.0\.1:1"):
        import_kg(embedded_store, "bolt://127.0.0.1:1", options=options)
    assert embedded_store.stats().entities == 0


def test_bolt_uri_schemes() -> None:
    assert all(is_bolt_uri(u) for u in ("bolt://h:7687", "neo4j://h", "bolt+s://h", "neo4j+s://h", "NEO4J+SSC://h"))
    assert not any(is_bolt_uri(u) for u in ("demo", "/data/kg", "http://h:7474", "tests/fixtures/movies-csv"))
    assert source_name("neo4j+s://user@db.example.com:7687", "movies") == "neo4j:db.example.com:7687/movies"
    assert source_name("bolt://localhost", None) == "neo4j:localhost/default"
