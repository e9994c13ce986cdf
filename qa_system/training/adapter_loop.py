"""The optimizer of the loops that fine-tune MiniLM through LoRA adapters with a part trained from
scratch (``training.entailment``, ``training.answer_reranker``, ``training.reader``): the adapters
at ``lr``, the rest (heads, cross-attention, score weights) faster, on the shared schedule
(``training.loop``).
"""

from __future__ import annotations

from typing import Any

import torch

from qa_system.training.loop import linear_schedule


def adapter_optimizer(network: torch.nn.Module, *, lr: float, head_lr_scale: float, weight_decay: float, total_steps: int,
                      warmup: float) -> tuple[torch.optim.Optimizer, Any, list[torch.nn.Parameter]]:
    """AdamW over the trainable parameters (LoRA adapters at ``lr``, the rest — the head — at
    ``lr * head_lr_scale``), a linear warm-up over ``warmup`` of the steps then a linear decay to 0;
    returns optimizer, schedule and the trainable parameters (for gradient clipping)."""

    adapters = [p for n, p in network.named_parameters() if p.requires_grad and "lora_" in n]
    head = [p for n, p in network.named_parameters() if p.requires_grad and "lora_" not in n]
    optimizer = torch.optim.AdamW([{"params": adapters, "lr": lr}, {"params": head, "lr": lr * head_lr_scale}], weight_decay=weight_decay)
    return optimizer, linear_schedule(optimizer, total_steps, warmup), adapters + head
