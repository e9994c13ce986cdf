"""Inference precisions: int8 replaces linear layers with outputs close to float32, bfloat16 runs
under autocast where the CPU has it (float32 where not), precision names are checked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qa_system.models.precision import BFLOAT16, FLOAT32, INT8, autocast, bf16_fast, check_precision, int8_available, quantize_int8, resolve


def test_quantize_int8_replaces_linear_layers_and_keeps_outputs_close() -> None:
    if not int8_available():
        pytest.skip("this torch build has no quantized engine")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 8))
    x = torch.randn(32, 64)
    with torch.no_grad():
        before = model(x)
        quantized, precision = quantize_int8(model)
        after = quantized(x)
    assert precision == INT8
    assert not any(type(m) is nn.Linear for m in quantized.modules())  # every float linear layer is gone
    assert (after - before).abs().max() < 0.05 * before.abs().max()  # per-channel int8: close, not equal
    assert not torch.equal(after, before)


def test_quantize_int8_reports_float32_when_unavailable(monkeypatch) -> None:
    import qa_system.models.precision as q

    monkeypatch.setattr(q, "int8_available", lambda: False)
    model = nn.Linear(4, 4)
    same, precision = q.quantize_int8(model)
    assert same is model and precision == FLOAT32 and type(same) is nn.Linear


def test_bfloat16_runs_under_autocast_where_the_cpu_has_it(monkeypatch) -> None:
    import qa_system.models.precision as q

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 8))
    x = torch.randn(16, 64)
    with torch.no_grad():
        before = model(x)
        with autocast(BFLOAT16):
            low = model(x)
    assert low.dtype == torch.bfloat16 and not torch.equal(low.float(), before)
    assert (low.float() - before).abs().max() < 0.05 * before.abs().max()
    same, precision = resolve(model, BFLOAT16)
    assert same is model and precision == (BFLOAT16 if bf16_fast() else FLOAT32)
    if precision == BFLOAT16:  # the Linear weights were cast once: autocast computes the same numbers
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
        with torch.no_grad(), autocast(BFLOAT16):
            assert torch.equal(model(x), low)
    with autocast(FLOAT32), torch.no_grad():
        assert model.float()(x).dtype == torch.float32
    monkeypatch.setattr(q, "bf16_fast", lambda: False)  # emulated bfloat16 would be slower: float32
    fresh = nn.Linear(4, 4)
    assert q.resolve(fresh, BFLOAT16)[1] == FLOAT32 and fresh.weight.dtype == torch.float32


def test_check_precision() -> None:
    assert check_precision("int8") == INT8
    with pytest.raises(ValueError, match="float32, bfloat16, int8"):
        check_precision("int4")
    with pytest.raises(ValueError):
        resolve(nn.Linear(2, 2), "fp8")
