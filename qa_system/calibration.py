"""Answer confidence the user can read as a probability of being right.

The reader's softmax probability of its top candidate is not that: when a question has several
gold answers (the languages of a country) the mass is shared and a right answer looks unsure;
when the candidate set is tiny a wrong answer looks sure. Platt scaling on two features of the
ranking - log p(top) and the log-ratio of the top two - fitted on dev questions turns it into
one. The threshold below which the graph says it is not sure is chosen on the same dev
questions and shipped in the reader card, with the reliability diagram that justifies it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

EPS = 1e-9


def ranking_features(probabilities: Sequence[float]) -> list[float]:
    """[log p1, log p1 - log p2] of a ranking's probabilities (best first)."""

    p1 = max(float(probabilities[0]), EPS) if probabilities else EPS
    p2 = max(float(probabilities[1]), EPS) if len(probabilities) > 1 else EPS
    return [math.log(p1), math.log(p1) - math.log(p2)]


@dataclass
class PlattCalibrator:
    """sigmoid(w . features + b), fitted by L2-regularised logistic regression (Newton steps)."""

    weights: list[float]
    bias: float

    @classmethod
    def fit(cls, rankings: Sequence[Sequence[float]], correct: Sequence[bool], *, l2: float = 1e-2, steps: int = 50) -> PlattCalibrator:
        if len(rankings) != len(correct) or not rankings:
            raise ValueError(f"need as many rankings as labels, and at least one ({len(rankings)} vs {len(correct)})")
        x = np.array([ranking_features(r) + [1.0] for r in rankings], dtype=np.float64)  # (n, 3)
        y = np.array(correct, dtype=np.float64)
        theta = np.zeros(x.shape[1])
        reg = np.diag([l2, l2, 0.0])
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(x @ theta)))
            gradient = x.T @ (p - y) + reg @ theta
            hessian = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(3)
            step = np.linalg.solve(hessian, gradient)
            theta -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(weights=[float(theta[0]), float(theta[1])], bias=float(theta[2]))

    def __call__(self, probabilities: Sequence[float]) -> float:
        f = ranking_features(probabilities)
        z = self.weights[0] * f[0] + self.weights[1] * f[1] + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_dict(self) -> dict:
        return {"method": "platt", "features": ["log_p1", "log_p1_minus_log_p2"], **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> PlattCalibrator:
        if values.get("method") != "platt":
            raise ValueError(f"unknown calibration method {values.get('method')!r}")
        return cls(weights=[float(w) for w in values["weights"]], bias=float(values["bias"]))


def calibrator_from_card(card: dict) -> PlattCalibrator | None:
    """The calibrator a reader card carries (None before ``qa-system calibrate`` ran)."""

    return PlattCalibrator.from_dict(card["calibration"]) if card.get("calibration") else None


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
    time (the graph answers as often as it can while staying trustworthy); 0.5 if none reaches it."""

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
