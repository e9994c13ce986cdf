"""Training and evaluating the entailment cross-encoder (``qa-system train|evaluate entailment``).

AdamW over the LoRA adapters and the head on the shared loop (``training.loop``); batches of
similar length (shuffled chunks sorted by length) because padding is most of the cost on a CPU; a loss that
accepts label *sets* (``-log sum_{y in target} p(y)``), so two-way "not entailment" pairs train the
three-way head without a guessed neutral/contradiction label. A resumable ``last.pt`` is written
every ``save_every`` steps and at the end of each epoch (a CPU epoch is long; a killed run loses
minutes, not the epoch); the best epoch on dev is exported to ``<run>/best``; one JSON trace line
per epoch in ``<run>/trace.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qa_system.errors import ModelError
from qa_system.models.entailment import (
    LABEL_INDEX,
    LABELS,
    EntailmentCrossEncoder,
    EntailmentModel,
    encode_pairs,
    save_entailment,
)
from qa_system.training.adapter_loop import adapter_optimizer
from qa_system.training.entailment_data import NLIPair
from qa_system.training.loop import EarlyStopping, RunFolder, optimisation_step, restore

log = logging.getLogger(__name__)

STATE, BEST = "last.pt", "best"
TWO_WAY_DEV = ("webnlg-val",)  # dev sets scored entailment-vs-not
# Share of the training sample per part when --max-train cuts it (WebNLG is our domain; SNLI is the benchmark).
DEFAULT_PART_WEIGHTS = {"webnlg": 0.40, "snli": 0.25, "sick": 0.12, "climate-fever": 0.08, "rte": 0.08, "fever": 0.07}


@dataclass
class EntailmentTrainConfig:
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-4  # adapters
    head_lr_scale: float = 2.0  # the head is trained from scratch
    weight_decay: float = 0.01
    warmup: float = 0.06  # share of steps with linear warm-up
    max_length: int = 128  # word pieces per training pair (inference uses the model's 256)
    seed: int = 0
    save_every: int = 200  # steps between resumable snapshots inside an epoch
    chunk_batches: int = 50  # batches per length-sorted chunk
    dev_limit: int = 1500  # pairs per dev set (seeded sample) to keep the per-epoch check short
    max_train: int | None = None
    part_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PART_WEIGHTS))


def target_mask(pairs: Sequence[NLIPair]) -> torch.Tensor:
    """(B, 3) boolean: which labels each pair accepts."""

    mask = torch.zeros(len(pairs), len(LABELS), dtype=torch.bool)
    for i, p in enumerate(pairs):
        mask[i, list(p.target)] = True
    return mask


def set_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log sum_{y in target} softmax(logits)_y``; equals cross-entropy for one-label targets."""

    log_probs = torch.log_softmax(logits, dim=-1)  # (B, 3)
    return -(log_probs.masked_fill(~mask, float("-inf")).logsumexp(-1)).mean()


def length_batches(pairs: Sequence[NLIPair], batch_size: int, chunk_batches: int, seed: int) -> list[list[int]]:
    """Indices in batches of similar length: shuffle, sort within chunks of ``chunk_batches`` batches,
    then shuffle the batches. Deterministic for a seed (so a resumed epoch replays the same order)."""

    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(pairs[i].premise) + len(pairs[i].hypothesis))
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


# -- metrics -----------------------------------------------------------------------------------
def classification_report(gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision/recall/F1/support over ``labels`` (indices into it)."""

    gold_a, pred_a = np.asarray(gold, dtype=int), np.asarray(predicted, dtype=int)
    per_class: dict[str, dict[str, float]] = {}
    for k, name in enumerate(labels):
        tp = int(((pred_a == k) & (gold_a == k)).sum())
        predicted_k, support = int((pred_a == k).sum()), int((gold_a == k).sum())
        precision = tp / predicted_k if predicted_k else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": support}
    n = len(gold_a)
    return {
        "n": n,
        "accuracy": round(float((gold_a == pred_a).mean()), 4) if n else 0.0,
        "f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4) if n else 0.0,
        "per_class": per_class,
    }


def score_pairs(model: EntailmentModel, pairs: Sequence[NLIPair], *, two_way: bool | None = None, batch_size: int = 64,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate on pairs: two-way (entailment vs not; predicted entailment = arg-max is entailment)
    for two-way datasets, else three-way. ``two_way=None`` decides from the targets (any label set)."""

    probs = np.zeros((0, len(LABELS)), dtype=np.float32)
    chunks = [pairs[i : i + 512] for i in range(0, len(pairs), 512)]
    for done, chunk in enumerate(chunks, start=1):
        probs = np.concatenate([probs, model.predict([(p.premise, p.hypothesis) for p in chunk], batch_size=batch_size)])
        if progress is not None:
            progress(min(done * 512, len(pairs)), len(pairs))
    predicted = probs.argmax(1) if len(pairs) else np.zeros(0, dtype=int)
    if two_way is None:
        two_way = any(len(p.target) > 1 for p in pairs)
    if two_way:
        gold = [0 if p.target == frozenset({LABEL_INDEX["entailment"]}) else 1 for p in pairs]
        report = classification_report(gold, (predicted != LABEL_INDEX["entailment"]).astype(int), ("entailment", "not_entailment"))
        report["three_way_pred_counts"] = {name: int((predicted == k).sum()) for k, name in enumerate(LABELS)}
    else:
        gold = [next(iter(p.target)) for p in pairs]
        report = classification_report(gold, predicted, LABELS)
    report["mode"] = "2-way" if two_way else "3-way"
    return report


def dev_report(network: EntailmentCrossEncoder, tokenizer: Any, dev: dict[str, Sequence[NLIPair]], cfg: EntailmentTrainConfig) -> dict[str, Any]:
    model = EntailmentModel(network, tokenizer)
    out = {name: score_pairs(model, pairs, two_way=True if name in TWO_WAY_DEV else None)["accuracy"] for name, pairs in dev.items()}
    out["mean"] = round(float(np.mean(list(out.values()))), 4) if out else 0.0
    network.train()
    return out


# -- the loop ----------------------------------------------------------------------------------
def fit(network: EntailmentCrossEncoder, tokenizer: Any, train: Sequence[NLIPair], dev: dict[str, Sequence[NLIPair]],
        cfg: EntailmentTrainConfig, run_dir: Path, *, card: dict[str, Any] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train (resuming from ``run_dir/last.pt`` when ``resume``, a run of the same config); returns a summary with the best dev score."""

    if not train:
        raise ModelError("no training pairs")
    folder = RunFolder(run_dir, {"task": "entailment", "train": asdict(cfg)}, state=STATE)
    torch.manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    optimizer, schedule, trainable = adapter_optimizer(network, lr=cfg.lr, head_lr_scale=cfg.head_lr_scale, weight_decay=cfg.weight_decay,
                                                       total_steps=steps_per_epoch * cfg.epochs, warmup=cfg.warmup)
    epoch, step_in_epoch, best = 1, 0, EarlyStopping()
    state = folder.open(resume=resume)
    if state is not None:
        restore(state, folder.state_path, network=network, optimizer=optimizer, schedule=schedule)
        epoch, step_in_epoch, best.best, best.best_epoch = state["epoch"], state["step"], state["best"], state["best_epoch"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming %s at epoch %d step %d (best dev %.4f)", run_dir, epoch, step_in_epoch, best.best)

    def snapshot(ep: int, step: int) -> None:
        folder.save({"network": network.trainable_state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                     "epoch": ep, "step": step, "best": best.best, "best_epoch": best.best_epoch, "torch_rng": torch.get_rng_state(),
                     "train_config": asdict(cfg)})

    while epoch <= cfg.epochs:
        network.train()
        batches = length_batches(train, cfg.batch_size, cfg.chunk_batches, cfg.seed * 1000 + epoch)
        started, losses = time.time(), []
        bar = tqdm(range(step_in_epoch, len(batches)), desc=f"entailment epoch {epoch}/{cfg.epochs}", unit="batch",
                   initial=step_in_epoch, total=len(batches), mininterval=10)
        for step in bar:
            chunk = [train[i] for i in batches[step]]
            encoded = encode_pairs(tokenizer, [(p.premise, p.hypothesis) for p in chunk], cfg.max_length)
            loss = set_loss(network(**encoded), target_mask(chunk))
            losses.append(optimisation_step(loss, optimizer, schedule, trainable, what="entailment", epoch=epoch, step=step))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if (step + 1) % cfg.save_every == 0 and step + 1 < len(batches):
                snapshot(epoch, step + 1)
        metrics = dev_report(network, tokenizer, dev, cfg)
        if best.update(metrics["mean"], epoch):
            save_entailment(run_dir / BEST, network, {**(card or {}), "epoch": epoch, "dev_accuracy": metrics,
                                                      "train_config": asdict(cfg)})
        trace = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4) if losses else None, "dev": metrics, "best": best.best,
                 "steps": len(batches), "time_s": round(time.time() - started, 1)}
        folder.trace.append(trace)
        log.info("entailment %s", json.dumps(trace))
        epoch, step_in_epoch = epoch + 1, 0
        snapshot(epoch, 0)
    return {"run_dir": str(run_dir), "best_dev": best.best, "best_epoch": best.best_epoch, "best": str(run_dir / BEST)}
