"""The ask chain's stage contracts, and the one place its ranking stages are put together.

Why one place: ``AskPipeline`` (the CLI's ``ask``, the app, the API) and the evaluations that report
the README's numbers (``evaluate qa``, ``calibrate``, ``tune constraints``, the benchmarks) must rank
with the same stages in the same order — the reader with the question/answer text match, the answer
reranker, the question constraints, the calibrator. ``ranking_stages`` builds them from the reader's
card once; the pipeline drives them one question at a time, the evaluations in batches, so a new
stage is added here once and both see it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from qa_system.ask.constraints import QuestionConstraints
    from qa_system.ask.reader_ranker import ReaderRanker
    from retrievers.linking import LinkedEntity
    from retrievers.subgraph import RetrievedContext

Ranking = list[tuple[str, float]]
"""Candidates of one reading, best first: (entity id, probability)."""

Calibrator = Callable[[Sequence[float], int], float]
"""(top probabilities, number of candidates) -> P(the top answer is right)."""


class Linker(Protocol):
    """Finds the graph entities a question names, best first."""

    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]: ...


class Retriever(Protocol):
    """The neighbourhood of topic entities as the reader reads it."""

    def retrieve(self, topics: Sequence[str]) -> RetrievedContext: ...


class AnswerRanker(Protocol):
    """Scores the candidates of retrieved contexts, many (question, context) pairs at once."""

    def rank_many(self, items: Sequence[tuple[str, Any]]) -> list[Ranking]: ...

    def encode_ahead(self, question: str) -> None: ...


class OneAtATimeRanker:
    """Base for a ranker that scores one context at a time (rule-based or test rankers): batching
    and the head start become plain loops and no-ops."""

    def rank(self, question: str, context: Any) -> Ranking:
        raise NotImplementedError

    def rank_many(self, items: Sequence[tuple[str, Any]]) -> list[Ranking]:
        return [self.rank(question, context) for question, context in items]

    def encode_ahead(self, question: str) -> None:
        return None


@dataclass
class RankingStages:
    """The ranking stages of one reader checkpoint, in the order they run."""

    ranker: ReaderRanker  # the reader, with the text match as answer bias and the answer reranker
    constraints: QuestionConstraints | None  # the question's other named entities re-order the head
    calibrator: Calibrator | None  # None = the raw top probability
    text_weight: float  # the question/answer text match's weight (0 = off)

    def described(self, reranker_checkpoint: str = "shipped") -> dict[str, Any]:
        """What ranked (for evaluation records)."""

        reranker = self.ranker.reranker
        return {
            "answer_text_weight": self.text_weight,
            "reranker": None if reranker is None else {"top_k": reranker.reranker.top_k, "weight": reranker.reranker.weight,
                                                       "precision": reranker.reranker.precision, "checkpoint": reranker_checkpoint},
            "constraints": None if self.constraints is None else self.constraints.weights.to_dict(),
        }


def ranking_stages(
    card: dict[str, Any], store: Any, reader: Any, tokenizer: Any, entities: Sequence[str], relations: Sequence[str], *,
    rerank: bool = True, reranker_dir: Path | None = None, rerank_top_k: int | None = None, rerank_precision: str | None = None,
    text_match: bool = True, constraints: bool = True,
) -> RankingStages:
    """The stages a reader ``card`` asks for over ``store``: the answer reranker when one ships (or
    ``reranker_dir``) unless ``rerank=False``; the text match at the card's weight (the reranker's
    when one runs) unless ``text_match=False``; the card's constraint weights unless
    ``constraints=False``; the card's calibrator."""

    from qa_system.ask.calibration import calibrator_from_card
    from qa_system.ask.constraints import QuestionConstraints, weights_from_card
    from qa_system.ask.reader_ranker import ReaderRanker
    from qa_system.ask.reranking import reranker_for, text_match_card
    from retrievers.answer_text import CARD_KEY, matcher_from_card

    reranker = reranker_for(store, relations, reranker_dir, top_k=rerank_top_k, precision=rerank_precision) if rerank else None
    text_card = text_match_card(card, reranker)
    text_weight = float(text_card.get(CARD_KEY) or 0.0) if text_match else 0.0
    matcher = matcher_from_card({**text_card, CARD_KEY: text_weight}, store)  # None at weight 0
    weights = weights_from_card(card) if constraints else None
    entity_index = {e: i for i, e in enumerate(entities)}
    return RankingStages(
        ranker=ReaderRanker(reader, tokenizer, entity_index, relations, answer_bias=matcher, reranker=reranker),
        constraints=QuestionConstraints(store, weights) if weights else None,
        calibrator=calibrator_from_card(card),
        text_weight=text_weight,
    )
