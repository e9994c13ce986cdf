"""Entailment training: the label-set loss, length batching, metrics, a tiny fit with resume, and the
``train entailment`` / ``evaluate entailment`` commands on fixture data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from qa_system.cli import main
from qa_system.errors import CheckpointError
from qa_system.models.entailment import (
    EntailmentCrossEncoder,
    build_encoder,
    load_entailment_model,
    load_tokenizer,
)
from qa_system.training.entailment import (
    EntailmentTrainConfig,
    classification_report,
    fit,
    length_batches,
    set_loss,
    target_mask,
)
from qa_system.training.entailment_data import ENT, NOT_ENTAILED, NLIPair
from tests.models.test_entailment import TINY, tiny_config
from tests.training.test_entailment_data import write_nli_fixture


def test_set_loss_is_cross_entropy_for_one_label_and_log_mass_for_sets() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    pairs = [NLIPair("p", "h", frozenset({ENT}), "x"), NLIPair("p", "h", NOT_ENTAILED, "x")]
    probs = torch.softmax(logits, -1)
    expected = -(math.log(probs[0, 0]) + math.log(probs[1, 1] + probs[1, 2])) / 2
    assert set_loss(logits, target_mask(pairs)).item() == pytest.approx(expected, rel=1e-5)
    single = [NLIPair("p", "h", frozenset({2}), "x")] * 2
    assert set_loss(logits, target_mask(single)).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.tensor([2, 2])).item(), rel=1e-5)


def test_length_batches_cover_everything_once_and_are_deterministic() -> None:
    pairs = [NLIPair("w " * (i % 13), "h", frozenset({ENT}), "x") for i in range(103)]
    batches = length_batches(pairs, 8, 4, seed=5)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert batches == length_batches(pairs, 8, 4, seed=5) != length_batches(pairs, 8, 4, seed=6)
    spread = [max(len(pairs[i].premise) for i in b) - min(len(pairs[i].premise) for i in b) for b in batches]
    assert sum(spread) / len(spread) < 12  # sorted chunks: batches hold similar lengths


def test_classification_report_by_hand() -> None:
    report = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ("a", "b", "c"))
    assert report["n"] == 5 and report["accuracy"] == 0.6
    assert report["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_class"]["b"]["precision"] == pytest.approx(0.6667, abs=1e-4) and report["per_class"]["b"]["recall"] == 1.0
    assert report["per_class"]["c"]["f1"] == 0.0
    assert report["f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3, abs=1e-4)


def _toy_pairs() -> list[NLIPair]:
    # learnable from surface cues: "yes" hypotheses are entailed, "not" ones are not (same length, so
    # length-sorted batches still mix the two)
    return [NLIPair(f"sentence number {i}", "it is yes" if i % 2 else "it is not", frozenset({ENT}) if i % 2 else NOT_ENTAILED, "toy")
            for i in range(32)]


def test_fit_learns_exports_best_and_resumes(tmp_path: Path) -> None:
    tokenizer = load_tokenizer()
    cfg_model = tiny_config()
    data = _toy_pairs()
    dev = {"toy": data[:16]}
    train_cfg = EntailmentTrainConfig(epochs=5, batch_size=8, lr=1e-2, head_lr_scale=3.0, warmup=0.0, save_every=2, max_length=32)
    net = EntailmentCrossEncoder(cfg_model, build_encoder(cfg_model))
    summary = fit(net, tokenizer, data, dev, train_cfg, tmp_path / "run", card={"date": "2026-01-01"})
    trace = [json.loads(line) for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in trace] == [1, 2, 3, 4, 5]
    assert trace[-1]["loss"] < trace[0]["loss"]
    assert summary["best_dev"] == max(t["dev"]["mean"] for t in trace) and summary["best_dev"] >= 0.75
    model = load_entailment_model(tmp_path / "run" / "best")
    assert model.entailment_scores(["sentence number 99"], "it is yes")[0] > model.entailment_scores(["sentence number 99"], "it is not")[0]
    with pytest.raises(CheckpointError, match="--resume"):
        fit(EntailmentCrossEncoder(cfg_model, build_encoder(cfg_model)), tokenizer, data, dev, train_cfg, tmp_path / "run")
    # resuming a finished run with more epochs trains only the new epoch
    more = EntailmentTrainConfig(**{**train_cfg.__dict__, "epochs": 6})
    fit(EntailmentCrossEncoder(cfg_model, build_encoder(cfg_model)), tokenizer, data, dev, more, tmp_path / "run", resume=True)
    trace = [json.loads(line) for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in trace] == [1, 2, 3, 4, 5, 6]


def test_cli_train_and_evaluate_on_fixture_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_nli_fixture(tmp_path / "data")
    out = tmp_path / "run"
    code = main(["--workspace", str(tmp_path / "ws"), "train", "entailment", "--epochs", "1", "--data-dir", str(data), "--out", str(out),
                 "--batch-size", "4", "--lora-r", "2", "--tiny", json.dumps(TINY), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and Path(summary["best"]).is_dir() and (out / "last.pt").is_file()
    card = json.loads((out / "best" / "card.json").read_text())
    assert card["data"]["train_counts"]["webnlg"] > 0 and card["data"]["train_counts"]["sick"] == 2  # the leaked SICK pair dropped
    for dataset, mode in (("sick", "3-way"), ("rte", "2-way"), ("webnlg-pairs", "2-way"), ("snli", "3-way")):
        record_path = tmp_path / f"entailment-{dataset}-test.json"
        code = main(["--workspace", str(tmp_path / "ws"), "evaluate", "entailment", "--dataset", dataset, "--split", "test", "--data-dir", str(data),
                     "--checkpoint", str(out / "best"), "--output", str(record_path), "--json"])
        stdout = capsys.readouterr().out
        record = json.loads(stdout)
        assert code == 0 and stdout.count("\n") == 1 and record == json.loads(record_path.read_text())
        assert record["dataset"] == dataset and record["mode"] == mode and 0 <= record["accuracy"] <= 1
        assert set(record) >= {"n", "accuracy", "f1", "per_class", "split", "command", "time"}
    assert record["n"] == 2 and set(record["per_class"]) == {"entailment", "neutral", "contradiction"}
    code = main(["--workspace", str(tmp_path / "ws"), "evaluate", "entailment", "--dataset", "sick", "--split", "train",
                 "--data-dir", str(data), "--checkpoint", str(out / "best")])
    assert code == 2 and "not a held-out set" in capsys.readouterr().err
    code = main(["--workspace", str(tmp_path / "ws"), "evaluate", "entailment", "--dataset", "rte", "--data-dir", str(data),
                 "--checkpoint", str(tmp_path / "nothing")])
    assert code == 1 and "no entailment checkpoint" in capsys.readouterr().err


def test_part_weights_parse_and_reject() -> None:
    from qa_system.cli.entailment_commands import parse_weights
    from qa_system.errors import InputError

    weights = parse_weights("webnlg=0.6, snli=0.2")
    assert weights["webnlg"] == 0.6 and weights["snli"] == 0.2 and weights["sick"] == 0.0
    for bad in ("mnli=0.5", "webnlg=lots", "webnlg=-1"):
        with pytest.raises(InputError, match="part-weights"):
            parse_weights(bad)
