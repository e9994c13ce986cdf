"""Choosing which linked topic to answer from, when several are read.

Why: the linker's first entity is the gold topic for 67% of FreebaseQA dev questions, and one of
its first three for 88% (WebQSP: 87% and 93%); a question about the wrong topic is answered wrongly
however well the reader reads. Reading each of the top ``k`` linked entities' neighbourhoods on its
own (the reader was trained on one topic) and keeping the answer with the best

    link_weight * log(link score) + log(answer confidence)

lets a confident answer about the second entity beat an unsure one about the first. The score
needs both terms: with ``link_weight`` 0 (the confidence alone) FreebaseQA dev Hits@1 fell from
44.7 to 41.1 at k=3; at 2 it rose to 48.3 (WebQSP dev unchanged, 49.4). It costs a reading per
extra topic, so ``ask`` reads one topic unless ``PipelineConfig.read_topics`` says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DEFAULT_LINK_WEIGHT = 2.0  # chosen on FreebaseQA + WebQSP dev among 0, 0.5, 1, 2, 4 (k = 2, 3)
_FLOOR = 1e-6


def reading_score(link_score: float, confidence: float, link_weight: float = DEFAULT_LINK_WEIGHT) -> float:
    """How much to trust one topic's answer: ``link_weight * log(link) + log(confidence)``."""

    if link_weight < 0:
        raise ValueError(f"link_weight must be >= 0, got {link_weight}")
    return link_weight * math.log(max(float(link_score), _FLOOR)) + math.log(max(float(confidence), _FLOOR))


def choose_reading(readings: Sequence[tuple[float, float]], link_weight: float = DEFAULT_LINK_WEIGHT) -> int:
    """Index of the best (link score, answer confidence) pair; the first wins ties (the linker's
    order). Raises ``ValueError`` on an empty list."""

    if not readings:
        raise ValueError("no reading to choose from")
    scores = [reading_score(link, confidence, link_weight) for link, confidence in readings]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def choose_per_question(questions: Sequence[Any], readings: Sequence[Any], rankings: Sequence[Any], link_scores: Sequence[float],
                        confidences: Sequence[float]) -> tuple[list[Any], list[Any]]:
    """The evaluation's twin of ``ask``'s choice: ``readings`` (each with the ``example_id`` of its
    question, in link order per question) with their rankings, link scores and confidences, cut to
    the one reading per question that :func:`choose_reading` picks, in the order of ``questions``
    (each with an ``id``); a question with no reading is left out."""

    by_question: dict[str, list[int]] = {}
    for i, reading in enumerate(readings):
        by_question.setdefault(reading.example_id, []).append(i)
    chosen = []
    for question in questions:
        rows = by_question.get(question.id)
        if rows:
            chosen.append(rows[choose_reading([(link_scores[i], confidences[i]) for i in rows])])
    return [readings[i] for i in chosen], [rankings[i] for i in chosen]
