"""The cascade's stop-gap training loop: trains, checkpoints every epoch, resumes, and reports string P/R/F1."""

from __future__ import annotations

import json
from pathlib import Path

from qa_system.models.cascade import CascadeConfig, load_cascade_extractor
from qa_system.training.cascade_fit import CascadeFitConfig, fit_cascade

RECORDS = [
    {"text": "Alan Bean was born in Wheeler , Texas .", "triple_list": [["Bean", "birthPlace", "Texas"]]},
    {"text": "Paris is the capital of France , led by Macron .",
     "triple_list": [["France", "capital", "Paris"], ["France", "leader", "Macron"]]},
    {"text": "Aarhus Airport is in Denmark .", "triple_list": [["Airport", "country", "Denmark"]]},
]
RELATIONS = ["birthPlace", "country", "leader", "capital"]


def write_dataset(root: Path) -> Path:
    folder = root / "webnlg-casrel" / "WebNLG-star"
    folder.mkdir(parents=True)
    (folder / "rel2id.json").write_text(json.dumps([dict(enumerate(RELATIONS)), {r: i for i, r in enumerate(RELATIONS)}]))
    for name in ("train", "val", "test"):
        (folder / f"{name}_triples.json").write_text(json.dumps(RECORDS))
    return root


def test_fit_checkpoints_every_epoch_and_resumes(tmp_path):
    data = write_dataset(tmp_path / "data")
    config = CascadeConfig(backbone="random", random_hidden=32, random_layers=1, lora_r=0, rpe_heads=2, rpe_ffn=64, dropout=0.0)
    fit = CascadeFitConfig(epochs=2, batch_size=1, lr=3e-3, head_lr_scale=1.0, warmup=0.0, max_length=32)
    out = tmp_path / "run"
    best = fit_cascade(out, data_dir=data, config=config, fit=fit)
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in trace] == [1, 2]
    assert (out / "epoch-2" / "card.json").is_file() and (out / "last.pt").is_file()
    assert best["epoch"] in (1, 2) and 0.0 <= best["f1"] <= 1.0

    # more epochs on the same folder resume after epoch 2, not from scratch
    fit.epochs = 60
    best = fit_cascade(out, data_dir=data, config=config, fit=fit)
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in trace] == list(range(1, 61))
    assert best["f1"] == 1.0  # three training sentences, memorised
    extractor = load_cascade_extractor(out / "best")
    assert {(t.subject.text, t.relation, t.object.text) for t in extractor.extract([RECORDS[0]["text"]])[0]} == {
        ("Bean", "birthPlace", "Texas")}
