"""Training the QA reader (``qa-system train reader``) and ranking answers with it.

AdamW over the trainable parts (LoRA adapters; cross-attention, heads and score weights faster) on
the shared loop (``training.loop``): one JSON trace line per epoch (loss, dev Hits@1, time); a
resumable checkpoint each epoch (a run folder of another config is refused); early stopping on dev
Hits@1 (``patience``); the best weights exported as safetensors + a JSON card.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
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
from qa_system.models.reader import QAReader
from qa_system.training.adapter_loop import adapter_optimizer
from qa_system.training.loop import EarlyStopping, RunFolder, optimisation_step, restore

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
    """Train, resuming the run in ``run_dir`` when it holds one of the same config; returns a summary.
    The best model is exported to ``run_dir/best``."""

    model_config = asdict(reader.config) if is_dataclass(reader.config) else None
    folder = RunFolder(run_dir, {"task": "reader", "train": asdict(cfg), "model": model_config}, state=STATE)
    torch.manual_seed(cfg.seed)
    optimizer, schedule, _ = adapter_optimizer(reader, lr=cfg.lr, head_lr_scale=cfg.head_lr_scale, weight_decay=cfg.weight_decay,
                                               total_steps=max(1, math.ceil(len(train) / cfg.batch_size)) * cfg.epochs, warmup=cfg.warmup)
    start_epoch, stopper = 1, EarlyStopping(patience=cfg.patience)
    state = folder.open(resume=True)
    if state is not None:
        restore(state, folder.state_path, reader=reader, optimizer=optimizer, schedule=schedule)
        start_epoch, stopper.best, stopper.best_epoch, stopper.bad_epochs = state["epoch"] + 1, state["best"], state["best_epoch"], state["stale"]
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming %s after epoch %d (best dev hits@1 %.4f)", run_dir, state["epoch"], stopper.best)
    stopped = "epochs"
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stopper.stop:
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
            losses.append(optimisation_step(loss, optimizer, schedule, _trainable(reader), what="reader", epoch=epoch, step=start // cfg.batch_size))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        metrics = dev_metrics(reader, dev, tokenizer, cfg)
        if stopper.update(metrics["hits@1"], epoch):
            save_reader(run_dir / "best", reader, {**(card or {}), "epoch": epoch, "dev": metrics, "train_config": asdict(cfg)})
        trace = {"epoch": epoch, "loss": sum(losses) / max(1, len(losses)), "dev_hits@1": metrics["hits@1"],
                 "dev_hits@5": metrics["hits@5"], "best": stopper.best, "time_s": round(time.time() - started, 1),
                 "gates": [round(float(torch.tanh(b.gate.detach())), 4) for b in reader.cross]}
        folder.trace.append(trace)
        log.info("reader %s", json.dumps(trace))
        folder.save({"reader": reader.trainable_state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                     "epoch": epoch, "best": stopper.best, "best_epoch": stopper.best_epoch, "stale": stopper.bad_epochs,
                     "python_rng": random.getstate(), "torch_rng": torch.get_rng_state()})
    return {"run_dir": str(run_dir), "best_dev_hits@1": stopper.best, "best_epoch": stopper.best_epoch, "stopped_by": stopped,
            "best": str(run_dir / "best")}
