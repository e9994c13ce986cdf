"""Choose the question-constraint weights (``qa_system.ask.constraints``) on dev.

Every grid point is scored by the questions it wins minus those it loses against the ranking
without constraints, summed over the dev groups (FreebaseQA and WebQSP dev, with the gold topic
and with predicted linking). The rule: the grid point with the largest net gain, ties to the
smaller weights; when no point gains, the weights stay off. A split-half check (choose on a
random half of the questions, count on the other) says how much of the gain survives choosing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qa_system.ask.constraints import (
    ConstraintWeights,
    adjacent_candidates,
    constrain,
    named_entities,
)

GRID: dict[str, tuple[float, ...]] = {
    "min_link_score": (0.05, 0.1, 0.2, 0.3),
    "adjacent": (0.0, 2.0, 4.0, 6.0, 8.0),
    "mentioned": (0.0, 2.0, 4.0, 8.0),
    "mention_min_score": (0.0, 0.05, 0.2),
    "link_top_k": (3, 5, 8),
}
HEAD = ConstraintWeights.head  # the head the app's constraints re-order (the dataclass default)


@dataclass
class DevQuestion:
    """One dev question as ranked without constraints, with what the constraints would read:
    its linked entities and the facts between its head candidates and every linked entity."""

    answers: set[str]
    ranked: list[tuple[str, float]]
    topic: str
    linked: Sequence[Any]
    facts: Sequence[Any] = field(default_factory=list)


def grid_points(grid: dict[str, tuple[float, ...]] = GRID) -> list[ConstraintWeights]:
    names = list(grid)
    return [ConstraintWeights(**dict(zip(names, values)), head=HEAD) for values in itertools.product(*grid.values())]


def outcome_matrix(questions: Sequence[DevQuestion], points: Sequence[ConstraintWeights]) -> np.ndarray:
    """[question, point]: +1 the point turns a wrong top answer right, -1 right to wrong, else 0."""

    out = np.zeros((len(questions), len(points)), dtype=np.int8)
    for q, question in enumerate(questions):
        if not question.ranked:
            continue
        before = question.ranked[0][0] in question.answers
        head = [c for c, _ in question.ranked[:HEAD]]
        memo: dict[tuple[float, float, int], tuple[set[str], frozenset[str]]] = {}
        for j, w in enumerate(points):
            key = (w.min_link_score, w.mention_min_score, w.link_top_k)
            if key not in memo:
                named = named_entities(question.linked, question.topic, w)
                memo[key] = (adjacent_candidates(question.facts, named.anchors, head), named.mentioned)
            adjacent, mentioned = memo[key]
            after = constrain(question.ranked, adjacent, mentioned, w)[0][0] in question.answers
            out[q, j] = int(after) - int(before)
    return out


def _best(gains: np.ndarray, points: Sequence[ConstraintWeights]) -> int:
    """Index of the largest net gain; ties to the smaller adjacent + mentioned, then grid order."""

    return min(range(len(points)), key=lambda j: (-int(gains[j]), points[j].adjacent + points[j].mentioned, j))


def choose_weights(groups: dict[str, Sequence[DevQuestion]], *, split_half_repeats: int = 20, seed: int = 0,
                   ) -> tuple[ConstraintWeights, dict[str, Any]]:
    """The weights by the rule above, and a report: per group Hits@1 before and after (over the
    group's questions with a ranking), the net gain, and the split-half check."""

    points = grid_points()
    names = list(groups)
    matrices = [outcome_matrix(groups[name], points) for name in names]
    total = sum(m.sum(axis=0) for m in matrices)
    best = _best(total, points)
    chosen = points[best] if total[best] > 0 else ConstraintWeights(head=HEAD)
    report: dict[str, Any] = {"grid": {k: list(v) for k, v in GRID.items()}, "net_gain": int(total[best]), "groups": {}}
    for name, matrix in zip(names, matrices):
        questions = groups[name]
        before = sum(1 for q in questions if q.ranked and q.ranked[0][0] in q.answers)
        gained = int(matrix[:, best].sum()) if total[best] > 0 else 0
        report["groups"][name] = {"questions": len(questions), "hits1_before": round(before / max(1, len(questions)), 4),
                                  "hits1_after": round((before + gained) / max(1, len(questions)), 4), "net_gain": gained,
                                  "won": int((matrix[:, best] > 0).sum()), "lost": int((matrix[:, best] < 0).sum())}
    report["split_half"] = split_half(np.concatenate(matrices), points, split_half_repeats, seed)
    return chosen, report


def split_half(matrix: np.ndarray, points: Sequence[ConstraintWeights], repeats: int, seed: int) -> dict[str, Any]:
    """Choose on a random half of the rows, count the choice's net gain on the other half."""

    if repeats <= 0 or len(matrix) < 2:
        return {"repeats": 0}
    rng = np.random.default_rng(seed)
    held_out = []
    for _ in range(repeats):
        order = rng.permutation(len(matrix))
        first, second = order[: len(order) // 2], order[len(order) // 2 :]
        j = _best(matrix[first].sum(axis=0), points)
        held_out.append(int(matrix[second, j].sum()))
    return {"repeats": repeats, "held_out_half_questions": int(len(matrix) - len(matrix) // 2),
            "held_out_net_gain": held_out, "mean": round(float(np.mean(held_out)), 2), "min": int(min(held_out))}
