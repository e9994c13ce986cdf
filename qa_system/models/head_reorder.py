"""Re-ordering the head of a ranking by new scores, shared by the second stages that do it (the
answer reranker, ``models.answer_reranker.rerank``, and the question constraints,
``constraints.constrain``): one place for how the new order and probabilities are formed, so the
confidence calibration reads every stage's output the same way."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def log_probabilities(ranking: Sequence[tuple[str, float]]) -> np.ndarray:
    """Log of each ``(entity id, probability)``'s probability, floored at 1e-30."""

    return np.log(np.clip([p for _, p in ranking], 1e-30, None))


def reorder_head(ranking: Sequence[tuple[str, float]], head_scores: Sequence[float], log_probs: np.ndarray) -> list[tuple[str, float]]:
    """The first ``len(head_scores)`` entries sorted by those scores (stable), the rest in their
    place below them with their own ``log_probs``; probabilities are the softmax of the new scores
    over the whole ranking."""

    k = len(head_scores)
    scores = np.concatenate([np.asarray(head_scores, dtype=float), log_probs[k:]])
    order = list(np.argsort(-scores[:k], kind="stable")) + list(range(k, len(ranking)))
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    return [(ranking[i][0], float(probs[i])) for i in order]
