"""A four-sentence WebNLG-format dataset (CasRel JSON) shared by the extractor tests."""

from __future__ import annotations

import json
from pathlib import Path

RELATIONS = ["birthPlace", "manager", "capital", "leaderName", "country"]
SENTENCES = [
    {"text": "Alan Bean was born in Wheeler , Texas .", "triple_list": [["Alan Bean", "birthPlace", "Texas"]]},
    {"text": "Peter Stöger is the manager of 1 . FC Köln .", "triple_list": [["1 . FC Köln", "manager", "Peter Stöger"]]},
    {"text": "Rome is the capital of Italy , whose leader is Sergio Mattarella .",
     "triple_list": [["Italy", "capital", "Rome"], ["Italy", "leaderName", "Sergio Mattarella"]]},
    {"text": "Aarhus Airport is in Denmark .", "triple_list": [["Aarhus Airport", "country", "Denmark"]]},
]


def write_webnlg(data_dir: Path, folder: str = "WebNLG-star", *, casrel_rel2id: bool = True) -> Path:
    """``data_dir/webnlg-casrel/<folder>/`` with the same four sentences in train, val and test."""

    root = Path(data_dir) / "webnlg-casrel" / folder
    root.mkdir(parents=True, exist_ok=True)
    rel2id = {r: i for i, r in enumerate(RELATIONS)}
    payload = [{str(i): r for i, r in enumerate(RELATIONS)}, rel2id] if casrel_rel2id else rel2id
    (root / "rel2id.json").write_text(json.dumps(payload), encoding="utf-8")
    for split in ("train", "val", "test"):
        (root / f"{split}_triples.json").write_text(json.dumps(SENTENCES, ensure_ascii=False), encoding="utf-8")
    return Path(data_dir)
