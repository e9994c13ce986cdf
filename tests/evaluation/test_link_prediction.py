"""Filtered link-prediction evaluation: brute force on a tiny graph, and PyKEEN's ranks on random scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.link_prediction import (
    FilterIndex,
    evaluate,
    filtered_ranks,
    metrics_from_ranks,
    rank_queries,
    reciprocal_queries,
)

E, R = 7, 2
TRAIN = np.array([[0, 0, 1], [0, 0, 2], [1, 1, 2], [3, 0, 1], [4, 1, 5], [5, 0, 6]])
DEV = np.array([[2, 0, 3]])
TEST = np.array([[0, 0, 3], [1, 1, 4], [6, 1, 0]])
KNOWN = np.concatenate([TRAIN, DEV, TEST])


def brute_force_rank(scores: np.ndarray, source: int, rel: int, answer: int, known: np.ndarray) -> float:
    """Rank by the definition: skip every other entity that makes a known fact, mean over ties."""

    true = set()
    for h, r, t in known:
        if rel < R and h == source and r == rel:
            true.add(int(t))
        if rel >= R and t == source and r == rel - R:
            true.add(int(h))
    target = scores[answer]
    greater = equal = 0
    for e in range(len(scores)):
        if e == answer or e in true:
            continue
        greater += scores[e] > target
        equal += scores[e] == target
    return 1 + greater + equal / 2


def table_score_fn(table: torch.Tensor):
    def score(sources: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        return table[sources * 2 * R + relations]

    return score


def test_reciprocal_queries_cover_both_directions():
    q = reciprocal_queries(np.array([[0, 1, 2]]), R)
    assert q.tolist() == [[0, 1, 2], [2, 1 + R, 0]]


def test_filter_index_gathers_all_true_answers():
    f = FilterIndex.build(KNOWN, R)
    rows, cols = f.gather(np.array([0, 1, 6, 2]), np.array([0, 0 + R, 1, 1]))
    got = {(int(r), int(c)) for r, c in zip(rows, cols)}
    # (0, r0, ?): 1, 2, 3 ; (1, r0_inv, ?): 0, 3 ; (6, r1, ?): 0 ; (2, r1, ?): nothing
    assert got == {(0, 1), (0, 2), (0, 3), (1, 0), (1, 3), (2, 0)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    table = torch.from_numpy(rng.integers(0, 4, size=(E * 2 * R, E)).astype(np.float32))  # many ties
    queries = reciprocal_queries(TEST, R)
    ranks = rank_queries(table_score_fn(table), queries, FilterIndex.build(KNOWN, R), batch_size=2)
    expected = [brute_force_rank(table[s * 2 * R + r].numpy(), s, r, a, KNOWN) for s, r, a in queries]
    assert ranks.tolist() == pytest.approx(expected)
    record = evaluate(table_score_fn(table), TEST, KNOWN, ["r0", "r1"], batch_size=4)
    assert record["metrics"]["mrr"] == pytest.approx(np.mean(1 / np.array(expected)))
    assert record["num_queries"] == 6 and "#equal/2" in record["tie_policy"]
    assert sum(v["num_queries"] for v in record["per_relation"].values()) == 6


def test_metrics_from_ranks():
    m = metrics_from_ranks(np.array([1.0, 2.0, 4.0, 11.0]))
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 1 / 11) / 4)
    assert (m["hits@1"], m["hits@3"], m["hits@10"]) == (0.25, 0.5, 0.75)


def test_matches_pykeen_realistic_ranks_on_random_scores():
    pytest.importorskip("pykeen")
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.evaluation.ranks import Ranks

    rng = np.random.default_rng(0)
    n_ent, batch = 50, 64
    scores = torch.from_numpy(rng.integers(0, 6, size=(batch, n_ent)).astype(np.float32))  # ties everywhere
    targets = torch.from_numpy(rng.integers(0, n_ent, size=batch))
    rows = torch.from_numpy(np.repeat(np.arange(batch), 5))
    cols = torch.from_numpy(rng.integers(0, n_ent, size=batch * 5))
    keep = cols != targets[rows]  # the target itself is never filtered
    rows, cols = rows[keep], cols[keep]
    ours = filtered_ranks(scores, targets, rows, cols)

    filtered = scores.clone()
    filtered[rows, cols] = float("nan")  # PyKEEN's filtering: known answers become NaN
    true = scores[torch.arange(batch), targets].unsqueeze(1)
    theirs = Ranks.from_scores(true, filtered).realistic
    assert torch.allclose(ours, theirs.float())

    evaluator = RankBasedEvaluator(filtered=True)
    hrt = torch.stack([torch.zeros(batch, dtype=torch.long), torch.zeros(batch, dtype=torch.long), targets], 1)
    evaluator.process_scores_(hrt_batch=hrt, target="tail", scores=filtered, true_scores=true)
    result = evaluator.finalize()
    assert metrics_from_ranks(ours.numpy())["mrr"] == pytest.approx(
        result.get_metric("tail.realistic.inverse_harmonic_mean_rank"), rel=1e-5
    )
    assert metrics_from_ranks(ours.numpy())["hits@10"] == pytest.approx(
        result.get_metric("tail.realistic.hits_at_10"), rel=1e-5
    )
