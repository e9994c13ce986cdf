"""The calibrated validation decision for object completion (``TripleValidator.complete``).

The entailment score alone does not say how a candidate compares with the other candidates for the
same (subject, relation), its *group*. ``group_features`` describes each candidate within its group
(entailment score, log1p of its evidence premises, gap to the group's best score, log1p of its rank,
whether the graph proposed it) and, when the calibration carries a ``ShapePrior``, how well the
candidate's surface shape (a number, a date, a proper name, lower-case words) fits what the relation
takes as objects: ``birthPlace`` wants a proper name, ``birthDate`` a date — SATORI's range-type
check, learned from training triples. A ``Calibration`` (a logistic regression fitted on dev by
``evaluation.validation.fit_calibration``) turns them into P(correct) with a threshold. It lives in
the thresholds file (``qa_system.fallback.validation.Thresholds.calibration``).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qa_system.errors import InputError

CALIBRATION_FEATURES = ("entailment", "log_evidence", "gap_to_best", "log_rank", "graph", "shape_prior")
OBJECT_SHAPES = ("number", "date", "proper", "lower")
_NUMBER = re.compile(r"[\d.,\-/ ]+|\d[\d.,]*\s*\w{0,12}")  # "1,200", "3.5 km", "12/05"
_YEAR = re.compile(r"\b(1\d{3}|20\d{2})\b")


def object_shape(text: str) -> str:
    """The surface shape of an object: ``number``, ``date`` (a short text with a year), ``proper``
    (starts upper-case) or ``lower``."""

    text = " ".join(text.replace("_", " ").split())
    if _NUMBER.fullmatch(text):
        return "number"
    if len(text) < 25 and _YEAR.search(text):
        return "date"
    return "proper" if text[:1].isupper() else "lower"


class ShapePrior(BaseModel):
    """Per relation, how many training objects had each shape (``object_shape``); ``log_prior``
    smooths toward the shapes of all objects, so an unseen relation gets the overall prior."""

    model_config = ConfigDict(extra="forbid")

    relations: dict[str, dict[str, int]]
    overall: dict[str, int]
    fitted_on: str = ""
    smoothing: float = Field(default=4.0, gt=0.0)

    @classmethod
    def from_triples(cls, pairs: Iterable[tuple[str, str]], *, fitted_on: str = "") -> ShapePrior:
        """From (relation, object) pairs of training triples."""

        relations: dict[str, Counter[str]] = defaultdict(Counter)
        for relation, obj in pairs:
            relations[relation][object_shape(obj)] += 1
        overall: Counter[str] = Counter()
        for counts in relations.values():
            overall.update(counts)
        return cls(relations={r: dict(c) for r, c in sorted(relations.items())}, overall=dict(overall), fitted_on=fitted_on)

    def log_prior(self, relation: str, obj: str) -> float:
        """log P(shape of ``obj`` | relation), add-``smoothing`` toward the overall shape distribution."""

        shape = object_shape(obj)
        total = sum(self.overall.values())
        p_overall = (self.overall.get(shape, 0) + 1.0) / (total + len(OBJECT_SHAPES))
        counts = self.relations.get(relation, {})
        return math.log((counts.get(shape, 0) + self.smoothing * p_overall) / (sum(counts.values()) + self.smoothing))


def group_ranks(scores: Sequence[float], evidence: Sequence[int]) -> list[int]:
    """Per candidate of one group, its rank by score among the group's candidates with evidence
    (0 = best; ties share the better rank); a candidate without evidence ranks after all of them."""

    scored = [s for s, e in zip(scores, evidence) if e > 0]
    return [sum(other > s for other in scored) if e > 0 else len(scored) for s, e in zip(scores, evidence)]


def group_features(scores: Sequence[float], evidence: Sequence[int], graph: Sequence[bool], shape_prior: Sequence[float] | None = None) -> np.ndarray:
    """The calibration features of one group's candidates (the candidates of one (subject, relation)).

    ``scores``: each candidate's entailment score (max over its evidence premises); ``evidence``: its
    number of evidence premises; ``graph``: whether the graph proposes its object; ``shape_prior``:
    ``ShapePrior.log_prior`` of its object (0 when not given). Returns an array of shape
    (n, len(CALIBRATION_FEATURES)), columns in ``CALIBRATION_FEATURES`` order. Only candidates with
    evidence count for the best score and the ranks.
    """

    shape_prior = [0.0] * len(scores) if shape_prior is None else list(shape_prior)
    if not len(scores) == len(evidence) == len(graph) == len(shape_prior):
        raise InputError("group features need as many evidence counts, graph flags and shape priors as scores; "
                         f"got {len(scores)}, {len(evidence)}, {len(graph)}, {len(shape_prior)}")  # fmt: skip
    with_evidence = [float(s) for s, e in zip(scores, evidence) if e > 0]
    best = max(with_evidence) if with_evidence else 0.0
    ranks = group_ranks(scores, evidence)
    rows = [[float(s), math.log1p(e), best - float(s), math.log1p(r), float(bool(g)), float(p)]
            for s, e, r, g, p in zip(scores, evidence, ranks, graph, shape_prior)]  # fmt: skip
    return np.array(rows, dtype=float).reshape(len(rows), len(CALIBRATION_FEATURES))


def relation_group_features(relation: str, objects: Sequence[str], scores: Sequence[float], evidence: Sequence[int],
                            graph: Sequence[bool], shape_prior: ShapePrior | None = None) -> np.ndarray:
    """``group_features`` of one (subject, relation) group whose candidate objects are ``objects``,
    the shape-prior column from ``shape_prior`` (0 without one). What the validator and the
    evaluation's calibration fit both call, so they compute the same features."""

    prior = [shape_prior.log_prior(relation, o) for o in objects] if shape_prior is not None else None
    return group_features(scores, evidence, graph, prior)


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
    shape_prior: ShapePrior | None = None  # required when ``features`` names shape_prior

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
        if "shape_prior" in self.features and self.shape_prior is None:
            raise ValueError("a calibration that uses shape_prior must carry its shape_prior counts")
        return self

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(correct) per row of ``features`` (columns in ``CALIBRATION_FEATURES`` order)."""

        columns = [CALIBRATION_FEATURES.index(f) for f in self.features]
        logits = np.asarray(features, dtype=float)[:, columns] @ np.asarray(self.weights, dtype=float) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -500.0, 500.0)))
