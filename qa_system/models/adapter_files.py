"""Writing a small adapter checkpoint (LoRA, heads, learned scales) beside its card: the entailment
model and the relation scorer both ship one. The weights are written to a temporary file and moved
into place, so a reader never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

WEIGHTS, CARD = "adapters.safetensors", "card.json"


def save_adapters(folder: Path, state: dict[str, torch.Tensor], header: dict[str, Any], card: dict[str, Any], *,
                  fp16: bool = False) -> Path:
    """``state`` to ``folder/adapters.safetensors`` (float16 when ``fp16``; scalars such as a learned
    scale stay float32) and ``{**header, "dtype": ..., **card}`` to ``folder/card.json``."""

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = "float16" if fp16 else "float32"
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if fp16:
        state = {k: (v.half() if v.is_floating_point() and v.dim() > 0 else v) for k, v in state.items()}
    save_file(state, str(folder / (WEIGHTS + ".tmp")), metadata={"dtype": dtype})
    os.replace(folder / (WEIGHTS + ".tmp"), folder / WEIGHTS)
    (folder / CARD).write_text(json.dumps({**header, "dtype": dtype, **card}, indent=2, ensure_ascii=False, default=str) + "\n")
    return folder
