"""The ranking's second stage: the answer reranker reads the reader's top candidates with the question.

Glue between the graph and ``models.answer_reranker``: it builds each top candidate's passage from
the store (name and description of candidate and topic, via ``retrievers.answer_text.store_texts``,
one parameterised read per question) and the relations linking topic and candidate in the
retrieved context, then re-orders the reader's ranking. The same passages are built for training
(``training.answer_reranker.rerank_groups``), so the model is scored on what it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qa_system.errors import InputError
from qa_system.models.answer_reranker import AnswerReranker, candidate_passage, read_count, rerank

Texts = Callable[[Sequence[str]], Mapping[str, str]]  # entity ids -> "name: description"


def top_passages(texts: Texts, relation_names: Sequence[str], topic: str, candidates: Sequence[str],
                 candidate_relations: Sequence[Sequence[int]] | None, top: Sequence[str]) -> list[str]:
    """The passage of each entity in ``top`` (ids among ``candidates``), in order.

    ``candidate_relations[i]`` are the reciprocal relation ids linking the topic to ``candidates[i]``;
    ``relation_names`` names the reader's 2R ids (``training.reader.relation_texts``)."""

    found = texts([*top, topic])
    relations = dict(zip(candidates, candidate_relations or [[] for _ in candidates]))
    return [candidate_passage(found.get(c, c), [relation_names[r] for r in relations.get(c, []) if 0 <= r < len(relation_names)],
                              found.get(topic, "")) for c in top]


class CandidateReranker:
    """Re-orders a reader ranking with the answer reranker (its card's ``top_k``, narrowed by its
    ``read_within``, and ``weight``); leaves it as it is when the reader's p(top) reaches the card's
    ``skip_above``."""

    def __init__(self, reranker: AnswerReranker, texts: Texts, relation_names: Sequence[str]) -> None:
        self.reranker = reranker
        self.texts = texts
        self.relation_names = list(relation_names)

    def __call__(self, question: str, topic: str, candidates: Sequence[str], candidate_relations: Sequence[Sequence[int]] | None,
                 ranking: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
        head = ranking[: self.reranker.top_k]
        count = read_count([math.log(max(p, 1e-30)) for _, p in head], self.reranker.top_k, self.reranker.read_within)
        top = [c for c, _ in head[:count]]
        skip = self.reranker.skip_above
        if len(top) < 2 or (skip is not None and ranking[0][1] >= skip):  # too few, or the reader is sure enough
            return list(ranking)
        passages = top_passages(self.texts, self.relation_names, topic, candidates, candidate_relations, top)
        return rerank(ranking, self.reranker.scores(question, passages), self.reranker.weight)

    def rerank_features(self, features: Iterable[Any], rankings: Sequence[Sequence[tuple[str, float]]]) -> list[list[tuple[str, float]]]:
        """Each reader ranking re-ordered, from the reader's inputs (``ReaderFeatures``: question,
        topic, candidates and the relations linking them), in order; the app and the evaluation both
        rerank through here."""

        return [self(f.question, f.topic, f.candidates, f.candidate_relations, r) for f, r in zip(features, rankings)]


def reranker_for(store: Any, relations: Sequence[str], folder: Path | None = None, top_k: int | None = None,
                 precision: str | None = None) -> CandidateReranker | None:
    """The shipped (or ``folder``'s) reranker over ``store``; None when no checkpoint is there (the
    reader's ranking is then used as it is). ``top_k`` overrides the card's number of candidates
    read (fewer: faster, see ``evaluation.bench_ask``); ``precision`` the card's (``float32``,
    ``bfloat16`` or ``int8``, ``models.precision``)."""

    from qa_system.ask.reader_loading import relation_texts
    from qa_system.models.answer_reranker import CARD, load_reranker, shipped_checkpoint
    from retrievers.answer_text import store_texts

    folder = Path(folder) if folder is not None else shipped_checkpoint()
    if not (folder / CARD).is_file():
        return None
    if precision is not None:
        from qa_system.models.precision import check_precision

        try:
            check_precision(precision)
        except ValueError as e:
            raise InputError(f"reranker {e}") from e
    reranker = load_reranker(folder, precision=precision)
    if top_k is not None:
        if top_k < 1:
            raise InputError(f"the reranker's top_k must be >= 1; got {top_k}")
        reranker.top_k = int(top_k)
    return CandidateReranker(reranker, store_texts(store), relation_texts(relations))


def text_match_card(reader_card: Mapping[str, Any], reranker: CandidateReranker | None) -> dict[str, Any]:
    """The reader card as the question/answer text match (``retrievers.answer_text``) should read it:
    with a reranker, the text-match weight the reranker was tuned with (its card's
    ``answer_text_weight``, 0 when it names none) replaces the reader's."""

    from retrievers.answer_text import CARD_KEY

    card = dict(reader_card)
    if reranker is not None:
        card[CARD_KEY] = float(reranker.reranker.card.get(CARD_KEY) or 0.0)
    return card
