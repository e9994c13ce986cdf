"""Training the QA reader (``qa-system train reader``) and ranking answers with it.

AdamW with linear warm-up/decay over the trainable parts (LoRA adapters, cross-attention, heads);
one JSON trace line per epoch (loss, dev Hits@1, time); a resumable checkpoint each epoch; early
stopping on dev Hits@1; the best weights exported as safetensors + a JSON card.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from evaluation.qa_metrics import summarise
from qa_system.ask.reader_features import QUESTION_MAX_LENGTH, ReaderFeatures, collate
from qa_system.ask.reader_loading import (  # noqa: F401  (re-exported for the training CLI)
    CARD,
    WEIGHTS,
    build_reader,
    load_reader_weights,
    rank,
    save_reader,
)
from qa_system.errors import ModelError
from qa_system.models.reader import QAReader

log = logging.getLogger(__name__)

STATE = "last.pt"


@dataclass
class ReaderTrainConfig:
    epochs: int = 8
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of steps with linear warm-up
    patience: int = 3  # epochs without dev improvement before stopping
    seed: int = 0
    max_length: int = QUESTION_MAX_LENGTH  # word pieces per question
    head_lr_scale: float = 4.0  # parts trained from scratch (cross-attention, heads, score weights) learn faster than the adapters


def dev_metrics(reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, cfg: ReaderTrainConfig) -> dict[str, float]:
    ranked = rank(reader, features, tokenizer, max_length=cfg.max_length)
    return summarise([[c for c, _ in r] for r in ranked], [f.answers for f in features])


def _trainable(reader: QAReader) -> list[torch.nn.Parameter]:
    return [p for p in reader.parameters() if p.requires_grad]


def fit(
    reader: QAReader,
    train: Sequence[ReaderFeatures],
    dev: Sequence[ReaderFeatures],
    tokenizer,
    cfg: ReaderTrainConfig,
    run_dir: Path,
    *,
    card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train with resume; returns a summary. The best model is exported to ``run_dir/best``."""

    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    adapters = [p for n, p in reader.named_parameters() if p.requires_grad and "lora_" in n]
    fresh = [p for n, p in reader.named_parameters() if p.requires_grad and "lora_" not in n]  # cross-attention, heads, weights
    optimizer = torch.optim.AdamW(
        [{"params": adapters, "lr": cfg.lr}, {"params": fresh, "lr": cfg.lr * cfg.head_lr_scale}], weight_decay=cfg.weight_decay
    )
    steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    start_epoch, best, best_epoch, stale = 1, -1.0, 0, 0
    state_path = run_dir / STATE
    if state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        reader.load_state_dict(state["reader"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, best, best_epoch, stale = state["epoch"] + 1, state["best"], state["best_epoch"], state["stale"]
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming %s after epoch %d (best dev hits@1 %.4f)", run_dir, state["epoch"], best)
    stopped = "epochs"
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stale >= cfg.patience:
            stopped = "early stopping"
            break
        reader.train()
        order = list(range(len(train)))
        random.Random(cfg.seed * 1000 + epoch).shuffle(order)
        started, losses = time.time(), []
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"reader epoch {epoch}", unit="batch", leave=False)
        for start in bar:
            batch = collate([train[i] for i in order[start : start + cfg.batch_size]], tokenizer, max_length=cfg.max_length)
            loss = reader(**batch).loss
            if loss is None or not torch.isfinite(loss):
                raise ModelError(f"reader loss is {loss} at epoch {epoch}; lower the learning rate (now {cfg.lr})")
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(_trainable(reader), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        metrics = dev_metrics(reader, dev, tokenizer, cfg)
        improved = metrics["hits@1"] > best
        if improved:
            best, best_epoch, stale = metrics["hits@1"], epoch, 0
            save_reader(run_dir / "best", reader, {**(card or {}), "epoch": epoch, "dev": metrics, "train_config": asdict(cfg)})
        else:
            stale += 1
        trace = {"epoch": epoch, "loss": sum(losses) / max(1, len(losses)), "dev_hits@1": metrics["hits@1"],
                 "dev_hits@5": metrics["hits@5"], "best": best, "time_s": round(time.time() - started, 1),
                 "gates": [round(float(torch.tanh(b.gate.detach())), 4) for b in reader.cross]}
        with open(run_dir / "trace.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(trace) + "\n")
        log.info("reader %s", json.dumps(trace))
        torch.save(
            {"reader": reader.trainable_state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "epoch": epoch,
             "best": best, "best_epoch": best_epoch, "stale": stale, "python_rng": random.getstate(), "torch_rng": torch.get_rng_state()},
            run_dir / (STATE + ".tmp"),
        )
        os.replace(run_dir / (STATE + ".tmp"), state_path)
    return {"run_dir": str(run_dir), "best_dev_hits@1": best, "best_epoch": best_epoch, "stopped_by": stopped, "best": str(run_dir / "best")}
