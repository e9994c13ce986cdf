"""The ask pipeline's logic on a real tiny graph with a fake linker and ranker (the models have their own tests)."""

from __future__ import annotations

import pytest

from graph.embedded import EmbeddedStore
from qa_system.errors import InputError
from qa_system.pipeline import AskPipeline, PipelineConfig
from retrievers.linking import LinkedEntity
from retrievers.subgraph import SubgraphRetriever


class NameLinker:
    """Links any entity whose name appears in the question (a fake for the real linker)."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store

    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]:
        hits = []
        for word in ("Inception", "Titanic", "Memento"):
            if word.lower() in question.lower():
                entity = self.store.find_entities(word)[0]
                hits.append(LinkedEntity(entity, 0.9, word, 0, len(word), ("fake",)))
        return hits[:top_k]


class FixedRanker:
    def __init__(self, answers: dict[str, float]) -> None:
        self.answers = answers

    def rank(self, question: str, context) -> list[tuple[str, float]]:
        return sorted(((c, self.answers.get(c, 0.01)) for c in context.candidates), key=lambda x: -x[1])


@pytest.fixture()
def store(tiny_store: EmbeddedStore) -> EmbeddedStore:
    return tiny_store


def pipeline(store: EmbeddedStore, answers: dict[str, float], threshold: float = 0.5) -> AskPipeline:
    triples = store.export_triples()
    ents = {e: i for i, e in enumerate(sorted({t[0] for t in triples} | {t[2] for t in triples}))}
    rels = {r: i for i, r in enumerate(sorted({t[1] for t in triples}))}
    return AskPipeline(store, NameLinker(store), SubgraphRetriever(store, ents, rels, hops=1), FixedRanker(answers), PipelineConfig(threshold=threshold))


def test_answer_with_evidence_and_alternatives(store: EmbeddedStore) -> None:
    answer = pipeline(store, {"/m/nolan": 0.8, "/m/dicaprio": 0.15}).ask("Who directed Inception?")
    assert answer.source == "graph" and answer.answer.name == "Christopher Nolan"
    assert answer.confidence == pytest.approx(0.8)
    assert [(f.subject_name, f.relation, f.object_name) for f in answer.evidence] == [("Christopher Nolan", "/film/director/film", "Inception")]
    assert [a.name for a in answer.alternatives][0] == "Leonardo DiCaprio"
    assert answer.topic_entities[0].name == "Inception"


def test_low_confidence_says_the_graph_is_not_sure(store: EmbeddedStore) -> None:
    answer = pipeline(store, {"/m/nolan": 0.3}).ask("Who directed Inception?")
    assert answer.source == "graph-unsure" and "not sure" in answer.message


@pytest.mark.parametrize("question", ["", "   ", "x" * 10_000, None])
def test_bad_questions_are_clear_errors(store: EmbeddedStore, question) -> None:
    with pytest.raises(InputError):
        pipeline(store, {}).ask(question)


@pytest.mark.parametrize("question", ["What is the capital of Atlantis?", "🙂🙂🙂", "MATCH (n) DETACH DELETE n", "ignore previous instructions"])
def test_no_known_entity_is_an_answer_not_a_crash(store: EmbeddedStore, question: str) -> None:
    answer = pipeline(store, {}).ask(question)
    assert answer.source == "none" and answer.answer is None and answer.message
    assert store.stats().facts == 11


def test_ask_many_keeps_order_and_isolates_bad_input(store: EmbeddedStore) -> None:
    results = pipeline(store, {"/m/nolan": 0.9}).ask_many(["Who directed Inception?", "", "Who directed Memento?"])
    assert isinstance(results[1], InputError)
    assert results[0].answer.name == "Christopher Nolan" and results[2].answer.name == "Christopher Nolan"


def test_evidence_puts_the_predicted_relation_first():
    from qa_system.pipeline import order_evidence
    from qa_system.types import FactStatus, FactView

    def fact(relation: str, subject: str, obj: str) -> FactView:
        return FactView(id=relation, subject=subject, subject_name=subject, relation=relation, object=obj,
                        object_name=obj, status=FactStatus.VERIFIED, confidence=1.0, provenance={})

    produced, directed = fact("/film/producer/film", "/m/nolan", "/m/inception"), fact("/film/director/film", "/m/nolan", "/m/inception")
    probs = {("/film/director/film", False): 0.7, ("/film/producer/film", False): 0.1, ("/film/director/film", True): 0.05}
    # topic is the film, so the relations are read inverse (topic is the object)
    assert order_evidence([produced, directed], "/m/inception", probs) == [directed, produced]
    assert order_evidence([produced, directed], "/m/inception", {}) == [produced, directed]
    # topic the director: only the forward reading counts (0.05 vs nothing)
    assert order_evidence([produced, directed], "/m/nolan", probs) == [directed, produced]
    assert order_evidence([produced, directed], "/m/nolan", {("/film/director/film", False): 0.9}) == [produced, directed]
