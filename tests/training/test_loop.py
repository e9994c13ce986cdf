"""The shared training skeleton (``qa_system.training.loop``): the schedule against the hand-written
copies it replaced, the resume rule, early stopping and the trace."""

from __future__ import annotations

import json

import pytest
import torch

from qa_system.errors import CheckpointError, ModelError
from qa_system.training.loop import EarlyStopping, RunFolder, Trace, config_digest, linear_schedule, optimisation_step, warmup_steps


# -- the schedules the loops wrote by hand before (kept here as the reference) ----------------------
def old_kge(total_steps: int, warmup: float):  # training/kge.py
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


def old_min_form(total: int, warmup: float):  # training/reader.py and training/adapter_loop.py (reranker, entailment)
    warm = max(1, int(warmup * total))
    return lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))


def old_relation_scorer(total: int):  # training/relation_scorer.py: a tenth of the steps
    warm = max(1, total // 10)
    return lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))


def old_extractor(total: int, warmup: float):  # training/extractor.py: no floor of one warm-up step
    warmup_steps = int(warmup * total)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total - step) / max(1, total - warmup_steps))

    return factor


def new_factors(total: int, warmup: float, *, floor: int = 1) -> list[float]:
    """The factor of the learning rate at each optimizer step 0..total (as ``optimizer.step`` sees it)."""

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = linear_schedule(optimizer, total, warmup, floor=floor)
    out = []
    for _ in range(total + 1):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return out


CASES = [(1, 0.1), (7, 0.1), (10, 0.1), (20, 0.06), (97, 0.05), (532 * 7, 0.1), (1000, 0.06), (333, 0.5), (25, 1.0)]


@pytest.mark.parametrize(("total", "warmup"), CASES)
def test_decay_is_the_old_schedule_and_warm_up_lags_one_step(total: int, warmup: float) -> None:
    new = new_factors(total, warmup)
    warm = warmup_steps(total, warmup)
    for old in (old_kge(total, warmup), old_min_form(total, warmup)):
        assert warm == max(1, int(warmup * total))
        for s in range(total + 1):
            if s >= warm:  # decay: the same number
                assert new[s] == pytest.approx(old(s), abs=1e-12), s
            else:  # warm-up: s / W instead of (s + 1) / W, i.e. the old value one step later
                assert new[s] == pytest.approx(s / warm, abs=1e-12)
                assert new[s] == pytest.approx(old(s - 1) if s else 0.0, abs=1e-12)


@pytest.mark.parametrize(("total", "warmup"), [*CASES, (10, 0.05), (3, 0.2)])
def test_extractor_schedule_without_floor(total: int, warmup: float) -> None:
    new, old = new_factors(total, warmup, floor=0), old_extractor(total, warmup)
    warm = int(warmup * total)
    assert warmup_steps(total, warmup, floor=0) == warm
    for s in range(total + 1):
        assert new[s] == pytest.approx(old(s) if s >= warm else s / warm, abs=1e-12)
    if warm == 0:  # the rounding gave no warm-up: the same schedule exactly
        assert all(new[s] == pytest.approx(old(s), abs=1e-12) for s in range(total + 1))


def test_relation_scorer_tenth_is_the_same_warm_up_count() -> None:
    assert all(warmup_steps(total, 0.1) == max(1, total // 10) for total in range(1, 200_001))
    total = 250
    new, old = new_factors(total, 0.1), old_relation_scorer(total)
    assert all(new[s] == pytest.approx(old(s), abs=1e-12) for s in range(25, total + 1))


def test_no_warm_up_share_means_no_warm_up_step() -> None:
    assert warmup_steps(20, 0.0) == 0
    assert new_factors(20, 0.0)[:3] == pytest.approx([1.0, 19 / 20, 18 / 20])


# -- the resume rule -------------------------------------------------------------------------------
CONFIG = {"task": "toy", "train": {"epochs": 2, "lr": 3e-4, "batch_size": 8, "layers": (1, 2)}}


def test_a_fresh_folder_records_its_config_and_the_same_config_resumes(tmp_path) -> None:
    run = RunFolder(tmp_path / "run", CONFIG)
    assert run.open(resume=True) is None
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["sha256"] == config_digest(CONFIG) and record["config"]["train"]["layers"] == [1, 2]
    run.save({"epoch": 1, "weights": torch.ones(2)})
    again = RunFolder(tmp_path / "run", {"task": "toy", "train": {"epochs": 2, "lr": 3e-4, "batch_size": 8, "layers": [1, 2]}})
    state = again.open(resume=True)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(2))
    # more epochs extend the run: the same run
    longer = RunFolder(tmp_path / "run", {**CONFIG, "train": {**CONFIG["train"], "epochs": 5}})
    assert longer.open(resume=True)["epoch"] == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["train"]["epochs"] == 5


def test_a_folder_made_with_another_config_is_refused_naming_both(tmp_path) -> None:
    run = RunFolder(tmp_path / "run", CONFIG)
    run.open(resume=False)
    run.save({"epoch": 1})
    other = RunFolder(tmp_path / "run", {**CONFIG, "train": {**CONFIG["train"], "lr": 5e-4}})
    with pytest.raises(CheckpointError) as caught:
        other.open(resume=True)
    message = str(caught.value)
    assert config_digest(CONFIG)[:12] in message and other.digest[:12] in message
    assert "train.lr: 0.0003 (run) vs 0.0005 (asked)" in message
    assert (tmp_path / "run" / "last.pt").is_file()  # nothing was touched


def test_a_folder_holding_a_training_is_not_overwritten_unless_resumed(tmp_path) -> None:
    run = RunFolder(tmp_path / "run", CONFIG, state="checkpoint.pt", flag="--resume")
    run.open(resume=False)
    run.trace.append({"epoch": 1})
    run.save({"epoch": 1})
    with pytest.raises(CheckpointError, match="--resume"):
        RunFolder(tmp_path / "run", CONFIG, state="checkpoint.pt").open(resume=False)
    run.start_over()
    assert RunFolder(tmp_path / "run", CONFIG, state="checkpoint.pt").open(resume=False) is None
    assert run.trace.records() == []


def test_a_fresh_start_drops_the_trace_of_a_start_that_saved_no_state(tmp_path) -> None:
    run = RunFolder(tmp_path / "run", CONFIG)
    run.trace.path.parent.mkdir(parents=True)
    run.trace.append({"epoch": 1})
    assert run.open(resume=True) is None and run.trace.records() == []


def test_a_run_from_before_the_record_is_adopted(tmp_path, caplog) -> None:
    (tmp_path / "run").mkdir()
    torch.save({"epoch": 3}, tmp_path / "run" / "last.pt")
    assert RunFolder(tmp_path / "run", CONFIG).open(resume=True)["epoch"] == 3
    assert "no run.json" in caplog.text
    assert json.loads((tmp_path / "run" / "run.json").read_text())["sha256"] == config_digest(CONFIG)


def test_an_unreadable_state_is_a_checkpoint_error(tmp_path) -> None:
    run = RunFolder(tmp_path / "run", CONFIG)
    run.open(resume=True)
    run.state_path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot resume"):
        run.open(resume=True)


# -- early stopping, trace, step ---------------------------------------------------------------------
def test_early_stopping_keeps_the_best_and_stops_after_patience() -> None:
    stopper = EarlyStopping(patience=2)
    improved = [stopper.update(v, epoch) for epoch, v in enumerate([0.1, 0.3, 0.3, 0.2], start=1)]
    assert improved == [True, True, False, False]  # a tie is no gain
    assert (stopper.best, stopper.best_epoch, stopper.bad_epochs, stopper.stop) == (0.3, 2, 2, True)
    assert stopper.update(0.5, 5) and not stopper.stop and stopper.bad_epochs == 0
    never = EarlyStopping(patience=None, best_epoch=None)
    for epoch in range(1, 20):
        never.update(0.0, epoch)
    assert not never.stop and never.best_epoch == 1


def test_trace_appends_one_line_per_record(tmp_path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    trace.append({"epoch": 1, "loss": 0.5})
    trace.append({"epoch": 2, "loss": 0.25})
    assert [r["epoch"] for r in trace.records()] == [1, 2]
    assert len((tmp_path / "trace.jsonl").read_text().splitlines()) == 2


def test_optimisation_step_refuses_a_non_finite_loss() -> None:
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    schedule = linear_schedule(optimizer, 10, 0.0)
    assert optimisation_step((weight * 2).sum(), optimizer, schedule, [weight], what="toy", epoch=1, step=0) == 2.0
    assert weight.item() == pytest.approx(0.9)  # the gradient 2 clipped to norm 1, at lr 0.1
    with pytest.raises(ModelError, match="toy loss is nan at epoch 1, step 1"):
        optimisation_step(weight.sum() * float("nan"), optimizer, schedule, [weight], what="toy", epoch=1, step=1)
