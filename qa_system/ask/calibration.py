"""Answer confidence the user can read as a probability of being right.

The reader's softmax probability of its top candidate is not that: when a question has several
gold answers (the languages of a country) the mass is shared and a right answer looks unsure;
when the candidate set is tiny a wrong answer looks sure (with the answer reranker on, 38% of dev
questions get p(top) > 0.99 and only 75% of those are right). Platt scaling - a logistic
regression fitted on dev questions - over features of the ranking turns it into one: log p(top),
the log-ratio of the top two, and the log of the number of candidates (and its square: both a
handful and thousands of candidates are bad signs). The threshold below which the graph says it is
not sure is chosen on the same dev questions and shipped in the reader card, with the
reliability diagram that justifies it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EPS = 1e-9


FEATURES = ("log_p1", "log_p1_minus_log_p2", "log_candidates", "log_candidates_squared")
LEGACY_FEATURES = FEATURES[:2]  # cards written before the candidate count was a feature
MAX_LOG_RATIO = 30.0  # a reranked top answer can be e^100 above the next: beyond this it says no more


def ranking_features(probabilities: Sequence[float], candidates: int | None = None,
                     names: Sequence[str] = FEATURES) -> list[float]:
    """The named features of a ranking: its probabilities (best first) and how many candidates it
    ranked (``None``: as many as probabilities were given)."""

    p1 = max(float(probabilities[0]), EPS) if probabilities else EPS
    p2 = max(float(probabilities[1]), EPS) if len(probabilities) > 1 else EPS
    n = math.log(max(1, candidates if candidates is not None else len(probabilities)))
    values = {
        "log_p1": math.log(p1),
        "log_p1_minus_log_p2": min(MAX_LOG_RATIO, math.log(p1) - math.log(p2)),
        "log_candidates": n,
        "log_candidates_squared": n * n,
    }
    return [values[name] for name in names]


@dataclass
class PlattCalibrator:
    """sigmoid(w . features + b), fitted by L2-regularised logistic regression (Newton steps)."""

    weights: list[float]
    bias: float
    features: tuple[str, ...] = FEATURES

    @classmethod
    def fit(cls, rankings: Sequence[Sequence[float]], correct: Sequence[bool], candidates: Sequence[int] | None = None, *,
            features: Sequence[str] = FEATURES, l2: float = 1e-2, steps: int = 50) -> PlattCalibrator:
        """``rankings[i]``: the top probabilities of question i; ``candidates[i]``: how many it ranked."""

        if len(rankings) != len(correct) or not rankings or (candidates is not None and len(candidates) != len(rankings)):
            raise ValueError(f"need as many rankings as labels (and candidate counts), and at least one ({len(rankings)} vs {len(correct)})")
        counts = list(candidates) if candidates is not None else [None] * len(rankings)
        x = np.array([ranking_features(r, n, features) + [1.0] for r, n in zip(rankings, counts)], dtype=np.float64)
        y = np.array(correct, dtype=np.float64)
        # centre and scale so one l2 suits features of any size (the squared count reaches ~80)
        mean, scale = x[:, :-1].mean(axis=0), x[:, :-1].std(axis=0) + 1e-9
        z = np.concatenate([(x[:, :-1] - mean) / scale, x[:, -1:]], axis=1)
        k = z.shape[1]
        theta = np.zeros(k)
        reg = np.diag([l2] * (k - 1) + [0.0])
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(z @ theta)))
            gradient = z.T @ (p - y) + reg @ theta
            hessian = (z * (p * (1 - p))[:, None]).T @ z + reg + 1e-9 * np.eye(k)
            step = np.linalg.solve(hessian, gradient)
            theta -= step
            if np.abs(step).max() < 1e-8:
                break
        weights = theta[:-1] / scale
        bias = theta[-1] - float(weights @ mean)
        return cls(weights=[float(w) for w in weights], bias=float(bias), features=tuple(features))

    def __call__(self, probabilities: Sequence[float], candidates: int | None = None) -> float:
        f = ranking_features(probabilities, candidates, self.features)
        z = sum(w * v for w, v in zip(self.weights, f)) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_dict(self) -> dict:
        return {"method": "platt", "features": list(self.features), "weights": self.weights, "bias": self.bias}

    @classmethod
    def from_dict(cls, values: dict) -> PlattCalibrator:
        if values.get("method") != "platt":
            raise ValueError(f"unknown calibration method {values.get('method')!r}")
        names = tuple(values.get("features") or LEGACY_FEATURES)
        unknown = [n for n in names if n not in FEATURES]
        if unknown or len(names) != len(values["weights"]):
            raise ValueError(f"calibration features {list(names)} do not match weights {values['weights']} (known: {list(FEATURES)})")
        return cls(weights=[float(w) for w in values["weights"]], bias=float(values["bias"]), features=names)


def calibrator_from_card(card: dict) -> PlattCalibrator | None:
    """The calibrator a reader card carries (None before ``qa-system calibrate`` ran)."""

    return PlattCalibrator.from_dict(card["calibration"]) if card.get("calibration") else None


def answer_confidence(calibrator: Callable[[Sequence[float], int], float] | None, ranked: Sequence[tuple[str, float]],
                      candidates: int) -> float:
    """P(the top answer of ``ranked`` is right): the calibrator's over the top two probabilities and
    the number of candidates, else the raw top probability (0 for an empty ranking). The app and
    the evaluation both compute it here."""

    if not ranked:
        return 0.0
    if calibrator is not None:
        return calibrator([p for _, p in ranked[:2]], candidates)
    return ranked[0][1]


@dataclass
class Reliability:
    """Reliability-diagram bins and the expected calibration error."""

    bins: list[dict]  # lower, upper, count, mean_confidence, accuracy
    ece: float
    count: int


def reliability(confidences: Sequence[float], correct: Sequence[bool], *, bins: int = 10) -> Reliability:
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, ece = [], 0.0
    for i in range(bins):
        inside = (conf >= edges[i]) & ((conf < edges[i + 1]) if i < bins - 1 else (conf <= edges[i + 1]))
        n = int(inside.sum())
        mean_conf = float(conf[inside].mean()) if n else 0.0
        accuracy = float(right[inside].mean()) if n else 0.0
        ece += n / max(1, len(conf)) * abs(mean_conf - accuracy)
        rows.append({"lower": float(edges[i]), "upper": float(edges[i + 1]), "count": n, "mean_confidence": mean_conf, "accuracy": accuracy})
    return Reliability(bins=rows, ece=float(ece), count=len(conf))


def choose_threshold(confidences: Sequence[float], correct: Sequence[bool], *, min_precision: float = 0.8) -> float:
    """The lowest threshold whose answered dev questions are right at least ``min_precision`` of the
    time (the graph answers as often as it can while staying trustworthy); 0.5 if none reaches it
    (the caller says so: ``selective_summary`` at 0.5 then shows an accuracy below ``min_precision``)."""

    pairs = sorted(zip(confidences, correct), key=lambda x: -x[0])
    best, right = None, 0
    for answered, (confidence, ok) in enumerate(pairs, start=1):
        right += bool(ok)
        if right / answered >= min_precision:
            best = confidence
    return float(best) if best is not None else 0.5


def selective_summary(confidences: Sequence[float], correct: Sequence[bool], threshold: float) -> dict[str, float]:
    """Share of questions answered at ``threshold`` and the accuracy on those."""

    answered = [ok for c, ok in zip(confidences, correct) if c >= threshold]
    return {
        "threshold": threshold,
        "coverage": len(answered) / max(1, len(confidences)),
        "selective_accuracy": sum(answered) / max(1, len(answered)),
    }


def plot_reliability(curves: dict[str, Reliability], path: Path, *, threshold: float | None = None) -> Path:
    """A reliability diagram (accuracy per confidence bin against the diagonal), one line per curve."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", label="perfect calibration")
    for name, curve in curves.items():
        used = [b for b in curve.bins if b["count"]]
        ax.plot([b["mean_confidence"] for b in used], [b["accuracy"] for b in used], marker="o", label=f"{name} (ECE {curve.ece:.3f})")
        centers = [(b["lower"] + b["upper"]) / 2 for b in curve.bins]
        hist.bar(centers, [b["count"] for b in curve.bins], width=0.09, alpha=0.5, label=name)
    if threshold is not None:
        for axis in (ax, hist):
            axis.axvline(threshold, color="#c0392b", linewidth=1)
        ax.text(threshold + 0.01, 0.03, f"not-sure threshold {threshold:.2f}", color="#c0392b", fontsize=8)
    ax.set_ylabel("accuracy (Hits@1)")
    ax.set_title("Reader confidence: reliability on dev")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    hist.set_xlabel("calibrated confidence")
    hist.set_ylabel("questions")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
