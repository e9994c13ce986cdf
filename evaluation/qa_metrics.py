"""QA metrics over ranked answer lists: Hits@k (the top answer is one of the gold answers) and
answer-set F1 (the predicted set is the top answer, as in HittER's and GNN-RAG's Hits@1 setting;
F1 then rewards the single prediction against the gold set)."""

from __future__ import annotations

from collections.abc import Sequence


def hits_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    return 1.0 if gold and any(r in gold for r in ranked[:k]) else 0.0


def answer_f1(predicted: set[str], gold: set[str]) -> float:
    if not predicted or not gold:
        return 0.0
    overlap = len(predicted & gold)
    if not overlap:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def summarise(rankings: Sequence[Sequence[str]], golds: Sequence[set[str]], total: int | None = None) -> dict[str, float]:
    """Mean metrics; ``total`` > len(rankings) counts the missing questions (unanswerable) as wrong."""

    n = total if total is not None else len(rankings)
    if n == 0:
        return {"hits@1": 0.0, "hits@5": 0.0, "f1": 0.0, "questions": 0}
    h1 = sum(hits_at(r, g, 1) for r, g in zip(rankings, golds))
    h5 = sum(hits_at(r, g, 5) for r, g in zip(rankings, golds))
    f1 = sum(answer_f1(set(r[:1]), g) for r, g in zip(rankings, golds))
    return {"hits@1": h1 / n, "hits@5": h5 / n, "f1": f1 / n, "questions": n}
