"""The ask pipeline's logic on a real tiny graph with a fake linker and ranker (the models have their own tests)."""

from __future__ import annotations

import pytest

from graph.embedded import EmbeddedStore
from qa_system.ask.pipeline import AskPipeline, PipelineConfig
from qa_system.ask.stages import OneAtATimeRanker
from qa_system.errors import InputError
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


class FixedRanker(OneAtATimeRanker):
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
    from qa_system.ask.pipeline import order_evidence
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


class ScoredLinker(NameLinker):
    """``NameLinker`` with a link score per name, best first."""

    def __init__(self, store: EmbeddedStore, scores: dict[str, float]) -> None:
        super().__init__(store)
        self.scores = scores

    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]:
        hits = [LinkedEntity(h.entity, self.scores[h.mention], h.mention, h.start, h.end, h.sources) for h in super().link(question, 5)]
        return sorted(hits, key=lambda h: -h.score)[:top_k]


class CountingRanker(FixedRanker):
    def __init__(self, answers: dict[str, float]) -> None:
        super().__init__(answers)
        self.read: list[str] = []

    def rank(self, question: str, context) -> list[tuple[str, float]]:
        self.read.append(context.topics[0])
        return super().rank(question, context)


def multi_topic(store: EmbeddedStore, link: dict[str, float], answers: dict[str, float], read_topics: int) -> AskPipeline:
    base = pipeline(store, answers)
    return AskPipeline(store, ScoredLinker(store, link), base.retriever, CountingRanker(answers),
                       PipelineConfig(threshold=0.5, read_topics=read_topics))


def test_reading_a_second_topic_lets_a_confident_answer_win(store: EmbeddedStore) -> None:
    """"Inception" is linked first, but the reader is unsure about its neighbours and sure about Titanic's."""

    question = "Who directed Titanic, the film after Inception?"
    answers = {"/m/nolan": 0.3, "/m/cameron": 0.9}
    one = multi_topic(store, {"Inception": 0.9, "Titanic": 0.8}, answers, read_topics=1)
    assert one.ask(question).answer.name == "Christopher Nolan" and one.ranker.read == ["/m/inception"]
    two = multi_topic(store, {"Inception": 0.9, "Titanic": 0.8}, answers, read_topics=2)
    answer = two.ask(question)
    assert two.ranker.read == ["/m/inception", "/m/titanic"]
    assert answer.answer.name == "James Cameron" and answer.source == "graph" and answer.confidence == pytest.approx(0.9)
    assert [(f.subject_name, f.object_name) for f in answer.evidence] == [("James Cameron", "Titanic")]
    assert [t.name for t in answer.topic_entities] == ["Inception", "Titanic"]  # the linker's order, as linked


def test_a_much_better_link_keeps_its_topic(store: EmbeddedStore) -> None:
    """The link score counts too (squared by the default weight): 0.9 against 0.2 outweighs 0.3 against 0.9."""

    answer = multi_topic(store, {"Inception": 0.9, "Titanic": 0.2}, {"/m/nolan": 0.3, "/m/cameron": 0.9}, read_topics=2).ask(
        "Who directed Titanic, the film after Inception?")
    assert answer.answer.name == "Christopher Nolan" and answer.source == "graph-unsure"


def test_ask_many_chooses_per_question_like_ask(store: EmbeddedStore) -> None:
    p = multi_topic(store, {"Inception": 0.9, "Titanic": 0.8, "Memento": 0.9}, {"/m/nolan": 0.3, "/m/cameron": 0.9}, read_topics=2)
    questions = ["Who directed Titanic, the film after Inception?", "", "Who directed Memento?"]
    results = p.ask_many(questions)
    assert isinstance(results[1], InputError)
    assert results[0].answer.name == "James Cameron" and results[2].answer.name == "Christopher Nolan"
    assert results[0] == p.ask(questions[0]) and results[2] == p.ask(questions[2])


def test_choose_reading_weighs_link_and_confidence() -> None:
    from qa_system.ask.topic_choice import choose_reading, reading_score

    assert choose_reading([(0.9, 0.3), (0.8, 0.9)]) == 1
    assert choose_reading([(0.9, 0.3), (0.2, 0.9)]) == 0
    assert choose_reading([(0.5, 0.5), (0.5, 0.5)]) == 0  # ties: the linker's order
    assert choose_reading([(0.9, 0.3), (0.2, 0.9)], link_weight=0.0) == 1  # the confidence alone
    assert reading_score(0.0, 0.0) == pytest.approx(3 * reading_score(1.0, 0.0))  # floored, finite
    with pytest.raises(ValueError):
        choose_reading([])
    with pytest.raises(ValueError):
        reading_score(0.5, 0.5, link_weight=-1)


def test_evaluation_keeps_the_reading_ask_would_answer_from() -> None:
    """``evaluate qa --read-topics K`` picks per question exactly as ``ask`` does, in question order."""

    from types import SimpleNamespace

    from qa_system.ask.topic_choice import choose_per_question as _choose_topics

    examples = [SimpleNamespace(id=i) for i in ("q1", "q2", "q3")]
    # readings in link order: every question's first topic, then the second topics of q1 and q3 (q2 had one)
    features = [SimpleNamespace(example_id=i, topic=f"{i}-t{k}") for i, k in (("q1", 1), ("q3", 1), ("q1", 2), ("q3", 2))]
    ranked = [[(f.topic, 0.5)] for f in features]
    link_scores = [0.9, 0.9, 0.8, 0.2]
    confidences = [0.3, 0.3, 0.9, 0.9]
    chosen, chosen_ranked = _choose_topics(examples, features, ranked, link_scores, confidences)
    assert [f.topic for f in chosen] == ["q1-t2", "q3-t1"]  # q2 was not readable; q3's second link is too weak
    assert chosen_ranked == [[("q1-t2", 0.5)], [("q3-t1", 0.5)]]


def test_reading_more_topics_than_are_shown_links_enough(store: EmbeddedStore) -> None:
    p = multi_topic(store, {"Inception": 0.9, "Titanic": 0.8, "Memento": 0.7}, {"/m/nolan": 0.3, "/m/cameron": 0.9}, read_topics=3)
    p.config.top_k_topics = 1
    answer = p.ask("Who directed Inception, Memento or Titanic?")
    assert p.ranker.read == ["/m/inception", "/m/titanic", "/m/memento"]
    assert answer.answer.name == "James Cameron" and [t.name for t in answer.topic_entities] == ["Inception"]


def test_freeze_loaded_heap_takes_live_objects_out_of_the_collectors_walk() -> None:
    import gc

    from qa_system.ask.pipeline import freeze_loaded_heap

    loaded = [{"model": i} for i in range(1000)]  # stands in for a pipeline's tracked objects
    before = gc.get_freeze_count()
    try:
        freeze_loaded_heap()
        assert gc.get_freeze_count() >= before + len(loaded)
        assert not any(obj is loaded for obj in gc.get_objects())  # no generation holds it any more
    finally:
        gc.unfreeze()  # the test process goes on collecting as before


class ListLinker:
    """Links the given (entity id, score, mention) in order, mention offsets found in the question."""

    def __init__(self, store: EmbeddedStore, links: list[tuple[str, float, str]]) -> None:
        self.store, self.links = store, links

    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]:
        out = []
        for entity_id, score, mention in self.links[:top_k]:
            start = question.index(mention)
            out.append(LinkedEntity(self.store.get_entity(entity_id), score, mention, start, start + len(mention), ("fake",)))
        return out


def test_constraints_pick_the_candidate_tied_to_another_named_entity_and_show_the_fact(store: EmbeddedStore) -> None:
    from qa_system.ask.constraints import ConstraintWeights, QuestionConstraints

    triples = store.export_triples()
    ents = {e: i for i, e in enumerate(sorted({t[0] for t in triples} | {t[2] for t in triples}))}
    rels = {r: i for i, r in enumerate(sorted({t[1] for t in triples}))}
    question = "Which Nolan film starred DiCaprio?"
    linker = ListLinker(store, [("/m/nolan", 0.9, "Nolan"), ("/m/dicaprio", 0.7, "DiCaprio")])
    ranker = FixedRanker({"/m/memento": 0.6, "/m/inception": 0.3})
    weights = ConstraintWeights(adjacent=6.0, mentioned=4.0)

    def build(constraints):  # noqa: ANN001, ANN202
        return AskPipeline(store, linker, SubgraphRetriever(store, ents, rels, hops=1), ranker, PipelineConfig(threshold=0.0),
                           constraints=constraints)

    assert build(None).ask(question).answer.name == "Memento"
    answer = build(QuestionConstraints(store, weights)).ask(question)
    assert answer.answer.name == "Inception"
    assert ("Inception", "/film/film/starring", "Leonardo DiCaprio") in [(f.subject_name, f.relation, f.object_name) for f in answer.evidence]
    assert ("Christopher Nolan", "/film/director/film", "Inception") == (answer.evidence[0].subject_name, answer.evidence[0].relation, answer.evidence[0].object_name)
    [many] = build(QuestionConstraints(store, weights)).ask_many([question])
    assert many.answer.name == "Inception" and many.evidence == answer.evidence
