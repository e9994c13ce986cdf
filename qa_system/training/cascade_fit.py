"""A minimal training loop for the cascade extractor (a stop-gap beside the shared extractor loop).

Why it exists: the shared loop (``qa_system/training/extractor.py``, ``qa-system train extractor``)
was not there when the cascade had to start training on a CPU with a fixed deadline. This loop
uses only the shared contract (``load_webnlg``, ``ExtractionCollator``, ``SpanExtractionModel``)
and the cascade's own checkpoint format, so its checkpoints load with
:func:`qa_system.models.cascade.load_cascade_extractor` and evaluate with the shared evaluator.

A run folder holds ``last.pt`` (model + optimiser + scheduler + epoch, for ``resume``),
``epoch-N/`` and ``best/`` cascade checkpoints (best dev F1) and ``trace.jsonl`` (one line per epoch).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from qa_system.models.cascade import (
    CascadeConfig,
    CascadeExtractor,
    build_cascade,
    save_cascade,
)
from qa_system.training.extraction_data import (
    ExtractionCollator,
    ExtractionExample,
    load_webnlg,
    span_text,
)

log = logging.getLogger(__name__)


@dataclass
class CascadeFitConfig:
    """Optimisation settings of :func:`fit_cascade`."""

    epochs: int = 20
    batch_size: int = 16
    lr: float = 3e-4  # LoRA adapters
    head_lr_scale: float = 3.0  # MHSA-RPE, fusion and taggers are trained from scratch: faster
    weight_decay: float = 0.01
    warmup: float = 0.05  # share of steps with linear warm-up, then linear decay to 0
    grad_clip: float = 1.0
    max_length: int = 128
    eval_batch_size: int = 64
    seed: int = 0


def string_triples(batch, predicted) -> list[set[tuple[str, str, int]]]:
    """Predicted token triples as ``(subject text, object text, relation id)`` sets per sentence."""

    out = []
    for text, offsets, row in zip(batch.texts, batch.offsets, predicted):
        found = set()
        for t, _score in row:
            s, _, _ = span_text(text, offsets, t.sub_start, t.sub_end)
            o, _, _ = span_text(text, offsets, t.obj_start, t.obj_end)
            found.add((s, o, t.relation))
        out.append(found)
    return out


def evaluate_strings(model: CascadeExtractor, examples: Sequence[ExtractionExample], collator: ExtractionCollator,
                     batch_size: int = 64) -> dict[str, float]:
    """Micro P/R/F1 on exact (subject, relation, object) strings against the gold strings (CasRel's rule)."""

    rel_id = collator.relation_to_id
    tp = n_pred = n_gold = 0
    model.eval()
    with torch.no_grad():
        for k in range(0, len(examples), batch_size):
            chunk = list(examples[k:k + batch_size])
            batch = collator(chunk)
            for ex, found in zip(chunk, string_triples(batch, model.decode(batch))):
                gold = {(s, o, rel_id[r]) for s, r, o in ex.triples}
                tp += len(found & gold)
                n_pred += len(found)
                n_gold += len(gold)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "predicted": n_pred, "gold": n_gold, "correct": tp}


def fit_cascade(out: Path, *, dataset: str = "webnlg-star", data_dir: Path = Path("/work/shared/data"),
                config: CascadeConfig | None = None, fit: CascadeFitConfig | None = None, resume: bool = True,
                stop_at: float | None = None, progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Train on ``train``, select on ``dev`` F1; checkpoint every epoch; resume from ``out/last.pt``.

    ``stop_at`` (a UNIX time) ends training after the epoch that crosses it (a deadline on shared CPUs).
    Returns the best dev metrics and epoch.
    """

    fit = fit or CascadeFitConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(fit.seed)
    torch.manual_seed(fit.seed)
    train, relations = load_webnlg(data_dir, dataset, "train")
    dev, _ = load_webnlg(data_dir, dataset, "dev")
    from qa_system.models.span_extractor import minilm_tokenizer

    collator = ExtractionCollator(minilm_tokenizer(), {r: i for i, r in enumerate(relations)}, max_length=fit.max_length)
    model = build_cascade(config, relations)
    steps_per_epoch = (len(train) + fit.batch_size - 1) // fit.batch_size
    total = steps_per_epoch * fit.epochs
    warm = max(1, int(fit.warmup * total))
    optimiser = torch.optim.AdamW(model.param_groups(fit.lr, fit.head_lr_scale, fit.weight_decay))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))
    start_epoch, best = 0, {"f1": -1.0, "epoch": 0}
    if resume and (out / "last.pt").is_file():
        state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = state["epoch"], state["best"]
        log.info("resumed %s at epoch %d (best dev F1 %.4f)", out, start_epoch, best["f1"])
    card = {"dataset": dataset, "vocabulary": "webnlg", "max_length": fit.max_length, "train_config": asdict(fit),
            "trainer": "qa_system.training.cascade_fit.fit_cascade"}
    for epoch in range(start_epoch + 1, fit.epochs + 1):
        model.train()
        order = list(range(len(train)))
        random.Random(fit.seed + epoch).shuffle(order)
        started, losses = time.time(), []
        bar = tqdm(range(0, len(order), fit.batch_size), desc=f"cascade epoch {epoch}/{fit.epochs}", mininterval=30)
        for k in bar:
            batch = collator([train[i] for i in order[k:k + fit.batch_size]])
            loss, parts = model.loss(batch)
            if not torch.isfinite(loss):
                from qa_system.errors import ModelError

                raise ModelError(f"non-finite cascade loss at epoch {epoch}: {parts}")
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], fit.grad_clip)
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", refresh=False)
        dev_metrics = evaluate_strings(model, dev, collator, fit.eval_batch_size)
        record = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "dev": dev_metrics,
                  "seconds": round(time.time() - started, 1), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        log.info("epoch %d: loss %.4f dev P %.4f R %.4f F1 %.4f (%.0f s)", epoch, record["train_loss"],
                 dev_metrics["precision"], dev_metrics["recall"], dev_metrics["f1"], record["seconds"])
        with (out / "trace.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        save_cascade(out / f"epoch-{epoch}", model, {**card, "epoch": epoch, "metrics": {"dev": dev_metrics}}, fp16=False)
        if dev_metrics["f1"] > best["f1"]:
            best = {"f1": dev_metrics["f1"], "epoch": epoch, "dev": dev_metrics}
            save_cascade(out / "best", model, {**card, "epoch": epoch, "metrics": {"dev": dev_metrics}}, fp16=False)
        trained = {k: v for k, v in model.state_dict().items() if k in model.shipped_state_dict()}
        torch.save({"model": trained, "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                    "epoch": epoch, "best": best}, out / "last.pt.tmp")
        (out / "last.pt.tmp").replace(out / "last.pt")
        if progress is not None:
            progress(epoch / fit.epochs, f"epoch {epoch}: dev F1 {dev_metrics['f1']:.4f}")
        if stop_at is not None and time.time() >= stop_at:
            log.info("deadline reached after epoch %d; stopping", epoch)
            break
    collator.log_stats()
    return best
