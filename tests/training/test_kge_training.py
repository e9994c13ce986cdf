"""KGE training loop, checkpoints, workspace data and the ``kge`` CLI, on a ~20-fact graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qa_system.errors import CheckpointError, DatasetNotFoundError, ModelError
from qa_system.models.checkpoint import load_checkpoint, save_checkpoint
from qa_system.training.kge import Trainer, resolve_config, train_kge
from qa_system.training.kge_data import from_store, from_string_splits

PEOPLE = ["ada", "bob", "cy", "dee", "eve", "fay"]
TRAIN = [(a, "knows", b) for a, b in zip(PEOPLE, PEOPLE[1:] + PEOPLE[:1])]
TRAIN += [(p, "lives_in", "paris" if i % 2 else "rome") for i, p in enumerate(PEOPLE)]
TRAIN += [("paris", "in", "france"), ("rome", "in", "italy"), ("ada", "likes", "cy"), ("bob", "likes", "dee")]
DEV = [("cy", "likes", "eve"), ("dee", "likes", "fay")]
TEST = [("eve", "likes", "ada"), ("fay", "likes", "bob")]

TINY = dict(dim=32, entity_layers=1, context_layers=2, heads=4, ffn_dim=64, max_neighbours=4)
FAST = dict(batch_size=8, lr=0.01, valid_facts=0, patience=10)


@pytest.fixture
def data():
    return from_string_splits("tiny", {"train": TRAIN, "dev": DEV, "test": TEST})


def test_named_configs():
    model, train = resolve_config("paper", "wn18rr")
    assert (model["dim"], model["entity_layers"], model["context_layers"], model["max_neighbours"]) == (320, 3, 6, 12)
    assert resolve_config("paper", "fb15k-237")[0]["max_neighbours"] == 50 and train.lr == 0.01
    with pytest.raises(Exception, match="unknown KGE config"):
        resolve_config("huge", "fb15k-237")


def test_training_writes_trace_checkpoint_and_best(tmp_path, data):
    summary = train_kge(data, "small", tmp_path, epochs=2, model_overrides=TINY, train_overrides=FAST)
    assert summary["epochs"] == 2
    trace = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in trace] == [1, 2] and all("valid_mrr" in t and "valid_subset" in t for t in trace)
    assert (tmp_path / "checkpoint.pt").is_file()
    model, card = load_checkpoint(tmp_path / "best", entities=data.entities, relations=data.relations)
    assert card["dataset"] == "tiny" and model.config.dim == 32


def test_resume_continues_without_losing_an_epoch(tmp_path, data):
    straight = train_kge(data, "small", tmp_path / "a", epochs=3, model_overrides=TINY, train_overrides=FAST)
    # interrupted run: 1 epoch, then resumed to 3 with the same schedule
    run = tmp_path / "c"
    t1 = Trainer(data, resolve_config("small", "tiny", **TINY)[0], _tc(3), run)
    assert t1.fit(stop_after_epoch=1)["stopped_by"] == "stop_after_epoch"
    t2 = Trainer(data, resolve_config("small", "tiny", **TINY)[0], _tc(3), run)
    result = t2.fit()
    epochs = [json.loads(line)["epoch"] for line in (run / "trace.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3] and result["epochs"] == 3
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    c = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.allclose(a[k], c[k], atol=1e-5) for k in a), "resumed run differs from the straight one"
    assert straight["epochs"] == 3


def _tc(epochs: int):
    from dataclasses import replace

    return replace(resolve_config("small", "tiny")[1], epochs=epochs, **FAST)


def test_nan_loss_raises_model_error(tmp_path, data):
    trainer = Trainer(data, resolve_config("small", "tiny", **TINY)[0], _tc(1), tmp_path)
    with torch.no_grad():
        trainer.model.entity_embeddings.weight.fill_(float("nan"))
    with pytest.raises(ModelError, match="loss is nan"):
        trainer.fit()


def test_vocabulary_mismatch_raises(tmp_path, data):
    trainer = Trainer(data, resolve_config("small", "tiny", **TINY)[0], _tc(1), tmp_path)
    save_checkpoint(tmp_path / "ck", trainer.model, entities=data.entities, relations=data.relations,
                    card={"dataset": "tiny"}, fp16=True)
    other = list(data.entities)
    other[3] = "zed"
    with pytest.raises(CheckpointError, match="entities differ at id 3"):
        load_checkpoint(tmp_path / "ck", entities=other, relations=data.relations)
    with pytest.raises(CheckpointError, match="has 10 entities, dataset has 11"):
        load_checkpoint(tmp_path / "ck", entities=data.entities + ["new"], relations=data.relations)
    model, card = load_checkpoint(tmp_path / "ck", entities=data.entities, relations=data.relations)
    assert card["dtype"] == "float16" and model.entity_embeddings.weight.dtype == torch.float32
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")


class FakeStore:
    """Stands in for ``graph.open.open_store(settings)``: only ``export_triples`` and ``close`` are used."""

    def __init__(self, rows):
        self.rows = rows
        self.asked = None
        self.closed = False

    def close(self):
        self.closed = True

    def export_triples(self, statuses=("verified", "extracted")):
        self.asked = statuses
        return self.rows


def test_workspace_dataset_from_store(tmp_path):
    rows = [(h, r, t, "train") for h, r, t in TRAIN[:-1]] + [(*TRAIN[-1], "")] + [(*DEV[0], "dev"), (*TEST[0], "test")]
    store = FakeStore(rows)
    data = from_store(store)
    assert store.asked == ("verified", "extracted")
    assert len(data.splits["train"]) == len(TRAIN) and len(data.splits["dev"]) == 1 and len(data.splits["test"]) == 1
    summary = train_kge(data, "small", tmp_path, epochs=1, model_overrides=TINY, train_overrides=FAST)
    assert summary["epochs"] == 1
    with pytest.raises(DatasetNotFoundError, match="no verified or extracted facts"):
        from_store(FakeStore([]))


def test_cli_unknown_dataset_exits_with_message(tmp_path, capsys):
    from qa_system.cli import main

    code = main(["--workspace", str(tmp_path), "train", "kge", "--dataset", "no-such-kg", "--epochs", "1"])
    assert code == 2
    assert "unknown dataset or missing folder 'no-such-kg'" in capsys.readouterr().err


def test_cli_evaluate_mismatched_checkpoint(tmp_path, data, capsys):
    from qa_system.cli import main

    folder = tmp_path / "kg"
    folder.mkdir()
    for split, rows in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        (folder / f"{split}.tsv").write_text("".join("\t".join(t) + "\n" for t in rows))
    other = from_string_splits("other", {"train": TRAIN + [("ada", "knows", "zed")], "dev": DEV, "test": TEST})
    trainer = Trainer(other, resolve_config("small", "tiny", **TINY)[0], _tc(1), tmp_path / "other-run")
    save_checkpoint(tmp_path / "other", trainer.model, entities=other.entities, relations=other.relations)
    code = main(["--workspace", str(tmp_path), "evaluate", "kge", "--dataset", str(folder), "--checkpoint",
                 str(tmp_path / "other"), "--json"])
    err = capsys.readouterr().err
    assert code == 1 and "does not match this dataset's vocabulary" in err and "11 entities" in err

    trainer = Trainer(data, resolve_config("small", "tiny", **TINY)[0], _tc(1), tmp_path / "run")
    save_checkpoint(tmp_path / "ck", trainer.model, entities=data.entities, relations=data.relations)
    code = main(["--workspace", str(tmp_path), "evaluate", "kge", "--dataset", str(folder), "--checkpoint",
                 str(tmp_path / "ck"), "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["num_queries"] == 4 and set(record["metrics"]) == {"mrr", "hits@1", "hits@3", "hits@10"}
    assert np.isfinite(record["metrics"]["mrr"])


def test_export_release_writes_fp16_card_with_metrics(tmp_path, data):
    from qa_system.training.kge import export_release

    train_kge(data, "small", tmp_path / "run", epochs=1, model_overrides=TINY, train_overrides=FAST, command="cmd")
    card = export_release(tmp_path / "run", tmp_path / "release", data, command="export")
    saved = json.loads((tmp_path / "release" / "card.json").read_text())
    assert saved["dtype"] == "float16" and saved["command"] == "cmd" and saved["export_command"] == "export"
    assert set(saved["metrics"]) == {"dev", "test"} and saved["metrics"]["test"]["num_queries"] == 4
    assert saved["vocab_sha256"] == data.vocab_hash() and card["epochs_trained"] == 1


def test_cli_trains_on_workspace_store(tmp_path, monkeypatch, capsys):
    import graph.open
    from qa_system.cli import main

    rows = [(h, r, t, "train") for h, r, t in TRAIN] + [(*DEV[0], "dev")]
    store = FakeStore(rows)
    monkeypatch.setattr(graph.open, "open_store", lambda settings: store)
    code = main(["--workspace", str(tmp_path), "train", "kge", "--dataset", "workspace", "--epochs", "1", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["epochs"] == 1 and store.closed
    assert summary["run_dir"] == str(tmp_path / "runs" / "kge-workspace-small")


def test_a_run_dir_of_another_config_is_refused_and_fresh_starts_over(tmp_path, data):
    train_kge(data, "small", tmp_path, epochs=1, model_overrides=TINY, train_overrides=FAST)
    with pytest.raises(CheckpointError, match=r"another training config .*train\.lr: 0\.01 \(run\) vs 0\.02 \(asked\)"):
        train_kge(data, "small", tmp_path, epochs=2, model_overrides=TINY, train_overrides={**FAST, "lr": 0.02})
    with pytest.raises(CheckpointError, match=r"model\.dim: 32 \(run\) vs 16 \(asked\)"):
        train_kge(data, "small", tmp_path, epochs=2, model_overrides={**TINY, "dim": 16}, train_overrides=FAST)
    assert train_kge(data, "small", tmp_path, epochs=2, model_overrides=TINY, train_overrides=FAST)["epochs"] == 2  # more epochs: resumed
    fresh = train_kge(data, "small", tmp_path, epochs=1, resume=False, model_overrides=TINY, train_overrides={**FAST, "lr": 0.02})
    assert fresh["epochs"] == 1 and len((tmp_path / "trace.jsonl").read_text().splitlines()) == 1


def test_patience_stops_a_run_whose_dev_mrr_stops_rising(tmp_path, data, monkeypatch):
    mrrs = iter([0.2, 0.3, 0.3, 0.25, 0.9])
    monkeypatch.setattr(Trainer, "validate", lambda self: {"metrics": {"mrr": next(mrrs), "hits@10": 0.5}, "num_queries": 4})
    summary = train_kge(data, "small", tmp_path, epochs=5, model_overrides=TINY, train_overrides={**FAST, "patience": 2})
    assert (summary["stopped_by"], summary["epochs"], summary["best_epoch"], summary["best_mrr"]) == ("patience", 4, 2, 0.3)
    trace = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [t["best_epoch"] for t in trace] == [1, 2, 2, 2]
