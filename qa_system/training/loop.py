"""The skeleton every training loop shares: the learning-rate schedule, the run folder and its one
resume rule, early stopping, the per-epoch trace, and the optimisation step.

Each task's module (``kge``, ``reader``, ``answer_reranker``, ``relation_scorer``, ``extractor``,
``entailment``) keeps only what is its own: its batches, its loss, its dev metric and what it saves.

- **Schedule**: ``transformers.get_linear_schedule_with_warmup`` (linear warm-up from 0, then linear
  decay to 0 at the last step). The hand-written copies it replaced gave warm-up step ``s`` the factor
  ``(s + 1) / W`` (the first step at ``1 / W``); this one gives ``s / W`` (the first step at 0), so
  warm-up lags one step; the decay is the same number for every step. A warm-up share of 0 is no
  warm-up (the old copies still rounded it up to one step).
- **Resume rule** (:class:`RunFolder`): a run folder records the training config it was made with
  (``run.json``: the config and its sha256). It resumes only a run made with the same config, the
  number of epochs aside (a finished run can be extended); another config is a
  :class:`~qa_system.errors.CheckpointError` naming both and what differs. A folder that holds a
  training is never overwritten by a run that was not asked to resume it.
- **Early stopping** (:class:`EarlyStopping`): the best dev value is kept (strictly greater wins);
  ``patience`` epochs without a gain stop the run (None: never; the task chooses).
- **Trace** (:class:`Trace`): one JSON line per epoch in ``<run>/trace.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qa_system.errors import CheckpointError, ModelError

log = logging.getLogger(__name__)

RUN_RECORD, TRACE = "run.json", "trace.jsonl"
EXTENDABLE = ("epochs",)  # config keys a resumed run may change


# ---------------------------------------------------------------------- schedule
def warmup_steps(total_steps: int, share: float, *, floor: int = 1) -> int:
    """Warm-up steps: ``share`` of ``total_steps`` rounded down, at least ``floor`` (0 when ``share`` is 0)."""

    if share <= 0:
        return 0
    return max(floor, int(share * total_steps))


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float, *, floor: int = 1) -> Any:
    """``get_linear_schedule_with_warmup`` over ``total_steps``, warming up over ``warmup`` of them."""

    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, warmup_steps(total_steps, warmup, floor=floor), total_steps)


def optimisation_step(loss: torch.Tensor | None, optimizer: torch.optim.Optimizer, schedule: Any, params: Iterable[torch.nn.Parameter], *,
                      clip: float = 1.0, what: str, epoch: int, step: int) -> float:
    """Backward, clip gradients to norm ``clip`` (0: off), step optimizer and schedule; returns the loss.
    A non-finite loss stops the run with a clear error (usually a learning rate too high) instead of
    silently corrupting it."""

    if loss is None or not torch.isfinite(loss):
        value = None if loss is None else loss.item()
        lr = optimizer.param_groups[0]["lr"]
        raise ModelError(f"{what} loss is {value} at epoch {epoch}, step {step} (lr {lr:.2e}); lower the learning rate or check the data")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    schedule.step()
    return float(loss.item())


# ---------------------------------------------------------------------- early stopping
@dataclass
class EarlyStopping:
    """The best dev value so far and the epochs since it; ``stop`` after ``patience`` epochs without a gain."""

    patience: int | None = None  # None: never stop early, only keep the best
    best: float = -1.0
    best_epoch: int | None = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record ``epoch``'s dev value; True when it is a new best (strictly greater)."""

        if value > self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience


# ---------------------------------------------------------------------- trace
class Trace:
    """One JSON line per epoch appended to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- run folder
def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as plain JSON values (tuples become lists), so a saved and a fresh config compare equal."""

    return json.loads(json.dumps(config, sort_keys=True, default=str))


def config_digest(config: Mapping[str, Any], extendable: Iterable[str] = EXTENDABLE) -> str:
    """sha256 of the config without the keys a resumed run may change (at any depth)."""

    return hashlib.sha256(json.dumps(_without(_plain(config), set(extendable)), sort_keys=True).encode()).hexdigest()


def _without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    return value


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {json.dumps(old)} (run) vs {json.dumps(new)} (asked)"]


class RunFolder:
    """A training run's folder: the resumable state (``state``), ``run.json`` (the config it was made
    with and its sha256) and the trace. See the module docstring for the resume rule."""

    def __init__(self, path: Path, config: Mapping[str, Any], *, state: str = "last.pt", extendable: Iterable[str] = EXTENDABLE,
                 flag: str = "--resume") -> None:
        self.path = Path(path)
        self.config = _plain(config)
        self.extendable = tuple(extendable)
        self.digest = config_digest(self.config, self.extendable)
        self.state_path = self.path / state
        self.record_path = self.path / RUN_RECORD
        self.trace = Trace(self.path / TRACE)
        self.flag = flag

    def open(self, *, resume: bool, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The saved state when the folder holds one and ``resume`` (its config checked), else None
        for a fresh run (its config recorded, any trace of an earlier unsaved start removed)."""

        self.path.mkdir(parents=True, exist_ok=True)
        if not self.state_path.is_file():
            self.trace.reset()
            self._write_record()
            return None
        if not resume:
            raise CheckpointError(f"{self.path} already holds a training ({self.state_path.name}); "
                                  f"pass {self.flag} to continue it or choose another folder")
        self.check()
        try:
            state = torch.load(self.state_path, map_location=map_location, weights_only=False)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
            raise CheckpointError(f"cannot resume from {self.state_path}: {e}") from e
        self._write_record()
        return state

    def check(self) -> None:
        """CheckpointError when the folder's recorded config is not this one (the extendable keys aside)."""

        if not self.record_path.is_file():  # a run made before run.json: adopted with this config
            log.warning("%s has no %s (made before configs were recorded); resuming it as %s", self.path, RUN_RECORD, self.digest[:12])
            return
        try:
            record = json.loads(self.record_path.read_text(encoding="utf-8"))
            old_config, old_digest = record["config"], record["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot read {self.record_path}: {e}") from e
        if old_digest == self.digest:
            return
        changed = _differences(_without(old_config, set(self.extendable)), _without(self.config, set(self.extendable)))
        raise CheckpointError(
            f"{self.path} was made with another training config (sha256 {old_digest[:12]}), this run asks for sha256 "
            f"{self.digest[:12]}; differences: {'; '.join(changed) or 'none readable'}. "
            "Resume it with its own settings or choose another folder")

    def save(self, state: Mapping[str, Any]) -> None:
        """Write the resumable state atomically."""

        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        torch.save(dict(state), tmp)
        os.replace(tmp, self.state_path)

    def start_over(self) -> None:
        """Forget the run in this folder (state, record, trace); ``best/`` is overwritten by the new run."""

        for path in (self.state_path, self.record_path, self.trace.path):
            path.unlink(missing_ok=True)

    def _write_record(self) -> None:
        tmp = self.record_path.with_name(RUN_RECORD + ".tmp")
        tmp.write_text(json.dumps({"config": self.config, "sha256": self.digest, "extendable": list(self.extendable)}, indent=1) + "\n",
                       encoding="utf-8")
        os.replace(tmp, self.record_path)


def restore(state: Mapping[str, Any], where: Path, *, strict: bool = False, **parts: Any) -> None:
    """Load ``state[key]`` into each part (a module, optimizer or schedule); a state that does not fit
    is a CheckpointError. Modules load with ``strict`` (False: a state of the trainable tensors only)."""

    try:
        for key, part in parts.items():
            if isinstance(part, torch.nn.Module):
                part.load_state_dict(state[key], strict=strict)
            else:
                part.load_state_dict(state[key])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"cannot resume from {where}: {e}") from e


# ---------------------------------------------------------------------- random state
def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) global random states, for a resume that replays exactly."""

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Set the states :func:`rng_state` saved (moved back to the CPU, where a state loaded onto a GPU must live)."""

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
