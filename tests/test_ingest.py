"""Entity resolution and the Ingester on a real embedded store (the tiny KG) with a rule extractor."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_system.errors import EntityNotFoundError, IngestError, InputError
from qa_system.ingest.entity_resolution import (
    EntityResolver,
    clean_mention,
    extracted_entity_id,
)
from qa_system.ingest.ingester import Document, Ingester, iter_documents, read_documents
from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind, fact_id
from retrievers.passages import PassageStore
from tests.ingest_support import FIXTURES, Hit, RuleExtractor, ScriptedNameIndex

FILMS = FIXTURES / "films.jsonl"
APOLLO = FIXTURES / "apollo.md"


def workspace_of(store) -> Path:
    return Path(store.db_path).parent.parent


def resolver(store, hits: dict[str, list[Hit]] | None = None, **kwargs) -> EntityResolver:
    return EntityResolver(store, workspace=workspace_of(store), name_index=ScriptedNameIndex(hits or {}), **kwargs)


def ingester(store, hits: dict[str, list[Hit]] | None = None, **kwargs) -> Ingester:
    return Ingester(store, RuleExtractor(), workspace=workspace_of(store), resolver=resolver(store, hits), **kwargs)


# The one similarity match the film texts need ("Leonardo Di Caprio" is no name or alias in the tiny KG).
DICAPRIO_HIT = {"Leonardo Di Caprio": [Hit("/m/dicaprio", "Leonardo DiCaprio", 0.93)]}


# -- resolution -----------------------------------------------------------------------------------------
def test_exact_name_alias_and_leading_article(tiny_store):
    r = resolver(tiny_store).resolve_many(["Christopher Nolan", "chris  nolan", "the United States", "“Inception”,"])
    assert {k: (v.entity_id, v.how, v.is_new) for k, v in r.items()} == {
        "Christopher Nolan": ("/m/nolan", "name", False),
        "chris nolan": ("/m/nolan", "name", False),  # alias, case and spaces ignored
        "the United States": ("/m/usa", "name", False),  # the same article rule as the LLM fallback
        "Inception": ("/m/inception", "name", False),  # quotes and trailing comma trimmed
    }
    assert r["chris nolan"].name == "Christopher Nolan"


def test_similarity_match_needs_the_threshold_and_equal_numbers(tiny_store):
    hits = {
        "Leonardo Di Caprio": [Hit("/m/dicaprio", "Leonardo DiCaprio", 0.93)],
        "Chris Nolan's films": [Hit("/m/nolan", "Christopher Nolan", 0.80)],  # below 0.88
        "Titanic 2": [Hit("/m/titanic", "Titanic", 0.95)],  # the number differs
    }
    r = resolver(tiny_store, hits).resolve_many(hits)
    assert (r["Leonardo Di Caprio"].entity_id, r["Leonardo Di Caprio"].how, r["Leonardo Di Caprio"].similarity) == ("/m/dicaprio", "embedding", 0.93)
    assert r["Chris Nolan's films"].is_new and r["Titanic 2"].is_new
    assert r["Titanic 2"].entity_id == extracted_entity_id("titanic  2")


@pytest.mark.parametrize(
    ("mention", "name", "same"),
    [  # cosine >= 0.88 for every pair (MiniLM); the lexical check decides. From WebNLG test texts.
        ("David Cameron", "James Cameron", False),
        ("Serie B", "Serie A", False),
        ("Puerto", "Puerto Rico", False),
        ("Antwerp International", "Antwerp", False),
        ("College of William", "Williams College", False),
        ("United States Air Force", "United States Air Force Academy", False),
        ("AEK Athens", "A.E.K. Athens F.C.", True),
        ("Asian Americans", "Asian American", True),
        ("Alan L. Bean", "Alan Bean", True),
        ("José Mourinho", "Jose Mourinho", True),
    ],
)
def test_a_similarity_match_must_also_share_the_content_words(tiny_store, mention: str, name: str, same: bool):
    tiny_store.upsert_entity(Entity(id="/m/candidate", name=name))
    index = ScriptedNameIndex({mention: [Hit("/m/candidate", name, 0.95)]})
    r = EntityResolver(tiny_store, name_index=index).resolve(mention)
    assert (r.entity_id == "/m/candidate") is same and r.is_new is not same
    assert (index.queries == [mention]) is same  # no lexically compatible name: not even embedded


def test_tokenised_punctuation_is_normalised_before_exact_lookup(tiny_store):
    tiny_store.upsert_entity(Entity(id="/m/abilene", name="Abilene", aliases=("Abilene, Texas",)))
    r = resolver(tiny_store).resolve("Abilene , Texas")  # WebNLG's tokenised text
    assert (r.entity_id, r.how) == ("/m/abilene", "name")


def test_mentions_without_letters_are_never_matched_by_similarity(tiny_store):
    index = ScriptedNameIndex({"1997": [Hit("/m/titanic", "Titanic", 0.99)]})
    r = EntityResolver(tiny_store, name_index=index).resolve_many(["1997", ""])
    assert r["1997"].is_new and index.queries == [] and list(r) == ["1997"]


def test_new_entity_id_is_stable_across_resolvers_and_runs(tiny_store):
    first = resolver(tiny_store).resolve("Alan  Bean")
    second = resolver(tiny_store).resolve("alan bean")
    assert first.is_new and first.entity_id == second.entity_id == extracted_entity_id("Alan Bean")
    assert first.entity_id.startswith("ext:") and first.name == "Alan Bean"
    tiny_store.upsert_entity(Entity(id=first.entity_id, name=first.name))
    after = resolver(tiny_store).resolve("Alan Bean")
    assert (after.entity_id, after.is_new, after.how) == (first.entity_id, False, "name")


def test_a_remembered_similarity_match_wins_over_a_later_exact_name(tiny_store):
    first = resolver(tiny_store, DICAPRIO_HIT)
    decided = first.resolve_many(["Leonardo Di Caprio"])
    first.remember(decided.items())
    first.close()
    # The graph grows: an entity now carries the mention as its exact name.
    tiny_store.upsert_entity(Entity(id="/m/other", name="Leonardo Di Caprio"))
    again = resolver(tiny_store).resolve("Leonardo Di Caprio")  # no index hits this time
    assert (again.entity_id, again.how) == ("/m/dicaprio", "memo")


def test_resolver_rejects_a_bad_threshold_and_an_empty_mention(tiny_store):
    with pytest.raises(InputError, match="threshold must be in"):
        EntityResolver(tiny_store, threshold=1.5)
    with pytest.raises(InputError, match="empty mention"):
        resolver(tiny_store).resolve(" ,; ")
    assert clean_mention(' "Apollo 12", ') == "Apollo 12"


def test_real_name_index_matches_a_spelling_variant(tiny_store, tmp_path: Path):
    """The real MiniLM + FAISS index over the tiny graph (loads the model: a few seconds)."""

    r = EntityResolver(tiny_store, index_dir=tmp_path / "idx").resolve_many(["Leonardo Di Caprio", "James Camerons", "Halifax"])
    assert (r["Leonardo Di Caprio"].entity_id, r["Leonardo Di Caprio"].how) == ("/m/dicaprio", "embedding")
    assert r["Leonardo Di Caprio"].similarity >= 0.88
    assert r["James Camerons"].entity_id == "/m/cameron"
    assert r["Halifax"].is_new  # nothing like it in the graph


# -- preview --------------------------------------------------------------------------------------------
def test_preview_decides_each_triple_and_writes_nothing(tiny_store):
    before = tiny_store.stats()
    ws = workspace_of(tiny_store)
    preview = ingester(tiny_store, DICAPRIO_HIT).preview(read_documents([FILMS]))
    by_relation = {t.relation: t for t in preview.triples}
    assert len(preview.sentences) == 5 and len(preview.triples) == 5
    assert preview.extractor == "rules" and preview.checkpoint == "rules-v1" and preview.vocabulary == "webnlg"
    born = by_relation["birthPlace"]
    assert (born.subject_id, born.subject_new, born.object_name, born.object_new) == ("/m/nolan", False, "London", True)
    assert born.object_id == extracted_entity_id("London") and born.action == "add" and "new entity" in born.reason
    director = by_relation["director"]  # "Nolan directed Inception": alias "Nolan"
    assert (director.subject_id, director.object_id, director.action) == ("/m/inception", "/m/nolan", "add")
    starring = by_relation["starring"]
    assert (starring.object_id, starring.object_text) == ("/m/dicaprio", "Leonardo Di Caprio")
    assert starring.fact_id == fact_id("/m/inception", "starring", "/m/dicaprio")
    low = by_relation["location"]
    assert low.action == "skip" and low.reason == "score 0.200 < min-score 0.50"
    assert born.sentence.text == "Christopher Nolan was born in London." and born.sentence.document_id == "films-1"
    # no side effects: graph, passages, memo
    assert tiny_store.stats() == before
    assert not (ws / "passages").exists() and not (ws / "ingest").exists()


def test_preview_marks_repeats_and_existing_facts_as_merge(tiny_store):
    tiny_store.upsert_facts([Fact(subject="/m/inception", relation="starring", object="/m/dicaprio")])
    docs = [Document("a", "Inception stars Leonardo DiCaprio.", "t"), Document("b", "Christopher Nolan was born in London. Chris Nolan was born in London.", "t")]
    preview = ingester(tiny_store).preview(docs)
    assert [(t.action, t.reason) for t in preview.triples] == [
        ("merge", "already in the graph (verified); left unchanged"),
        ("add", "new fact, new entity"),
        ("merge", "same triple as in b at 0"),
    ]
    assert preview.counts() == {"add": 1, "merge": 2, "skip": 0}


def test_self_loops_are_skipped(tiny_store):
    (t,) = ingester(tiny_store).preview([Document("a", "Nolan directed Christopher Nolan.", "t")]).triples
    assert t.action == "skip" and "same entity (/m/nolan)" in t.reason


def test_preview_reports_progress_over_sentences(tiny_store):
    calls: list[tuple[int, int]] = []
    docs = [Document(f"d{i}", "Alan Bean was born in Wheeler. Pete Conrad was born in Philadelphia.", "t") for i in range(5)]
    ing = ingester(tiny_store, batch_size=1)  # extractor called with 8 sentences at a time
    ing.preview(docs, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(8, 10), (10, 10)]
    assert ing.extractor.calls == [8, 2]


# -- commit ---------------------------------------------------------------------------------------------
def test_commit_writes_entities_facts_with_provenance_and_passages(tiny_store):
    ws = workspace_of(tiny_store)
    before = tiny_store.stats()
    summary = ingester(tiny_store, DICAPRIO_HIT).ingest(read_documents([FILMS]))
    assert summary.as_dict() == {
        "documents": 3, "sentences": 5, "triples_added": 4, "triples_merged": 0, "triples_skipped": 1,
        "new_entities": 1, "passages_added": 5,
    }  # fmt: skip
    after = tiny_store.stats()
    assert after.facts == before.facts + 4 and after.entities == before.entities + 1
    assert after.facts_by_status["extracted"] == 4
    view = tiny_store.get_fact(fact_id("/m/nolan", "birthPlace", extracted_entity_id("London")))
    p = view.provenance
    assert view.status == FactStatus.EXTRACTED and view.confidence == pytest.approx(0.93) and view.object_name == "London"
    assert (p.source_kind, p.document_id, p.sentence, p.sentence_start, p.sentence_end) == (
        SourceKind.EXTRACTOR, "films-1", "Christopher Nolan was born in London.", 0, 37)
    assert (p.model, p.checkpoint, p.score, p.vocabulary) == ("rules", "rules-v1", pytest.approx(0.93), "webnlg")
    london = tiny_store.get_entity(extracted_entity_id("London"))
    assert london is not None and london.name == "London" and "rules extractor" in london.description
    passages = list(PassageStore(ws))
    assert [p.text for p in passages][:2] == ["Christopher Nolan was born in London.", "Nolan directed Inception."]
    second = passages[1]
    assert (second.document_id, second.start, second.end, second.kind) == ("films-1", 38, 63, "sentence")
    # the similarity decision is remembered for the next run
    assert resolver(tiny_store).resolve("Leonardo Di Caprio").how == "memo"


def test_ingesting_twice_adds_nothing(tiny_store):
    docs = read_documents([FILMS, APOLLO])
    first = ingester(tiny_store, DICAPRIO_HIT).ingest(docs)
    stats = tiny_store.stats()
    second = ingester(tiny_store).ingest(read_documents([FILMS, APOLLO]))  # fresh resolver, no index hits
    assert first.triples_added == 9 and first.new_entities > 0 and first.passages_added == 11
    assert (second.triples_added, second.new_entities, second.passages_added) == (0, 0, 0)
    assert second.triples_merged == first.triples_added + first.triples_merged and second.triples_skipped == first.triples_skipped
    assert tiny_store.stats() == stats
    assert len(PassageStore(workspace_of(tiny_store))) == 11


def test_a_verified_fact_is_never_downgraded(tiny_store):
    verified = Fact(subject="/m/inception", relation="starring", object="/m/dicaprio", status=FactStatus.VERIFIED,
                    provenance=Provenance(dataset="curated"))  # fmt: skip
    tiny_store.upsert_facts([verified])
    summary = ingester(tiny_store).ingest([Document("a", "Inception stars Leonardo DiCaprio.", "t")])
    assert (summary.triples_added, summary.triples_merged) == (0, 1)
    view = tiny_store.get_fact(verified.id)
    assert view.status == FactStatus.VERIFIED and view.provenance.dataset == "curated" and view.provenance.sentence == ""


def test_rejected_facts_are_not_revived(tiny_store):
    ingester(tiny_store).ingest([Document("a", "Inception stars Leonardo DiCaprio.", "t")])
    fid = fact_id("/m/inception", "starring", "/m/dicaprio")
    tiny_store.set_fact_status(fid, FactStatus.REJECTED, reviewer="m", reason="wrong")
    ingester(tiny_store).ingest([Document("b", "Inception stars Leonardo DiCaprio!", "t")])
    assert tiny_store.get_fact(fid).status == FactStatus.REJECTED


class FailingStore:
    """The real store, except that writing facts fails for documents named in ``fail_for``."""

    def __init__(self, store, fail_for: set[str]) -> None:
        self._store, self.fail_for = store, fail_for

    def __getattr__(self, name):
        return getattr(self._store, name)

    def upsert_facts(self, facts, **kwargs):
        facts = list(facts)
        if any(f.provenance.document_id in self.fail_for for f in facts):
            raise EntityNotFoundError("simulated failure")
        return self._store.upsert_facts(facts, **kwargs)


def test_a_failed_write_names_the_document_and_a_rerun_completes_it(tiny_store):
    docs = [Document(f"doc{i}", f"Person{i} was born in Town{i}.", "t") for i in range(4)]
    failing = FailingStore(tiny_store, {"doc2"})
    ing = Ingester(failing, RuleExtractor(), workspace=workspace_of(tiny_store), resolver=resolver(tiny_store))
    with pytest.raises(IngestError) as err:
        ing.ingest(docs)
    assert "writing document 'doc2'" in str(err.value) and "re-run" in str(err.value)
    assert err.value.summary.triples_added == 2  # doc0 and doc1 were written before the failure
    ws = workspace_of(tiny_store)
    written = {p.document_id for p in PassageStore(ws)}
    assert written == {"doc0", "doc1"}  # nothing of doc2 or doc3 besides (possibly) its entities
    rerun = ingester(tiny_store).ingest(docs)
    assert (rerun.triples_added, rerun.triples_merged, rerun.passages_added) == (2, 2, 2)
    assert tiny_store.stats().facts_by_status["extracted"] == 4
    assert ingester(tiny_store).ingest(docs).triples_added == 0


def test_ingest_streams_lazy_documents_in_chunks(tiny_store, monkeypatch: pytest.MonkeyPatch):
    import qa_system.ingest.ingester as I

    monkeypatch.setattr(I, "CHUNK_SENTENCES", 3)
    calls: list[tuple[int, int]] = []
    summary = ingester(tiny_store).ingest(iter_documents([FILMS, APOLLO]), progress=lambda d, t: calls.append((d, t)))
    assert summary.documents == 4 and summary.sentences == 11 and summary.passages_added == 11
    assert calls[-1] == (11, 11) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_two_different_documents_with_one_id_are_refused(tiny_store):
    with pytest.raises(InputError, match="two different documents have the id 'x'"):
        ingester(tiny_store).preview([Document("x", "A was born in B.", "1"), Document("x", "C was born in D.", "2")])
    same = ingester(tiny_store).preview([Document("x", "A was born in B.", "1"), Document("x", "A was born in B.", "1")])
    assert len(same.documents) == 1


def test_ingester_rejects_bad_settings(tiny_store):
    with pytest.raises(InputError, match="min_score"):
        Ingester(tiny_store, RuleExtractor(), workspace=workspace_of(tiny_store), min_score=2)
    with pytest.raises(InputError, match="batch_size"):
        Ingester(tiny_store, RuleExtractor(), workspace=workspace_of(tiny_store), batch_size=0)


KILLED_INGEST = """
import sys, time
from pathlib import Path
import qa_system.ingest.ingester as I
from graph.embedded import EmbeddedStore
from qa_system.ingest.entity_resolution import EntityResolver
from tests.ingest_support import RuleExtractor

class Slow(RuleExtractor):
    def extract(self, texts, *, batch_size=16):
        time.sleep(0.15)
        return super().extract(texts, batch_size=batch_size)

I.CHUNK_SENTENCES = 1  # one commit per document
workspace = Path(sys.argv[1])
store = EmbeddedStore.open(workspace)
docs = [I.Document(f"doc{i}", f"Person{i} was born in Town{i}.", "t") for i in range(int(sys.argv[2]))]
I.Ingester(store, Slow(), workspace=workspace, resolver=EntityResolver(store, workspace=workspace, use_embeddings=False)).ingest(docs)
print("finished")
"""


def test_a_process_killed_mid_ingest_leaves_a_consistent_graph_and_a_rerun_completes_it(tmp_path: Path):
    """A real SIGKILL of an ingesting process (no cleanup runs), then a re-run in this process."""

    import gc
    import signal
    import subprocess
    import sys
    import time

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg
    from tests.conftest import write_tiny_kg

    ws, n = tmp_path / "ws", 12
    store = EmbeddedStore.open(ws)
    import_kg(store, write_tiny_kg(tmp_path / "kg"))
    base = store.stats().facts
    store.close()
    del store
    gc.collect()  # EmbeddedStore.close() leaves the file lock to the garbage collector (thread-local connections)
    script = tmp_path / "ingest_child.py"
    script.write_text(KILLED_INGEST, encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, str(script), str(ws), str(n)], cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    passages = ws / "passages" / "passages.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if passages.exists() and passages.read_text(encoding="utf-8").count("\n") >= 3:
            break
        time.sleep(0.05)
    assert child.poll() is None, f"the child ended before it was killed: {child.communicate()}"
    time.sleep(0.08)  # most likely mid-way through the next document's writes
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    store = EmbeddedStore.open(ws)  # opens: the lock died with the process, the graph is readable
    try:
        partial = store.stats().facts - base
        written = {p.document_id for p in PassageStore(ws)}
        assert 3 <= len(written) < n and len(written) <= partial <= len(written) + 1
        rerun = ingester(store).ingest([Document(f"doc{i}", f"Person{i} was born in Town{i}.", "t") for i in range(n)])
        assert rerun.triples_added == n - partial and rerun.triples_merged == partial
        assert store.stats().facts == base + n
        assert len(PassageStore(ws)) == n and sum(1 for _ in PassageStore(ws)) == n  # no duplicate passage lines
        assert ingester(store).ingest([Document("doc0", "Person0 was born in Town0.", "t")]).triples_added == 0
    finally:
        store.close()


def test_reingest_stays_idempotent_after_an_entity_with_the_same_name_is_imported(tiny_store):
    doc = [Document("a", "Alan Bean was born in Wheeler.", "t")]
    ingester(tiny_store).ingest(doc)
    bean = extracted_entity_id("Alan Bean")
    assert tiny_store.get_entity(bean) is not None
    # A curated import now brings an entity with exactly that name (its id sorts before "ext:").
    tiny_store.upsert_entity(Entity(id="/m/alan_bean", name="Alan Bean"))
    again = ingester(tiny_store).ingest(doc)
    assert (again.triples_added, again.triples_merged, again.new_entities) == (0, 1, 0)
    assert resolver(tiny_store).resolve("Alan Bean").entity_id == bean  # the memo keeps the first decision
    # A mention never committed before still resolves by name.
    assert resolver(tiny_store).resolve("Memento").how == "name"


def test_a_pronoun_subject_is_the_documents_first_subject(tiny_store):
    tiny_store.upsert_entity(Entity(id="/m/hebrew", name="Hebrew Language", aliases=("He",)))  # "He" must not go there
    docs = [Document(id="bean", text="Alan Bean was born in Wheeler. He was a crew member of Apollo 12.", source="t"),
            Document(id="alone", text="He was born in Paris.", source="t")]
    preview = ingester(tiny_store).preview(docs)
    by_doc = {t.sentence.document_id: t for t in preview.triples if t.subject_text == "He"}
    first = next(t for t in preview.triples if t.subject_text == "Alan Bean")
    crew = by_doc["bean"]
    assert (crew.action, crew.subject_id, crew.subject_name) == ("add", first.subject_id, "Alan Bean")
    assert by_doc["alone"].action == "skip" and "earlier sentence" in by_doc["alone"].reason
