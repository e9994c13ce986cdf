"""The reachability ceiling: classes on a hand-made graph, and a real run on the shipped demo graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.answer_reachability import CLASSES, main, reach_class, summarise, undirected_adjacency
from evaluation.qa_data import QAExample
from tests.evaluation.test_qa_data import needs_data

# a - b - c - d   e (isolated pair e - f)
GRAPH = undirected_adjacency([("a", "r", "b"), ("c", "r", "b"), ("c", "s", "d"), ("e", "r", "f")])


def question(topics: list[str], answers: list[str]) -> QAExample:
    return QAExample(id="q", question="?", topic_ids=topics, answer_ids=answers, answer_names=answers)


@pytest.mark.parametrize(
    ("topics", "answers", "expected"),
    [
        ([], ["b"], "no_topic"),
        (["zz"], ["b"], "no_topic"),  # a gold topic that is not a graph entity
        (["a"], [], "no_answer"),
        (["a"], ["zz"], "no_answer"),
        (["a"], ["b"], "one_hop"),
        (["b"], ["a"], "one_hop"),  # against the fact's direction
        (["a"], ["c"], "two_hops"),
        (["a"], ["d", "c"], "two_hops"),  # the nearest gold answer counts
        (["a"], ["d"], "beyond_two_hops"),
        (["a"], ["f"], "beyond_two_hops"),  # not connected at all
        (["zz", "e"], ["f", "d"], "one_hop"),  # any gold topic in the graph
    ],
)
def test_each_question_gets_its_nearest_answers_class(topics, answers, expected) -> None:
    assert reach_class(question(topics, answers), GRAPH) == expected


def test_summary_counts_shares_and_nested_ceilings() -> None:
    summary = summarise(["one_hop", "one_hop", "two_hops", "no_topic", "beyond_two_hops"])
    assert summary["questions"] == 5 and sum(summary["counts"].values()) == 5
    assert summary["ceilings"] == {"one_hop": 0.4, "within_two_hops": 0.6, "answer_in_graph": 0.8}
    assert summarise([])["ceilings"]["one_hop"] == 0.0


@needs_data
def test_filtered_questions_all_have_their_answer_in_the_demo_graph(tmp_path: Path, capsys) -> None:
    """HittER's filtered sets keep questions whose topic and answer are FB15k-237 entities: a
    ceiling of 1 over the shipped graph, and most answers one hop away (the reader's candidates)."""

    out = tmp_path / "record.json"
    assert main(["--dataset", "webqsp", "--setting", "filtered", "--out", str(out), "--json"]) == 0
    record = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == record
    assert record["questions"] == 484 and set(record["counts"]) == set(CLASSES)
    assert record["counts"]["no_topic"] == record["counts"]["no_answer"] == 0
    assert record["ceilings"]["answer_in_graph"] == 1.0
    assert 0.8 < record["ceilings"]["one_hop"] < record["ceilings"]["within_two_hops"] <= 1.0
