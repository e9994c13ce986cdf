"""Dynamic int8 quantization of a model's linear layers, for CPU inference.

Why: on the 2-core CPU the answer reranker's ten cross-encoder passes are most of ``ask``'s latency
(``evaluation.bench_ask``). Quantizing every ``nn.Linear`` to int8 weights (one scale per output
channel) with int8 activations quantized on the fly (fbgemm kernels) makes those passes ~2.6x
faster. Per-channel weights matter: with one scale per tensor the reranker's logits moved by up to
1.2 and its dev Hits@1 fell 0.6 points; per channel the ranking on dev was as good as float32
(session 8, ``/work/runs/quant/devq.json``: 0.6335 vs 0.6318 at the shipped weight).

The API is ``torch.ao.quantization.quantize_dynamic``. PyTorch marks it deprecated in favour of
torchao, but torchao's eager int8 path on CPU was barely faster than float32 here (199 vs 227 ms
for ten pairs), while this one runs fbgemm's int8 GEMMs; torch is pinned (2.13) and the function is
present there. Where it is missing or no quantized engine exists, :func:`quantize_int8` says so
and the model stays float32 (slower, same answers up to rounding).

Only for inference: a quantized module has no gradients. LoRA adapters must be merged first
(``models.lora.merge_lora_for_inference``), so that the merged weights are what gets quantized.
"""

from __future__ import annotations

import logging
import warnings

from torch import nn

log = logging.getLogger(__name__)

FLOAT32, INT8 = "float32", "int8"
PRECISIONS = (FLOAT32, INT8)


def int8_available() -> bool:
    """Whether this torch build can run dynamically quantized linear layers."""

    import torch

    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic  # noqa: F401
    except ImportError:
        return False
    return any(engine in torch.backends.quantized.supported_engines for engine in ("fbgemm", "x86", "qnnpack"))


def quantize_int8(module: nn.Module) -> tuple[nn.Module, str]:
    """``module`` with every ``nn.Linear`` replaced by a dynamically quantized int8 one (in place),
    and the precision it now runs in: ``"int8"``, or ``"float32"`` when this torch cannot (logged)."""

    if not int8_available():
        log.warning("int8 dynamic quantization is not available in this torch build; the model stays float32")
        return module, FLOAT32
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    module.eval()
    with warnings.catch_warnings():  # the deprecation notice of torch.ao.quantization (see module doc)
        warnings.simplefilter("ignore", DeprecationWarning)
        quantize_dynamic(module, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
    return module, INT8


def check_precision(precision: str) -> str:
    """``precision`` when it is one of :data:`PRECISIONS`, else ``ValueError``."""

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision
