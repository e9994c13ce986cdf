"""``qa-system forget`` and ``qa-system merge`` (``qa_system.maintain.actions``): the library on a real embedded
store holding the tiny KG with the rule extractor of the ingest tests, then the commands. The store
methods they use are in the contract suite (``tests/graph/test_store_contract.py``), on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.cli import main
from qa_system.errors import EntityNotFoundError, InputError
from qa_system.ingest.entity_resolution import MEMO_FILE, MentionMemo, extracted_entity_id
from qa_system.ingest.ingester import Document, read_documents
from qa_system.maintain.actions import forget_document, merge_entities, resolve_merged
from qa_system.maintain.review import ReviewFiles, read_jsonl
from qa_system.types import Entity, Fact, FactStatus, Provenance, fact_id, literal_entity
from retrievers.passages import PassageRetriever, PassageStore
from tests.ingest_support import FIXTURES
from tests.test_ingest import DICAPRIO_HIT, ingester, workspace_of

FILMS = FIXTURES / "films.jsonl"
APOLLO = FIXTURES / "apollo.md"


def audit(ws: Path) -> list[dict]:
    return read_jsonl(ReviewFiles(ws).audit)


def all_facts(store) -> dict[str, tuple]:
    return {f.id: (f.subject, f.relation, f.object, f.status, f.provenance.document_id, f.provenance.sentence)
            for f in store.list_facts(statuses=list(FactStatus), limit=10_000)}  # fmt: skip


# -- forget --------------------------------------------------------------------------------------------
def test_ingest_then_forget_gives_back_the_graph_before_and_reingest_restores_the_same_facts(tiny_store):
    ws = workspace_of(tiny_store)
    before, facts_before = tiny_store.stats(), all_facts(tiny_store)
    ingester(tiny_store).ingest(read_documents([APOLLO]))
    ingested, grown = tiny_store.stats(), all_facts(tiny_store)
    assert ingested.facts == before.facts + 5 and ingested.entities > before.entities
    (doc_id,) = {p.document_id for p in PassageStore(ws)}

    report = forget_document(tiny_store, ws, str(APOLLO), reason="ingested by mistake", reviewer="ann")
    assert report.document_ids == [doc_id] and len(report.facts) == 5 and report.passages == 6
    assert {e.id for e in report.entities} == {extracted_entity_id(n) for n in ("Alan Bean", "Wheeler, Texas", "Apollo 12", "NASA", "Pete Conrad", "Washington, D.C")}
    assert tiny_store.stats() == before and all_facts(tiny_store) == facts_before
    assert len(PassageStore(ws)) == 0 and tiny_store.find_entities("Alan Bean") == []
    (record,) = audit(ws)
    assert (record["action"], record["reviewer"], record["reason"], record["document_ids"]) == ("forget", "ann", "ingested by mistake", [doc_id])
    assert len(record["facts"]) == 5 and len(record["entities"]) == 6 and len(record["passages"]) == 6
    Fact.model_validate(record["facts"][0])  # the log holds what it takes to write each fact back

    again = ingester(tiny_store).ingest(read_documents([APOLLO]))
    assert again.triples_added == 5 and tiny_store.stats() == ingested
    restored = all_facts(tiny_store)
    assert restored == grown  # same ids, ends, relation, status, document and sentence


def test_forget_one_document_keeps_the_others_and_entities_they_still_use(tiny_store):
    ws = workspace_of(tiny_store)
    docs = [Document("a", "Alan Bean was born in Wheeler.", "t"), Document("b", "Pete Conrad was born in Wheeler.", "t")]
    ingester(tiny_store).ingest(docs)
    report = forget_document(tiny_store, ws, "a")
    wheeler = extracted_entity_id("Wheeler")
    assert [f.subject for f in report.facts] == [extracted_entity_id("Alan Bean")]
    assert [e.id for e in report.entities] == [extracted_entity_id("Alan Bean")]  # Wheeler is still used by "b"
    assert tiny_store.get_entity(wheeler) is not None and [p.document_id for p in PassageStore(ws)] == ["b"]
    assert [f.provenance.document_id for f in tiny_store.facts_of_document("b")] == ["b"]


def test_forget_by_base_id_takes_every_part_of_a_long_document(tiny_store):
    ws = workspace_of(tiny_store)
    ingester(tiny_store).ingest([Document("long#1", "Alan Bean was born in Wheeler.", "t"), Document("long#2", "NASA is headquartered in Houston.", "t")])
    report = forget_document(tiny_store, ws, "long")
    assert report.document_ids == ["long#1", "long#2"] and len(report.facts) == 2 and len(PassageStore(ws)) == 0


def test_dry_run_reports_and_writes_nothing(tiny_store):
    ws = workspace_of(tiny_store)
    ingester(tiny_store, DICAPRIO_HIT).ingest(read_documents([FILMS]))
    stats, passages = tiny_store.stats(), list(PassageStore(ws))
    dry = forget_document(tiny_store, ws, "films-1", dry_run=True)
    assert dry.dry_run and len(dry.facts) == 2 and [e.name for e in dry.entities] == ["London"] and dry.passages == 2
    assert tiny_store.stats() == stats and list(PassageStore(ws)) == passages and audit(ws) == []
    real = forget_document(tiny_store, ws, "films-1")
    assert real.counts() == dry.counts() and [f.id for f in real.facts] == [f.id for f in dry.facts]


def test_an_unknown_document_is_an_error_that_changes_nothing(tiny_store):
    ws = workspace_of(tiny_store)
    ingester(tiny_store).ingest(read_documents([FILMS]))
    stats = tiny_store.stats()
    for target in ("no-such-document", "films", ""):
        with pytest.raises(InputError):
            forget_document(tiny_store, ws, target)
    assert tiny_store.stats() == stats and len(PassageStore(ws)) == 5 and audit(ws) == []


def test_forgotten_passages_leave_the_evidence_index(tiny_store):
    ws = workspace_of(tiny_store)
    ingester(tiny_store).ingest(read_documents([FILMS]))
    retriever = PassageRetriever(ws, embedder=lambda texts: np.full((len(texts), 4), 0.5, dtype=np.float32))
    assert len(retriever.refresh()) == 5
    forget_document(tiny_store, ws, "films-2")
    fresh = PassageRetriever(ws, embedder=lambda texts: np.full((len(texts), 4), 0.5, dtype=np.float32)).refresh()
    assert len(fresh) == 3 and {p.document_id for p, _ in fresh.search("Inception", k=10)} == {"films-1", "films-3"}


# -- merge ---------------------------------------------------------------------------------------------
def _with_duplicate(store) -> Entity:
    dup = Entity(id="ext:dup-inception", name="Inception (film)", aliases=("Inception 2010",), type="/film/film")
    store.upsert_entity(dup)
    prov = Provenance(dataset="tiny", split="train")
    store.upsert_facts([
        Fact(subject=dup.id, relation="/film/film/starring", object="/m/dicaprio", provenance=prov),  # Inception has it
        Fact(subject=dup.id, relation="/film/film/genre", object="/m/thriller", status=FactStatus.EXTRACTED, confidence=0.8, provenance=prov),
        Fact(subject="/m/nolan", relation="/film/director/film", object=dup.id, provenance=prov),  # Inception has it
        Fact(subject=dup.id, relation="/x/same_as", object="/m/inception", provenance=prov),  # would be a self-loop
    ])  # fmt: skip
    return dup


def test_merge_moves_facts_adds_names_and_the_old_id_keeps_resolving(tiny_store):
    ws = workspace_of(tiny_store)
    dup = _with_duplicate(tiny_store)
    memo = MentionMemo(ws / MEMO_FILE)
    memo.put_many([("inception (film)", dup.id, None)])
    stats = tiny_store.stats()
    report = merge_entities(tiny_store, ws, "/m/inception", [dup.id], reason="same film", reviewer="ann")
    moved = fact_id("/m/inception", "/film/film/genre", "/m/thriller")
    assert report.created == [moved] and len(report.moved) == 3 and len(report.already_present) == 2
    assert report.dropped_self_loops == [fact_id(dup.id, "/x/same_as", "/m/inception")]
    assert report.aliases_added == ["Inception (film)", "Inception 2010"] and report.mentions_redirected == 1
    view = tiny_store.get_fact(moved)
    assert (view.status, view.confidence, view.provenance.dataset) == (FactStatus.EXTRACTED, 0.8, "tiny")
    assert tiny_store.get_entity(dup.id) is None and [e.id for e in tiny_store.find_entities("inception (FILM)")] == ["/m/inception"]
    after = tiny_store.stats()
    assert (after.entities, after.facts) == (stats.entities - 1, stats.facts - 3)
    assert resolve_merged(ws, dup.id, tiny_store) == "/m/inception" and resolve_merged(ws, "/m/nolan", tiny_store) == "/m/nolan"
    assert memo.get_many(["inception (film)"]) == {"inception (film)": "/m/inception"}
    (record,) = audit(ws)
    assert (record["action"], record["keep"], record["duplicates"], record["reviewer"]) == ("merge", "/m/inception", [dup.id], "ann")
    assert record["entities"][0]["name"] == "Inception (film)" and len(record["facts"]) == 4 and record["kept_aliases_before"] == []


def test_merge_errors_change_nothing(tiny_store):
    ws = workspace_of(tiny_store)
    dup = _with_duplicate(tiny_store)
    value = literal_entity("/m/inception", "released", 2010)
    tiny_store.upsert_entities([value])
    stats = tiny_store.stats()
    cases = [
        (InputError, "/m/inception", ["/m/inception"]),
        (InputError, "/m/inception", [dup.id, "/m/inception"]),
        (InputError, "/m/inception", [value.id]),
        (InputError, value.id, [dup.id]),
        (InputError, "/m/inception", []),
        (EntityNotFoundError, "/m/inception", ["/m/nobody"]),
        (EntityNotFoundError, "/m/nobody", [dup.id]),
    ]
    for error, keep, duplicates in cases:
        with pytest.raises(error):
            merge_entities(tiny_store, ws, keep, duplicates)
    assert tiny_store.stats() == stats and audit(ws) == [] and tiny_store.get_entity(dup.id) is not None


def test_ingest_learns_a_merge_and_chained_merges_resolve_to_the_last_kept(tiny_store):
    ws = workspace_of(tiny_store)
    doc = [Document("a", "Inception stars Leonardo Di Caprio.", "t")]
    ingester(tiny_store).ingest(doc)  # no similarity hit: a new entity for the spelling variant
    variant = extracted_entity_id("Leonardo Di Caprio")
    assert tiny_store.get_entity(variant) is not None
    merge_entities(tiny_store, ws, "/m/dicaprio", [variant])
    again = ingester(tiny_store).ingest(doc + [Document("b", "Titanic stars Leonardo Di Caprio!", "t")])
    assert (again.new_entities, again.triples_added) == (0, 1)  # the variant resolves to /m/dicaprio via the memo
    assert tiny_store.get_fact(fact_id("/m/titanic", "starring", "/m/dicaprio")).provenance.document_id == "b"
    assert tiny_store.get_entity(variant) is None
    # a second merge re-points the first: both old ids resolve to the last entity kept
    tiny_store.upsert_entity(Entity(id="/m/leo", name="Leo"))
    merge_entities(tiny_store, ws, "/m/leo", ["/m/dicaprio"])
    assert resolve_merged(ws, variant, tiny_store) == "/m/leo" and resolve_merged(ws, "/m/dicaprio", tiny_store) == "/m/leo"
    assert {"Leonardo DiCaprio", "Leonardo Di Caprio"} <= set(tiny_store.get_entity("/m/leo").aliases)


# -- the commands --------------------------------------------------------------------------------------
def cli(capsys, ws: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--workspace", str(ws), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_forget_command(capsys, tmp_path: Path):
    from tests.ingest.test_ingest_cli import ingest, stats, tiny_workspace

    ws = tiny_workspace(tmp_path)
    before = stats(ws)
    assert ingest(capsys, ws, str(APOLLO), "--json")[0] == 0
    code, out, _ = cli(capsys, ws, "forget", str(APOLLO), "--dry-run", "--json")
    dry = json.loads(out)
    assert code == 0 and dry["dry_run"] and dry["counts"] == {"documents": 1, "facts": 5, "entities": 6, "passages": 6}
    assert stats(ws) != before
    code, out, _ = cli(capsys, ws, "forget", dry["document_ids"][0], "--reason", "mistake", "--reviewer", "ann")
    assert code == 0 and out.startswith(f"forget {dry['document_ids'][0]}: removed 5 fact(s), 6 entities, 6 passage(s)")
    assert stats(ws) == before
    code, out, err = cli(capsys, ws, "forget", dry["document_ids"][0])
    assert code == 2 and out == "" and err.startswith("error: unknown document")
    assert [r["action"] for r in audit(ws)] == ["forget"]


def test_merge_command_and_neighbors_follow_the_merge(capsys, tmp_path: Path):
    from graph.embedded import EmbeddedStore
    from tests.ingest.test_ingest_cli import tiny_workspace

    ws = tiny_workspace(tmp_path)
    store = EmbeddedStore.open(ws)
    try:
        dup = _with_duplicate(store)
    finally:
        store.close()
    code, out, _ = cli(capsys, ws, "merge", "/m/inception", dup.id, "--reason", "same film", "--json")
    report = json.loads(out)
    assert code == 0 and report["keep"] == "/m/inception" and len(report["created"]) == 1
    code, out, _ = cli(capsys, ws, "neighbors", dup.id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["entity"]["id"] == "/m/inception" and shown["merged_from"] == dup.id
    assert "/m/thriller" in {f["object"]["id"] for f in shown["facts"]}
    code, out, _ = cli(capsys, ws, "neighbors", dup.id)
    assert code == 0 and out.startswith(f"({dup.id} was merged into /m/inception)\nInception (/m/inception)")
    for argv in (["/m/inception", "/m/inception"], ["/m/inception", "/m/nobody"], ["/m/inception", "lit:abc"]):
        code, out, err = cli(capsys, ws, "merge", *argv)
        assert code == 2 and out == "" and err.startswith("error: ")
    assert [r["action"] for r in audit(ws)] == ["merge"]


def test_the_resolver_follows_a_merge_for_a_mention_it_never_saw(tiny_store):
    from tests.test_ingest import resolver

    memo = MentionMemo(workspace_of(tiny_store) / MEMO_FILE)
    memo.redirect([extracted_entity_id("Zorro")], "/m/nolan")  # e.g. its entity was merged, then the alias removed
    found = resolver(tiny_store).resolve("Zorro")
    assert (found.entity_id, found.is_new) == ("/m/nolan", False)
    assert resolver(tiny_store).resolve("Zorra").is_new
