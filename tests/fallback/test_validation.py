"""SATORI validation: templates, candidate filters, aggregation and thresholds, recording on a real store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from qa_system.errors import ConfigError, DataFormatError, InputError
from qa_system.fallback.answer import LLMFallback
from qa_system.fallback.candidates import gather, is_plausible, mentioned_in, normalise
from qa_system.fallback.validation import (
    NO_EVIDENCE,
    TemplateBook,
    Thresholds,
    TripleValidator,
    aggregate,
    load_templates,
    load_thresholds,
    validate_and_record,
    write_thresholds,
)
from qa_system.fallback.validation_calibration import (
    CALIBRATION_FEATURES,
    Calibration,
    ShapePrior,
    group_features,
    object_shape,
)
from qa_system.maintain.review import rejected_log
from qa_system.types import FactStatus, SourceKind, fact_id
from retrievers.passages import Passage
from tests.llm.conftest import ScriptedClient

GENERIC = {
    "_generic": {"search": "{X} {relation}", "prompt": "The {relation} of {X} is", "hypothesis": "The {relation} of {X} is {Y}."},
    "_generic_verb": {"search": "{X} {relation}", "prompt": "{X} {relation}", "hypothesis": "{X} {relation} {Y}."},
}
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"the", "of", "is", "was", "in", "a", "by", "film"}


class WordOverlapScorer:
    """Fake entailment: P(entail) = share of the hypothesis's content words found in the premise."""

    name, version = "overlap", "1"

    def __init__(self) -> None:
        self.calls = 0

    def entailment_scores(self, premises, hypothesis):
        self.calls += 1
        words = set(_WORD.findall(hypothesis.lower())) - _STOP
        return np.array([len(words & set(_WORD.findall(p.lower()))) / max(len(words), 1) for p in premises])


class BatchOverlapScorer(WordOverlapScorer):
    """The same scores through the model's batched ``predict`` (columns: entail, neutral, contra)."""

    predict_calls = 0

    def predict(self, pairs, *, batch_size=32):
        self.predict_calls += 1
        e = np.array([WordOverlapScorer.entailment_scores(self, [p], h)[0] for p, h in pairs]).reshape(-1)
        return np.stack([e, 1 - e, np.zeros_like(e)], axis=1)


class ListRetriever:
    """Returns the same passages for every query (what the validator does with them is under test)."""

    def __init__(self, texts, descriptions=None):
        self.texts, self.descriptions, self.queries = list(texts), dict(descriptions or {}), []

    def search(self, query, k=5):
        self.queries.append(query)
        return [(Passage(id=f"p{i}", text=t), 1.0) for i, t in enumerate(self.texts[:k])]

    def for_entities(self, ids):
        return [Passage(id=f"d:{i}", text=self.descriptions[i], kind="description", entity_id=i) for i in ids if i in self.descriptions]


PREMISES = ["Memento is a thriller film directed by Christopher Nolan.", "Leonardo DiCaprio stars in Titanic."]


def validator(texts=PREMISES, *, thresholds=None, scorer=None, **kwargs) -> TripleValidator:
    return TripleValidator(scorer or WordOverlapScorer(), ListRetriever(texts, kwargs.pop("descriptions", None)),
                           thresholds=thresholds or Thresholds(default=0.9), **kwargs)  # fmt: skip


def fallback_result(store, *triples):
    text = json.dumps({"answer": "x", "triples": [dict(zip(("subject", "relation", "object"), t)) for t in triples]})
    return LLMFallback(ScriptedClient([text]), store).ask("What genre is Memento?")


# -- templates -----------------------------------------------------------------------------------------
def test_shipped_templates_load_and_cover_webnlg_and_freebase_relations():
    book = load_templates()
    assert len(book) > 150 and "birthPlace" in book and "/people/person/place_of_birth" in book
    assert book.get("birthPlace").hypothesis_text("Ada", "London") == "Ada was born in London."
    assert book.get("leaderName").search_query("Italy") == "Italy leader"
    assert book.get("/film/film/genre").prompt_text("Memento") == "The genre of Memento is"


def test_generic_templates_read_nouns_and_verb_phrases_from_the_relation_text():
    book = TemplateBook(GENERIC)
    assert book.get("/sports/team/home_stadium").hypothesis_text("A", "B") == "The home stadium of A is B."
    assert book.get("was a crew member of").hypothesis_text("Buzz Aldrin", "Apollo 11") == "Buzz Aldrin was a crew member of Apollo 11."
    assert book.get("directedBy").hypothesis_text("A", "B") == "A directed by B."


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"search": "{X}", "prompt": "{X} is", "hypothesis": "{X} is born"}, r"hypothesis template .* must use \['X', 'Y'\]"),
        ({"search": "{X}", "prompt": "{X} {Z}", "hypothesis": "{X} {Y}"}, r"prompt template .* uses \['X', 'Z'\]"),
        ({"search": "{X} {relation}", "prompt": "{X}", "hypothesis": "{X} {Y}"}, r"search template"),
        ({"search": "{X}", "hypothesis": "{X} {Y}"}, "must have exactly the keys"),
        ({"search": "{X", "prompt": "{X}", "hypothesis": "{X} {Y}"}, "malformed template"),
    ],
)
def test_template_loader_rejects_bad_placeholders(entry, message):
    with pytest.raises(ConfigError, match=message):
        TemplateBook({**GENERIC, "birthPlace": entry}, source="t.json")


def test_template_loader_requires_both_generic_templates():
    with pytest.raises(ConfigError, match=r"generic templates \['_generic_verb'\] are missing"):
        TemplateBook({"_generic": GENERIC["_generic"]})


# -- thresholds ----------------------------------------------------------------------------------------
def test_thresholds_default_when_no_file_and_round_trip(tmp_path):
    assert load_thresholds(tmp_path / "none.json").for_relation("x") == 0.5
    path = write_thresholds(Thresholds(default=0.4, relations={"birthPlace": 0.8}, model="m"), tmp_path / "t.json")
    loaded = load_thresholds(path)
    assert loaded.for_relation("birthPlace") == 0.8 and loaded.for_relation("country") == 0.4


@pytest.mark.parametrize("payload", ['{"default": 1.5}', '{"relations": {"a": -0.1}}', "not json"])
def test_bad_thresholds_file_is_a_data_format_error(tmp_path, payload):
    (tmp_path / "t.json").write_text(payload)
    with pytest.raises(DataFormatError, match="t.json"):
        load_thresholds(tmp_path / "t.json")


# -- candidates ----------------------------------------------------------------------------------------
def test_candidate_filters_drop_stop_words_short_strings_the_subject_and_unmentioned_names():
    assert not is_plausible("the", "Memento") and not is_plausible("A", "Memento") and not is_plausible("memento", "Memento")
    assert is_plausible("Christopher Nolan", "Memento") and is_plausible("2000", "Memento")
    assert mentioned_in("christopher nolan", PREMISES) == [0]
    assert mentioned_in("Nola", PREMISES) == []  # whole words only
    found = gather("Memento", PREMISES, llm_objects=["Christopher Nolan", "Steven Spielberg", "it"],
                   graph_objects=[("/m/nolan", "Christopher Nolan"), "Thriller", "Drama"], use_ner=False)  # fmt: skip
    by_text = {normalise(c.text): c for c in found}
    assert set(by_text) == {"christopher nolan", "thriller"}  # Spielberg, Drama: no premise mentions them
    assert by_text["christopher nolan"].sources == ["llm", "graph"] and by_text["christopher nolan"].entity_id == "/m/nolan"


def test_ner_source_proposes_names_from_the_premises():
    found = gather("Memento", PREMISES, use_ner=True)
    ner = {c.text for c in found if "ner" in c.sources}
    assert {"Christopher Nolan", "Leonardo DiCaprio"} <= ner


# -- decisions -----------------------------------------------------------------------------------------
def test_aggregate_is_the_maximum_over_premises():
    assert aggregate([0.1, 0.8, 0.3]) == pytest.approx(0.8) and aggregate([]) == 0.0


def test_per_relation_threshold_overrides_the_default(tiny_store):
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"), ("Memento", "genre", "Romance film"))
    strict = validator(thresholds=Thresholds(default=0.1, relations={"/film/film/genre": 0.95}))
    thriller, romance = strict.validate(result.triples)
    assert thriller.threshold == 0.95 and thriller.entailed and thriller.hypothesis == "Memento is a Thriller film."
    assert thriller.premise_scores == [1.0] and thriller.score == 1.0 and thriller.model == "overlap"  # only premise 1 names Memento
    assert not romance.entailed and romance.score == pytest.approx(0.5) and "0.500 < threshold 0.950" in romance.reason
    lenient = validator(thresholds=Thresholds(default=0.1, relations={"/film/film/genre": 0.4}))
    assert [d.entailed for d in lenient.validate(result.triples)] == [True, True]


def test_batched_predict_gives_the_same_decisions_in_one_call(tiny_store):
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"), ("Titanic", "starring", "Leonardo DiCaprio"))
    scorer = BatchOverlapScorer()
    batched = validator(scorer=scorer).validate(result.triples)
    assert scorer.predict_calls == 1
    single = validator().validate(result.triples)
    assert [d.model_dump() for d in batched] == [d.model_dump() for d in single]


def test_no_premises_means_not_entailed_with_reason_no_evidence(tiny_store):
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"))
    scorer = WordOverlapScorer()
    (decision,) = validator([], scorer=scorer).validate(result.triples)
    assert decision.decision == "not_entailed" and decision.reason == NO_EVIDENCE and decision.score == 0.0
    assert decision.premises == [] and scorer.calls == 0


def test_descriptions_of_known_ends_join_the_premises(tiny_store):
    result = fallback_result(tiny_store, ("Christopher Nolan", "nationality", "United Kingdom"))
    v = validator(["Unrelated sentence."], descriptions={"/m/nolan": "Christopher Nolan: British-American film director"})
    (decision,) = v.validate(result.triples)
    assert decision.premises == ["Christopher Nolan: British-American film director"]  # the other names no Nolan
    assert v.retriever.queries == ["Christopher Nolan nationality"]


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="k must be at least 1; got 0"):
        validator(k=0)
    with pytest.raises(InputError, match="scorer object has no 'name'"):
        TripleValidator(object(), ListRetriever([]))


# -- object completion and recording on a real store ---------------------------------------------------
def test_candidates_from_the_graph_range_and_ner_and_their_decisions(tiny_store):
    v = validator(["Inception is a science fiction film.", "Inception also counts as a Thriller."], store=tiny_store)
    found = {c.text: c for c in v.candidates("/m/inception", "/film/film/genre", llm_objects=["Science fiction", "Comedy"])}
    assert "Comedy" not in found  # mentioned nowhere
    assert found["Science fiction"].sources == ["llm"]  # the graph's own genre of Inception is not a "range" example
    assert found["Thriller"].sources[0] == "graph" and found["Thriller"].entity_id == "/m/thriller"
    decisions = {c.text: d for c, d in v.complete("Inception", "/film/film/genre", use_ner=False, graph_objects=["Thriller"])}
    assert decisions["Thriller"].entailed


def test_validate_and_record_inserts_entailed_as_proposed_and_logs_the_rest(tiny_store):
    workspace = Path(tiny_store.db_path).parent.parent
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"), ("Memento", "genre", "Romance film"),
                             ("Memento", "starring", "Leonardo DiCaprio"))  # fmt: skip
    before = tiny_store.stats().facts
    report = validate_and_record(result, validator(), tiny_store, workspace)
    assert report.already_present == [fact_id("/m/memento", "/film/film/genre", "/m/thriller")]
    assert tiny_store.get_fact(report.already_present[0]).status == FactStatus.VERIFIED
    # Memento→Thriller is already a (verified) dev fact; Romance (0.5) and DiCaprio (2/3 of words) fall below 0.9
    assert tiny_store.stats().facts == before
    assert {r["triple"]["object_text"] for r in rejected_log(workspace)} == {"Romance film", "Leonardo DiCaprio"}
    new = fallback_result(tiny_store, ("Titanic", "starring", "Leonardo DiCaprio"))
    report = validate_and_record(new, validator(), tiny_store, workspace)
    assert report.already_present and not report.inserted  # in the tiny KG already: left verified
    unknown = fallback_result(tiny_store, ("Memento", "genre", "Christopher Nolan"))
    report = validate_and_record(unknown, validator(thresholds=Thresholds(default=0.3)), tiny_store, workspace)
    (new_id,) = report.inserted
    fact = tiny_store.get_fact(new_id)
    assert fact.status == FactStatus.PROPOSED and fact.provenance.source_kind == SourceKind.LLM
    assert fact.provenance.premises == PREMISES[:1] and fact.provenance.checkpoint == "overlap@1"
    assert tiny_store.stats().facts == before + 1


def test_validate_and_record_with_no_triples_records_nothing(tiny_store, tmp_path):
    result = fallback_result(tiny_store)
    assert validate_and_record(result, validator(), tiny_store, tmp_path).inserted == []
    assert not (tmp_path / "review").exists()


# -- the real entailment model ---------------------------------------------------------------------------
def _shipped_model():
    from qa_system.models.entailment import load_entailment_model, shipped_checkpoint

    if not (shipped_checkpoint() / "card.json").is_file():
        pytest.skip("the entailment checkpoint has not shipped yet")
    return load_entailment_model()


def test_real_model_and_index_validate_true_triples_and_reject_false_ones(tiny_store):
    """The shipped entailment model over a real passage index: ingested sentences decide, and what
    they entail is inserted as proposed while the rest is only logged."""

    from retrievers.passages import PassageRetriever, PassageStore

    workspace = Path(tiny_store.db_path).parent.parent
    sentences = ["Memento is a 2000 thriller film by Christopher Nolan, starring Guy Pearce.",
                 "Titanic is a 1997 romance film starring Leonardo DiCaprio and Kate Winslet."]  # fmt: skip
    PassageStore(workspace).add_many(Passage.sentence("doc", s, 0, len(s)) for s in sentences)
    thresholds = load_thresholds()  # the shipped decision (plain hypotheses, tuned on WebNLG dev)
    v = TripleValidator(_shipped_model(), PassageRetriever(workspace, tiny_store).refresh(), store=tiny_store, k=3, thresholds=thresholds)
    result = fallback_result(tiny_store, ("Memento", "starring", "Guy Pearce"), ("Memento", "starring", "Kate Winslet"),
                             ("Memento", "genre", "Romance film"))  # fmt: skip
    pearce, winslet, romance = v.validate(result.triples)
    assert pearce.entailed and pearce.hypothesis == "Memento starring Guy Pearce"
    assert pearce.premises == [sentences[0]]  # the Titanic sentence does not name Memento: not evidence
    assert not winslet.entailed and winslet.score < pearce.score
    # known weakness, kept visible: stage 12 scores "Memento genre Romance film" 0.81 from a premise
    # that says "thriller film" (stage 10: 0.67, stage 9: 0.72, stage 8: 0.85, stage 5: 0.62), above
    # the shipped default threshold (0.61); only its order below the true triple (0.92) is asserted
    assert romance.score < pearce.score
    assert pearce.model and pearce.version
    report = validate_and_record(result, v, tiny_store, workspace)
    assert len(report.inserted) == len([d for d in (pearce, winslet, romance) if d.entailed]) >= 1
    assert "Kate Winslet" in [r["triple"]["object_text"] for r in report.rejected]
    assert tiny_store.get_fact(report.inserted[0]).status == FactStatus.PROPOSED
    found = {c.text: d for c, d in v.complete("Titanic", "/film/film/starring", use_ner=True, graph_objects=[])}
    assert found["Leonardo DiCaprio"].entailed and found["Leonardo DiCaprio"].premises == [sentences[1]]
    # known weakness, kept visible: the shipped model scores "Titanic starring 1997" 0.63 against 0.88
    # for DiCaprio; on object completion the calibrated decision (its shape prior: "starring" takes
    # names, not years) is what separates such candidates


def test_plain_hypotheses_spell_the_relation_as_the_models_webnlg_pairs_do():
    from qa_system.fallback.validation import relation_words

    assert relation_words("OCLC_number") == "OCLC number" and relation_words("birthPlace") == "birth place"
    assert relation_words("/people/person/place_of_birth") == "place of birth"
    book = load_templates(hypotheses="plain")
    template = book.get("birthPlace")
    assert template.hypothesis_text("Ada", "London") == "Ada birth place London"
    assert template.search_query("Ada") == load_templates().get("birthPlace").search_query("Ada")
    with pytest.raises(ConfigError, match="hypothesis style must be one of"):
        load_templates(hypotheses="fancy")


def test_the_validator_uses_the_hypothesis_style_its_thresholds_were_tuned_with(tiny_store):
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"))
    (decision,) = validator(thresholds=Thresholds(default=0.5, hypotheses="plain")).validate(result.triples)
    assert decision.hypothesis == "Memento genre Thriller"


def test_object_completion_needs_a_premise_naming_both_ends(tiny_store):
    premises = ["Inception is a Thriller.", "Thriller films are popular.", "Science fiction is a genre."]
    v = validator(premises, thresholds=Thresholds(default=0.3))
    found = {c.text: (c, d) for c, d in v.complete("Inception", "genre", premises=premises, use_ner=False,
                                                       graph_objects=["Thriller", "Science fiction"])}  # fmt: skip
    thriller, decision = found["Thriller"]
    assert thriller.mentions == [0, 1] and thriller.evidence == [0] and decision.premises == [premises[0]]
    scifi, decision = found["Science fiction"]
    assert scifi.mentions == [2] and scifi.evidence == [] and decision.reason == NO_EVIDENCE and not decision.entailed


# -- the calibrated decision ------------------------------------------------------------------------------
def test_group_features_of_a_handmade_group():
    # the 4th candidate has no evidence: its 0.95 is neither the best score nor ranked among the others
    features = group_features([0.9, 0.4, 0.9, 0.95], [2, 1, 1, 0], [True, False, False, True])
    assert CALIBRATION_FEATURES == ("entailment", "log_evidence", "gap_to_best", "log_rank", "graph", "shape_prior")
    expected = [
        [0.9, np.log1p(2), 0.0, np.log1p(0), 1.0, 0.0],
        [0.4, np.log1p(1), 0.5, np.log1p(2), 0.0, 0.0],  # two candidates above it
        [0.9, np.log1p(1), 0.0, np.log1p(0), 0.0, 0.0],  # tie with the first: the same (best) rank
        [0.95, 0.0, -0.05, np.log1p(3), 1.0, 0.0],  # after all three with evidence; no shape prior given: 0
    ]
    assert features.shape == (4, 6) and features == pytest.approx(np.array(expected))
    assert group_features([0.5, 0.6], [1, 1], [False, False], [-0.1, -2.0])[:, 5] == pytest.approx([-0.1, -2.0])
    assert group_features([], [], []).shape == (0, 6)
    with pytest.raises(InputError, match="as many evidence counts"):
        group_features([0.5], [1, 2], [True])


def test_object_shapes_and_the_shape_prior_of_a_relation():
    assert [object_shape(t) for t in ("1,200", "3.5 km", "12 March 1997", "Leonardo DiCaprio", "jazz music")] == [
        "number", "number", "date", "proper", "lower"]  # fmt: skip
    prior = ShapePrior.from_triples([("birthPlace", "London")] * 9 + [("birthPlace", "1990")] + [("genre", "rock music")] * 5)
    assert prior.relations["birthPlace"] == {"proper": 9, "number": 1}
    assert prior.log_prior("birthPlace", "Paris") > prior.log_prior("birthPlace", "1997") > prior.log_prior("birthPlace", "rock")
    unseen = prior.log_prior("unknownRelation", "Paris")  # the overall shape distribution
    assert prior.log_prior("genre", "Paris") < unseen < 0
    restored = ShapePrior.model_validate(prior.model_dump())
    assert restored.log_prior("birthPlace", "Paris") == prior.log_prior("birthPlace", "Paris")


def _calibration(threshold, features=("entailment",), weights=(10.0,), bias=-5.0):
    return Calibration(features=list(features), weights=list(weights), bias=bias, threshold=threshold, fitted_on="hand-made")


def test_calibrated_probabilities_are_a_sigmoid_over_the_named_columns():
    calibration = _calibration(0.5, features=("graph", "entailment"), weights=(2.0, 10.0), bias=-5.0)
    features = group_features([0.5, 0.8], [1, 1], [False, True])
    expected = 1 / (1 + np.exp(-np.array([10 * 0.5 - 5, 2 + 10 * 0.8 - 5])))
    assert calibration.probabilities(features) == pytest.approx(expected)


def test_a_calibrated_completion_decision_flips_with_its_threshold():
    premises = ["Inception is a Thriller.", "Inception is a Science fiction film, not a Thriller.", "Science fiction is a genre."]
    kwargs = {"premises": premises, "use_ner": False, "graph_objects": ["Thriller", "Comedy"], "llm_objects": ["Science fiction"]}

    def decisions(threshold):
        v = validator(premises, thresholds=Thresholds(default=0.99, calibration=_calibration(threshold)))
        return {c.text: d for c, d in v.complete("Inception", "/film/film/genre", **kwargs)}

    # Thriller: overlap 1.0 with premises 1 and 2 -> p = sigmoid(5) = 0.993; Science fiction: 1.0 too
    low = decisions(0.5)
    thriller = low["Thriller"]
    assert thriller.entailed and thriller.score == 1.0 and thriller.threshold == 0.5  # score stays the entailment score
    assert thriller.reason == "calibrated 0.99 >= 0.50: entailment 1.00 from 2 premises, rank 1 of 2, graph-known object"
    assert "object not proposed by the graph" in low["Science fiction"].reason  # the LLM proposed it, not the graph
    high = decisions(0.995)
    assert not high["Thriller"].entailed and high["Thriller"].score == 1.0
    assert high["Thriller"].reason.startswith("not entailed (calibrated 0.99 < 0.99")  # 0.9933 < 0.995
    # the per-relation thresholds (default 0.99) would have kept it: the calibration decided
    by_thresholds = validator(premises, thresholds=Thresholds(default=0.99)).complete("Inception", "/film/film/genre", **kwargs)
    assert {c.text: d.entailed for c, d in by_thresholds}["Thriller"]


def test_a_calibration_with_a_shape_prior_prefers_objects_shaped_like_the_relations_objects():
    premises = ["Inception was released in 2010 and is a Thriller."]
    kwargs = {"premises": premises, "use_ner": False, "graph_objects": ["Thriller", "2010"]}
    prior = ShapePrior.from_triples([("/film/film/genre", "Comedy")] * 20 + [("/film/film/genre", "1999")])
    # only the shape prior speaks: P = sigmoid(2 * log prior + 3)
    shaped = Calibration(features=["shape_prior"], weights=[2.0], bias=3.0, threshold=0.5, shape_prior=prior)
    v = validator(premises, thresholds=Thresholds(default=0.99, calibration=shaped))
    decided = {c.text: d.entailed for c, d in v.complete("Inception", "/film/film/genre", **kwargs)}
    assert decided == {"Thriller": True, "2010": False}
    with pytest.raises(ValueError, match="shape_prior counts"):
        Calibration(features=["shape_prior"], weights=[1.0], bias=0.0, threshold=0.5)


def test_validate_decides_llm_triples_by_the_thresholds_even_when_a_calibration_is_present(tiny_store):
    # a lone LLM triple is "rank 1, gap 0" by construction; a calibration that accepts everything
    # must not let a weak entailment score through on the fallback path
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"), ("Memento", "genre", "Romance film"))
    accept_all = _calibration(0.0, features=("entailment", "graph"), weights=(4.0, 3.0), bias=3.0)
    v = validator(thresholds=Thresholds(default=0.0, relations={"/film/film/genre": 0.95}, calibration=accept_all), store=tiny_store)
    thriller, romance = v.validate(result.triples)
    assert thriller.entailed and thriller.threshold == 0.95
    assert not romance.entailed and romance.reason == "not entailed (best score 0.500 < threshold 0.950)"


def test_calibrated_decision_keeps_the_evidence_rule(tiny_store):
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"))
    scorer = WordOverlapScorer()
    v = validator([], scorer=scorer, thresholds=Thresholds(calibration=_calibration(0.0)), store=tiny_store)
    (decision,) = v.validate(result.triples)
    assert decision.decision == "not_entailed" and decision.reason == NO_EVIDENCE and decision.score == 0.0 and scorer.calls == 0


def test_a_thresholds_file_without_calibration_decides_exactly_as_before(tiny_store, tmp_path):
    legacy = {"default": 0.1, "relations": {"/film/film/genre": 0.95}, "hypotheses": "natural", "model": "overlap"}
    (tmp_path / "t.json").write_text(json.dumps(legacy))
    loaded = load_thresholds(tmp_path / "t.json")
    assert loaded.calibration is None
    result = fallback_result(tiny_store, ("Memento", "genre", "Thriller"), ("Memento", "genre", "Romance film"))
    v = validator(thresholds=loaded, store=tiny_store)
    decisions = v.validate(result.triples)
    assert [d.entailed for d in decisions] == [True, False]
    assert [d.reason for d in decisions] == ["entailed by premise 1 (score 1.000 >= threshold 0.950)",
                                             "not entailed (best score 0.500 < threshold 0.950)"]  # fmt: skip
    premises = [PREMISES[0]]
    one_by_one = [v.decide("/film/film/genre", d.hypothesis, premises, np.array(d.premise_scores)) for d in decisions]
    assert [d.model_dump() for d in decisions] == [d.model_dump() for d in one_by_one]
    assert load_thresholds(write_thresholds(loaded, tmp_path / "again.json")) == loaded  # writes "calibration": null, reads it back


@pytest.mark.parametrize(
    ("calibration", "message"),
    [
        ({"features": ["entailment"], "weights": [1.0, 2.0], "bias": 0.0, "threshold": 0.5}, "2 weights for 1 features"),
        ({"features": ["entailment", "vibes"], "weights": [1.0, 2.0], "bias": 0.0, "threshold": 0.5}, "unknown calibration features"),
        ({"features": ["entailment"], "weights": [1.0], "bias": 0.0, "threshold": 1.5}, "threshold"),
        ({"features": ["entailment"], "weights": [1.0], "threshold": 0.5}, "bias"),
        ({"features": ["entailment"], "weights": [1.0], "bias": 0.0, "threshold": 0.5, "slope": 2}, "slope"),
        ({"features": [], "weights": [], "bias": 0.0, "threshold": 0.5}, "at least one"),
        ("not an object", "calibration"),
    ],
)
def test_a_malformed_calibration_is_a_data_format_error(tmp_path, calibration, message):
    (tmp_path / "t.json").write_text(json.dumps({"default": 0.5, "calibration": calibration}))
    with pytest.raises(DataFormatError, match=r"t.json: malformed calibration in the thresholds file(.|\n)*" + message):
        load_thresholds(tmp_path / "t.json")
