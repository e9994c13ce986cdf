"""Question constraints: named entities re-order the head of a ranking; weights chosen on dev."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qa_system.ask.constraints import (
    ConstraintWeights,
    QuestionConstraints,
    adjacent_candidates,
    constrain,
    named_entities,
    weights_from_card,
)
from qa_system.training.constraints_tuning import DevQuestion, choose_weights, grid_points, outcome_matrix

W = ConstraintWeights(adjacent=6.0, mentioned=4.0, min_link_score=0.1, mention_min_score=0.2, head=5, link_top_k=8)


def linked(entity_id: str, score: float, start: int, end: int) -> SimpleNamespace:
    return SimpleNamespace(entity=SimpleNamespace(id=entity_id), score=score, start=start, end=end)


def fact(s: str, o: str) -> SimpleNamespace:
    return SimpleNamespace(subject=s, object=o)


def test_adjacent_candidate_moves_ahead_within_the_head_only() -> None:
    ranking = [("a", 0.5), ("b", 0.3), ("c", 0.1), ("d", 0.05), ("e", 0.03), ("f", 0.02)]
    out = constrain(ranking, adjacent={"c", "f"}, mentioned=set(), weights=W)
    assert [c for c, _ in out][:3] == ["c", "a", "b"]
    assert out[-1][0] == "f"  # below the head: never moves
    assert abs(sum(p for _, p in out) - 1.0) < 1e-9
    assert [p for _, p in out[:5]] == sorted((p for _, p in out[:5]), reverse=True)


def test_a_far_behind_candidate_does_not_overtake() -> None:
    ranking = [("a", 0.999), ("b", 1e-6)]
    assert [c for c, _ in constrain(ranking, {"b"}, set(), W)] == ["a", "b"]  # 13.8 nats behind > 6


def test_mentioned_candidate_drops_and_nothing_changes_without_adjustments() -> None:
    ranking = [("france", 0.6), ("spain", 0.3), ("italy", 0.1)]
    assert constrain(ranking, set(), {"france"}, W)[0][0] == "spain"
    assert constrain(ranking, set(), set(), W) == ranking
    assert constrain([], {"x"}, set(), W) == []


def test_head_order_of_the_reranker_is_kept_as_the_baseline() -> None:
    # the reranker may put a lower raw probability first; with no adjustment among them its order stands
    ranking = [("b", 0.2), ("a", 0.5), ("c", 0.1)]
    out = constrain(ranking, {"c"}, set(), ConstraintWeights(adjacent=1.0))
    assert [c for c, _ in out] == ["c", "b", "a"]  # c: log 0.1 + 1 > log 0.2; b keeps its place before a


def test_named_entities_skip_the_topic_its_other_readings_and_weak_links() -> None:
    links = [linked("friends_show", 0.9, 0, 7), linked("friends_film", 0.5, 0, 7), linked("rachel", 0.6, 20, 32),
             linked("weak", 0.05, 40, 44), linked("ok", 0.15, 50, 55)]
    named = named_entities(links, "friends_show", W)
    assert named.anchors == ("rachel", "ok")  # friends_film reads the topic's words; weak is below 0.1
    assert named.mentioned == {"friends_film", "rachel"}  # score >= 0.2
    assert named_entities(links, "friends_show", ConstraintWeights(adjacent=1, link_top_k=2)).anchors == ()


def test_adjacency_needs_an_anchor_at_the_other_end() -> None:
    facts = [fact("a", "x"), fact("y", "b"), fact("c", "d"), fact("x", "x")]
    assert adjacent_candidates(facts, ["x", "y"], ["a", "b", "c", "x"]) == {"a", "b"}


def test_weights_refuse_bad_values_and_card_round_trip() -> None:
    with pytest.raises(ValueError):
        ConstraintWeights(adjacent=-1)
    with pytest.raises(ValueError):
        ConstraintWeights(mentioned=float("nan"))
    with pytest.raises(ValueError):
        ConstraintWeights(head=0)
    assert weights_from_card({"constraints": W.to_dict()}) == W
    assert weights_from_card({}) is None and weights_from_card({"constraints": None}) is None
    assert weights_from_card({"constraints": ConstraintWeights().to_dict()}) is None  # all zero: off


class FakeStore:
    def __init__(self, facts: list[SimpleNamespace]) -> None:
        self.facts, self.calls = facts, []

    def facts_linking(self, anchors, ids, *, statuses=None):  # noqa: ANN001, ANN201
        self.calls.append((tuple(anchors), tuple(ids)))
        return [f for f in self.facts if (f.subject in anchors and f.object in ids) or (f.object in anchors and f.subject in ids)]


def test_question_constraints_read_the_store_only_when_the_question_names_another_entity() -> None:
    store = FakeStore([fact("perth", "scotland")])
    qc = QuestionConstraints(store, W)
    ranking = [("dundee", 0.6), ("perth", 0.3)]
    ranked, facts = qc.apply(ranking, [linked("ninewells", 0.9, 20, 29), linked("scotland", 0.8, 6, 14)], "ninewells")
    assert ranked[0][0] == "perth" and [(f.subject, f.object) for f in facts] == [("perth", "scotland")]
    store.calls.clear()
    assert qc.apply(ranking, [linked("ninewells", 0.9, 20, 29)], "ninewells") == (ranking, [])
    assert store.calls == []


def _question(answer: str, ranked: list[tuple[str, float]], facts: list[SimpleNamespace]) -> DevQuestion:
    return DevQuestion({answer}, ranked, "t", [linked("t", 0.9, 0, 1), linked("k", 0.5, 5, 6)], facts)


def test_outcome_matrix_and_choice() -> None:
    helped = _question("b", [("a", 0.6), ("b", 0.4)], [fact("b", "k")])  # adjacency turns it right
    hurt = _question("a", [("a", 0.6), ("c", 0.4)], [fact("c", "k")])  # ... and this one wrong
    points = grid_points()
    m = outcome_matrix([helped, hurt], points)
    assert set(np.unique(m)) <= {-1, 0, 1}
    off = [j for j, p in enumerate(points) if not p.active]
    assert not m[:, off].any()
    weights, report = choose_weights({"g": [helped, helped, hurt]}, split_half_repeats=2)
    assert weights.adjacent > 0 and report["net_gain"] == 1
    assert report["groups"]["g"]["won"] == 2 and report["groups"]["g"]["lost"] == 1
    weights, report = choose_weights({"g": [hurt]}, split_half_repeats=0)
    assert not weights.active and report["groups"]["g"]["net_gain"] == 0


def test_commands_take_no_constraints_and_tune_constraints() -> None:
    from qa_system.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["ask", "Who directed Inception?", "--no-constraints"]).no_constraints is True
    assert parser.parse_args(["evaluate", "qa", "--dataset", "webqsp", "--no-constraints"]).no_constraints is True
    args = parser.parse_args(["tune", "constraints", "--dry-run", "--split-half-check", "0"])
    assert args.dry_run and args.split_half_check == 0 and args.func.__name__ == "_tune_constraints"
    assert parser.parse_args(["tune", "validation"]).func.__name__ != "_tune_constraints"


def test_a_failing_store_read_keeps_the_answer_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    from qa_system.errors import GraphUnavailableError

    class DownStore:
        def facts_linking(self, anchors, ids, *, statuses=None):  # noqa: ANN001, ANN201
            raise GraphUnavailableError("the graph database is unreachable")

    ranking = [("dundee", 0.6), ("perth", 0.3), ("scotland", 0.1)]
    links = [linked("ninewells", 0.9, 20, 29), linked("scotland", 0.8, 6, 14)]
    with caplog.at_level("WARNING"):
        ranked, facts = QuestionConstraints(DownStore(), W).apply(ranking, links, "ninewells")
    assert [c for c, _ in ranked] == ["dundee", "perth", "scotland"] and facts == []  # scotland: mentioned, already last
    assert "unreachable" in caplog.text
