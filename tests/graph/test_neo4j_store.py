"""Neo4j-backend specifics (the behaviour shared with the embedded store is in the contract suite):
connection errors, the read-only path over the driver, bulk upserts in batches, names on the nodes.

Runs against ArcadeDB's Bolt plugin (``tests.graph.bolt_server``) or ``NEO4J_URI`` when set.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from graph.neo4j_store import Neo4jStore
from qa_system.errors import (
    EntityNotFoundError,
    FactNotFoundError,
    GraphUnavailableError,
    QueryError,
    ReadOnlyViolationError,
)
from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind
from tests.graph.bolt_server import BoltServer  # the bolt_server and neo4j_store fixtures come from conftest.py

N_ENTITIES = 20


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def entities() -> list[Entity]:
    out = []
    for i in range(N_ENTITIES):
        out.append(
            Entity(
                id=f"/m/e{i:02d}",
                name=f"Person {i:02d}" if i % 2 else f"City  Of {i:02d}",
                aliases=(f"P{i:02d}", f"Alias Number {i:02d}") if i % 5 == 0 else (),
                type="/people/person" if i % 2 else "/location/city",
                description=f"entity {i}",
            )
        )
    return out


def facts() -> list[Fact]:
    """40 facts: a ring (e_i -> e_i+1) plus a star out of e00 and a few into e10 (e00 is the hub)."""

    dataset = Provenance(source_kind=SourceKind.DATASET, dataset="tiny", split="train")
    out = [Fact(subject=f"/m/e{i:02d}", relation="/r/next", object=f"/m/e{(i + 1) % N_ENTITIES:02d}", provenance=dataset) for i in range(N_ENTITIES)]
    out += [Fact(subject="/m/e00", relation="/r/knows", object=f"/m/e{i:02d}", provenance=dataset) for i in range(2, 16)]
    out += [
        Fact(subject=f"/m/e{i:02d}", relation="/r/likes", object="/m/e10", status=FactStatus.PROPOSED, confidence=0.5,
             provenance=Provenance(source_kind=SourceKind.LLM, model="smollm2", question="who likes e10?"))
        for i in (3, 5, 7, 13, 17, 19)
    ]
    assert len(out) == 40 and len({f.id for f in out}) == 40
    return out


@pytest.fixture()
def loaded(neo4j_store: Neo4jStore) -> Iterator[Neo4jStore]:
    neo4j_store.upsert_entities(entities())
    neo4j_store.upsert_facts(facts())
    yield neo4j_store


# -- connecting ------------------------------------------------------------------------------
def test_unreachable_server_is_one_error_naming_the_uri() -> None:
    uri = f"bolt://127.0.0.1:{_closed_port()}"
    with pytest.raises(GraphUnavailableError) as caught:
        Neo4jStore(uri, "neo4j", "secret", connect_timeout_s=2)
    assert uri in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_host_is_one_error_naming_the_uri() -> None:
    uri = "bolt://no-such-host.invalid:7687"
    with pytest.raises(GraphUnavailableError, match="no-such-host.invalid"):
        Neo4jStore(uri, "neo4j", "secret", connect_timeout_s=2)


def test_from_settings_and_cli_report_the_uri_without_a_traceback(monkeypatch, capsys, tmp_path) -> None:
    from qa_system.config import load_settings

    uri = f"bolt://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("NEO4J_URI", uri)
    monkeypatch.setenv("QA_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("QA_NEO4J_CONNECT_TIMEOUT_S", "2")
    with pytest.raises(GraphUnavailableError, match=uri):
        Neo4jStore.from_settings(load_settings())

    from qa_system import cli

    try:
        code = cli.main(["stats"])
    except SystemExit as e:  # the stats command is not registered in this checkout
        pytest.skip(f"no stats command ({e})")
    err = capsys.readouterr().err
    assert code != 0
    assert f"error: cannot reach the graph database at {uri}" in err
    assert "Traceback" not in err


@pytest.mark.neo4j
def test_wrong_password_is_one_error_naming_the_uri(bolt_server: BoltServer) -> None:
    with pytest.raises(GraphUnavailableError) as caught:
        Neo4jStore(bolt_server.uri, bolt_server.user, bolt_server.password + "-wrong", bolt_server.database)
    assert bolt_server.uri in str(caught.value)


@pytest.mark.neo4j
def test_missing_database_is_unavailable(bolt_server: BoltServer) -> None:
    if bolt_server.database is None:
        pytest.skip("outside server without a named database")
    with pytest.raises(GraphUnavailableError, match="no_such_database_qa"):
        Neo4jStore(bolt_server.uri, bolt_server.user, bolt_server.password, "no_such_database_qa")


# -- writes ----------------------------------------------------------------------------------
@pytest.mark.neo4j
def test_import_is_idempotent_and_reports_progress(neo4j_store: Neo4jStore) -> None:
    calls: list[tuple[int, int]] = []
    first = neo4j_store.upsert_entities(entities(), progress=lambda d, t: calls.append((d, t)))
    assert (first.added, first.merged) == (N_ENTITIES, 0)
    assert calls[-1] == (N_ENTITIES, N_ENTITIES)
    again = neo4j_store.upsert_entities(entities())
    assert (again.added, again.merged) == (0, N_ENTITIES)

    calls.clear()
    added = neo4j_store.upsert_facts(facts(), progress=lambda d, t: calls.append((d, t)))
    assert (added.added, added.merged) == (40, 0)
    assert calls[-1] == (40, 40) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    merged = neo4j_store.upsert_facts(facts() + facts()[:3])  # duplicates in the batch count once
    assert (merged.added, merged.merged) == (0, 40)
    assert neo4j_store.upsert_fact(facts()[0]) is False
    assert neo4j_store.upsert_entity(entities()[0]) is False

    stats = neo4j_store.stats()
    assert (stats.entities, stats.facts, stats.backend) == (N_ENTITIES, 40, "neo4j")
    assert stats.facts_by_status == {"verified": 34, "proposed": 6}
    assert stats.facts_by_relation == {"/r/next": 20, "/r/knows": 14, "/r/likes": 6}
    assert stats.facts_by_split == {"train": 34, "": 6}
    assert stats.entities_by_type == {"/people/person": 10, "/location/city": 10}


@pytest.mark.neo4j
def test_changed_entity_is_updated_in_place(loaded: Neo4jStore) -> None:
    renamed = entities()[3].model_copy(update={"name": "Renamed Person", "aliases": ("Nick",)})
    assert loaded.upsert_entity(renamed) is False
    assert loaded.get_entity(renamed.id) == renamed
    assert [e.id for e in loaded.find_entities("nick")] == [renamed.id]
    assert loaded.find_entities("Person 03") == []  # the old name no longer matches
    assert loaded.stats().entities == N_ENTITIES


@pytest.mark.neo4j
def test_fact_with_a_missing_end_writes_nothing(loaded: Neo4jStore) -> None:
    orphan = Fact(subject="/m/e01", relation="/r/knows", object="/m/nobody")
    fine = Fact(subject="/m/e01", relation="/r/knows", object="/m/e02")
    with pytest.raises(EntityNotFoundError, match="/m/nobody"):
        loaded.upsert_facts([fine, orphan])
    assert loaded.stats().facts == 40


@pytest.mark.neo4j
def test_provenance_round_trips(loaded: Neo4jStore) -> None:
    dataset_fact, llm_fact = facts()[0], facts()[-1]
    view = loaded.get_fact(dataset_fact.id)
    assert (view.provenance.source_kind, view.provenance.dataset, view.provenance.split) == (SourceKind.DATASET, "tiny", "train")
    assert loaded.run_read_query("MATCH ()-[f:Fact]->() WHERE f.id = $id RETURN f.provenance AS p", {"id": dataset_fact.id}) == [{"p": ""}]
    view = loaded.get_fact(llm_fact.id)
    assert (view.status, view.confidence, view.provenance.model) == (FactStatus.PROPOSED, 0.5, "smollm2")
    assert (view.subject_name, view.object_name) == (loaded.get_entity(llm_fact.subject).name, "City  Of 10")


@pytest.mark.neo4j
def test_set_fact_status(loaded: Neo4jStore) -> None:
    fact = facts()[-1]
    view = loaded.set_fact_status(fact.id, FactStatus.REJECTED, reviewer="ana", reason="wrong")
    assert view.status is FactStatus.REJECTED
    assert (view.provenance.reviewer, view.provenance.review_reason, view.provenance.model) == ("ana", "wrong", "smollm2")
    assert loaded.get_fact(fact.id).status is FactStatus.REJECTED
    assert loaded.stats().facts_by_status == {"verified": 34, "proposed": 5, "rejected": 1}
    with pytest.raises(FactNotFoundError):
        loaded.set_fact_status("no-such-fact", FactStatus.VERIFIED)


# -- reads -----------------------------------------------------------------------------------
@pytest.mark.neo4j
def test_neighbours_one_and_two_hops_with_caps(loaded: Neo4jStore) -> None:
    one = loaded.neighbors(["/m/e00"])  # ring out and in, the 14-fact star
    assert len(one.facts) == 16 and not one.truncated
    assert {f.hop for f in one.facts} == {1}
    assert set(one.entities) == {f"/m/e{i:02d}" for i in range(16)} | {"/m/e19"}

    capped = loaded.neighbors(["/m/e00"], limit_per_entity=5, seed=1)
    assert len(capped.facts) == 5 and capped.truncated
    assert [f.id for f in capped.facts] == [f.id for f in loaded.neighbors(["/m/e00"], limit_per_entity=5, seed=1).facts]

    two = loaded.neighbors(["/m/e00"], hops=2)
    assert {f.hop for f in two.facts} == {1, 2}
    assert len(two.facts) == 38  # all but e16 -> e17 and e17 -> e18 (e17's only link to e10 is its like)
    two_capped = loaded.neighbors(["/m/e00"], hops=2, limit_per_entity=2)
    assert two_capped.truncated and len(two_capped.facts) <= 2 + 2 * 2

    out_only = loaded.neighbors(["/m/e10"], direction="out")
    assert [(f.subject, f.object) for f in out_only.facts] == [("/m/e10", "/m/e11")]
    into = loaded.neighbors(["/m/e10"], direction="in", statuses=[FactStatus.VERIFIED])
    assert {f.subject for f in into.facts} == {"/m/e09", "/m/e00"}
    likes = loaded.neighbors(["/m/e10"], relations=["/r/likes"])
    assert len(likes.facts) == 6 and all(f.status is FactStatus.PROPOSED for f in likes.facts)
    assert loaded.neighbors(["/m/nobody"]).facts == []


@pytest.mark.neo4j
def test_capped_hub_reads_a_window_and_falls_back_without_ranks(loaded: Neo4jStore) -> None:
    # e00 has 16 facts: over 3x a cap of 5, so it is read through a random-rank window
    windowed = loaded.neighbors(["/m/e00"], limit_per_entity=5, seed=3)
    assert len(windowed.facts) == 5 and windowed.truncated
    loaded._write("MATCH ()-[f:Fact]->() REMOVE f.rnd")  # facts written without ranks: read them all
    fallback = loaded.neighbors(["/m/e00"], limit_per_entity=5, seed=3)
    assert len(fallback.facts) == 5 and fallback.truncated
    assert {f.id for f in fallback.facts} <= {f.id for f in loaded.neighbors(["/m/e00"]).facts}


@pytest.mark.neo4j
def test_find_and_search_by_name_and_alias(loaded: Neo4jStore) -> None:
    assert [e.id for e in loaded.find_entities("person 03")] == ["/m/e03"]
    assert [e.id for e in loaded.find_entities("  CITY of   04 ")] == ["/m/e04"]  # case and spaces
    assert [e.id for e in loaded.find_entities("alias number 05")] == ["/m/e05"]
    assert loaded.find_entities("Person 0") == [] and loaded.find_entities("   ") == []

    prefix = [e.id for e in loaded.search_entities("person 1", limit=20)]
    assert prefix == [f"/m/e{i}" for i in (11, 13, 15, 17, 19)]
    assert [e.id for e in loaded.search_entities("person", limit=3)] == ["/m/e01", "/m/e03", "/m/e05"]
    assert {e.id for e in loaded.search_entities("p1")} == {"/m/e10", "/m/e15"}  # alias prefix
    assert {e.id for e in loaded.search_entities("number 1", limit=5)} == {"/m/e10", "/m/e15"}  # token fallback
    assert loaded.search_entities("zzz") == []


@pytest.mark.neo4j
def test_list_facts_and_export_triples(loaded: Neo4jStore) -> None:
    triples = loaded.export_triples()
    assert len(triples) == 34 and all(split == "train" for *_, split in triples)
    assert ("/m/e00", "/r/next", "/m/e01", "train") in triples
    assert len(loaded.export_triples([FactStatus.PROPOSED])) == 6
    page = loaded.list_facts(limit=10)
    assert len(page) == 10
    rest = loaded.list_facts(limit=100, offset=10)
    assert len(rest) == 30 and not {f.id for f in page} & {f.id for f in rest}
    assert {f.relation for f in loaded.list_facts(relation="/r/likes")} == {"/r/likes"}


# -- the read-only path ----------------------------------------------------------------------
WRITES = [
    "CREATE (n:Entity {id: 'x'})",
    "MATCH (e:Entity) WITH e LIMIT 1 CREATE (e)-[:Fact {id: 'x'}]->(e)",
    "MERGE (n:Entity {id: 'x'}) RETURN n",
    "MATCH (e:Entity) SET e.name = 'hacked' RETURN e",
    "MATCH (e:Entity) DETACH DELETE e",
    "MATCH (e:Entity) REMOVE e.name RETURN e",
    "CALL db.createLabel('Hacked')",
    "CALL apoc.create.node(['X'], {}) YIELD node RETURN node",
    "CALL { CREATE (n:Entity {id: 'x'}) } RETURN 1",
    "MATCH (e) RETURN e; CREATE (n:Entity {id: 'x'})",
    "MATCH (e) RETURN e /* ; */ ; MATCH (n) DETACH DELETE n",
    "/* comment */ CREATE (n:Entity {id: 'x'})",
    "match (e) foreach (x in [1] | create (:Entity {id: 'x'}))",
    "LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line",
]


@pytest.mark.neo4j
@pytest.mark.parametrize("query", WRITES)
def test_read_only_path_refuses_writes(loaded: Neo4jStore, query: str) -> None:
    with pytest.raises(ReadOnlyViolationError):
        loaded.run_read_query(query)
    assert loaded.stats().entities == N_ENTITIES and loaded.get_entity("x") is None


@pytest.mark.neo4j
def test_write_past_the_statement_check_is_not_kept(loaded: Neo4jStore) -> None:
    """The second and third locks: Neo4j refuses writes in a READ transaction; servers that do not
    (ArcadeDB) see the transaction rolled back."""

    for statement in ("CREATE (n:Entity {id: 'sneaky'}) RETURN n.id AS id", "MATCH (e:Entity) SET e.name = 'hacked' RETURN count(e) AS n"):
        try:
            loaded._run_in_read_transaction(statement, {}, 10)
        except ReadOnlyViolationError:
            pass
    assert loaded.get_entity("sneaky") is None
    assert "hacked" not in {e.name for e in loaded.search_entities("hacked")}
    assert loaded.get_entity("/m/e01").name == "Person 01"


def test_database_refusal_maps_to_read_only_violation(monkeypatch) -> None:
    """What Neo4j answers a write in a READ transaction becomes ``ReadOnlyViolationError``."""

    from neo4j.exceptions import Neo4jError

    refusal = Neo4jError._hydrate_neo4j(code="Neo.ClientError.Statement.AccessMode", message="Writing in read access mode not allowed.")
    syntax = Neo4jError._hydrate_neo4j(code="Neo.ClientError.Statement.SyntaxError", message="Invalid input")

    class Tx:
        def __init__(self, error):
            self.error = error

        def run(self, *_a, **_k):
            raise self.error

        def rollback(self):
            pass

    class Session:
        def __init__(self, error):
            self.error = error

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def begin_transaction(self, **_config):
            return Tx(self.error)

    store = Neo4jStore.__new__(Neo4jStore)
    store.uri = "bolt://fake:7687"
    for error, expected in ((refusal, ReadOnlyViolationError), (syntax, QueryError)):
        monkeypatch.setattr(store, "_session", lambda read=False, e=error: Session(e), raising=False)
        with pytest.raises(expected):
            store.run_read_query("MATCH (e) RETURN e")


def test_schema_refusal_is_skipped_on_arcadedb_only(monkeypatch, caplog) -> None:
    def refuse(statement, params=None):
        raise QueryError(f"graph query failed: unsupported: {statement}")

    store = Neo4jStore.__new__(Neo4jStore)
    monkeypatch.setattr(store, "_write", refuse, raising=False)
    store._agent = "Neo4j/5.26.0 compatible (ArcadeDB 26.10.2)"
    with caplog.at_level("WARNING", logger="graph.neo4j_store"):
        store._ensure_schema()
    assert "ArcadeDB refused a schema statement" in caplog.text
    store._agent = "Neo4j/5.26.0"
    with pytest.raises(QueryError):
        store._ensure_schema()


@pytest.mark.neo4j
def test_read_query_returns_plain_values(loaded: Neo4jStore) -> None:
    assert loaded.run_read_query("RETURN 'CREATE (n) SET n.x = 1; DELETE n' AS s") == [{"s": "CREATE (n) SET n.x = 1; DELETE n"}]
    assert loaded.run_read_query("MATCH (e:Entity) WHERE e.name = $name RETURN e.id AS id", {"name": "Person 03"}) == [{"id": "/m/e03"}]
    rows = loaded.run_read_query("MATCH p = (s:Entity)-[f:Fact]->(o:Entity) RETURN s, f, p, o.name AS name", limit=5)
    assert len(rows) == 5
    json.dumps(rows)  # plain JSON values only: no driver objects
    assert rows[0]["s"]["_label"] == "Entity" and "id" in rows[0]["s"]
    assert rows[0]["f"]["_label"] == "Fact" and rows[0]["f"]["rel_type"].startswith("/r/")
    assert len(rows[0]["p"]["_nodes"]) == 2
    with pytest.raises(QueryError):
        loaded.run_read_query("MATCH (e:Entity) RETURN e.id LIMIT")


@pytest.mark.neo4j
def test_answer_texts_are_read_in_one_query_over_bolt(loaded: Neo4jStore) -> None:
    from retrievers.answer_text import entity_text, store_texts

    entity = loaded.get_entity("/m/e03")
    assert store_texts(loaded)(["/m/e03", "/m/not-in-the-graph"]) == {"/m/e03": entity_text(entity.name, entity.description)}


@pytest.mark.neo4j
def test_same_answers_as_the_embedded_store(loaded: Neo4jStore, tmp_path) -> None:
    from graph.embedded import EmbeddedStore

    embedded = EmbeddedStore.open(tmp_path / "ws")
    try:
        embedded.upsert_entities(entities())
        embedded.upsert_facts(facts())
        assert loaded.stats().model_dump(exclude={"backend"}) == embedded.stats().model_dump(exclude={"backend"})
        assert sorted(loaded.export_triples()) == sorted(embedded.export_triples())
        # Capped expansions sample (each store may pick other facts, so the second hop differs too):
        # the same number at hop 1, all drawn from the uncapped neighbourhood.
        everything = {f.id for f in embedded.neighbors(["/m/e00"], hops=2).facts}
        ours, theirs = (store.neighbors(["/m/e00"], hops=2, limit_per_entity=3, seed=7) for store in (loaded, embedded))
        assert ours.truncated and theirs.truncated
        assert sum(f.hop == 1 for f in ours.facts) == sum(f.hop == 1 for f in theirs.facts) == 3
        assert {f.id for f in ours.facts} <= everything
        for seeds, kwargs in (
            (["/m/e00"], {}),
            (["/m/e10", "/m/e03"], {"hops": 2, "direction": "in"}),
            (["/m/e05"], {"hops": 3, "relations": ["/r/next", "/r/likes"], "statuses": [FactStatus.PROPOSED, FactStatus.VERIFIED]}),
        ):
            ours, theirs = loaded.neighbors(seeds, **kwargs), embedded.neighbors(seeds, **kwargs)
            assert sorted((f.id, f.hop) for f in ours.facts) == sorted((f.id, f.hop) for f in theirs.facts)
            assert (set(ours.entities), ours.truncated) == (set(theirs.entities), theirs.truncated)
        for name in ("person 03", "P10", "alias number 15", "nobody"):
            assert loaded.find_entities(name) == embedded.find_entities(name)
        for prefix in ("person", "city of 1", "p1", "alias"):
            assert loaded.search_entities(prefix, limit=50) == embedded.search_entities(prefix, limit=50)
        for fact in facts()[::7]:
            assert loaded.get_fact(fact.id).model_dump(exclude={"provenance"}) == embedded.get_fact(fact.id).model_dump(exclude={"provenance"})
            assert loaded.get_fact(fact.id).provenance.model_dump(exclude={"created_at"}) == embedded.get_fact(fact.id).provenance.model_dump(exclude={"created_at"})
    finally:
        embedded.close()


@pytest.mark.slow
@pytest.mark.neo4j
def test_full_demo_graph_over_bolt(neo4j_store: Neo4jStore) -> None:
    """The whole FB15k-237 demo (14,541 entities, 310,116 facts): about a minute over Bolt."""

    import time

    from graph.importers import import_kg

    started = time.monotonic()
    summary = import_kg(neo4j_store, "demo")
    took = time.monotonic() - started
    assert (summary.entities_added, summary.facts_added) == (14_541, 310_116)
    assert took < 300, f"demo import took {took:.0f} s"
    again = import_kg(neo4j_store, "demo")
    assert (again.entities_added, again.facts_added, again.facts_merged) == (0, 0, 310_116)
    usa = neo4j_store.find_entities("United States of America")[0]
    assert usa.id == "/m/09c7w0"
    capped = neo4j_store.neighbors([usa.id], hops=2, limit_per_entity=50)
    assert capped.truncated and 50 <= len(capped.facts) <= 50 + 50 * 50
    assert len(neo4j_store.neighbors([usa.id]).facts) > 5_000
    neo4j_store.clear()
