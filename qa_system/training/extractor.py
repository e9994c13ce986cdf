"""One training loop for every span extractor (QIDN, the cascade) on WebNLG.

Why shared: both models implement ``SpanExtractionModel`` (``loss``/``decode`` on an
``ExtractionBatch``), so data, optimiser, dev F1 and best-checkpoint export are the same code; the
schedule, resume rule and trace are the shared loop's (``training.loop``). A model family is named by
string and its builder/saver/loader are imported lazily.

Run folder (outside git): ``last.pt`` (everything needed to resume, written atomically after each
epoch; resumed only with ``resume`` and the same model, dataset and training config, more epochs
aside), ``run.json`` (that config), ``best/`` (the best dev-F1 checkpoint, float32, in the family's
own format), ``trace.jsonl`` (one line per epoch: losses, dev metrics, seconds).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from qa_system.errors import CheckpointError, InputError
from qa_system.models.extraction_data import (
    ExtractionCollator,
    ExtractionExample,
    load_webnlg,
)
from qa_system.training.loop import EarlyStopping, RunFolder, linear_schedule, optimisation_step, restore

log = logging.getLogger(__name__)

MODELS = ("qidn", "cascade")
LAST, BEST = "last.pt", "best"


@dataclass
class ExtractorTrainConfig:
    """Optimisation settings (stored in the run's state and the card)."""

    epochs: int = 20
    batch_size: int = 16
    lr: float = 5e-4  # adapters; parts trained from scratch get lr * head_lr_scale
    head_lr_scale: float = 2.0
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps with a linear warm-up, then linear decay to 0
    grad_clip: float = 1.0
    max_length: int = 128  # word pieces (WebNLG's longest sentence has 102)
    eval_batch_size: int = 32
    seed: int = 0
    train_limit: int | None = None  # first N training sentences (tests, smoke runs)
    dev_limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1. Currently, {name} is {getattr(self, name)}")
        if self.lr <= 0:
            raise InputError(f"lr must be positive. Currently, lr is {self.lr}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractorTrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---------------------------------------------------------------------- model families
def build_model(name: str, model_config: Any, relation_names: Sequence[str]) -> torch.nn.Module:
    """A fresh model of family ``name`` (``model_config``: the family's config dataclass or None)."""

    if name == "qidn":
        from qa_system.models.qidn import build_qidn

        return build_qidn(model_config, list(relation_names))
    if name == "cascade":
        from qa_system.models.cascade import build_cascade

        return build_cascade(model_config, list(relation_names))
    raise InputError(f"unknown extractor model {name!r}; choose one of {', '.join(MODELS)}")


def save_model(name: str, folder: Path, model: torch.nn.Module, card: dict[str, Any], *, fp16: bool) -> Path:
    if name == "qidn":
        from qa_system.models.qidn import save_qidn

        return save_qidn(folder, model, card, fp16=fp16)
    from qa_system.models.cascade import save_cascade

    return save_cascade(folder, model, card, fp16=fp16)


def load_model(name: str, folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Model (eval mode) and card from a checkpoint folder of family ``name``."""

    if name == "qidn":
        from qa_system.models.qidn import load_qidn

        return load_qidn(folder)
    if name == "cascade":
        from qa_system.models.cascade import load_cascade

        return load_cascade(folder)
    raise InputError(f"unknown extractor model {name!r}; choose one of {', '.join(MODELS)}")


def warm_start(model: torch.nn.Module, name: str, folder: Path) -> dict[str, Any]:
    """Load the trained tensors of checkpoint ``folder`` into ``model`` before training it further.

    ``model`` may read more inputs than the checkpoint's (e.g. QIDN's ``case_dim``): a weight whose
    new shape only adds input columns gets the old columns and zeros for the new ones, so the
    warm-started model computes exactly what the checkpoint did until training moves it; tensors
    the checkpoint lacks keep their fresh initialisation. Any other mismatch is a CheckpointError.
    Returns a summary for the card (folder, epoch, widened and new tensors)."""

    source, card = load_model(name, folder)
    old = {k: v.float() for k, v in trained_state(source).items()}
    own = model.state_dict()
    unknown = sorted(set(old) - set(own))
    if unknown:
        raise CheckpointError(f"{folder} does not fit this {name} config: {len(unknown)} tensors it lacks (e.g. {unknown[:2]})")
    loaded, widened = {}, []
    for key, value in old.items():
        target = own[key]
        if value.shape == target.shape:
            loaded[key] = value
        elif value.dim() == 2 and value.shape[0] == target.shape[0] and value.shape[1] < target.shape[1]:
            grown = torch.zeros_like(target)
            grown[:, : value.shape[1]] = value
            loaded[key], widened = grown, [*widened, key]
        else:
            raise CheckpointError(f"{folder}: tensor {key} has shape {tuple(value.shape)}, this config needs {tuple(target.shape)}")
    model.load_state_dict(loaded, strict=False)
    fresh = sorted(set(trained_state(model)) - set(loaded))
    return {"folder": str(folder), "epoch": card.get("epoch"), "dataset": card.get("dataset"), "widened": widened, "new": fresh}


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    keep = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in keep}


# ---------------------------------------------------------------------- batching
def length_bucketed_batches(examples: Sequence[ExtractionExample], batch_size: int, rng: random.Random,
                            tokens: Callable[[ExtractionExample], int]) -> list[list[int]]:
    """Shuffled batches of similar length (sorted within pools of 50 batches): less padding, still random."""

    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for k in range(0, len(order), pool):
        chunk = sorted(order[k:k + pool], key=lambda i: tokens(examples[i]))
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


# ---------------------------------------------------------------------- the loop
def fit(run_dir: Path, *, model_name: str, dataset: str, data_dir: Path, model_config: Any = None,
        train_config: ExtractorTrainConfig | None = None, resume: bool = False, command: str | None = None,
        tokenizer: Any = None, progress: Callable[[str, float], None] | None = None, init: Path | None = None) -> dict[str, Any]:
    """Train, evaluating dev F1 after every epoch; returns a summary (best epoch, dev metrics, paths).

    ``init``: a checkpoint folder to start from (:func:`warm_start`) instead of fresh heads; a
    resumed run restores its own state over it."""

    from evaluation.extraction import evaluate

    cfg = train_config or ExtractorTrainConfig()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train, relations = load_webnlg(data_dir, dataset, "train")
    dev, _ = load_webnlg(data_dir, dataset, "dev")
    train, dev = train[:cfg.train_limit] if cfg.train_limit else train, dev[:cfg.dev_limit] if cfg.dev_limit else dev
    if tokenizer is None:
        from qa_system.models.span_extractor import minilm_tokenizer

        tokenizer = minilm_tokenizer()
    collator = ExtractionCollator(tokenizer, {r: i for i, r in enumerate(relations)}, cfg.max_length)
    model = build_model(model_name, model_config, relations)
    started_from = warm_start(model, model_name, Path(init)) if init is not None else None
    groups = model.param_groups(cfg.lr, cfg.head_lr_scale, cfg.weight_decay) if hasattr(model, "param_groups") else \
        [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    optimizer = torch.optim.AdamW(groups)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    scheduler = linear_schedule(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup, floor=0)
    model_config_dict = model.config.to_dict() if hasattr(model, "config") and hasattr(model.config, "to_dict") else None
    folder = RunFolder(run_dir, {"task": "extractor", "model_name": model_name, "dataset": dataset, "train": asdict(cfg),
                                 "model": model_config_dict}, state=LAST)
    start_epoch, best, history = 0, EarlyStopping(best_epoch=None), []
    state = folder.open(resume=resume)
    if state is not None:
        start_epoch, history = _restore(state, folder.state_path, model, optimizer, scheduler, best, model_name, dataset)
        log.info("resumed %s after epoch %d (best dev F1 %.4f at epoch %s)", run_dir, start_epoch, best.best, best.best_epoch)
    if hasattr(model, "lower_cache"):
        model.lower_cache = {}  # QIDN: frozen-layer outputs computed once per training sentence
    lengths = {e.text: len(tokenizer(e.text)["input_ids"]) for e in train}
    for epoch in range(start_epoch, cfg.epochs):
        began = time.time()
        rng = random.Random(cfg.seed * 1000 + epoch)
        batches = length_bucketed_batches(train, cfg.batch_size, rng, lambda e: lengths[e.text])
        model.train()
        sums: dict[str, float] = {}
        bar = tqdm(batches, desc=f"{model_name} epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        for i, idx in enumerate(bar):
            batch = collator([train[j] for j in idx])
            loss, parts = model.loss(batch)
            optimisation_step(loss, optimizer, scheduler, [p for g in groups for p in g["params"]], clip=cfg.grad_clip,
                              what=model_name, epoch=epoch + 1, step=i)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if i % 20 == 0:
                bar.set_postfix(loss=f"{parts.get('total', 0.0):.3f}")
            if progress is not None:
                progress(f"epoch {epoch + 1}", (epoch + (i + 1) / len(batches)) / cfg.epochs)
        if epoch == start_epoch:
            collator.log_stats()
        train_seconds = time.time() - began
        dev_metrics = evaluate(model, collator, dev, relations, batch_size=cfg.eval_batch_size, desc="dev")
        record = {"epoch": epoch + 1, "train_loss": {k: v / max(1, len(batches)) for k, v in sums.items()},
                  "dev": {k: dev_metrics[k] for k in ("precision", "recall", "f1", "correct", "predicted", "gold")},
                  "train_seconds": round(train_seconds, 1), "dev_seconds": round(dev_metrics["seconds"], 1)}
        history.append(record)
        folder.trace.append(record)
        log.info("epoch %d: loss %.4f, dev P %.4f R %.4f F1 %.4f (%.0f s train)", epoch + 1,
                 record["train_loss"].get("total", float("nan")), dev_metrics["precision"], dev_metrics["recall"],
                 dev_metrics["f1"], train_seconds)
        if best.update(dev_metrics["f1"], epoch + 1):
            card = {"dataset": dataset, "epoch": epoch + 1, "dev": dev_metrics, "train_config": asdict(cfg),
                    "max_length": cfg.max_length, "vocabulary": "webnlg", "command": command,
                    "train_sentences": len(train), "dev_sentences": len(dev),
                    **({"init": started_from} if started_from else {})}
            save_model(model_name, run_dir / BEST, model, card, fp16=False)
        folder.save({"model_name": model_name, "dataset": dataset, "epoch": epoch + 1, "best_f1": best.best, "best_epoch": best.best_epoch,
                     "history": history, "train_config": asdict(cfg), "model": trained_state(model),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "model_config": model_config_dict})
    return {"run_dir": str(run_dir), "best_epoch": best.best_epoch, "best_dev_f1": best.best, "epochs": len(history),
            "history": history, "best": str(run_dir / BEST)}


def _restore(state: dict[str, Any], path: Path, model, optimizer, scheduler, best: EarlyStopping, model_name: str,
             dataset: str) -> tuple[int, list]:
    if state.get("model_name") != model_name or state.get("dataset") != dataset:  # (run.json says so too; older runs lack it)
        raise CheckpointError(f"{path} is a {state.get('model_name')} run on {state.get('dataset')}, "
                              f"not {model_name} on {dataset}; use another --out folder")
    missing = set(trained_state(model)) - set(state.get("model", {}))
    if missing:
        raise CheckpointError(f"{path} does not match the model ({len(missing)} trained tensors missing)")
    restore(state, path, model=model, optimizer=optimizer, scheduler=scheduler)
    best.best, best.best_epoch = float(state["best_f1"]), state.get("best_epoch")
    return int(state["epoch"]), list(state.get("history", []))
