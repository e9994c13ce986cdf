"""The relation-words reader: answers from facts the trained reader cannot see (new entities, new
relations, literal values), on a real embedded store with a word-overlap scorer standing in for
the trained relation scorer (which has its own tests)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from graph.embedded import EmbeddedStore
from qa_system.ask.pipeline import AskPipeline, PipelineConfig
from qa_system.ask.relation_reader import AnswerTypePrior, LinkedTopic, RelationWordsReader
from qa_system.ask.stages import OneAtATimeRanker
from qa_system.relations import readable_relation
from qa_system.types import Entity, Fact, FactStatus, FactView, Provenance, SourceKind, literal_entity
from retrievers.linking import LinkedEntity
from retrievers.subgraph import SubgraphRetriever


class OverlapScorer:
    """Scores a relation by the question words its readable name shares (a fake for the model)."""

    def score(self, question: str, topic_name: str, relations: Sequence[tuple[str, bool]]) -> np.ndarray:
        words = set(re.findall(r"[a-z]+", question.lower()))
        return np.array([3.0 * len(words & set(readable_relation(r).split())) for r, _ in relations])


class NameLinker:
    def __init__(self, store: EmbeddedStore, names: Sequence[str]) -> None:
        self.store, self.names = store, names

    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]:
        hits = []
        for name in self.names:
            start = question.lower().find(name.lower())
            if start >= 0:
                entity = self.store.find_entities(name)[0]
                hits.append(LinkedEntity(entity, 0.9, name, start, start + len(name), ("fake",)))
        return hits[:top_k]


class NeverRanker(OneAtATimeRanker):
    def rank(self, question: str, context) -> list[tuple[str, float]]:
        raise AssertionError("the trained reader must not be asked")


def _fact(s: str, r: str, o: str, status: FactStatus = FactStatus.VERIFIED) -> Fact:
    return Fact(subject=s, relation=r, object=o, status=status, provenance=Provenance(source_kind=SourceKind.DATASET, dataset="movies"))


@pytest.fixture()
def movies(tmp_path) -> EmbeddedStore:
    store = EmbeddedStore.open(tmp_path / "ws")
    people = [Entity(id="p1", name="Keanu Reeves", type="Person"), Entity(id="p2", name="Lana Wachowski", type="Person"),
              Entity(id="p3", name="Carrie-Anne Moss", type="Person"), Entity(id="p4", name="Joel Silver", type="Person")]
    film = Entity(id="m1", name="The Matrix", type="Movie")
    born = literal_entity("p1", "born", 1964)
    released = literal_entity("m1", "released", 1999)
    tagline = literal_entity("m1", "tagline", "Welcome to the Real World")
    store.upsert_entities([*people, film, born, released, tagline])
    store.upsert_facts([
        _fact("p1", "ACTED_IN", "m1"), _fact("p3", "ACTED_IN", "m1"), _fact("p2", "DIRECTED", "m1"),
        _fact("p4", "PRODUCED", "m1"), _fact("p1", "born", born.id), _fact("m1", "released", released.id),
        _fact("m1", "tagline", tagline.id), _fact("p4", "REVIEWED", "m1", FactStatus.PROPOSED),
    ])
    yield store
    store.close()


def _pipeline(store: EmbeddedStore, threshold: float = 0.3) -> AskPipeline:
    linker = NameLinker(store, ["The Matrix", "Keanu Reeves", "Joel Silver"])
    retriever = SubgraphRetriever(store, {}, {}, hops=1)  # a graph the trained reader knows nothing of
    return AskPipeline(store, linker, retriever, NeverRanker(), PipelineConfig(words_threshold=threshold),
                       words_reader=RelationWordsReader(OverlapScorer()))


def test_entity_answer_by_relation_words_and_direction(movies: EmbeddedStore) -> None:
    answer = _pipeline(movies).ask("Who directed The Matrix?")
    assert answer.answer is not None and answer.answer.name == "Lana Wachowski"
    assert answer.answer.kind == "entity" and answer.source == "graph"
    assert [f.relation for f in answer.evidence] == ["DIRECTED"]


def test_literal_answer_is_a_value_with_its_attribute_fact(movies: EmbeddedStore) -> None:
    answer = _pipeline(movies).ask("When was Keanu Reeves born?")
    assert answer.answer is not None and answer.answer.name == "1964" and answer.answer.kind == "value"
    assert answer.evidence[0].relation == "born" and answer.evidence[0].object_name == "1964"
    assert _pipeline(movies).ask("What is the tagline of The Matrix?").answer.name == "Welcome to the Real World"


def test_a_fact_written_now_is_answerable_at_once(movies: EmbeddedStore) -> None:
    pipeline = _pipeline(movies)
    assert pipeline.ask("Who wrote The Matrix?").answer.name != "Lilly Wachowski"
    movies.upsert_entity(Entity(id="p5", name="Lilly Wachowski"))
    movies.upsert_fact(_fact("p5", "WROTE", "m1", FactStatus.EXTRACTED))
    assert pipeline.ask("Who wrote The Matrix?").answer.name == "Lilly Wachowski"


def test_proposed_facts_never_answer(movies: EmbeddedStore) -> None:
    answer = _pipeline(movies).ask("Which film did Joel Silver review?")
    assert answer.answer is None or answer.answer.id != "m1" or all(f.relation != "REVIEWED" for f in answer.evidence)


def test_who_never_gets_a_literal() -> None:
    prior = AnswerTypePrior()
    assert prior("Who was born in 1964?", [("lit:x", "integer")]) < 0
    assert prior("When was Keanu born?", [("lit:x", "integer")]) > 0
    assert prior("How many floors does it have?", [("lit:x", "integer")]) > 0
    assert prior("What did he act in?", [("m1", "")]) == 0


def _view(s: str, r: str, o: str) -> FactView:
    return FactView(id=f"{s}{r}{o}", subject=s, subject_name=s, relation=r, object=o, object_name=o,
                    status=FactStatus.VERIFIED, confidence=1.0, provenance=Provenance())


def test_several_answers_of_one_relation_share_its_probability() -> None:
    facts = [_view("a1", "ACTED_IN", "m"), _view("a2", "ACTED_IN", "m"), _view("d", "DIRECTED", "m")]
    reading = RelationWordsReader(OverlapScorer()).read("Who acted in it?", [LinkedTopic("m", "The Matrix", 0.9)], {"m": facts})
    assert {reading.ranked[0][0], reading.ranked[1][0]} == {"a1", "a2"}
    assert reading.ranked[0][1] == pytest.approx(reading.ranked[1][1]) and reading.ranked[0][1] > 0.9


def test_the_retriever_lists_the_topic_facts_the_reader_cannot_see(movies: EmbeddedStore) -> None:
    movies.upsert_entity(Entity(id="new", name="New film"))
    movies.upsert_facts([_fact("p1", "ACTED_IN", "new"), _fact("p1", "SPOKE_AT", "m1")])
    context = SubgraphRetriever(movies, {"p1": 0, "m1": 1}, {"ACTED_IN": 0}, hops=1).retrieve(["p1"])
    unseen = {(f.relation, f.object) for f in context.unseen}
    assert ("ACTED_IN", "new") in unseen and ("SPOKE_AT", "m1") in unseen  # a new entity; a new relation
    assert any(r == "born" for r, _ in unseen)  # a literal value
    assert ("ACTED_IN", "m1") not in unseen and context.neighbour_pairs == [(1, 0)]


def _with_roles(view: FactView, roles: list[str]) -> FactView:
    return view.model_copy(update={"provenance": Provenance(properties={"roles": roles})})


def test_a_property_the_question_names_breaks_ties_within_the_asked_relation_only() -> None:
    facts = [_with_roles(_view("k", "ACTED_IN", "m1"), ["Johnny"]), _with_roles(_view("k", "ACTED_IN", "m2"), ["Neo"])]
    reading = RelationWordsReader(OverlapScorer()).read("In which movie did he act as Neo?", [LinkedTopic("k", "Keanu", 0.9)], {"k": facts})
    assert reading.ranked[0][0] == "m2"
    # "Hoffa" is a role of one actor, but the question asks who directed the film Hoffa
    facts = [_with_roles(_view("jack", "ACTED_IN", "h"), ["Hoffa"]), _view("danny", "DIRECTED", "h")]
    reading = RelationWordsReader(OverlapScorer()).read("Who directed Hoffa?", [LinkedTopic("h", "Hoffa", 0.9)], {"h": facts})
    assert reading.ranked[0][0] == "danny"


def test_another_named_entity_picks_among_the_answers_of_the_asked_relation(movies: EmbeddedStore) -> None:
    from qa_system.ask.constraints import ConstraintWeights, QuestionConstraints

    films = [Entity(id=f"f{i}", name=f"Film {i}") for i in range(8)]
    movies.upsert_entities([*films, Entity(id="z", name="Robert Zemeckis")])
    movies.upsert_facts([_fact("p1", "ACTED_IN", f.id) for f in films] + [_fact("z", "DIRECTED", "f7"), _fact("z", "born", "m1")])
    pipeline = AskPipeline(movies, NameLinker(movies, ["Keanu Reeves", "Robert Zemeckis"]), SubgraphRetriever(movies, {}, {}, hops=1),
                           NeverRanker(), PipelineConfig(words_threshold=0.3), words_reader=RelationWordsReader(OverlapScorer()),
                           constraints=QuestionConstraints(movies, ConstraintWeights(adjacent=8.0, mentioned=4.0)))
    answer = pipeline.ask("Which film did Keanu Reeves act in that Robert Zemeckis directed?")
    assert answer.answer.id == "f7"
    assert {f.relation for f in answer.evidence} == {"ACTED_IN", "DIRECTED"}


def test_no_fitting_relation_means_low_confidence_with_a_null_group() -> None:
    facts = [_view("a", "ACTED_IN", "m"), _view("d", "DIRECTED", "m")]
    topic = [LinkedTopic("m", "The Matrix", 0.9)]
    plain = RelationWordsReader(OverlapScorer()).read("What is the budget of it?", topic, {"m": facts})
    guarded = RelationWordsReader(OverlapScorer(), null_logit=2.0).read("What is the budget of it?", topic, {"m": facts})
    assert plain.ranked[0][1] == pytest.approx(0.5) and guarded.ranked[0][1] < 0.15
    fitting = RelationWordsReader(OverlapScorer(), null_logit=2.0).read("Who directed it?", topic, {"m": facts})
    assert fitting.ranked[0][0] == "d" and fitting.ranked[0][1] > 0.6


def test_null_grid_lowers_only_words_answers_and_fits_the_best_net() -> None:
    from evaluation.grow_then_ask import null_grid

    rows = [
        {"confidence": 0.9, "log_partition": 5.0, "source": "graph", "answer": "a", "hit": True},  # relations fit: stays sure
        {"confidence": 0.9, "log_partition": -3.0, "source": "graph", "answer": "b", "hit": False},  # nothing fits: falls
        {"confidence": 0.9, "log_partition": None, "source": "graph", "answer": "c", "hit": True},  # the trained reader's
    ]
    table = {r["null_logit"]: r for r in null_grid(rows, 0.5)}
    assert table[None]["answered_sure"] == 1.0 and table[None]["net_sure"] == 1
    assert table[4.0]["answered_sure"] == pytest.approx(2 / 3, abs=1e-4) and table[4.0]["net_sure"] == 2


def test_the_shipped_words_calibration_names_a_scorer_and_a_null_logit() -> None:
    from qa_system.ask.words_loading import words_calibration

    calibration = words_calibration()
    assert calibration["scorer"] in ("zero-shot", "trained") and isinstance(calibration["null_logit"], float)
    assert "grow_then_ask" in calibration["command"]


def test_warming_encodes_every_relation_in_both_directions_under_the_lock() -> None:
    import threading

    from qa_system.ask.relation_reader import LazyRelationScorer

    class Recording(OverlapScorer):
        def __init__(self) -> None:
            self.encoded: list[str] = []

        def relation_text(self, relation: str, topic_is_subject: bool) -> str:
            return f"X {relation} ?" if topic_is_subject else f"? {relation} X"

        def relation_vectors(self, texts):
            assert lock.locked()
            self.encoded += texts

    lock, inner = threading.Lock(), Recording()
    lazy = LazyRelationScorer(lambda: inner)
    assert lazy.warm(["born", "ACTED_IN"], lock, chunk=3) == 4
    assert inner.encoded == ["X born ?", "? born X", "X ACTED_IN ?", "? ACTED_IN X"]


def test_the_mean_of_scorers_averages_their_logits_and_an_unknown_scorer_is_refused() -> None:
    from qa_system.ask.relation_reader import MeanOfScorers
    from qa_system.ask.words_loading import relation_scorer_factory
    from qa_system.errors import InputError

    class Fixed:
        def __init__(self, values):
            self.values = values

        def score(self, question, topic_name, relations):
            return np.array(self.values)

    mean = MeanOfScorers([Fixed([2.0, 0.0]), Fixed([0.0, 4.0])])
    assert mean.score("q", "t", [("a", True), ("b", True)]).tolist() == [1.0, 2.0]
    with pytest.raises(InputError, match="unknown relation scorer"):
        relation_scorer_factory("bert-large")


def test_an_imported_twin_of_a_known_entity_is_read_by_relation_words(movies: EmbeddedStore) -> None:
    """The demo graph's Keanu Reeves (known to the trained reader) and an imported one with a ``born``
    literal: "When was Keanu Reeves born?" is answered from the imported twin's attribute."""

    movies.upsert_entities([Entity(id="/m/keanu", name="Keanu Reeves"), Entity(id="/m/film", name="Speed")])
    movies.upsert_fact(_fact("/m/keanu", "/film/actor/film", "/m/film"))

    class BothLinker:
        def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]:
            start = question.find("Keanu Reeves")
            known, imported = movies.get_entity("/m/keanu"), movies.get_entity("p1")
            return [LinkedEntity(known, 0.9, "Keanu Reeves", start, start + 12, ("fake",)),
                    LinkedEntity(imported, 0.85, "Keanu Reeves", start, start + 12, ("fake",))][:top_k]

    class KnownRanker(OneAtATimeRanker):
        def rank(self, question: str, context) -> list[tuple[str, float]]:
            return [("/m/film", 0.9)]

    retriever = SubgraphRetriever(movies, {"/m/keanu": 0, "/m/film": 1}, {"/film/actor/film": 0}, hops=1)
    pipeline = AskPipeline(movies, BothLinker(), retriever, KnownRanker(), PipelineConfig(words_threshold=0.3),
                           words_reader=RelationWordsReader(OverlapScorer()))
    assert pipeline.ask("When was Keanu Reeves born?").answer.name == "1964"
    assert pipeline.ask("Which film did Keanu Reeves act in?").answer.id in ("/m/film", "m1")


def test_an_entity_named_like_a_number_answers_how_many_as_a_literal_would() -> None:
    prior = AnswerTypePrior()
    assert prior("How many students does it have?", [("ext:600", "integer")]) > 0
    assert prior("How many students does it have?", [("ext:rome", "")]) < 0
    assert prior("Who founded it?", [("ext:1980", "date")]) < 0
    facts = [_view("u", "numberOfStudents", "ext:600"), _view("u", "city", "ext:rome")]
    facts = [f.model_copy(update={"object_name": "600" if f.object == "ext:600" else "Rome"}) for f in facts]
    reading = RelationWordsReader(OverlapScorer()).read("How many pupils does it have?", [LinkedTopic("u", "U", 0.9)], {"u": facts})
    assert reading.ranked[0][0] == "ext:600"
