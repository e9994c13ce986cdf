"""Filtered link-prediction evaluation: MRR and Hits@1/3/10 over all entities, both directions.

Every test fact (h, r, t) gives two queries: ``(h, r, ?)`` with answer t and ``(t, r_inv, ?)`` with
answer h (relation id ``r + R``). The *filtered* setting removes from the ranking every other
entity that forms a known true fact (train, dev or test) with the query.

Ties: the target's rank is the mean of its optimistic and pessimistic ranks,
``rank = 1 + #greater + #equal / 2``, where ``#equal`` counts the other (unfiltered) entities with
exactly the target's score. (This equals PyKEEN's "realistic" rank.)

The filter is a CSR index from ``query key = source * 2R + relation`` to sorted true answers, so
filtering a batch is one gather and one scatter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

TIE_POLICY = "mean rank: rank = 1 + #greater + #equal/2 (#equal: other unfiltered entities with the target's score)"
HITS_AT = (1, 3, 10)

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (sources (B,), relations (B,)) -> (B, E)


def reciprocal_queries(triples: np.ndarray, num_relations: int) -> np.ndarray:
    """(M, 3) facts -> (2M, 3) queries (source, relation in [0, 2R), answer): tails first, then heads."""

    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    tails = triples
    heads = np.stack([triples[:, 2], triples[:, 1] + num_relations, triples[:, 0]], axis=1)
    return np.concatenate([tails, heads], axis=0)


@dataclass
class FilterIndex:
    """All true answers per query key, CSR: answers of key k are ``answers[offsets[k]:offsets[k+1]]``."""

    num_keys_per_source: int  # 2R
    keys: np.ndarray  # sorted unique query keys (K,)
    offsets: np.ndarray  # (K+1,)
    answers: np.ndarray  # (nnz,)

    @classmethod
    def build(cls, known_triples: np.ndarray, num_relations: int) -> FilterIndex:
        queries = reciprocal_queries(known_triples, num_relations)
        width = 2 * num_relations
        key = queries[:, 0] * width + queries[:, 1]
        order = np.lexsort((queries[:, 2], key))
        key, answers = key[order], queries[order, 2]
        # drop duplicate facts
        dup = np.zeros(len(key), dtype=bool)
        dup[1:] = (key[1:] == key[:-1]) & (answers[1:] == answers[:-1])
        key, answers = key[~dup], answers[~dup]
        keys, starts = np.unique(key, return_index=True)
        offsets = np.append(starts, len(key)).astype(np.int64)
        return cls(width, keys, offsets, answers)

    def gather(self, sources: np.ndarray, relations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, entity) index pairs of every known answer of each query in the batch."""

        key = sources * self.num_keys_per_source + relations
        pos = np.searchsorted(self.keys, key)
        pos = np.minimum(pos, len(self.keys) - 1)
        found = self.keys[pos] == key
        lo = np.where(found, self.offsets[pos], 0)
        counts = np.where(found, self.offsets[pos + 1] - self.offsets[pos], 0)
        rows = np.repeat(np.arange(len(key)), counts)
        starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
        cols = self.answers[np.arange(counts.sum()) + starts]
        return rows, cols


def filtered_ranks(scores: torch.Tensor, targets: torch.Tensor, filter_rows: torch.Tensor | None = None,
                   filter_cols: torch.Tensor | None = None) -> torch.Tensor:
    """Ranks (B,) float of ``targets`` in ``scores`` (B, E), other known answers removed, mean ties."""

    scores = scores.float()
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_scores = scores[rows, targets]  # (B,)
    if filter_rows is not None and filter_cols is not None and filter_rows.numel():
        scores = scores.clone()
        scores[filter_rows, filter_cols] = float("-inf")
    greater = (scores > target_scores.unsqueeze(1)).sum(dim=1)  # (B,)
    equal = (scores == target_scores.unsqueeze(1)).sum(dim=1)
    # the target itself is equal to itself unless it was filtered to -inf above
    target_now = scores[rows, targets]
    equal = equal - (target_now == target_scores).long()
    return 1.0 + greater.float() + equal.float() / 2.0


def metrics_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        return {"mrr": 0.0, **{f"hits@{k}": 0.0 for k in HITS_AT}}
    out = {"mrr": float(np.mean(1.0 / ranks))}
    for k in HITS_AT:
        out[f"hits@{k}"] = float(np.mean(ranks <= k))
    return out


def rank_queries(score_fn: ScoreFn, queries: np.ndarray, filter_index: FilterIndex | None, *,
                 batch_size: int = 1024, progress: bool = False) -> np.ndarray:
    """Filtered ranks of (Q, 3) queries (source, relation, answer) scored in batches by ``score_fn``."""

    from tqdm.auto import tqdm

    ranks = np.empty(len(queries), dtype=np.float64)
    starts = range(0, len(queries), batch_size)
    for start in tqdm(starts, desc="ranking", unit="batch", disable=not progress, leave=False):
        chunk = queries[start : start + batch_size]
        sources, relations = torch.from_numpy(chunk[:, 0]), torch.from_numpy(chunk[:, 1])
        scores = score_fn(sources, relations)
        targets = torch.from_numpy(chunk[:, 2]).to(scores.device)
        rows = cols = None
        if filter_index is not None:
            r, c = filter_index.gather(chunk[:, 0], chunk[:, 1])
            rows, cols = torch.from_numpy(r).to(scores.device), torch.from_numpy(c).to(scores.device)
        ranks[start : start + len(chunk)] = filtered_ranks(scores, targets, rows, cols).cpu().numpy()
    return ranks


def per_relation_metrics(queries: np.ndarray, ranks: np.ndarray, relation_names: list[str]) -> dict[str, dict]:
    """Metrics per base relation, both directions together, plus the query count."""

    num_relations = len(relation_names)
    base = queries[:, 1] % num_relations
    out: dict[str, dict] = {}
    for rel in np.unique(base):
        sel = base == rel
        out[relation_names[int(rel)]] = {**metrics_from_ranks(ranks[sel]), "num_queries": int(sel.sum())}
    return out


def evaluate(score_fn: ScoreFn, test_triples: np.ndarray, known_triples: np.ndarray, relation_names: list[str], *,
             batch_size: int = 1024, progress: bool = False, filter_index: FilterIndex | None = None) -> dict:
    """Filtered evaluation of ``test_triples`` in both directions. Returns metrics, per-relation, time."""

    num_relations = len(relation_names)
    started = time.perf_counter()
    if filter_index is None:
        filter_index = FilterIndex.build(known_triples, num_relations)
    queries = reciprocal_queries(test_triples, num_relations)
    ranks = rank_queries(score_fn, queries, filter_index, batch_size=batch_size, progress=progress)
    metrics = metrics_from_ranks(ranks)
    half = len(test_triples)
    return {
        "metrics": metrics,
        "metrics_by_direction": {
            "tail": metrics_from_ranks(ranks[:half]),
            "head": metrics_from_ranks(ranks[half:]),
        },
        "per_relation": per_relation_metrics(queries, ranks, relation_names),
        "num_queries": int(len(queries)),
        "tie_policy": TIE_POLICY,
        "setting": "filtered (train+dev+test), both directions, all entities",
        "time_s": round(time.perf_counter() - started, 3),
    }
