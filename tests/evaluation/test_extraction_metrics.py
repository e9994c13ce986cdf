"""Extraction metrics on hand-made cases: exact string match, overlap classes, per-count buckets."""

from __future__ import annotations

import pytest

from evaluation.extraction import (
    count_bucket,
    overlap_patterns,
    prf,
    score,
    threshold_sweep,
    write_record,
)


@pytest.mark.parametrize(
    ("triples", "expected"),
    [
        ([("A", "r", "B")], {"normal"}),
        ([("A", "r", "B"), ("C", "s", "D")], {"normal"}),
        ([("A", "r", "B"), ("A", "s", "C")], {"seo"}),  # one shared entity
        ([("A", "r", "B"), ("C", "s", "A")], {"seo"}),  # shared as subject and object
        ([("A", "r", "B"), ("A", "s", "B")], {"epo"}),  # same pair, two relations
        ([("A", "r", "B"), ("B", "s", "A")], {"epo"}),  # same pair, reversed
        ([("A", "r", "B"), ("A", "s", "B"), ("A", "t", "C")], {"epo", "seo"}),
        ([("A", "r", "B"), ("A", "r", "B")], {"normal"}),  # a duplicated gold triple is one triple
    ],
)
def test_overlap_patterns(triples, expected) -> None:
    assert overlap_patterns(triples) == expected


def test_prf_and_buckets() -> None:
    assert prf(0, 0, 0)["f1"] == 0.0
    m = prf(3, 4, 6)
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.6)
    assert [count_bucket(n) for n in (1, 4, 5, 9)] == ["1", "4", ">=5", ">=5"]


def test_score_micro_and_breakdowns() -> None:
    gold = [
        [("Alan Bean", "birthPlace", "Texas")],  # normal, 1
        [("Italy", "capital", "Rome"), ("Italy", "leaderName", "Sergio Mattarella")],  # seo, 2
        [("A", "r", "B"), ("A", "s", "B")],  # epo, 2
    ]
    predicted = [
        [("Alan Bean", "birthPlace", "Texas")],
        [("Italy", "capital", "Rome"), ("italy", "leaderName", "Sergio Mattarella")],  # case differs: wrong
        [("A", "r", "B"), ("A", "r", "B"), ("B", "s", "A")],  # duplicate counted once; reversed is wrong
    ]
    result = score(gold, predicted)
    # correct 1 + 1 + 1 = 3; predicted 1 + 2 + 2 = 5; gold 1 + 2 + 2 = 5
    assert (result["correct"], result["predicted"], result["gold"]) == (3, 5, 5)
    assert result["f1"] == pytest.approx(0.6)
    assert result["by_pattern"]["normal"]["f1"] == pytest.approx(1.0)
    assert result["by_pattern"]["seo"]["f1"] == pytest.approx(0.5)
    assert result["by_pattern"]["epo"]["sentences"] == 1 and result["by_pattern"]["epo"]["correct"] == 1
    assert result["by_count"]["1"]["sentences"] == 1 and result["by_count"]["2"]["sentences"] == 2
    assert result["by_count"][">=5"]["sentences"] == 0 and result["by_count"][">=5"]["f1"] == 0.0
    with pytest.raises(ValueError, match="2 gold sentences but 1"):
        score(gold[:2], predicted[:1])


def test_sentence_without_gold_counts_its_false_positives() -> None:
    result = score([[]], [[("A", "r", "B")]])
    assert (result["correct"], result["predicted"], result["gold"]) == (0, 1, 0)
    assert all(v["sentences"] == 0 for v in result["by_pattern"].values())


def test_write_record(tmp_path) -> None:
    path = write_record({"f1": 0.5}, "qidn", "webnlg-star", "test", tmp_path)
    assert path.name == "extractor-qidn-webnlg-star-test.json" and '"f1": 0.5' in path.read_text()


def test_threshold_sweep_trades_recall_for_precision() -> None:
    gold = [[("A", "r", "B"), ("C", "s", "D")]]
    scored = [[(("A", "r", "B"), 0.9), (("C", "s", "D"), 0.4), (("A", "s", "D"), 0.3)]]
    rows = {r["threshold"]: r for r in threshold_sweep(gold, scored, [0.0, 0.35, 0.5, 0.95])}
    assert rows[0.0]["precision"] == pytest.approx(2 / 3) and rows[0.0]["recall"] == 1.0
    assert rows[0.35]["precision"] == 1.0 and rows[0.35]["f1"] == 1.0
    assert rows[0.5]["recall"] == 0.5 and rows[0.95]["f1"] == 0.0
