"""The numeric precision a model runs inference in on CPU: float32, bfloat16 or int8.

Why: on the 2-core CPU the answer reranker's ten cross-encoder passes are most of ``ask``'s latency
(``evaluation.bench_ask``). Two cheaper precisions were measured on it (session 8, ten pairs of
~80 word pieces, 1 thread, same process):

- **bfloat16** (``torch.autocast``; matrix products run in bfloat16): 1.9x faster where the CPU
  has bfloat16 instructions (AVX512-BF16 or AMX; this machine has AVX512-BF16); logits move by
  < 0.05. The ``nn.Linear`` weights are cast to bfloat16 once, in :func:`resolve` (session 12):
  autocast would otherwise cast every float32 weight again on every pass (its cast cache lives
  only as long as one autocast region), ~3 of the reranker's ~19 ms for five pairs of ~49 word
  pieces, for bit-identical logits. Without those instructions bfloat16 is emulated and slower
  than float32, so :func:`resolve` runs float32 there (answers equal up to that 0.05).
- **int8** (``torch.ao.quantization.quantize_dynamic``: every ``nn.Linear`` with int8 weights, one
  scale per output channel, activations quantized on the fly; fbgemm kernels): 2.6x faster, but
  logits move by up to 1.0 and the reranker's dev Hits@1 (text match on, weight re-chosen) fell
  from 0.6628 to 0.6537. One scale per tensor was worse still (1.2). PyTorch marks this API
  deprecated in favour of torchao, whose eager int8 path on CPU was barely faster than float32
  here (199 vs 227 ms); torch is pinned (2.13), where it is present.

Only for inference. LoRA adapters must be merged first (``models.lora.merge_lora_for_inference``),
so that the merged weights are what runs in the lower precision.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads PRECISIONS without it
    from torch import nn

log = logging.getLogger(__name__)

FLOAT32, BFLOAT16, INT8 = "float32", "bfloat16", "int8"
PRECISIONS = (FLOAT32, BFLOAT16, INT8)


def check_precision(precision: str) -> str:
    """``precision`` when it is one of :data:`PRECISIONS`, else ``ValueError``."""

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def bf16_fast() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX)."""

    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers; a torch without them: assume not
        return False


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
    from torch import nn
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    module.eval()
    with warnings.catch_warnings():  # the deprecation notice of torch.ao.quantization (see module doc)
        warnings.simplefilter("ignore", DeprecationWarning)
        quantize_dynamic(module, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
    return module, INT8


def resolve(module: nn.Module, precision: str) -> tuple[nn.Module, str]:
    """Prepare a loaded, merged ``module`` for ``precision`` and return it with the precision it
    will actually run in: int8 is applied here (in place); for bfloat16 every ``nn.Linear`` is cast
    to bfloat16 here (in place; the forward pass must then run inside :func:`autocast`, which
    computes exactly what it computed with float32 weights, minus the per-pass casts), but CPUs
    without bfloat16 instructions run float32, where bfloat16 would be emulated and slower (logged)."""

    check_precision(precision)
    if precision == INT8:
        return quantize_int8(module)
    if precision == BFLOAT16:
        if not bf16_fast():
            log.info("this CPU has no bfloat16 instructions; running float32 (same answers up to rounding)")
            return module, FLOAT32
        return cast_linear_bfloat16(module), BFLOAT16
    return module, precision


def cast_linear_bfloat16(module: nn.Module) -> nn.Module:
    """``module`` with the weights and biases of every ``nn.Linear`` in bfloat16 (in place): the
    cast autocast would repeat on each pass, done once. Embeddings and layer norms stay float32,
    as autocast keeps them."""

    import torch
    from torch import nn

    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.to(torch.bfloat16)
    return module


@contextlib.contextmanager
def autocast(precision: str) -> Iterator[None]:
    """The context a forward pass in ``precision`` runs in: CPU bfloat16 autocast, else nothing."""

    if precision == BFLOAT16:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield
