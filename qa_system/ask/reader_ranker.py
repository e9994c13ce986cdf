"""``AnswerRanker`` backed by the trained reader (MiniLM x HittER): batching, the question's
encoder pass started ahead, the answer reranker, and the reader's relation probabilities for the
evidence order."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qa_system.ask.reader_loading import AnswerBias
    from qa_system.ask.reranking import CandidateReranker

log = logging.getLogger(__name__)


class ReaderRanker:
    """``AnswerRanker`` backed by the trained reader (MiniLM x HittER)."""

    def __init__(
        self, reader: Any, tokenizer: Any, entity_index: dict[str, int], relations: Sequence[str] = (), *,
        answer_bias: AnswerBias | None = None, reranker: CandidateReranker | None = None,
    ) -> None:
        self.reader = reader.eval()
        self.tokenizer = tokenizer
        self.entity_index = entity_index
        self.relations = list(relations)  # the reader's relation vocabulary (to name its predictions)
        # extra candidate scores (the question/answer text match, ``retrievers.answer_text``); None = the reader alone
        self.answer_bias = answer_bias
        # the second stage (``reranking``): a cross-encoder re-reads the top candidates; None = the reader's order
        self.reranker = reranker

    def rank(self, question: str, context: Any) -> list[tuple[str, float]]:
        return self.rank_many([(question, context)])[0]

    def encode_ahead(self, question: str) -> None:
        """Start the reader's pass over ``question`` alone, to be taken by the next ``rank`` of it
        (``models.onnx_encoder.OnnxBertEncoder.encode_ahead``: it runs while the question is
        linked); nothing when the reader's encoder is PyTorch's."""

        from qa_system.ask.reader_features import tokenize_questions

        encoder = getattr(self.reader, "encoder", None)
        if not hasattr(encoder, "encode_ahead"):
            return
        try:
            batch = tokenize_questions([question], self.tokenizer)  # as the reader's batch will be (``collate``)
            encoder.encode_ahead(batch["input_ids"], batch["attention_mask"])
        except Exception as e:  # noqa: BLE001 - only a head start: rank encodes the question itself
            log.debug("could not start the reader's question pass ahead: %s", e)

    def rank_many(self, items: Sequence[tuple[str, Any]], batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """Rankings of (question, retrieved context) pairs; each context learns the reader's
        relation probabilities (to put the fact behind the answer first in the evidence)."""

        from qa_system.ask.reader_features import ReaderFeatures

        features = [
            ReaderFeatures(
                example_id="ask",
                question=question,
                topic=context.topics[0],
                topic_index=context.topic_index,
                neighbour_pairs=context.neighbour_pairs,
                candidates=context.candidates,
                candidate_indices=context.candidate_indices,
                answers=set(),
                relation_labels=[],
                candidate_relations=context.candidate_relations,
            )
            for question, context in items
        ]
        ranked, relation_probs = self.rank_features(features, batch_size=batch_size)
        if self.relations:
            count = len(self.relations)
            for (_, context), probs in zip(items, relation_probs):
                top = torch_topk(probs, 8)
                context.relation_probs = {(self.relations[i % count], i < count): p for i, p in top if i < 2 * count}
        return ranked

    def rank_features(self, features: Sequence[Any], batch_size: int = 32) -> tuple[list[list[tuple[str, float]]], list[Any]]:
        """The reader (with the answer bias) then the reranker over ``ReaderFeatures``: what
        ``rank_many`` runs for the app, and what the evaluations run over their retrieved questions.
        Returns the rankings and each question's relation distribution."""

        from qa_system.ask.reader_loading import rank_with_relations

        ranked, relation_probs = rank_with_relations(self.reader, features, self.tokenizer, batch_size=batch_size, answer_bias=self.answer_bias)
        if self.reranker is not None:
            ranked = self.reranker.rerank_features(features, ranked)
        return ranked, relation_probs


def torch_topk(probs: Any, k: int) -> list[tuple[int, float]]:
    values, indices = probs.topk(min(k, probs.numel()))
    return [(int(i), float(v)) for v, i in zip(values.tolist(), indices.tolist())]
