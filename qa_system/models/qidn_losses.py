"""QIDN's set-prediction pieces: Hungarian matching of queries to gold triples and the two InfoNCE losses.

Kept apart from the model so each can be tested on hand-made tensors: matching decides which query
learns which triple (a bug there looks like "the model never converges"), and the contrastive terms
are what the ablation switches off.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from qa_system.models.extraction_data import TokenTriple


def match_cost(rel_probs: torch.Tensor, boundary_probs: torch.Tensor, gold: Sequence[TokenTriple]) -> torch.Tensor:
    """Cost ``(M, G)``: minus (p(relation) + the four boundary probabilities) of each gold triple per query.

    ``rel_probs`` is ``(M, R+1)``, ``boundary_probs`` ``(4, M, T)`` (subject start/end, object start/end).
    """

    rel = torch.tensor([t.relation for t in gold], device=rel_probs.device)
    pos = torch.tensor([[t.sub_start, t.sub_end, t.obj_start, t.obj_end] for t in gold], device=rel_probs.device)  # (G, 4)
    score = rel_probs[:, rel]  # (M, G)
    for k in range(4):
        score = score + boundary_probs[k][:, pos[:, k]]
    return -score


def hungarian_match(rel_logits: torch.Tensor, boundary_logits: torch.Tensor,
                    triples: Sequence[Sequence[TokenTriple]]) -> list[list[tuple[int, int]]]:
    """Per sentence, the (query, gold index) pairs of a minimum-cost one-to-one assignment.

    ``rel_logits`` ``(B, M, R+1)``, ``boundary_logits`` ``(B, 4, M, T)``. With more gold triples than
    queries only M are matched (the rest cannot be learned from that sentence).
    """

    rel_probs = rel_logits.softmax(-1)
    boundary_probs = boundary_logits.softmax(-1)
    matches: list[list[tuple[int, int]]] = []
    for b, gold in enumerate(triples):
        if not gold:
            matches.append([])
            continue
        cost = match_cost(rel_probs[b], boundary_probs[b], gold).float().cpu().numpy()
        rows, cols = linear_sum_assignment(cost)
        matches.append(sorted(zip(rows.tolist(), cols.tolist())))
    return matches


def instance_infonce(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised InfoNCE among instances ``z`` ``(N, d)`` (unit vectors): same label = positive.

    Each anchor with at least one positive contributes the mean over its positives of
    ``-log softmax`` (over all other instances); zero when no anchor has a positive.
    """

    n = z.shape[0]
    if n < 2:
        return z.sum() * 0.0
    sim = z @ z.t() / temperature  # (N, N)
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim.log_softmax(-1).masked_fill(eye, 0.0)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    counts = positive.sum(1)
    has = counts > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob * positive).sum(1)[has] / counts[has]
    return per_anchor.mean()


def relation_infonce(instances: torch.Tensor, relation_embeddings: torch.Tensor, labels: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """InfoNCE of each instance ``(N, d)`` against all relation embeddings ``(R, d)``; its own relation is positive."""

    sim = F.normalize(instances, dim=-1) @ F.normalize(relation_embeddings, dim=-1).t() / temperature  # (N, R)
    return F.cross_entropy(sim, labels)
