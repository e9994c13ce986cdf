"""Relation-choice questions: FreebaseQA/WebQSP questions with their gold topic's 1-hop relations.

The data and the metric of the relation scorer, shared by its training (dev selection) and by the
benchmark (``evaluation.relation_scorer_eval``): a question's candidates are the gold topic's
(relation, direction)s in the FB15k-237 demo graph; a positive links the topic to a gold answer.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from qa_system.models.relation_scorer import RelationScorer

DATASETS = ("freebaseqa", "webqsp")


@dataclass(frozen=True)
class RelationExample:
    id: str
    dataset: str
    question: str
    topic_name: str
    candidates: tuple[tuple[str, bool], ...]  # the topic's (relation, topic_is_subject), sorted
    positives: frozenset[tuple[str, bool]]  # those reaching a gold answer (may be empty)


def held_out(relation: str) -> bool:
    """The deterministic held-out third: sha1(relation id) mod 3 == 0."""

    return int(hashlib.sha1(relation.encode("utf-8")).hexdigest()[:8], 16) % 3 == 0


@lru_cache(maxsize=1)
def demo_graph() -> tuple[dict[str, set[tuple[str, bool, str]]], dict[str, str]]:
    """Adjacency of the FB15k-237 demo graph (all splits): entity → {(relation, is_subject, other)}; names."""

    from graph.kg_files import load_kg

    kg = load_kg("demo")
    adjacency: dict[str, set[tuple[str, bool, str]]] = defaultdict(set)
    for _split, (head, relation, tail) in kg.all_triples():
        adjacency[head].add((relation, True, tail))
        adjacency[tail].add((relation, False, head))
    return dict(adjacency), kg.entity_names


def build_examples(datasets: Iterable[str], split: str, *, data_dir: Path | None = None) -> list[RelationExample]:
    from evaluation.qa_data import load_qa

    adjacency, names = demo_graph()
    out = []
    for dataset in datasets:
        for example in load_qa(dataset, split, "filtered", data_dir=data_dir):
            if not example.topic_ids:
                continue
            topic = example.topic_ids[0]
            facts = adjacency.get(topic, set())
            answers = set(example.answer_ids)
            candidates = tuple(sorted({(r, d) for r, d, _ in facts}))
            positives = frozenset((r, d) for r, d, other in facts if other in answers)
            out.append(RelationExample(example.id, dataset, example.question, names.get(topic, ""), candidates, positives))
    return out


def restrict(examples: Sequence[RelationExample], *, holdout_third: bool) -> list[RelationExample]:
    """Training view: questions with a positive; with ``holdout_third``, drop questions with a
    held-out gold relation and remove held-out relations from the candidates."""

    kept = []
    for e in examples:
        if not e.positives:
            continue
        if holdout_third:
            if any(held_out(r) for r, _ in e.positives):
                continue
            e = RelationExample(e.id, e.dataset, e.question, e.topic_name,
                                tuple(c for c in e.candidates if not held_out(c[0])), e.positives)
        kept.append(e)
    return kept


# -- evaluation ------------------------------------------------------------------------------
def hit_at_1(scores: np.ndarray, candidates: Sequence[tuple[str, bool]], positives: frozenset) -> float:
    """1 when the top-scored relation-direction is gold; ties count the gold share of the tied top."""

    if len(candidates) == 0:
        return 0.0
    top = np.flatnonzero(scores >= scores.max() - 1e-6)
    return sum(candidates[i] in positives for i in top) / len(top)


def evaluate(scorer: RelationScorer, examples: Sequence[RelationExample], *, subset=None) -> dict[str, Any]:
    """Relation Hits@1 over the questions with a gold relation (``subset`` filters examples)."""

    by_dataset: dict[str, list[float]] = defaultdict(list)
    skipped = 0
    for e in examples:
        if subset is not None and not subset(e):
            continue
        if not e.positives:
            skipped += 1
            continue
        scores = scorer.score(e.question, e.topic_name, e.candidates)
        by_dataset[e.dataset].append(hit_at_1(scores, e.candidates, e.positives))
    every = [h for hits in by_dataset.values() for h in hits]
    record = {"hits@1": round(100 * float(np.mean(every)), 2) if every else None, "questions": len(every),
              "without_gold_relation": skipped}
    for dataset, hits in sorted(by_dataset.items()):
        record[dataset] = {"hits@1": round(100 * float(np.mean(hits)), 2), "questions": len(hits)}
    return record
