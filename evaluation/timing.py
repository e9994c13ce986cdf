"""Latency summaries shared by the benchmarks: nearest-rank percentiles of a list of durations.

Every benchmark reports its timings the same way (``p50_ms``, ``p95_ms``, ... or ``p50_s`` ...), so
records from different benchmarks read alike and one percentile rule (nearest rank, no
interpolation: the value reported is a duration that was actually measured) applies everywhere.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

_SCALE = {"ms": 1e3, "s": 1.0}


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an already sorted, non-empty sequence, as one of its values."""

    if not ordered:
        raise ValueError("no samples")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(samples: Sequence[float], *, quantiles: Sequence[float] = (0.5, 0.95, 0.99), unit: str = "ms",
                    digits: int | None = 2, extra: Sequence[str] = ("mean",), empty: str = "zeros") -> dict[str, float]:
    """``{"p50_ms": ..., "p95_ms": ..., "mean_ms": ...}`` for ``samples`` given in seconds.

    ``unit`` is ``ms`` or ``s``; ``extra`` may name ``mean`` and ``max``; ``digits`` rounds (None keeps
    full precision). With no samples: every key at 0.0 (``empty="zeros"``) or an empty dict
    (``empty="none"``)."""

    if unit not in _SCALE:
        raise ValueError(f"unit must be one of {sorted(_SCALE)}; got {unit!r}")
    unknown = set(extra) - {"mean", "max"}
    if unknown:
        raise ValueError(f"unknown extra statistics {sorted(unknown)}; use mean and/or max")
    keys = [f"p{round(q * 100)}" for q in quantiles] + list(extra)
    if not samples:
        return {} if empty == "none" else {f"{k}_{unit}": 0.0 for k in keys}
    ordered = sorted(samples)
    values = [nearest_rank(ordered, q) for q in quantiles]
    values += [statistics.fmean(ordered) if name == "mean" else ordered[-1] for name in extra]
    scale = _SCALE[unit]
    return {f"{k}_{unit}": (v * scale if digits is None else round(v * scale, digits)) for k, v in zip(keys, values)}
