"""``qa-system train extractor`` / ``evaluate extractor`` end to end on a four-sentence WebNLG folder.

The model is a real QIDN on a tiny random backbone (``--model-config``), so the whole path runs:
data loading, collation, the shared training loop with dev F1, best export, resume, evaluation and
its JSON record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_system.cli import main
from tests.training.webnlg_tiny import write_webnlg

TINY = {"backbone": "random", "random_hidden": 32, "random_layers": 1, "lora_r": 0, "frozen_layers": 0,
        "lstm_hidden": 16, "hidden": 32, "decoder_layers": 1, "decoder_heads": 4, "decoder_ffn": 64,
        "num_queries": 4, "width_dim": 8}


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("QA_DATA_DIR", raising=False)
    monkeypatch.setenv("QA_WORKSPACE", str(tmp_path / "ws"))
    return write_webnlg(tmp_path / "data")


def run_json(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # --json prints exactly one object on stdout
    return json.loads(out[0])


def test_train_resume_and_evaluate(data_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    base = ["train", "extractor", "--model", "qidn", "--dataset", "webnlg-star", "--data-dir", str(data_dir),
            "--out", str(run), "--model-config", json.dumps(TINY), "--lr", "3e-3", "--batch-size", "2", "--json"]
    first = run_json(capsys, [*base, "--epochs", "1"])
    assert first["epochs"] == 1 and first["best_epoch"] == 1
    assert (run / "last.pt").is_file() and (run / "best" / "card.json").is_file()
    card = json.loads((run / "best" / "card.json").read_text())
    assert card["dataset"] == "webnlg-star" and card["config"]["backbone"] == "random"
    assert "train extractor" in card["command"]

    capsys.readouterr()
    assert main([*base, "--epochs", "2"]) == 1  # a folder holding a training is not overwritten
    assert "--resume" in capsys.readouterr().err
    assert main([*base, "--epochs", "2", "--resume", "--batch-size", "1"]) == 1
    assert "train.batch_size: 2 (run) vs 1 (asked)" in capsys.readouterr().err
    second = run_json(capsys, [*base, "--epochs", "2", "--resume"])
    assert [h["epoch"] for h in second["history"]] == [1, 2]  # epoch 1 restored, only epoch 2 trained
    assert len((run / "trace.jsonl").read_text().splitlines()) == 2

    results = tmp_path / "results"
    record = run_json(capsys, ["evaluate", "extractor", "--model", "qidn", "--dataset", "webnlg-star", "--split", "test",
                               "--data-dir", str(data_dir), "--checkpoint", str(run / "best"), "--results-dir",
                               str(results), "--json"])
    assert record["sentences"] == 4 and record["gold"] == 5 and 0.0 <= record["f1"] <= 1.0
    assert set(record["by_pattern"]) == {"normal", "seo", "epo"} and record["by_pattern"]["seo"]["sentences"] == 1
    assert record["by_count"]["2"]["sentences"] == 1
    saved = json.loads((results / "extractor-qidn-webnlg-star-test.json").read_text())
    assert saved["f1"] == record["f1"] and saved["checkpoint"] == str(run / "best")

    shipped = tmp_path / "shipped"
    exported = run_json(capsys, ["evaluate", "extractor", "--dataset", "webnlg-star", "--split", "test", "--data-dir",
                                 str(data_dir), "--checkpoint", str(run / "best"), "--results-dir", str(results),
                                 "--export", str(shipped), "--note", "CPU only", "--json"])
    card = json.loads((shipped / "card.json").read_text())
    assert exported["exported"] == str(shipped) and card["weights_dtype"] == "float16" and card["note"] == "CPU only"
    assert card["test"]["f1"] == record["f1"] and card["dev"]["gold"] == 5 and "train extractor" in card["command"]
    assert "evaluate extractor" in card["evaluations"]["webnlg-star/test"]["command"]

    tuned = run_json(capsys, ["evaluate", "extractor", "--dataset", "webnlg-star", "--split", "dev", "--data-dir",
                              str(data_dir), "--checkpoint", str(run / "best"), "--results-dir", str(results),
                              "--tune-threshold", "--export", str(shipped), "--json"])
    assert len(tuned["threshold_sweep"]) == 19
    best = max(tuned["threshold_sweep"], key=lambda r: r["f1"])
    assert tuned["f1"] == pytest.approx(best["f1"])
    card = json.loads((shipped / "card.json").read_text())
    assert card["config"]["score_threshold"] == tuned["score_threshold"] == card["dev"]["score_threshold"]
    final = run_json(capsys, ["evaluate", "extractor", "--dataset", "webnlg-star", "--split", "test", "--data-dir",
                              str(data_dir), "--checkpoint", str(shipped), "--results-dir", str(results),
                              "--export", str(shipped), "--json"])  # the shipping order: tune on dev, then test
    card = json.loads((shipped / "card.json").read_text())
    assert final["score_threshold"] == tuned["score_threshold"] == card["test"]["score_threshold"]
    assert card["dev"]["f1"] == pytest.approx(tuned["f1"]) and card["test"]["f1"] == pytest.approx(final["f1"])
    capsys.readouterr()
    assert main(["evaluate", "extractor", "--split", "test", "--tune-threshold", "--data-dir", str(data_dir)]) == 2
    assert "dev split only" in capsys.readouterr().err


def test_clear_errors(data_dir: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["evaluate", "extractor", "--json"]) == 2
    assert "no data folder" in capsys.readouterr().err
    assert main(["train", "extractor", "--model", "cascade", "--no-contrastive", "--data-dir", str(data_dir)]) == 2
    assert "applies to --model qidn only" in capsys.readouterr().err
    assert main(["train", "extractor", "--data-dir", str(data_dir), "--model-config", '{"nope": 1}']) == 2
    assert "unknown QIDN config keys: nope" in capsys.readouterr().err
    assert main(["train", "extractor", "--data-dir", str(data_dir), "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert main(["evaluate", "extractor", "--data-dir", str(data_dir), "--checkpoint", str(tmp_path / "none")]) == 1
    assert "no QIDN checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "extractor", "--data-dir", str(tmp_path / "missing")]) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_the_same_loop_trains_and_evaluates_the_cascade(data_dir: Path, tmp_path: Path, capsys) -> None:
    tiny = {"backbone": "random", "random_hidden": 32, "random_layers": 1, "lora_r": 0, "rpe_layers": 1,
            "rpe_heads": 2, "rpe_ffn": 64}
    run = tmp_path / "cascade"
    summary = run_json(capsys, ["train", "extractor", "--model", "cascade", "--dataset", "webnlg-star", "--data-dir",
                                str(data_dir), "--out", str(run), "--model-config", json.dumps(tiny), "--epochs", "1",
                                "--batch-size", "2", "--json"])
    assert summary["best_epoch"] == 1 and (run / "best" / "card.json").is_file()
    record = run_json(capsys, ["evaluate", "extractor", "--model", "cascade", "--dataset", "webnlg-star", "--split",
                               "dev", "--data-dir", str(data_dir), "--checkpoint", str(run / "best"), "--results-dir",
                               str(tmp_path / "results"), "--json"])
    assert record["model"] == "cascade" and record["gold"] == 5


def test_evaluate_defaults_to_the_shipped_checkpoint_trained_on_the_dataset() -> None:
    import json

    from qa_system.cli.extractor_commands import _shipped
    from qa_system.models.qidn import SHIPPED

    star = _shipped("qidn", "webnlg-star")
    assert json.loads((star / "card.json").read_text())["dataset"] == "webnlg-star"
    assert _shipped("qidn", "webnlg") == SHIPPED == _shipped("qidn")  # ingest's default: exact entities
    assert json.loads((SHIPPED / "card.json").read_text())["dataset"] == "webnlg"


def test_train_from_a_checkpoint_with_a_casing_input(data_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["train", "extractor", "--model", "qidn", "--dataset", "webnlg-star", "--data-dir", str(data_dir),
            "--lr", "3e-3", "--batch-size", "2", "--epochs", "1", "--json"]
    run_json(capsys, [*base, "--out", str(tmp_path / "plain"), "--model-config", json.dumps(TINY)])
    summary = run_json(capsys, [*base, "--out", str(tmp_path / "cased"), "--init", str(tmp_path / "plain" / "best"),
                                "--model-config", '{"case_dim": 4}'])
    card = json.loads((Path(summary["best"]) / "card.json").read_text())
    assert card["config"]["case_dim"] == 4 and card["config"]["backbone"] == "random"  # the init's config, then the override
    assert card["init"]["folder"].endswith("best") and "case_embedding.weight" in card["init"]["new"]
    assert main([*base, "--out", str(tmp_path / "bad"), "--init", str(tmp_path / "nowhere")]) == 2
    assert "--init" in capsys.readouterr().err


def test_entity_lexicon_is_tuned_on_dev_shipped_and_used(data_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run_json(capsys, ["train", "extractor", "--model", "qidn", "--dataset", "webnlg-star", "--data-dir", str(data_dir),
                      "--out", str(run), "--model-config", json.dumps(TINY), "--lr", "3e-3", "--batch-size", "2",
                      "--epochs", "1", "--json"])
    evaluate = ["evaluate", "extractor", "--model", "qidn", "--dataset", "webnlg-star", "--data-dir", str(data_dir),
                "--results-dir", str(tmp_path / "results"), "--json"]
    dev = run_json(capsys, [*evaluate, "--split", "dev", "--checkpoint", str(run / "best"), "--lexicon", "train",
                            "--tune-threshold", "--export", str(tmp_path / "shipped")])
    assert dev["lexicon"]["source"] == "webnlg-star train gold entities" and dev["lexicon"]["entities"] > 0
    assert len(dev["threshold_sweep_by_min_overlap"]) == 6
    assert (tmp_path / "shipped" / "entities.json").is_file()
    test = run_json(capsys, [*evaluate, "--split", "test", "--checkpoint", str(tmp_path / "shipped")])
    assert test["lexicon"]["min_overlap"] == dev["lexicon"]["min_overlap"]  # read from the checkpoint
    plain = run_json(capsys, [*evaluate, "--split", "test", "--checkpoint", str(tmp_path / "shipped"), "--lexicon", "none"])
    assert plain["lexicon"] is None
    from qa_system.models.qidn import load_qidn_extractor

    assert load_qidn_extractor(tmp_path / "shipped").lexicon is not None
