"""The ask pipeline's last step: when the graph is not sure, ask the LLM and validate what it claims.

Why a separate step: the pipeline (link → retrieve → read) is fast and deterministic; this step is
slow (an LLM call, entailment over premises) and writes to the graph (entailed triples as
``proposed``). Keeping it apart lets the app run it outside the reader's lock, the evaluation skip
it, and tests swap its parts.

The product rule holds here: an LLM triple enters the graph only when the validator says it is
entailed, and then only as ``proposed`` (``review.record_decisions``). With no validator (the
entailment model is not available), every triple goes to the rejected log with that reason.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from qa_system.background import run_in_background
from qa_system.errors import QAError
from qa_system.fallback.answer import (
    FallbackResult,
    GraphContext,
    ProposedTriple,
    merge_into_answer,
)
from qa_system.maintain.review import ValidationDecision, record_decisions
from qa_system.types import Answer, FallbackSummary

log = logging.getLogger(__name__)

FALLBACK_SOURCES = ("graph-unsure", "none")  # the answers the graph is not sure of


class TripleValidator(Protocol):
    """Entailment check of proposed triples (``qa_system.fallback.validation.TripleValidator``)."""

    def validate(self, triples: Sequence[ProposedTriple]) -> list[ValidationDecision]: ...


class LLMAsker(Protocol):
    def ask(self, question: str, context: GraphContext | None = None) -> FallbackResult: ...


def unvalidated(triples: Sequence[ProposedTriple], reason: str) -> list[ValidationDecision]:
    """Decisions that keep every triple out of the graph (logged as rejected with ``reason``)."""

    return [ValidationDecision(decision="not_entailed", score=0.0, reason=reason) for _ in triples]


def _norm(text: str) -> str:
    """Lower case, punctuation as spaces: "Nolan," and "Nolan" compare equal."""

    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def supports(triple: ProposedTriple, answer_text: str, topics: Sequence[str] = ()) -> bool:
    """Whether a triple backs the answer: one of its ends, other than the question's topic
    entities, is the answer or is named in it (small LLMs answer in a sentence: "The director of
    Inception is Christopher Nolan, ...")."""

    answer = _norm(answer_text)
    skip = {_norm(t) for t in topics}
    ends = {_norm(t) for t in (triple.subject_name, triple.object_name, triple.subject_text, triple.object_text)} - skip
    return bool(answer) and any(end == answer or (len(end) >= 3 and f" {end} " in f" {answer} ") for end in ends if end)


class FallbackStep:
    """``answer -> answer``: unchanged when the graph is sure; else the LLM's answer, validated.

    ``workspace`` holds the review files (rejected log). ``validator`` None means no entailment
    model: the LLM answer is shown as unvalidated and none of its triples is inserted.
    """

    def __init__(self, fallback: LLMAsker, store: Any, workspace: Path, *, validator: TripleValidator | None = None) -> None:
        self.fallback = fallback
        self.store = store
        self.workspace = Path(workspace)
        self.validator = validator

    def needed(self, answer: Answer) -> bool:
        return answer.source in FALLBACK_SOURCES

    def __call__(self, answer: Answer) -> Answer:
        if not self.needed(answer):
            return answer
        result = self.fallback.ask(answer.question, GraphContext.from_answer(answer))
        summary = FallbackSummary(status=result.status, model=result.model, endpoint=result.endpoint,
                                  llm_answer=result.answer, latency_s=round(result.latency_s, 3))
        if result.status == "unavailable" or not result.answer:
            merged = merge_into_answer(result, answer, self.store)
            return merged.model_copy(update={"fallback": summary})
        decisions = self._validate(result)
        report = record_decisions(self.store, self.workspace, result, list(zip(result.triples, decisions)))
        summary.proposed, summary.rejected = list(report.inserted), len(report.rejected)
        summary.decisions = [
            {"triple": t.verbalised, "decision": d.decision, "score": round(d.score, 4), "reason": d.reason,
             "premises": d.premises[:3]}
            for t, d in zip(result.triples, decisions)
        ]
        merged = merge_into_answer(result, answer, self.store)
        answer_name = merged.answer.name if merged.answer else result.answer
        topics = [t.name for t in answer.topic_entities]
        validated = any(d.entailed and supports(t, answer_name, topics) for t, d in zip(result.triples, decisions))
        evidence = list(answer.evidence) + self._proposed_views(report.inserted)
        message = merged.message + (
            f"; {len(report.inserted)} triple(s) passed entailment and await review" if report.inserted else
            "; no triple passed entailment" if result.triples else "")
        return merged.model_copy(update={"validated": validated, "fallback": summary, "evidence": evidence, "message": message})

    def _validate(self, result: FallbackResult) -> list[ValidationDecision]:
        if not result.triples:
            return []
        if self.validator is None:
            return unvalidated(result.triples, "no entailment model available: not validated")
        try:
            decisions = self.validator.validate(result.triples)
        except QAError as e:  # a broken index or model must not lose the answer; nothing is inserted
            log.warning("validation failed: %s", e)
            return unvalidated(result.triples, f"validation failed: {e}")
        if len(decisions) != len(result.triples):
            raise ValueError(f"validator returned {len(decisions)} decisions for {len(result.triples)} triples")
        return decisions

    def _proposed_views(self, fact_ids: Sequence[str]) -> list[Any]:
        views = []
        for fid in fact_ids:
            try:
                views.append(self.store.get_fact(fid))
            except QAError:
                continue
        return views


def default_validator(settings: Any, store: Any) -> TripleValidator | None:
    """The shipped entailment validator, or None (logged) when its model cannot be loaded."""

    from qa_system.fallback.validation import default_validator as shipped_validator

    try:
        return shipped_validator(settings, store)
    except QAError as e:
        log.warning("the entailment validator could not be loaded (%s): LLM triples will not be inserted", e)
        return None


def warm_up_in_background(validator: Any) -> threading.Thread | None:
    """Bring the validator's passage index up to date in a daemon thread (the app: embedding the
    graph's entity descriptions takes minutes on CPU once; the first unsure question should not
    pay for it). Searches made meanwhile wait for the index under its lock."""

    retriever = getattr(validator, "retriever", None)
    if retriever is None or not hasattr(retriever, "refresh"):
        return None

    def refresh() -> None:
        retriever.refresh()
        log.info("passage index ready for validation")

    return run_in_background(refresh, name="passage-index", failure="warming up the passage index failed")


def build_fallback_step(
    settings: Any, store: Any, *, validator: TripleValidator | None | str = "default", warm_up: bool = False
) -> FallbackStep:
    """The LLM fallback on the configured endpoint (or the embedded SmolLM2, started on first use)
    with the default validator. Nothing connects here: the LLM is reached on the first question.
    ``warm_up``: build the validator's passage index in the background now (``serve``)."""

    from qa_system.fallback.answer import LLMFallback
    from qa_system.fallback.llm import LLMClient

    if validator == "default":
        validator = default_validator(settings, store)
    if warm_up and validator is not None:
        warm_up_in_background(validator)
    return FallbackStep(LLMFallback(LLMClient(settings), store), store, settings.workspace, validator=validator)  # type: ignore[arg-type]
