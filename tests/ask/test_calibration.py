"""Confidence calibration: Platt fit, reliability bins/ECE, threshold choice, the plot."""

from __future__ import annotations

import random

import pytest

from qa_system.ask.calibration import (
    LEGACY_FEATURES,
    PlattCalibrator,
    choose_threshold,
    plot_reliability,
    reliability,
    selective_summary,
)


def synthetic(n: int = 2000, seed: int = 0) -> tuple[list[list[float]], list[bool]]:
    """Rankings whose top probability overstates the chance of being right (p_right = p1 ** 2)."""

    rng = random.Random(seed)
    rankings, correct = [], []
    for _ in range(n):
        p1 = rng.uniform(0.05, 1.0)
        rankings.append([p1, (1 - p1) * rng.uniform(0.1, 1.0)])
        correct.append(rng.random() < p1 ** 2)
    return rankings, correct


def test_platt_fit_reduces_calibration_error_and_round_trips() -> None:
    rankings, correct = synthetic()
    raw = [r[0] for r in rankings]
    calibrator = PlattCalibrator.fit(rankings, correct)
    calibrated = [calibrator(r) for r in rankings]
    assert reliability(calibrated, correct).ece < 0.5 * reliability(raw, correct).ece
    again = PlattCalibrator.from_dict(calibrator.to_dict())
    assert again(rankings[0]) == pytest.approx(calibrator(rankings[0]))
    assert 0.0 < calibrator([1e-12]) < calibrator([0.99, 0.001]) < 1.0  # monotone in p1, finite at the edges


def test_the_candidate_count_separates_saturated_answers() -> None:
    """With the reranker, tiny and huge candidate sets get p(top) near 1 and are often wrong; the
    count as a feature ranks them below a mid-sized set's equally sure answer, which p(top) alone
    cannot (the same saturated probability for both)."""

    rng = random.Random(1)
    rankings, counts, correct = [], [], []
    for _ in range(3000):
        n = rng.choice([2, 3, 30, 60, 3000, 6000])
        p1 = rng.uniform(0.9, 1.0)
        rankings.append([p1, (1 - p1) / 2])
        counts.append(n)
        correct.append(rng.random() < (0.85 if 10 <= n <= 100 else 0.3))
    with_count = PlattCalibrator.fit(rankings, correct, counts)
    without = PlattCalibrator.fit(rankings, correct, counts, features=LEGACY_FEATURES)
    top = [0.999, 0.0005]
    assert with_count(top, 40) > 0.75 > 0.4 > with_count(top, 2) and with_count(top, 5000) < 0.4
    assert abs(without(top, 40) - without(top, 2)) < 1e-9  # blind to the count
    brier = {name: sum((c(r, n) - ok) ** 2 for r, n, ok in zip(rankings, counts, correct)) / len(correct)
             for name, c in (("with", with_count), ("without", without))}
    assert brier["with"] < brier["without"] - 0.05  # ~0.17 against ~0.25: it tells right from wrong
    again = PlattCalibrator.from_dict(with_count.to_dict())
    assert again(top, 40) == pytest.approx(with_count(top, 40))


def test_a_card_from_before_the_count_still_loads() -> None:
    old = PlattCalibrator.from_dict({"method": "platt", "features": ["log_p1", "log_p1_minus_log_p2"], "weights": [0.6, 0.1], "bias": -0.7})
    assert old.features == LEGACY_FEATURES and 0.0 < old([0.8, 0.1], 50) == old([0.8, 0.1]) < 1.0
    with pytest.raises(ValueError, match="do not match"):
        PlattCalibrator.from_dict({"method": "platt", "features": ["log_p1"], "weights": [0.6, 0.1], "bias": 0.0})


def test_reliability_bins_count_everything() -> None:
    result = reliability([0.05, 0.15, 0.95, 1.0], [False, True, True, True], bins=10)
    assert sum(b["count"] for b in result.bins) == 4 and result.bins[-1]["count"] == 2
    assert result.ece == pytest.approx((0.05 + 0.85 + 2 * 0.025) / 4)


def test_threshold_keeps_answered_precision() -> None:
    confidences = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    correct = [True, True, True, False, False, False]
    threshold = choose_threshold(confidences, correct, min_precision=0.75)
    assert threshold == 0.6  # 3 of 4 right at 0.6; 3 of 5 at 0.5 is below 0.75
    summary = selective_summary(confidences, correct, threshold)
    assert summary["coverage"] == pytest.approx(4 / 6) and summary["selective_accuracy"] == pytest.approx(0.75)
    assert choose_threshold([0.9], [False], min_precision=0.8) == 0.5  # never reached: the neutral default


def test_bad_fit_input_is_refused() -> None:
    with pytest.raises(ValueError, match="as many"):
        PlattCalibrator.fit([[0.5]], [True, False])
    with pytest.raises(ValueError, match="method"):
        PlattCalibrator.from_dict({"method": "isotonic"})


def test_plot_is_written(tmp_path) -> None:
    rankings, correct = synthetic(200)
    path = plot_reliability({"raw": reliability([r[0] for r in rankings], correct)}, tmp_path / "r.png", threshold=0.4)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
