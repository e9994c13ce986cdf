"""One contract, every backend: the ``store`` fixture is parametrised over embedded and Neo4j (Bolt)."""

from __future__ import annotations

import pytest

from graph.store import GraphStore
from qa_system.errors import EntityNotFoundError, FactNotFoundError, QueryError, ReadOnlyViolationError
from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind, is_literal, literal_entity

ENTITIES = [
    Entity(id="/m/nolan", name="Christopher Nolan", aliases=("Chris Nolan", "Nolan"), type="/people/person", description="film director"),
    Entity(id="/m/inception", name="Inception", type="/film/film", description="2010 film"),
    Entity(id="/m/memento", name="Memento", type="/film/film"),
    Entity(id="/m/dicaprio", name="Leonardo DiCaprio", type="/people/person"),
    Entity(id="/m/uk", name="United Kingdom", aliases=("UK",), type="/location/country"),
    Entity(id="/m/titanic", name="Titanic", type="/film/film"),
    Entity(id="/m/usa", name="United States", aliases=("USA",), type="/location/country"),
]
FACTS = [
    ("/m/nolan", "/film/director/film", "/m/inception", "train"),
    ("/m/nolan", "/film/director/film", "/m/memento", "train"),
    ("/m/nolan", "/people/person/nationality", "/m/uk", "dev"),
    ("/m/inception", "/film/film/starring", "/m/dicaprio", "train"),
    ("/m/titanic", "/film/film/starring", "/m/dicaprio", "test"),
    ("/m/dicaprio", "/people/person/nationality", "/m/usa", "train"),
]


def _fact(s: str, r: str, o: str, split: str = "train", status: FactStatus = FactStatus.VERIFIED) -> Fact:
    return Fact(subject=s, relation=r, object=o, status=status, provenance=Provenance(dataset="tiny", split=split))


@pytest.fixture()
def loaded(store: GraphStore) -> GraphStore:
    store.upsert_entities(ENTITIES)
    store.upsert_facts([_fact(*f) for f in FACTS])
    return store


def test_is_a_graph_store(store: GraphStore) -> None:
    assert isinstance(store, GraphStore)


def test_bulk_upserts_are_idempotent(store: GraphStore) -> None:
    first = store.upsert_entities(ENTITIES)
    again = store.upsert_entities(ENTITIES)
    assert (first.added, first.merged) == (len(ENTITIES), 0)
    assert (again.added, again.merged) == (0, len(ENTITIES))
    facts = [_fact(*f) for f in FACTS]
    assert store.upsert_facts(facts).added == len(FACTS)
    assert store.upsert_facts(facts + facts).merged == len(FACTS)
    stats = store.stats()
    assert (stats.entities, stats.facts) == (len(ENTITIES), len(FACTS))


def test_single_upserts_and_updates(loaded: GraphStore) -> None:
    assert loaded.upsert_entity(Entity(id="/m/new", name="Brand New")) is True
    assert loaded.upsert_entity(Entity(id="/m/new", name="Renamed Thing", aliases=("RT",))) is False
    assert loaded.get_entity("/m/new").name == "Renamed Thing"
    assert [e.id for e in loaded.find_entities("renamed thing")] == ["/m/new"]
    assert loaded.find_entities("Brand New") == []
    assert loaded.upsert_fact(_fact("/m/new", "/x/rel", "/m/uk")) is True
    assert loaded.upsert_fact(_fact("/m/new", "/x/rel", "/m/uk")) is False
    assert loaded.stats().facts == len(FACTS) + 1


def test_fact_with_unknown_end_is_refused(loaded: GraphStore) -> None:
    with pytest.raises(EntityNotFoundError):
        loaded.upsert_facts([_fact("/m/nolan", "/film/director/film", "/m/missing")])
    assert loaded.stats().facts == len(FACTS)


def test_find_by_exact_name_alias_and_prefix(loaded: GraphStore) -> None:
    assert [e.id for e in loaded.find_entities("christopher  NOLAN")] == ["/m/nolan"]
    assert [e.id for e in loaded.find_entities("Chris Nolan")] == ["/m/nolan"]
    assert loaded.find_entities("Chris") == []
    assert "/m/nolan" in [e.id for e in loaded.search_entities("chris")]
    assert {e.id for e in loaded.search_entities("u", limit=10)} >= {"/m/uk", "/m/usa"}
    entity = loaded.get_entity("/m/nolan")
    assert entity is not None and entity.description == "film director" and "Nolan" in entity.aliases
    assert loaded.get_entity("/m/none") is None


def test_entity_texts_in_one_read(loaded: GraphStore) -> None:
    texts = loaded.entity_texts(["/m/nolan", "/m/none", "/m/uk"])  # type: ignore[attr-defined]
    assert set(texts) == {"/m/nolan", "/m/uk"}  # unknown ids are left out
    assert texts["/m/nolan"] == ("Christopher Nolan", "film director")
    assert loaded.entity_texts([]) == {}  # type: ignore[attr-defined]
    assert loaded.entity_texts(["x'}) MATCH (n) DETACH DELETE n //"]) == {}  # type: ignore[attr-defined]
    assert loaded.stats().entities == len(ENTITIES)


def test_get_entities_in_one_read(loaded: GraphStore) -> None:
    found = loaded.get_entities(["/m/uk", "/m/none", "/m/nolan", "/m/uk"])  # type: ignore[attr-defined]
    assert set(found) == {"/m/nolan", "/m/uk"}  # unknown ids left out, repeats once
    assert found["/m/nolan"] == loaded.get_entity("/m/nolan")
    assert loaded.get_entities([]) == {}  # type: ignore[attr-defined]
    assert loaded.get_entities(["x'}) MATCH (n) DETACH DELETE n //"]) == {}  # type: ignore[attr-defined]
    assert loaded.stats().entities == len(ENTITIES)


def test_user_text_never_becomes_cypher(loaded: GraphStore) -> None:
    evil = "x'}) MATCH (n) DETACH DELETE n //"
    assert loaded.find_entities(evil) == []
    assert loaded.search_entities(evil) == []
    assert loaded.neighbors([evil]).facts == []
    assert loaded.stats().entities == len(ENTITIES)


def test_one_hop_neighbours_both_directions(loaded: GraphStore) -> None:
    sub = loaded.neighbors(["/m/inception"])
    pairs = {(f.subject, f.relation, f.object) for f in sub.facts}
    assert pairs == {("/m/nolan", "/film/director/film", "/m/inception"), ("/m/inception", "/film/film/starring", "/m/dicaprio")}
    assert sub.entities["/m/nolan"].name == "Christopher Nolan"
    assert all(f.hop == 1 for f in sub.facts)
    out_only = loaded.neighbors(["/m/inception"], direction="out")
    assert {f.object for f in out_only.facts} == {"/m/dicaprio"}
    in_only = loaded.neighbors(["/m/inception"], direction="in")
    assert {f.subject for f in in_only.facts} == {"/m/nolan"}


def test_two_hops_filters_and_caps(loaded: GraphStore) -> None:
    two = loaded.neighbors(["/m/nolan"], hops=2)
    assert {f.object for f in two.facts if f.hop == 2} >= {"/m/dicaprio"}
    assert max(f.hop for f in two.facts) == 2
    films = loaded.neighbors(["/m/nolan"], relations=["/film/director/film"])
    assert {f.object_name for f in films.facts} == {"Inception", "Memento"}
    capped = loaded.neighbors(["/m/nolan"], limit_per_entity=1, seed=3)
    assert len(capped.facts) == 1 and capped.truncated
    again = loaded.neighbors(["/m/nolan"], limit_per_entity=1, seed=3)
    assert [f.id for f in again.facts] == [f.id for f in capped.facts]


def test_status_lifecycle_and_filters(loaded: GraphStore) -> None:
    fact = _fact("/m/nolan", "/film/director/film", "/m/titanic", status=FactStatus.PROPOSED)
    loaded.upsert_fact(fact)
    assert loaded.get_fact(fact.id).status is FactStatus.PROPOSED
    answerable = loaded.neighbors(["/m/nolan"], statuses=[FactStatus.VERIFIED, FactStatus.EXTRACTED])
    assert fact.id not in {f.id for f in answerable.facts}
    view = loaded.set_fact_status(fact.id, FactStatus.REJECTED, reviewer="ann", reason="wrong director")
    assert view.status is FactStatus.REJECTED
    assert view.provenance.reviewer == "ann" and view.provenance.review_reason == "wrong director"
    assert fact.id not in {f.id for f in loaded.neighbors(["/m/nolan"]).facts}  # rejected: hidden by default
    assert [f.id for f in loaded.list_facts(statuses=[FactStatus.REJECTED])] == [fact.id]
    with pytest.raises(FactNotFoundError):
        loaded.set_fact_status("nope", FactStatus.VERIFIED)
    with pytest.raises(FactNotFoundError):
        loaded.get_fact("nope")


def test_provenance_round_trip(loaded: GraphStore) -> None:
    prov = Provenance(source_kind=SourceKind.EXTRACTOR, document_id="doc-1", sentence="Nolan directed Titanic.", sentence_start=0, sentence_end=23, model="qidn", score=0.9)
    fact = Fact(subject="/m/nolan", relation="directed", object="/m/titanic", status=FactStatus.EXTRACTED, confidence=0.9, provenance=prov)
    loaded.upsert_fact(fact)
    view = loaded.get_fact(fact.id)
    assert view.provenance.sentence == "Nolan directed Titanic." and view.provenance.model == "qidn"
    assert view.confidence == pytest.approx(0.9)
    assert loaded.get_fact(fact_id := _fact(*FACTS[0]).id).provenance.split == "train" and fact_id


def test_stats_and_export(loaded: GraphStore) -> None:
    stats = loaded.stats()
    assert stats.facts_by_status == {"verified": len(FACTS)}
    assert stats.facts_by_relation["/film/director/film"] == 2
    assert stats.facts_by_split == {"train": 4, "dev": 1, "test": 1}
    assert stats.entities_by_type["/film/film"] == 3
    triples = loaded.export_triples()
    assert ("/m/nolan", "/film/director/film", "/m/inception", "train") in triples and len(triples) == len(FACTS)
    assert loaded.export_triples(statuses=["proposed"]) == []


def test_read_query_with_parameters(loaded: GraphStore) -> None:
    rows = loaded.run_read_query("MATCH (e:Entity) WHERE e.name = $name RETURN e.id AS id", {"name": "Inception"})
    assert rows == [{"id": "/m/inception"}]
    assert loaded.run_read_query("RETURN 'CREATE (x)' AS text") == [{"text": "CREATE (x)"}]


def test_a_bad_read_query_is_a_query_error(loaded: GraphStore) -> None:
    """Not the database's own transaction error: a bad query the user typed gets one clear line. An
    unknown label is an error for the embedded database (its schema is fixed) and matches nothing
    for a Neo4j server."""

    with pytest.raises(QueryError):
        loaded.run_read_query("MATCH (e:Entity RETURN e")
    try:
        assert loaded.run_read_query("MATCH (e:NoSuchLabel) RETURN e.nothing") == []
    except QueryError:
        pass
    assert loaded.stats().entities == len(ENTITIES)


@pytest.mark.parametrize(
    "query",
    [
        "CREATE (e:Entity {id: 'x', name: 'x'})",
        "MERGE (e:Entity {id: 'x'}) RETURN e",
        "MATCH (e:Entity) SET e.name = 'hacked' RETURN e",
        "MATCH (e:Entity) DETACH DELETE e",
        "MATCH (e:Entity) REMOVE e.name RETURN e",
        "MATCH (e:Entity) RETURN e.id; MATCH (e:Entity) DETACH DELETE e",
        "MATCH (e:Entity) RETURN e.id /* */ ; CREATE (x:Entity {id: 'y'})",
        "CALL apoc.create.node(['Entity'], {id: 'z'})",
        "CALL db.createLabel('X')",
        "MATCH (e:Entity) CALL { WITH e DETACH DELETE e } RETURN 1",
        "MATCH (e:Entity) FOREACH (x IN [1] | SET e.name = 'y') RETURN e",
        "DROP TABLE Entity",
        "COPY Entity FROM '/tmp/x.csv'",
        "LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line",
        "",
    ],
)
def test_read_query_refuses_writes(loaded: GraphStore, query: str) -> None:
    with pytest.raises(ReadOnlyViolationError):
        loaded.run_read_query(query)
    stats = loaded.stats()
    assert (stats.entities, stats.facts) == (len(ENTITIES), len(FACTS))
    assert loaded.get_entity("/m/nolan").name == "Christopher Nolan"


def test_fact_between_two_frontier_entities_is_counted_once(loaded: GraphStore) -> None:
    # nolan has 3 facts, one of them (-> inception) shared with the other seed: a cap of 3 must keep
    # all of them (a duplicate in nolan's candidate list would force sampling and drop a fact).
    sub = loaded.neighbors(["/m/nolan", "/m/inception"], limit_per_entity=3)
    ids = [f.id for f in sub.facts]
    assert len(ids) == len(set(ids)) == 4
    assert not sub.truncated


def test_facts_linking_finds_each_fact_once_with_its_true_ends(loaded: GraphStore) -> None:
    # anchors on either end: Nolan -> Inception (anchor is the subject), Inception -> DiCaprio (anchor is the object)
    facts = loaded.facts_linking(["/m/nolan", "/m/dicaprio"], ["/m/inception", "/m/usa", "/m/titanic"])
    triples = sorted((f.subject, f.relation, f.object) for f in facts)
    assert triples == [
        ("/m/dicaprio", "/people/person/nationality", "/m/usa"),
        ("/m/inception", "/film/film/starring", "/m/dicaprio"),
        ("/m/nolan", "/film/director/film", "/m/inception"),
        ("/m/titanic", "/film/film/starring", "/m/dicaprio"),
    ]
    assert len({f.id for f in facts}) == len(facts)
    assert loaded.facts_linking([], ["/m/inception"]) == [] and loaded.facts_linking(["/m/nolan"], []) == []
    assert loaded.facts_linking(["/m/nolan"], ["/m/titanic", "no such id"]) == []


def test_facts_linking_filters_statuses(loaded: GraphStore) -> None:
    proposed = _fact("/m/nolan", "/film/director/film", "/m/titanic", status=FactStatus.PROPOSED)
    loaded.upsert_fact(proposed)
    assert [f.id for f in loaded.facts_linking(["/m/nolan"], ["/m/titanic"])] == [proposed.id]  # default: all but rejected
    assert loaded.facts_linking(["/m/nolan"], ["/m/titanic"], statuses=[FactStatus.VERIFIED, FactStatus.EXTRACTED]) == []
    loaded.set_fact_status(proposed.id, FactStatus.REJECTED, reviewer="ann", reason="wrong")
    assert loaded.facts_linking(["/m/nolan"], ["/m/titanic"]) == []


# -- literal attribute values (``lit:`` nodes, ``qa_system.types.literal_entity``) --------------------
def _with_literals(store: GraphStore) -> tuple[Entity, Entity]:
    born = literal_entity("/m/nolan", "born", 1970)
    tagline = literal_entity("/m/inception", "tagline", "Your mind is the scene of the crime")
    store.upsert_entities([born, tagline])
    store.upsert_facts([_fact("/m/nolan", "born", born.id), _fact("/m/inception", "tagline", tagline.id)])
    return born, tagline


def test_literal_values_are_neighbours_but_not_names(loaded: GraphStore) -> None:
    born, tagline = _with_literals(loaded)
    assert born.is_literal and is_literal(born.id) and born.type == "literal:integer" and born.name == "1970"
    sub = loaded.neighbors(["/m/nolan"])
    attribute = [f for f in sub.facts if f.relation == "born"]
    assert [(f.object, f.object_name) for f in attribute] == [(born.id, "1970")]
    assert loaded.get_entity(born.id) == born
    assert loaded.find_entities("1970") == [] and loaded.search_entities("197") == []
    assert loaded.find_entities("Your mind is the scene of the crime") == [] and loaded.search_entities("your mind") == []
    assert loaded.upsert_entities([born]).added == 0  # one node per (subject, attribute, value): idempotent
    assert literal_entity("/m/nolan", "born", 1970).id == born.id != literal_entity("/m/memento", "born", 1970).id


def test_stats_count_literals_apart_and_export_leaves_them_out(loaded: GraphStore) -> None:
    _with_literals(loaded)
    stats = loaded.stats()
    assert (stats.entities, stats.literals, stats.facts) == (len(ENTITIES), 2, len(FACTS) + 2)
    assert stats.facts_by_relation["born"] == 1
    assert not any(t.startswith("literal:") for t in stats.entities_by_type)
    triples = loaded.export_triples()
    assert len(triples) == len(FACTS) and not any(is_literal(o) for _s, _r, o, _split in triples)


def test_traversal_does_not_expand_from_a_literal(loaded: GraphStore) -> None:
    # two entities sharing the same value still get two literal nodes; and no hop-2 step leaves a literal
    a = literal_entity("/m/inception", "released", 2010)
    b = literal_entity("/m/dicaprio", "released", 2010)
    loaded.upsert_entities([a, b])
    odd = _fact(a.id, "/x/odd", "/m/usa")  # never made by an importer: shows whether a literal is expanded
    loaded.upsert_facts([_fact("/m/inception", "released", a.id), _fact("/m/dicaprio", "released", b.id), odd])
    two = loaded.neighbors(["/m/inception"], hops=2)
    hop2 = [f for f in two.facts if f.hop == 2]
    assert odd.id not in {f.id for f in two.facts}
    assert b.id in {f.object for f in hop2}  # DiCaprio (an entity) is expanded at hop 2, his value is listed
    assert [f.object for f in two.facts if f.hop == 1 and f.relation == "released"] == [a.id]
    assert {f.hop for f in loaded.neighbors([a.id], hops=2).facts} == {1, 2}  # a literal seed is read (hop 1)


def test_literals_stay_out_of_the_name_embedding_rows(loaded: GraphStore) -> None:
    from retrievers.name_embeddings import _name_texts, entity_rows

    born, _tagline = _with_literals(loaded)
    rows = entity_rows(loaded)
    assert {r["e.id"] for r in rows} == {e.id for e in ENTITIES}  # what the FAISS index and answer-text warm-up embed
    ids, _texts = _name_texts([*rows, {"e.id": born.id, "e.name": born.name, "e.aliases": []}])
    assert born.id not in ids


# -- maintenance: forget a document, merge entities (``qa_system.maintain.actions``) --------------------------------
def _extracted(s: str, r: str, o: str, document_id: str) -> Fact:
    provenance = Provenance(source_kind=SourceKind.EXTRACTOR, document_id=document_id, sentence=f"{s} {r} {o}.", score=0.9)
    return Fact(subject=s, relation=r, object=o, status=FactStatus.EXTRACTED, confidence=0.9, provenance=provenance)


def test_facts_of_document_match_the_document_id_exactly(loaded: GraphStore) -> None:
    odd = 'doc "quoted" \\ ünï'
    facts = [
        _extracted("/m/memento", "/x/filmed_in", "/m/uk", "doc-1"),
        _extracted("/m/titanic", "/x/filmed_in", "/m/usa", "doc-1"),
        _extracted("/m/memento", "/x/filmed_in", "/m/usa", "doc-10"),  # a longer id that contains "doc-1"
        _extracted("/m/titanic", "/x/filmed_in", "/m/uk", odd),
    ]
    loaded.upsert_facts(facts)
    assert [f.id for f in loaded.facts_of_document("doc-1")] == sorted(f.id for f in facts[:2])
    assert [f.id for f in loaded.facts_of_document(odd)] == [facts[3].id]
    assert loaded.facts_of_document("doc-1")[0].provenance.document_id == "doc-1"
    assert loaded.facts_of_document("tiny") == [] and loaded.facts_of_document("") == []  # dataset facts carry no document
    assert loaded.facts_of_document("x'}) MATCH (n) DETACH DELETE n //") == []


def test_delete_facts_and_entities(loaded: GraphStore) -> None:
    gone = _fact("/m/nolan", "/film/director/film", "/m/memento")
    assert loaded.delete_facts([gone.id, gone.id, "no-such-fact"]) == 1
    with pytest.raises(FactNotFoundError):
        loaded.get_fact(gone.id)
    assert loaded.delete_facts([gone.id]) == 0 and loaded.delete_facts([]) == 0
    assert loaded.stats().facts == len(FACTS) - 1
    # an entity goes with every fact that touches it, and its names leave the lookups
    assert loaded.delete_entities(["/m/dicaprio", "/m/none"]) == 1
    assert loaded.get_entity("/m/dicaprio") is None and loaded.find_entities("Leonardo DiCaprio") == []
    assert loaded.search_entities("leonardo") == []
    stats = loaded.stats()
    assert (stats.entities, stats.facts) == (len(ENTITIES) - 1, len(FACTS) - 4)
    assert {f.object for f in loaded.neighbors(["/m/inception"], statuses=list(FactStatus)).facts} == {"/m/inception"}
    assert loaded.delete_entities(["x'}) MATCH (n) DETACH DELETE n //"]) == 0
    assert loaded.stats().entities == len(ENTITIES) - 1
    # a deleted entity can be written again (re-ingesting a forgotten document)
    loaded.upsert_entities([ENTITIES[3]])
    loaded.upsert_facts([_fact("/m/inception", "/film/film/starring", "/m/dicaprio")])
    assert [e.id for e in loaded.find_entities("Leonardo DiCaprio")] == ["/m/dicaprio"]
    assert loaded.stats().facts == len(FACTS) - 3
