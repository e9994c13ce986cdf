"""Training the answer reranker (``models.answer_reranker``) on the reader's own rankings.

Each training question becomes a :class:`RerankGroup`: the reader's top ``k`` candidates as
passages, their reader log-probabilities, and which are gold. A step reads a few groups; from each
it keeps the gold candidates and the reader's hardest wrong ones (its best-ranked non-gold, plus a
few random others of the top ``k``) and applies a listwise softmax: the loss is
``-log sum_{gold} softmax(logits)``. The reader ranks its training questions better than unseen
ones, so its top ``k`` there is easier than at test time; the negatives are still exactly the
confusions the reranker must undo (siblings under the right relation).

The combination with the reader, ``reader log-probability + weight * reranker logit`` over the top
``k``, has one free number: ``weight`` is chosen on dev (:func:`choose_weight`), never on test.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qa_system.ask.reranking import top_passages
from qa_system.errors import ModelError
from qa_system.models.answer_reranker import AnswerReranker, AnswerRerankerNetwork, combine_scores, read_count, save_reranker
from qa_system.models.entailment import encode_pairs
from qa_system.training.adapter_loop import adapter_optimizer
from qa_system.training.loop import EarlyStopping, RunFolder, optimisation_step, restore

log = logging.getLogger(__name__)

STATE, BEST = "last.pt", "best"
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 1e3)  # 1e3: the reranker alone decides the top k
SKIP_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)  # reader p(top) at or above which the reranker is not run
READ_WITHIN_GRID = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0)  # nats below the reader's top within which candidates are read


@dataclass
class RerankGroup:
    """One question with the reader's top candidates (best first)."""

    question: str
    candidates: list[str]  # entity ids
    passages: list[str]  # ``candidate_passage`` of each
    reader_scores: list[float]  # reader log-probabilities
    gold: list[bool]
    dataset: str = ""


def rerank_groups(features: Sequence[Any], ranked: Sequence[Sequence[tuple[str, float]]], texts: Any, relation_names: Sequence[str],
                  *, top_k: int, dataset: str = "") -> list[RerankGroup]:
    """Groups from reader features and rankings, with the passages the app builds
    (``reranking.top_passages``): ``texts(ids)`` maps entity ids to ``"name: description"``
    (``retrievers.answer_text.store_texts``); ``relation_names`` name the reader's 2R relation ids."""

    groups = []
    for f, ranking in zip(features, ranked):
        top = list(ranking[:top_k])
        if not top:
            continue
        ids = [c for c, _ in top]
        groups.append(RerankGroup(
            question=f.question,
            candidates=ids,
            passages=top_passages(texts, relation_names, f.topic, f.candidates, f.candidate_relations, ids),
            reader_scores=[math.log(max(p, 1e-12)) for _, p in top],
            gold=[c in f.answers for c in ids],
            dataset=dataset,
        ))
    return groups


@dataclass
class RerankerTrainConfig:
    epochs: int = 1
    questions_per_step: int = 4
    group_size: int = 8  # passages per question in a step: its golds, the reader's hardest negatives, random others
    hard_negatives: int = 5  # of them, the reader's best-ranked wrong candidates
    lr: float = 3e-4
    head_lr_scale: float = 5.0
    weight_decay: float = 0.01
    warmup: float = 0.06
    seed: int = 0
    save_every: int = 200


def training_sample(group: RerankGroup, cfg: RerankerTrainConfig, rng: random.Random) -> tuple[list[str], list[bool]] | None:
    """Passages and labels of one group for one step (None when the top k holds no gold)."""

    gold = [i for i, g in enumerate(group.gold) if g][:2]
    if not gold:
        return None
    wrong = [i for i, g in enumerate(group.gold) if not g]
    hard = wrong[: cfg.hard_negatives]
    rest = wrong[cfg.hard_negatives :]
    extra = rng.sample(rest, min(len(rest), max(0, cfg.group_size - len(gold) - len(hard))))
    chosen = gold + hard + extra
    return [group.passages[i] for i in chosen], [group.gold[i] for i in chosen]


def listwise_loss(logits: torch.Tensor, labels: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Mean over questions of ``-log sum_gold softmax(logits of that question)``; ``logits`` and
    ``labels`` are flat over the step's passages, ``sizes`` splits them by question."""

    losses = []
    for chunk, gold in zip(torch.split(logits, list(sizes)), torch.split(labels, list(sizes))):
        log_probs = torch.log_softmax(chunk, dim=0)
        losses.append(-torch.logsumexp(log_probs[gold], dim=0))
    return torch.stack(losses).mean()


def combined_order(group: RerankGroup, scores: Sequence[float], weight: float) -> list[int]:
    """Indices of the group's first ``len(scores)`` candidates (those the reranker read) by
    ``reader log-prob + weight * reranker logit``."""

    return [int(i) for i in np.argsort(-combine_scores(group.reader_scores[: len(scores)], scores, weight), kind="stable")]


def hits_at_1(groups: Sequence[RerankGroup], scores: Sequence[Sequence[float]], weight: float, *, skip_above: float | None = None,
              read_within: float | None = None) -> float:
    """Dev Hits@1 of the combination, as ``reranking.CandidateReranker`` ranks: a group whose reader
    p(top) is at least ``skip_above`` keeps the reader's order (the reranker is not run on it); with
    ``read_within`` only the candidates :func:`~qa_system.models.answer_reranker.read_count` keeps
    are re-ordered (the scores of the others are never computed in the app)."""

    if not groups:
        return 0.0
    return float(np.mean([g.gold[top_after(g, s, weight, skip_above, read_within)] for g, s in zip(groups, scores)]))


def top_after(group: RerankGroup, scores: Sequence[float], weight: float, skip_above: float | None = None,
              read_within: float | None = None) -> int:
    """Index of the group's top candidate once reranked as the app would (see :func:`hits_at_1`)."""

    if skipped(group, skip_above):
        return 0
    count = pairs_read(group, scores, read_within)
    return combined_order(group, list(scores)[:count], weight)[0] if count else 0


def skipped(group: RerankGroup, skip_above: float | None) -> bool:
    return skip_above is not None and bool(group.reader_scores) and float(np.exp(group.reader_scores[0])) >= skip_above


def choose_weight(groups: Sequence[RerankGroup], scores: Sequence[Sequence[float]], grid: Sequence[float] = WEIGHT_GRID,
                  *, by_dataset: bool = True) -> tuple[float, dict[str, float]]:
    """The grid weight with the best dev Hits@1 (the mean over datasets when ``by_dataset``, so the
    larger dev set does not decide alone; ties go to the smaller weight); and Hits@1 per weight."""

    table = {str(weight): mean_hits_at_1(groups, scores, weight, by_dataset=by_dataset) for weight in grid}
    best = max(grid, key=lambda w: (table[str(w)], -w))
    return float(best), table


def mean_hits_at_1(groups: Sequence[RerankGroup], scores: Sequence[Sequence[float]], weight: float, *,
                   skip_above: float | None = None, read_within: float | None = None, by_dataset: bool = True) -> float:
    """Dev Hits@1 (``hits_at_1``), the mean over datasets when ``by_dataset`` (rounded to 4 places)."""

    datasets = sorted({g.dataset for g in groups}) if by_dataset else [""]
    parts = [hits_at_1([g for g in groups if not by_dataset or g.dataset == d], [s for g, s in zip(groups, scores) if not by_dataset or g.dataset == d],
                       weight, skip_above=skip_above, read_within=read_within) for d in datasets]  # fmt: skip
    return round(float(np.mean(parts)), 4)


def score_groups(reranker: AnswerReranker, groups: Sequence[RerankGroup], *, desc: str = "rerank") -> list[np.ndarray]:
    return [reranker.scores(g.question, g.passages) for g in tqdm(groups, desc=desc, unit="q", leave=False, mininterval=10)]


def choose_skip(groups: Sequence[RerankGroup], scores: Sequence[Sequence[float]], weight: float,
                grid: Sequence[float] = SKIP_GRID) -> tuple[float | None, dict[str, dict[str, float]]]:
    """The lowest reader p(top) above which skipping the reranker loses nothing on dev (mean Hits@1
    over datasets at least that of reranking every question), or None when every skip loses; and
    per grid value the dev Hits@1 and the share of questions skipped.

    Why: the reranker costs ~10 cross-encoder passes a question (most of ``ask``'s latency), and
    when the reader is already sure it rarely changes the answer: skipping those questions buys
    latency at no dev cost."""

    full = mean_hits_at_1(groups, scores, weight)
    table = {str(t): {"mean_hits1": mean_hits_at_1(groups, scores, weight, skip_above=t), "skipped": round(float(np.mean([skipped(g, t) for g in groups])), 4) if groups else 0.0}
             for t in grid}  # fmt: skip
    return lowest_free(table, full), table


def lowest_free(table: dict[str, dict[str, float]], full: float) -> float | None:
    """The lowest grid value (``table``'s keys) whose dev ``mean_hits1`` is at least ``full``'s, or None."""

    free = [float(t) for t, row in table.items() if row["mean_hits1"] >= full]
    return min(free) if free else None


def choose_read_within(groups: Sequence[RerankGroup], scores: Sequence[Sequence[float]], weight: float,
                       grid: Sequence[float] = READ_WITHIN_GRID) -> tuple[float | None, dict[str, dict[str, float]]]:
    """The narrowest ``read_within`` (nats below the reader's top) that loses nothing on dev (mean
    Hits@1 over datasets at least that of reading every top candidate), or None when each loses;
    and per grid value the dev Hits@1 and the mean number of pairs read a question.

    Why: unlike skipping, the top answer is always read beside its closest rival, so the
    calibrated confidence keeps the reranker's verdict (checked with ``qa-system calibrate``)."""

    full = mean_hits_at_1(groups, scores, weight)
    table = {str(t): {"mean_hits1": mean_hits_at_1(groups, scores, weight, read_within=t),
                      "pairs_per_question": round(float(np.mean([pairs_read(g, s, t) for g, s in zip(groups, scores)])), 3) if groups else 0.0}
             for t in grid}  # fmt: skip
    return lowest_free(table, full), table


def pairs_read(group: RerankGroup, scores: Sequence[float], read_within: float | None) -> int:
    """Pairs the reranker reads for ``group`` (0 when fewer than two candidates: it is not run)."""

    count = read_count(group.reader_scores, len(scores), read_within)
    return count if count >= 2 else 0


def dev_report(reranker: AnswerReranker, dev: Sequence[RerankGroup], *, allow_skip: bool = False, narrow: bool = True,
               weight: float | None = None) -> dict[str, Any]:
    """The weight chosen on dev and what it gives; the skip threshold that loses no dev Hits@1 is
    always reported (``skip_free_of_hits_loss``) but only used (``skip_above``) with ``allow_skip``:
    on dev, skipping the questions the reader is sure of (p >= 0.85, 44% of them) kept Hits@1 but
    cut the share answered at 80% calibrated accuracy from 30% to 19% - the reranker agreeing with
    a sure reader is itself evidence the calibrator reads. The narrowest ``read_within`` that loses
    no dev Hits@1 is used unless ``narrow`` is False (:func:`choose_read_within`). ``weight`` keeps
    that weight instead of choosing one (the grid is reported all the same)."""

    scores = score_groups(reranker, dev, desc="reranker dev")
    chosen, table = choose_weight(dev, scores, grid=WEIGHT_GRID if weight is None else sorted({*WEIGHT_GRID, float(weight)}))
    weight = chosen if weight is None else float(weight)
    free_skip, skip_table = choose_skip(dev, scores, weight)
    skip_above = free_skip if allow_skip else None
    free_within, within_table = choose_read_within(dev, scores, weight)
    read_within = free_within if narrow else None
    by = {d: {"reader": round(hits_at_1([g for g in dev if g.dataset == d], [s for g, s in zip(dev, scores) if g.dataset == d], 0.0), 4),
              "combined": round(hits_at_1([g for g in dev if g.dataset == d], [s for g, s in zip(dev, scores) if g.dataset == d], weight), 4)}
          for d in sorted({g.dataset for g in dev})}
    return {"weight": weight, "mean_hits1": table[str(weight)], "reader_mean_hits1": table["0.0"], "by_dataset": by, "grid": table,
            "skip_above": skip_above, "skip_free_of_hits_loss": free_skip, "skip_grid": skip_table,
            "read_within": read_within, "read_within_free_of_hits_loss": free_within, "read_within_grid": within_table}


def fit(network: AnswerRerankerNetwork, tokenizer: Any, train: Sequence[RerankGroup], dev: Sequence[RerankGroup],
        cfg: RerankerTrainConfig, run_dir: Path, *, top_k: int, card: dict[str, Any] | None = None, resume: bool = False,
        allow_skip: bool = False, narrow: bool = True) -> dict[str, Any]:
    """Train (resuming from ``run_dir/last.pt`` when ``resume``); the best dev epoch (mean Hits@1 of
    the combination at its chosen weight) is saved to ``run_dir/best`` with that weight in its card."""

    usable = [g for g in train if any(g.gold)]
    if not usable:
        raise ModelError("no training question has a gold answer among the reader's top candidates")
    folder = RunFolder(run_dir, {"task": "answer-reranker", "train": asdict(cfg), "top_k": top_k}, state=STATE)
    torch.manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(usable) / cfg.questions_per_step)
    optimizer, schedule, trainable = adapter_optimizer(network, lr=cfg.lr, head_lr_scale=cfg.head_lr_scale, weight_decay=cfg.weight_decay,
                                                       total_steps=steps_per_epoch * cfg.epochs, warmup=cfg.warmup)
    epoch, step_in_epoch, best = 1, 0, EarlyStopping()
    state = folder.open(resume=resume)
    if state is not None:
        restore(state, folder.state_path, network=network, optimizer=optimizer, schedule=schedule)
        epoch, step_in_epoch, best.best = state["epoch"], state["step"], state["best"]
        log.info("resuming %s at epoch %d step %d (best dev %.4f)", run_dir, epoch, step_in_epoch, best.best)

    def snapshot(ep: int, step: int) -> None:
        folder.save({"network": network.trainable_state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                     "epoch": ep, "step": step, "best": best.best, "train_config": asdict(cfg)})

    while epoch <= cfg.epochs:
        network.train()
        order = list(range(len(usable)))
        random.Random(cfg.seed * 1000 + epoch).shuffle(order)
        rng = random.Random(cfg.seed * 1000 + epoch + 1)
        samples = [training_sample(usable[i], cfg, rng) for i in order]
        started, losses = time.time(), []
        bar = tqdm(range(step_in_epoch, steps_per_epoch), desc=f"reranker epoch {epoch}/{cfg.epochs}", unit="step",
                   initial=step_in_epoch, total=steps_per_epoch, mininterval=10)
        for step in bar:
            at = slice(step * cfg.questions_per_step, (step + 1) * cfg.questions_per_step)
            chunk = [(usable[i].question, s) for i, s in zip(order[at], samples[at]) if s is not None]
            pairs = [(q, p) for q, (passages, _) in chunk for p in passages]
            labels = torch.tensor([g for _, (_, gold) in chunk for g in gold], dtype=torch.bool)
            encoded = encode_pairs(tokenizer, pairs, network.config.max_length)
            loss = listwise_loss(network(**encoded), labels, [len(passages) for _, (passages, _) in chunk])
            losses.append(optimisation_step(loss, optimizer, schedule, trainable, what="reranker", epoch=epoch, step=step))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if (step + 1) % cfg.save_every == 0 and step + 1 < steps_per_epoch:
                snapshot(epoch, step + 1)
        report = dev_report(AnswerReranker(network, tokenizer, top_k=top_k), dev, allow_skip=allow_skip, narrow=narrow)
        network.train()
        if best.update(report["mean_hits1"], epoch):
            save_reranker(run_dir / BEST, network, {**(card or {}), "epoch": epoch, "weight": report["weight"], "top_k": top_k, "skip_above": report["skip_above"],
                                                    "read_within": report["read_within"], "dev": report, "train_config": asdict(cfg)})
        trace = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4) if losses else None, "dev": report, "best": best.best,
                 "time_s": round(time.time() - started, 1)}
        folder.trace.append(trace)
        log.info("reranker %s", json.dumps(trace))
        epoch, step_in_epoch = epoch + 1, 0
        snapshot(epoch, 0)
    return {"run_dir": str(run_dir), "best_dev": best.best, "best": str(run_dir / BEST)}
