"""Pieces shared by the loops that fine-tune a MiniLM cross-encoder through LoRA adapters
(``training.entailment``, ``training.answer_reranker``): the optimizer with the head learning
faster than the adapters, the warm-up then linear-decay schedule, and the resumable state file.

Why shared: both loops train the same kind of network (adapters + a head trained from scratch),
checkpoint inside an epoch so a killed session resumes where it stopped, and must refuse to
overwrite a run that was not asked to resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from qa_system.errors import CheckpointError, ModelError


def adapter_optimizer(network: torch.nn.Module, *, lr: float, head_lr_scale: float, weight_decay: float, total_steps: int,
                      warmup: float) -> tuple[torch.optim.Optimizer, Any, list[torch.nn.Parameter]]:
    """AdamW over the trainable parameters (LoRA adapters at ``lr``, the rest — the head — at
    ``lr * head_lr_scale``), a linear warm-up over ``warmup`` of the steps then a linear decay to 0;
    returns optimizer, schedule and the trainable parameters (for gradient clipping)."""

    adapters = [p for n, p in network.named_parameters() if p.requires_grad and "lora_" in n]
    head = [p for n, p in network.named_parameters() if p.requires_grad and "lora_" not in n]
    optimizer = torch.optim.AdamW([{"params": adapters, "lr": lr}, {"params": head, "lr": lr * head_lr_scale}], weight_decay=weight_decay)
    warm = max(1, int(warmup * total_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total_steps - s) / max(1, total_steps - warm))))
    return optimizer, schedule, adapters + head


def resume_state(state_path: Path, network: Any, optimizer: torch.optim.Optimizer, schedule: Any, *, resume: bool) -> dict[str, Any] | None:
    """The saved state of ``state_path`` loaded into network, optimizer and schedule when
    ``resume`` (None when there is none yet); a run that exists but was not asked to resume is an
    error, so a second training never overwrites the first by accident."""

    if not state_path.is_file():
        return None
    if not resume:
        raise CheckpointError(f"{state_path.parent} already holds a training; pass --resume or choose another --out")
    try:
        state = torch.load(state_path, weights_only=False)
        network.load_state_dict(state["network"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"cannot resume from {state_path}: {e}") from e
    return state


def save_state(state_path: Path, network: Any, optimizer: torch.optim.Optimizer, schedule: Any, **extra: Any) -> None:
    """Write the resumable state (trainable weights, optimizer, schedule and ``extra``) atomically."""

    tmp = state_path.with_name(state_path.name + ".tmp")
    torch.save({"network": network.trainable_state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), **extra}, tmp)
    os.replace(tmp, state_path)


def optimisation_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule: Any, trainable: list[torch.nn.Parameter], *,
                      what: str, epoch: int, step: int) -> float:
    """Backward, clip gradients to norm 1, step optimizer and schedule; a non-finite loss stops the
    run with a clear error (usually a learning rate too high) instead of silently corrupting it."""

    if not torch.isfinite(loss):
        lr = optimizer.param_groups[0]["lr"]
        raise ModelError(f"{what} loss is {loss.item()} at epoch {epoch} step {step}; lower the learning rate (now {lr:g})")
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    schedule.step()
    return float(loss.item())
