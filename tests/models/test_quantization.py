"""Dynamic int8 quantization for CPU inference: linear layers are replaced, outputs stay close,
precision names are checked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qa_system.models.quantization import FLOAT32, INT8, check_precision, int8_available, quantize_int8


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
    import qa_system.models.quantization as q

    monkeypatch.setattr(q, "int8_available", lambda: False)
    model = nn.Linear(4, 4)
    same, precision = q.quantize_int8(model)
    assert same is model and precision == FLOAT32 and type(same) is nn.Linear


def test_check_precision() -> None:
    assert check_precision("int8") == INT8
    with pytest.raises(ValueError, match="float32, int8"):
        check_precision("int4")
