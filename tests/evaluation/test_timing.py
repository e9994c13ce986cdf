"""The shared latency summary: nearest-rank percentiles, units, rounding, empty input."""

from __future__ import annotations

import pytest

from evaluation.timing import latency_summary, nearest_rank


def test_percentiles_are_measured_values_in_the_asked_unit() -> None:
    samples = [0.010, 0.030, 0.020, 0.040, 0.100]
    summary = latency_summary(samples, quantiles=(0.5, 0.95), unit="ms", digits=1, extra=("mean", "max"))
    assert summary == {"p50_ms": 30.0, "p95_ms": 100.0, "mean_ms": 40.0, "max_ms": 100.0}
    assert latency_summary(samples, quantiles=(0.5,), unit="s", digits=3, extra=()) == {"p50_s": 0.03}


def test_empty_samples_give_zeros_or_nothing() -> None:
    assert latency_summary([], quantiles=(0.5,), extra=("max",)) == {"p50_ms": 0.0, "max_ms": 0.0}
    assert latency_summary([], empty="none") == {}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unit"):
        latency_summary([0.1], unit="minutes")
    with pytest.raises(ValueError, match="extra"):
        latency_summary([0.1], extra=("median",))
    with pytest.raises(ValueError, match="no samples"):
        nearest_rank([], 0.5)
