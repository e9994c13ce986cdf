"""The calibrated validation decision for object completion (``TripleValidator.complete``).

The entailment score alone does not say how a candidate compares with the other candidates for the
same (subject, relation), its *group*. ``group_features`` describes each candidate within its group
(entailment score, log1p of its evidence premises, gap to the group's best score, log1p of its rank,
whether the graph proposed it); a ``Calibration`` (a logistic regression fitted on dev by
``evaluation.validation.fit_calibration``) turns them into P(correct) with a threshold. It lives in
the thresholds file (``qa_system.validation.Thresholds.calibration``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qa_system.errors import InputError

CALIBRATION_FEATURES = ("entailment", "log_evidence", "gap_to_best", "log_rank", "graph")


def group_ranks(scores: Sequence[float], evidence: Sequence[int]) -> list[int]:
    """Per candidate of one group, its rank by score among the group's candidates with evidence
    (0 = best; ties share the better rank); a candidate without evidence ranks after all of them."""

    scored = [s for s, e in zip(scores, evidence) if e > 0]
    return [sum(other > s for other in scored) if e > 0 else len(scored) for s, e in zip(scores, evidence)]


def group_features(scores: Sequence[float], evidence: Sequence[int], graph: Sequence[bool]) -> np.ndarray:
    """The calibration features of one group's candidates (the candidates of one (subject, relation)).

    ``scores``: each candidate's entailment score (max over its evidence premises); ``evidence``: its
    number of evidence premises; ``graph``: whether the graph proposes its object. Returns an array
    of shape (n, len(CALIBRATION_FEATURES)), columns in ``CALIBRATION_FEATURES`` order. Only
    candidates with evidence count for the best score and the ranks.
    """

    if not len(scores) == len(evidence) == len(graph):
        raise InputError(f"group features need as many evidence counts and graph flags as scores; got {len(scores)}, {len(evidence)}, {len(graph)}")
    with_evidence = [float(s) for s, e in zip(scores, evidence) if e > 0]
    best = max(with_evidence) if with_evidence else 0.0
    ranks = group_ranks(scores, evidence)
    rows = [[float(s), math.log1p(e), best - float(s), math.log1p(r), float(bool(g))] for s, e, r, g in zip(scores, evidence, ranks, graph)]
    return np.array(rows, dtype=float).reshape(len(rows), len(CALIBRATION_FEATURES))


class Calibration(BaseModel):
    """A logistic regression over ``group_features``: P(correct) = sigmoid(weights · features + bias);
    entailed iff P ≥ ``threshold``. ``features`` names the columns it uses (a subset of
    ``CALIBRATION_FEATURES``, in the order of ``weights``); the rest records what it was fitted on."""

    model_config = ConfigDict(extra="forbid")

    features: list[str]
    weights: list[float]
    bias: float
    threshold: float = Field(ge=0.0, le=1.0)
    fitted_on: str = ""  # e.g. "webnlg dev (300 queries, 3,000 candidates with evidence, 260 correct)"
    min_recall_kept: float | None = None  # the share of the dev recall the threshold keeps
    regularisation: float | None = None  # scikit-learn's C
    recall_confidence: float | None = None  # share of dev bootstrap resamples in which the threshold keeps min_recall_kept

    @model_validator(mode="after")
    def _consistent(self) -> Calibration:
        unknown = [f for f in self.features if f not in CALIBRATION_FEATURES]
        if unknown:
            raise ValueError(f"unknown calibration features {unknown}; known: {list(CALIBRATION_FEATURES)}")
        if not self.features or len(set(self.features)) != len(self.features):
            raise ValueError(f"calibration features must be distinct and at least one; got {self.features}")
        if len(self.weights) != len(self.features):
            raise ValueError(f"calibration has {len(self.weights)} weights for {len(self.features)} features")
        if not all(math.isfinite(w) for w in [*self.weights, self.bias]):
            raise ValueError("calibration weights and bias must be finite numbers")
        return self

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(correct) per row of ``features`` (columns in ``CALIBRATION_FEATURES`` order)."""

        columns = [CALIBRATION_FEATURES.index(f) for f in self.features]
        logits = np.asarray(features, dtype=float)[:, columns] @ np.asarray(self.weights, dtype=float) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -500.0, 500.0)))
