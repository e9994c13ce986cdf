"""The embedded store's bulk import path (``graph.embedded_bulk.BulkWriter``) stores what the
store's own upserts store (``graph.source_mapping.StoreWriter``, the path every other backend
takes), notices writes made around it, and refuses facts whose ends are no entities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graph.embedded import EmbeddedStore
from graph.embedded_bulk import BulkWriter
from graph.source_csv import read_csv_graph
from graph.source_mapping import GraphMapper, ImportCounts, Mapping, StoreWriter, batch_writer
from graph.source_rdf import read_rdf_graph
from qa_system.errors import EntityNotFoundError
from qa_system.types import Entity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _stored(store: EmbeddedStore) -> dict[str, Any]:
    entities = sorted(tuple(map(str, r)) for r in store._rows(
        "MATCH (e:Entity) RETURN e.id, e.name, e.aliases, e.type, e.description, e.image_url, e.url"))
    facts = []
    for r in store._rows("MATCH (s:Entity)-[f:Fact]->(o:Entity) RETURN f.id, s.id, o.id, f.subject, f.rnd, f.rel_type, f.status, "
                         "f.confidence, f.split, f.source_kind, f.dataset, f.provenance"):
        provenance = json.loads(r[11]) if r[11] else {}
        provenance.pop("created_at", None)  # when the record was made
        facts.append((*r[:11], json.dumps(provenance, sort_keys=True)))
    names = sorted(store.names._db.execute("SELECT key, entity_id, is_alias FROM names").fetchall())
    return {"entities": entities, "facts": sorted(facts), "names": names}


def _write(writer: Any, batches: list[Any]) -> ImportCounts:
    counts = ImportCounts()
    for batch in batches:
        writer.write(batch, counts)
    writer.flush()
    return counts


@pytest.mark.parametrize("source", ["movies-csv", "movies-rdf/movies.ttl"])
def test_bulk_path_stores_what_the_upserts_store(tmp_path: Path, source: str) -> None:
    path = FIXTURES / source
    nodes, links, _name = read_csv_graph(path, Mapping()) if path.is_dir() else read_rdf_graph(path, Mapping())
    results = []
    for kind in (BulkWriter, StoreWriter):
        store = EmbeddedStore.open(tmp_path / kind.__name__)
        try:
            writer = kind(store)
            first = _write(writer, [*nodes, *links])
            again = _write(kind(store), [*nodes, *links])
            results.append((_stored(store), first, again))
        finally:
            store.close()
    (bulk, bulk_first, bulk_again), (plain, plain_first, plain_again) = results
    assert bulk == plain
    assert bulk_first == plain_first and bulk_again == plain_again
    assert bulk_again.facts_added == bulk_again.entities_added == bulk_again.literals_added == 0


def test_batch_writer_picks_the_bulk_path_for_a_writable_embedded_store(embedded_store: EmbeddedStore) -> None:
    assert isinstance(batch_writer(embedded_store), BulkWriter)


def test_bulk_writer_sees_writes_made_around_it(embedded_store: EmbeddedStore) -> None:
    mapper = GraphMapper(Mapping(), "test:bulk")
    writer = BulkWriter(embedded_store)
    first = mapper.batch()
    mapper.node("a", ["Person"], {"name": "Ada", "born": 1815}, first)
    mapper.node("b", ["Person"], {"name": "Bob"}, first)
    counts = ImportCounts()
    writer.write(first, counts)
    writer.flush()
    # another writer adds an entity and a fact the next batch also holds
    embedded_store.upsert_entities([Entity(id="c", name="Cy")])
    second = mapper.batch()
    mapper.node("c", [], {"name": "Cy"}, second)
    mapper.link(second, "a", "KNOWS", "b", {"since": 1833})
    embedded_store.upsert_facts(second.facts)
    mapper.link(second, "b", "KNOWS", "c")
    writer.write(second, counts)
    writer.flush()
    stats = embedded_store.stats()
    assert (stats.entities, stats.literals, stats.facts) == (3, 1, 3)
    assert (counts.entities_added, counts.entities_merged, counts.facts_added, counts.facts_merged) == (2, 1, 2, 1)
    knows = embedded_store.neighbors(["a"], relations=["KNOWS"]).facts
    assert [f.provenance.properties for f in knows] == [{"since": 1833}]


def test_bulk_writer_refuses_facts_without_their_ends(embedded_store: EmbeddedStore) -> None:
    mapper = GraphMapper(Mapping(), "test:bulk")
    batch = mapper.batch()
    mapper.node("a", [], {"name": "Ada"}, batch)
    mapper.link(batch, "a", "KNOWS", "nobody")
    writer = BulkWriter(embedded_store)
    writer.write(batch, ImportCounts())
    with pytest.raises(EntityNotFoundError, match="not entities in the graph"):
        writer.flush()
    assert embedded_store.stats().facts == 0
