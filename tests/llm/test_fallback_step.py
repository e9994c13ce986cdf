"""The pipeline's fallback step on the real embedded store: LLM answer, validation, insertion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_system.ask.pipeline import AskPipeline
from qa_system.ask.stages import OneAtATimeRanker
from qa_system.errors import GraphError, LLMUnavailableError
from qa_system.fallback.answer import LLMFallback
from qa_system.fallback.step import FallbackStep
from qa_system.maintain.review import ValidationDecision, rejected_log
from qa_system.types import Answer, FactStatus, RankedEntity
from tests.llm.conftest import ScriptedClient

REPLY = json.dumps({
    "answer": "Christopher Nolan",
    "triples": [
        {"subject": "Christopher Nolan", "relation": "nationality", "object": "Canada"},
        {"subject": "Inception", "relation": "directed by", "object": "Christopher Nolan"},  # already in the graph
        {"subject": "Titanic", "relation": "genre", "object": "Science fiction"},
    ],
})


class ScriptedValidator:
    """Entails the triples whose hypothesis contains one of ``entail`` (a stand-in for the model)."""

    def __init__(self, *entail: str) -> None:
        self.entail = entail
        self.seen: list[str] = []

    def validate(self, triples):
        out = []
        for t in triples:
            self.seen.append(t.verbalised)
            yes = any(word in t.verbalised for word in self.entail)
            out.append(ValidationDecision(decision="entailed" if yes else "not_entailed", score=0.9 if yes else 0.1,
                                          premises=["Inception was directed by Christopher Nolan."], threshold=0.5,
                                          model="fake-nli", version="0"))
        return out


def unsure(question: str = "Who directed Inception?") -> Answer:
    return Answer(question=question, source="graph-unsure", confidence=0.3,
                  answer=RankedEntity(id="/m/cameron", name="James Cameron", confidence=0.3),
                  topic_entities=[RankedEntity(id="/m/inception", name="Inception", confidence=0.9)])


@pytest.fixture()
def workspace(tiny_store) -> Path:
    return Path(tiny_store.db_path).parent.parent


def step(store, workspace, reply=REPLY, validator=None) -> FallbackStep:
    return FallbackStep(LLMFallback(ScriptedClient([reply]), store), store, workspace, validator=validator)


def test_sure_graph_answer_is_untouched(tiny_store, workspace):
    client = ScriptedClient([REPLY])
    sure = unsure().model_copy(update={"source": "graph", "confidence": 0.9})
    assert FallbackStep(LLMFallback(client, tiny_store), tiny_store, workspace)(sure) is sure
    assert client.calls == []


def test_entailed_triple_is_proposed_and_validates_the_answer(tiny_store, workspace):
    answer = step(tiny_store, workspace, validator=ScriptedValidator("Canada"))(unsure())
    assert answer.source == "llm" and answer.answer.name == "Christopher Nolan"
    assert answer.validated is True  # the entailed triple names the answer
    assert answer.fallback.status == "ok" and len(answer.fallback.proposed) == 1 and answer.fallback.rejected == 2
    proposed = tiny_store.get_fact(answer.fallback.proposed[0])
    assert proposed.status == FactStatus.PROPOSED and proposed.object == "/m/canada"
    assert proposed.provenance.question == "Who directed Inception?"
    # the proposed fact is shown, marked by its status
    assert [f.id for f in answer.evidence if f.status == FactStatus.PROPOSED] == answer.fallback.proposed
    rejected = rejected_log(workspace)
    assert len(rejected) == 2 and "/m/canada" not in [r["triple"]["object"] for r in rejected]


def test_entailed_triple_already_in_the_graph_validates_without_inserting(tiny_store, workspace):
    before = tiny_store.stats().facts
    answer = step(tiny_store, workspace, validator=ScriptedValidator("Inception"))(unsure())
    assert answer.validated is True and answer.fallback.proposed == []
    assert tiny_store.stats().facts == before


def test_answer_not_validated_when_only_an_unrelated_triple_passes(tiny_store, workspace):
    answer = step(tiny_store, workspace, validator=ScriptedValidator("Titanic"))(unsure())
    assert answer.source == "llm" and answer.validated is False
    assert len(answer.fallback.proposed) == 1


def test_no_validator_inserts_nothing(tiny_store, workspace):
    before = tiny_store.stats().facts
    answer = step(tiny_store, workspace, validator=None)(unsure())
    assert answer.source == "llm" and answer.validated is False
    assert answer.fallback.proposed == [] and answer.fallback.rejected == 3
    assert tiny_store.stats().facts == before
    reasons = [r.get("reason", "") for r in rejected_log(workspace)]
    assert all("no entailment model" in r for r in reasons)


def test_llm_down_keeps_the_graph_answer(tiny_store, workspace):
    answer = step(tiny_store, workspace, reply=LLMUnavailableError("connection refused"))(unsure())
    assert answer.source == "graph-unsure" and answer.answer.name == "James Cameron"
    assert "unavailable" in answer.message and answer.fallback.status == "unavailable"


def test_garbage_reply_proposes_nothing(tiny_store, workspace):
    before = tiny_store.stats().facts
    answer = step(tiny_store, workspace, reply="I think it was maybe Nolan??", validator=ScriptedValidator("Nolan"))(unsure())
    assert answer.fallback.status == "parse_error" and answer.fallback.proposed == []
    assert tiny_store.stats().facts == before


class _Linker:
    def link(self, text, top_k=3):
        return []


def test_pipeline_calls_the_fallback_for_unknown_topics_and_survives_its_failure(tiny_store):
    calls = []

    def fallback(answer: Answer) -> Answer:
        calls.append(answer.question)
        return answer.model_copy(update={"source": "llm", "message": "from the LLM"})

    pipeline = AskPipeline(tiny_store, _Linker(), retriever=None, ranker=OneAtATimeRanker(), fallback=fallback)  # type: ignore[arg-type]
    assert pipeline.ask("Who is Zorblax?").source == "llm" and calls == ["Who is Zorblax?"]

    def broken(answer: Answer) -> Answer:
        raise GraphError("database unreachable")

    pipeline.fallback = broken
    answer = pipeline.ask("Who is Zorblax?")
    assert answer.source == "none" and "database unreachable" in answer.message


def test_app_shows_each_llm_claim_with_its_entailment_decision(tiny_store, workspace):
    from ui.ask_tab import answer_html, source_key

    answer = step(tiny_store, workspace, validator=ScriptedValidator("Canada"))(unsure())
    page = answer_html(answer)
    assert source_key(answer) == "llm-validated"
    assert "✓ entailed" in page and "✗ not entailed" in page and "1 proposed for review" in page
    assert source_key(step(tiny_store, workspace, validator=None)(unsure())) == "llm-unvalidated"


def test_pipeline_can_defer_the_fallback_to_the_caller(tiny_store):
    pipeline = AskPipeline(tiny_store, _Linker(), retriever=None, ranker=OneAtATimeRanker(),  # type: ignore[arg-type]
                           fallback=lambda a: a.model_copy(update={"source": "llm"}))
    graph_only = pipeline.ask("Who is Zorblax?", fallback=False)
    assert graph_only.source == "none" and pipeline.wants_fallback(graph_only)
    assert pipeline.fall_back(graph_only).source == "llm"


def test_warm_up_refreshes_the_validators_index_in_the_background():
    from qa_system.fallback.step import warm_up_in_background

    class Retriever:
        refreshed = False

        def refresh(self):
            Retriever.refreshed = True

    class Validator:
        retriever = Retriever()

    thread = warm_up_in_background(Validator())
    assert thread is not None
    thread.join(10)
    assert Retriever.refreshed
    assert warm_up_in_background(object()) is None


def test_a_sentence_answer_is_supported_by_a_triple_naming_its_entity():
    from qa_system.fallback.answer import ProposedTriple
    from qa_system.fallback.step import supports

    triple = ProposedTriple(subject="/m/inception", relation="directed by", object="/m/nolan", subject_name="Inception",
                            object_name="Christopher Nolan", subject_text="Inception", relation_text="directed by",
                            object_text="Christopher Nolan")
    sentence = "The director of Inception is Christopher Nolan, a renowned filmmaker."
    assert supports(triple, sentence, topics=["Inception"])
    assert supports(triple, "Christopher Nolan")
    # only the topic is named: that does not back the answer
    assert not supports(triple, "Inception is a film by James Cameron.", topics=["Inception"])
    assert not supports(triple, "", topics=["Inception"])


def test_an_unloadable_entailment_model_means_no_validator(monkeypatch, tiny_store, workspace):
    from qa_system.config import load_settings
    from qa_system.errors import CheckpointError
    from qa_system.fallback import validation
    from qa_system.fallback.step import default_validator

    def missing(settings, store):
        raise CheckpointError("no entailment checkpoint")

    monkeypatch.setattr(validation, "default_validator", missing)
    assert default_validator(load_settings(workspace=workspace), tiny_store) is None
