"""HittER training: 1vsAll link prediction with reciprocal relations, Adamax, warm-up + linear decay
(the shared loop, ``training.loop``).

One epoch visits every training fact in both directions (``(h, r, ?)`` and ``(t, r_inv, ?)``).
After each epoch: filtered MRR on a fixed random subset of dev facts (named in the trace), one JSON
line appended to ``<run_dir>/trace.jsonl``, a resumable checkpoint ``<run_dir>/checkpoint.pt``
(model, optimizer, scheduler, epoch, RNG, best MRR), and the best model exported to
``<run_dir>/best/`` (safetensors + card). A run dir that already holds a checkpoint resumes when it
was made with the same model and training config on the same vocabulary (more epochs aside), and is
refused otherwise; ``resume=False`` (``--fresh``) forgets it and starts over.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qa_system.errors import ConfigError
from qa_system.models.checkpoint import save_checkpoint
from qa_system.models.hitter import HittER, HittERConfig, Neighbourhoods
from qa_system.training.kge_data import KGEData
from qa_system.training.loop import TRACE, EarlyStopping, RunFolder, linear_schedule, optimisation_step, restore, rng_state, set_rng_state

log = logging.getLogger(__name__)

STATE_FILE = "checkpoint.pt"
TRACE_FILE = TRACE


@dataclass
class TrainConfig:
    """Optimisation settings (the model's own are in :class:`HittERConfig`)."""

    epochs: int = 10  # maximum epochs; the LR schedule decays to 0 at the last one
    batch_size: int = 1024
    lr: float = 0.01  # Adamax
    warmup: float = 0.1  # share of all steps with linear warm-up, then linear decay
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max grad norm (0 = off)
    patience: int = 5  # epochs without valid-MRR gain before stopping
    valid_facts: int = 2000  # fixed random subset of dev facts for per-epoch validation (0 = all)
    eval_batch_size: int = 1024
    steps_per_epoch: int = 0  # 0 = full epoch; >0 = shorter epochs (pilots)
    seed: int = 0


# Named configurations. ``small`` is tuned for 2 CPU cores; ``paper`` is Chen et al. (2021).
CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "small": {
        "model": dict(dim=128, entity_layers=1, context_layers=2, heads=4, ffn_dim=256, dropout=0.1,
                      embedding_dropout=0.1, output_dropout=0.1, max_neighbours=5, neighbour_drop=0.3,
                      mep_prob=0.5, label_smoothing=0.1, gcls_from_source=True),
        "train": dict(epochs=7, batch_size=1024, lr=0.01, warmup=0.1, patience=3, valid_facts=2000),
    },
    "paper": {
        "model": dict(dim=320, entity_layers=3, context_layers=6, heads=8, ffn_dim=1280, dropout=0.1,
                      embedding_dropout=0.1, output_dropout=0.1, max_neighbours=50, neighbour_drop=0.3,
                      mep_prob=0.5, label_smoothing=0.1),
        "train": dict(epochs=300, batch_size=512, lr=0.01, warmup=0.1, patience=10, valid_facts=0),
    },
}
# per-dataset overrides (the paper samples 12 neighbours on WN18RR)
DATASET_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {("paper", "wn18rr"): {"max_neighbours": 12}}


def resolve_config(name: str, dataset: str, *, use_context: bool = True, **model_overrides: Any) -> tuple[dict, TrainConfig]:
    if name not in CONFIGS:
        raise ConfigError(f"unknown KGE config {name!r}; expected one of {sorted(CONFIGS)}")
    model = dict(CONFIGS[name]["model"], **DATASET_OVERRIDES.get((name, dataset), {}), use_context=use_context)
    model.update(model_overrides)
    return model, TrainConfig(**CONFIGS[name]["train"])


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_score_fn(model: HittER, neighbourhoods: Neighbourhoods, *, seed: int = 0):
    """Scores (B, E) for (sources, relations) in eval mode, neighbours sampled with a fixed seed."""

    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device

    @torch.no_grad()
    def score(sources: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        model.eval()
        neighbours = None
        if model.config.use_context:
            neighbours = neighbourhoods.sample(sources.numpy(), model.config.max_neighbours, rng)
        out = model(sources.to(device), relations.to(device), neighbours)
        return out.logits

    return score


@dataclass
class Trainer:
    """Trains one HittER model on ``data`` into ``run_dir``; see the module docstring."""

    data: KGEData
    model_config: dict
    train_config: TrainConfig
    run_dir: Path
    device: torch.device = field(default_factory=pick_device)
    command: str = ""
    config_name: str = ""

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = HittERConfig(num_entities=self.data.num_entities, num_relations=self.data.num_relations, **self.model_config)
        torch.manual_seed(self.train_config.seed)
        self.model = HittER(cfg).to(self.device)
        self.neighbourhoods = Neighbourhoods.from_triples(self.data.splits["train"], cfg.num_entities, cfg.num_relations)
        tc = self.train_config
        self.queries = np.concatenate([
            self.data.splits["train"],
            np.stack([self.data.splits["train"][:, 2], self.data.splits["train"][:, 1] + cfg.num_relations,
                      self.data.splits["train"][:, 0]], axis=1),
        ])
        full = math.ceil(len(self.queries) / tc.batch_size)
        self.steps_per_epoch = min(full, tc.steps_per_epoch) if tc.steps_per_epoch > 0 else full
        self.optimizer = torch.optim.Adamax(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.scheduler = linear_schedule(self.optimizer, self.steps_per_epoch * tc.epochs, tc.warmup)
        dev = self.data.splits.get("dev")
        if dev is None or not len(dev):
            dev = self.data.splits["train"]
            log.warning("no dev facts; validating on training facts")
        pick = np.random.default_rng(tc.seed + 1)
        if tc.valid_facts and len(dev) > tc.valid_facts:
            dev = dev[np.sort(pick.choice(len(dev), tc.valid_facts, replace=False))]
        self.valid_triples = dev
        self.epoch, self.stopper = 0, EarlyStopping(patience=tc.patience)
        self.np_rng = np.random.default_rng(tc.seed)
        self.folder = RunFolder(self.run_dir, {"task": "kge", "model": self.model_config, "train": asdict(tc),
                                               "vocab_sha256": self.data.vocab_hash()}, state=STATE_FILE)

    # ------------------------------------------------------------------ state
    @property
    def state_path(self) -> Path:
        return self.folder.state_path

    @property
    def best_mrr(self) -> float:
        return self.stopper.best

    @property
    def best_epoch(self) -> int:
        return self.stopper.best_epoch

    @property
    def bad_epochs(self) -> int:
        return self.stopper.bad_epochs

    def save_state(self) -> None:
        self.folder.save({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "best_mrr": self.best_mrr,
            "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "rng": rng_state(),
            "np_rng": self.np_rng.bit_generator.state, "model_config": self.model_config,
            "train_config": asdict(self.train_config), "vocab_sha256": self.data.vocab_hash(),
        })

    def load_state(self, *, resume: bool = True) -> None:
        """Resume the run in ``run_dir`` (the same model, training config and vocabulary, epochs aside);
        ``resume=False`` forgets it and starts over."""

        if not resume:
            self.folder.start_over()
        state = self.folder.open(resume=True, map_location=self.device)
        if state is None:
            return
        restore(state, self.state_path, strict=True, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        self.epoch = state["epoch"]
        self.stopper.best, self.stopper.best_epoch, self.stopper.bad_epochs = state["best_mrr"], state["best_epoch"], state["bad_epochs"]
        set_rng_state(state["rng"])
        self.np_rng.bit_generator.state = state["np_rng"]
        log.info("resumed %s at epoch %d (best valid MRR %.4f)", self.run_dir, self.epoch, self.best_mrr)

    # ------------------------------------------------------------------ loop
    def train_epoch(self) -> float:
        from tqdm.auto import tqdm

        cfg, tc = self.model.config, self.train_config
        self.model.train()
        order = self.np_rng.permutation(len(self.queries))
        total, count = 0.0, 0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}", unit="batch", leave=False,
                   mininterval=10.0)
        for step in bar:
            batch = self.queries[order[step * tc.batch_size : (step + 1) * tc.batch_size]]
            if not len(batch):
                break
            neighbours = None
            if cfg.use_context:
                neighbours = self.neighbourhoods.sample(
                    batch[:, 0], cfg.max_neighbours, self.np_rng, drop=cfg.neighbour_drop,
                    targets=batch[:, 2], query_relations=batch[:, 1], remove_target=cfg.remove_target,
                )
            t = torch.from_numpy(batch).to(self.device)
            out = self.model(t[:, 0], t[:, 1], neighbours, t[:, 2], compute_logits=False)
            total += optimisation_step(out.loss, self.optimizer, self.scheduler, self.model.parameters(), clip=tc.grad_clip,
                                       what="HittER", epoch=self.epoch + 1, step=step + 1)
            count += 1
            if step % 20 == 0:
                bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    def validate(self) -> dict:
        from evaluation.link_prediction import evaluate

        score_fn = make_score_fn(self.model, self.neighbourhoods, seed=self.train_config.seed)
        return evaluate(score_fn, self.valid_triples, self.data.all_triples(), self.data.relations,
                        batch_size=self.train_config.eval_batch_size)

    def export_best(self, metrics: dict) -> None:
        card = {"dataset": self.data.name, "config_name": self.config_name, "command": self.command,
                "epoch": self.epoch, "train_config": asdict(self.train_config),
                "valid_subset": {"facts": len(self.valid_triples), "metrics": metrics}}
        save_checkpoint(self.run_dir / "best", self.model, entities=self.data.entities,
                        relations=self.data.relations, card=card)

    def fit(self, *, resume: bool = True, stop_after_epoch: int | None = None) -> dict:
        """Train to ``epochs`` (or patience); ``stop_after_epoch`` ends this call early, schedule unchanged."""

        self.load_state(resume=resume)
        tc = self.train_config
        log.info("training %s: %d params, %d steps/epoch, device %s", self.run_dir, self.model.num_parameters(),
                 self.steps_per_epoch, self.device)
        last = min(tc.epochs, stop_after_epoch) if stop_after_epoch else tc.epochs
        while self.epoch < last and not self.stopper.stop:
            started = time.perf_counter()
            loss = self.train_epoch()
            train_s = time.perf_counter() - started
            result = self.validate()
            self.epoch += 1
            mrr = result["metrics"]["mrr"]
            if self.stopper.update(mrr, self.epoch):
                self.export_best(result["metrics"])
            record = {
                "epoch": self.epoch, "loss": round(loss, 6), "valid_mrr": round(mrr, 6),
                "valid_hits@10": round(result["metrics"]["hits@10"], 6),
                "valid_subset": f"{len(self.valid_triples)} dev facts ({result['num_queries']} queries), seed {tc.seed + 1}",
                "lr": self.scheduler.get_last_lr()[0], "train_s": round(train_s, 1),
                "time_s": round(time.perf_counter() - started, 1), "best_mrr": round(self.best_mrr, 6),
                "best_epoch": self.best_epoch, "use_context": self.model.config.use_context,
            }
            self.folder.trace.append(record)
            log.info("trace %s", json.dumps(record))
            self.save_state()
        stopped = "patience" if self.stopper.stop else ("epochs" if self.epoch >= tc.epochs else "stop_after_epoch")
        return {"run_dir": str(self.run_dir), "epochs": self.epoch, "best_mrr": self.best_mrr,
                "best_epoch": self.best_epoch, "stopped_by": stopped, "best_checkpoint": str(self.run_dir / "best")}


def train_kge(data: KGEData, config_name: str, run_dir: Path, *, epochs: int | None = None, resume: bool = True,
              use_context: bool = True, device: str | None = None, command: str = "",
              model_overrides: dict | None = None, train_overrides: dict | None = None,
              stop_after_epoch: int | None = None) -> dict:
    """Build a :class:`Trainer` from a named config and run it. Returns a summary dict."""

    model_config, train_config = resolve_config(config_name, data.name, use_context=use_context,
                                                **(model_overrides or {}))
    if epochs is not None:
        train_config = replace(train_config, epochs=epochs)
    if train_overrides:
        train_config = replace(train_config, **train_overrides)
    trainer = Trainer(data, model_config, train_config, Path(run_dir), device=pick_device(device), command=command,
                      config_name=config_name)
    return trainer.fit(resume=resume, stop_after_epoch=stop_after_epoch)


def export_release(run_dir: Path, dest: Path, data: KGEData, *, command: str = "", device: str | None = None) -> dict:
    """Export ``<run_dir>/best`` as fp16 to ``dest`` with full dev and test metrics in the card."""

    from evaluation.link_prediction import FilterIndex, evaluate
    from qa_system.models.checkpoint import load_checkpoint

    best = Path(run_dir) / "best"
    model, card = load_checkpoint(best, entities=data.entities, relations=data.relations, device=pick_device(device))
    neighbourhoods = Neighbourhoods.from_triples(data.splits["train"], data.num_entities, data.num_relations)
    filters = FilterIndex.build(data.all_triples(), data.num_relations)
    metrics = {}
    for split in ("dev", "test"):
        if len(data.splits.get(split, ())):
            result = evaluate(make_score_fn(model, neighbourhoods, seed=0), data.splits[split], data.all_triples(),
                              data.relations, filter_index=filters)
            metrics[split] = {**result["metrics"], "num_queries": result["num_queries"], "eval_seconds": result["time_s"]}
    trace_path = Path(run_dir) / TRACE_FILE
    trace = [json.loads(line) for line in trace_path.read_text().splitlines()] if trace_path.is_file() else []
    release_card = {
        "dataset": data.name, "config_name": card.get("config_name"), "command": card.get("command"),
        "export_command": command, "epoch": card.get("epoch"), "train_config": card.get("train_config"),
        "metrics": metrics, "metrics_setting": "filtered, both directions, all entities, ties = mean rank",
        "valid_subset_during_training": card.get("valid_subset"),
        "training_wall_s": round(sum(t.get("time_s", 0.0) for t in trace), 1),
        "epochs_trained": len(trace),
    }
    save_checkpoint(Path(dest), model, entities=data.entities, relations=data.relations, card=release_card, fp16=True)
    log.info("exported %s -> %s: %s", best, dest, metrics)
    return release_card
