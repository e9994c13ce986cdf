"""The name index a Neo4j store keeps locally (``graph.name_index.MirroredNameIndex``): in step with
the store's own writes without reading the database again, rebuilt when another client changed the
number of entities, and answering as the server-side lookups it replaced did."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.name_index import MirroredNameIndex, NameIndex
from qa_system.types import Entity
from tests.graph.bolt_server import BoltServer  # the bolt_server and neo4j_store fixtures come from conftest.py


def _entity(i: int, name: str, *aliases: str) -> Entity:
    return Entity(id=f"/m/n{i:02d}", name=name, aliases=tuple(aliases), type="/t")


class FakeDatabase:
    """What the mirror reads of a database: its entity count and all its entities."""

    def __init__(self, entities: list[Entity]) -> None:
        self.entities = {e.id: e for e in entities}
        self.reads = 0

    def count(self) -> int:
        return len(self.entities)

    def all(self) -> list[Entity]:
        self.reads += 1
        return list(self.entities.values())


def _mirror(tmp_path: Path, db: FakeDatabase, name: str = "names.sqlite") -> MirroredNameIndex:
    return MirroredNameIndex(NameIndex(tmp_path / name), db.count, db.all)


def test_built_on_first_lookup_then_kept_by_own_writes(tmp_path: Path) -> None:
    db = FakeDatabase([_entity(1, "Inception"), _entity(2, "Christopher Nolan", "Nolan")])
    names = _mirror(tmp_path, db)
    assert names.exact("inception") == ["/m/n01"] and db.reads == 1
    assert names.exact("NOLAN") == ["/m/n02"] and db.reads == 1  # in step: no second read

    new = _entity(3, "Memento")
    db.entities[new.id] = new
    names.written([new], 1)  # the store's own write: the index follows, no rebuild
    renamed = _entity(1, "Inception (film)", "Inception")
    db.entities[renamed.id] = renamed
    names.written([renamed], 0)
    assert names.exact("memento") == ["/m/n03"]
    assert names.exact("inception (film)") == ["/m/n01"] == names.exact("inception")
    del db.entities["/m/n02"]
    names.deleted(["/m/n02"])
    assert names.exact("nolan") == [] and db.reads == 1


def test_another_clients_additions_and_deletions_are_seen_at_the_next_lookup(tmp_path: Path) -> None:
    db = FakeDatabase([_entity(1, "Inception")])
    names = _mirror(tmp_path, db)
    assert names.exact("memento") == []
    db.entities["/m/n02"] = _entity(2, "Memento")  # written by someone who did not tell this index
    assert names.exact("memento") == ["/m/n02"] and db.reads == 2
    del db.entities["/m/n01"]
    assert names.exact("inception") == [] and db.reads == 3


def test_a_write_racing_another_client_leaves_the_counts_apart(tmp_path: Path) -> None:
    db = FakeDatabase([_entity(1, "Inception")])
    names = _mirror(tmp_path, db)
    assert names.exact("inception") == ["/m/n01"]
    db.entities["/m/n02"] = _entity(2, "Memento")  # another client
    mine = _entity(3, "Tenet")
    db.entities[mine.id] = mine
    names.written([mine], 1)  # this store's write: +1, while the database grew by 2
    assert names.exact("memento") == ["/m/n02"] and names.exact("tenet") == ["/m/n03"] and db.reads == 2


def test_processes_sharing_the_file_share_the_count(tmp_path: Path) -> None:
    db = FakeDatabase([_entity(1, "Inception")])
    first, second = _mirror(tmp_path, db), _mirror(tmp_path, db)
    assert first.exact("inception") == ["/m/n01"] and db.reads == 1
    assert second.exact("inception") == ["/m/n01"] and db.reads == 1  # built by the first
    new = _entity(2, "Memento")
    db.entities[new.id] = new
    first.written([new], 1)
    assert second.exact("memento") == ["/m/n02"] and db.reads == 1
    first.cleared()
    db.entities.clear()
    assert second.exact("memento") == [] and db.reads == 1


def test_literals_are_counted_but_never_names(tmp_path: Path) -> None:
    db = FakeDatabase([_entity(1, "Inception"), Entity(id="lit:abc", name="2010", type="literal:year")])
    names = _mirror(tmp_path, db)
    assert names.exact("2010") == [] and names.exact("inception") == ["/m/n01"] and db.reads == 1


def test_exact_many_and_prefix_order(tmp_path: Path) -> None:
    index = NameIndex(tmp_path / "names.sqlite")
    index.add([
        _entity(1, "Paris", "City of Light"),
        _entity(2, "Paris Hilton", "Paris"),
        _entity(3, "Parisa", "Pa"),
        _entity(4, "Same", "same"),  # an alias spelled as the name stays a name match
        _entity(0, "Zed", "Paris"),
    ])
    found = index.exact_many(["PARIS", "nothing", "", "same", "PARIS"])
    assert found == {"PARIS": ["/m/n01", "/m/n00", "/m/n02"], "nothing": [], "": [], "same": ["/m/n04"]}
    assert index.exact("same") == ["/m/n04"]
    # names first, then by the matching key's length, the key, the id; each entity at its best key
    assert index.prefix("pa", 10) == ["/m/n01", "/m/n03", "/m/n02", "/m/n00"]
    assert index.prefix("pa", 2) == ["/m/n01", "/m/n03"]


@pytest.mark.neo4j
def test_bolt_store_sees_another_stores_writes(bolt_server: BoltServer, neo4j_store: object, tmp_path: Path) -> None:
    from graph.neo4j_store import Neo4jStore

    other = Neo4jStore(bolt_server.uri, bolt_server.user, bolt_server.password, bolt_server.database,
                       connect_timeout_s=10, names_path=tmp_path / "other.sqlite")
    try:
        neo4j_store.upsert_entities([_entity(1, "Inception"), _entity(2, "Christopher Nolan", "Nolan")])
        assert [e.id for e in neo4j_store.find_entities("nolan")] == ["/m/n02"]
        rebuilds = neo4j_store.names.rebuilds
        neo4j_store.upsert_entity(_entity(3, "Memento"))
        many = neo4j_store.find_entities_many(["memento", "Inception", "tenet"])
        assert {k: [e.id for e in v] for k, v in many.items()} == {"memento": ["/m/n03"], "Inception": ["/m/n01"], "tenet": []}
        assert neo4j_store.names.rebuilds == rebuilds  # its own write needed no rebuild

        other.upsert_entity(_entity(4, "Tenet"))  # another client (its own index file)
        assert [e.id for e in neo4j_store.find_entities("tenet")] == ["/m/n04"]
        assert neo4j_store.delete_entities(["/m/n02"]) == 1
        assert neo4j_store.find_entities("nolan") == [] and other.find_entities("Christopher Nolan") == []
        assert [e.id for e in neo4j_store.search_entities("ten")] == ["/m/n04"]
        neo4j_store.clear()
        assert other.find_entities("tenet") == []
    finally:
        other.close()
