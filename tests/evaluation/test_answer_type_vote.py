"""The answer-type vote of the dev study (``evaluation.answer_type_vote``), on hand-made vectors."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.answer_type_vote import (
    DevRow,
    Study,
    head_noun,
    hits,
    nearest,
    prototype_vote,
    run,
    type_vote,
)


def unit(*rows: list[float]) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("description", "head"),
    [("American actress", "actress"), ("country in the Caribbean", "country"), ("association football club in Sunderland, England", "club"),
     ("", ""), ("1999 film by Sam Mendes", "film")],
)
def test_head_noun(description: str, head: str) -> None:
    assert head_noun(description) == head


def test_nearest_orders_by_cosine_and_honours_threshold_and_exclusion() -> None:
    memory = unit([1, 0], [0.9, 0.1], [0, 1], [0.7, 0.7])
    query = unit([1, 0])
    assert nearest(query, memory, 2)[0].tolist() == [0, 1]
    assert nearest(query, memory, 10)[0].tolist() == [0, 1, 3, 2]  # k above the memory size: all of it
    assert nearest(query, memory, 4, min_similarity=0.8)[0].tolist() == [0, 1]
    excluded = np.array([True, False, False, False])
    assert nearest(query, memory, 2, excluded=excluded)[0].tolist() == [1, 3]
    assert nearest(query, memory, 0)[0].tolist() == []


def test_type_vote_is_weight_times_share_of_neighbours() -> None:
    neighbours = [{"/people/person"}, {"/people/person"}, {"/film/film"}, set()]
    candidates = [{"/people/person"}, {"/film/film"}, set(), {"/tv/tv_program", "/film/film"}]
    assert type_vote(neighbours, candidates, 2.0).tolist() == pytest.approx([1.0, 0.5, 0.0, 0.5])
    assert type_vote([], candidates, 2.0).tolist() == [0, 0, 0, 0]
    assert type_vote(neighbours, candidates, 0.0).tolist() == [0, 0, 0, 0]
    assert type_vote([["a", "a"]], [{"a"}], 1.0).tolist() == [1.0]  # a neighbour votes once per type


def test_prototype_vote_prefers_candidates_like_the_neighbours_answers() -> None:
    answers = unit([1, 0], [0.8, 0.2])
    candidates = unit([1, 0.1], [0, 1])
    scores = prototype_vote(answers, candidates, 3.0)
    assert scores[0] > scores[1] and scores[0] == pytest.approx(3.0, abs=0.1)
    assert prototype_vote(np.zeros((0, 2)), candidates, 3.0).tolist() == [0, 0]


def _study(memory_ids: list[str] | None = None) -> Study:
    """Two dev questions: on "q1" the reader prefers the wrong person; the neighbours' answers are films."""

    rows = [
        DevRow("webqsp", "dev-1", "which film", ["/m/person", "/m/film"], np.array([1.0, 0.8], dtype=np.float32),
               np.zeros(2, dtype=np.float32), {"/m/film"}),
        DevRow("freebaseqa", "dev-2", "who", ["/m/person", "/m/film"], np.array([1.0, 0.0], dtype=np.float32),
               np.zeros(2, dtype=np.float32), {"/m/person"}),
    ]
    return Study(
        rows=rows, dev_sizes={"webqsp": 1, "freebaseqa": 2},
        dev_vectors=unit([1, 0], [0, 1]),
        memory_ids=memory_ids or ["t1", "t2", "t3"], memory_questions=["a film", "another film", "a person"],
        memory_answers=[["/m/film2"], ["/m/film3"], ["/m/person2"]],
        memory_vectors=unit([1, 0.05], [1, 0.1], [0, 1]).astype(np.float16),
        entity_type={"/m/person": "/people/person", "/m/person2": "/people/person", "/m/film": "/film/film", "/m/film2": "/film/film",
                     "/m/film3": "/film/film"},
        entity_description={},
    )


def test_hits_adds_the_text_match_and_the_bias() -> None:
    study = _study()
    assert hits(study, lambda i: 0.0, 0.0).tolist() == [False, True]
    assert hits(study, lambda i: np.array([0.0, 0.5]) if i == 0 else 0.0, 0.0).tolist() == [True, True]


def test_run_finds_the_vote_and_counts_unanswered_dev_questions_as_wrong() -> None:
    record = run(_study(), text_weight=14.0)
    assert record["baseline"]["hits@1"] == {"webqsp": 0.0, "freebaseqa": 0.5, "both": pytest.approx(1 / 3)}
    best = record["best"][0]
    assert best["setting"].startswith("freebase_type") and best["gained"] == 1 and best["lost"] == 0
    assert best["hits@1"]["both"] == pytest.approx(2 / 3)
    assert record["memory_dev_id_overlap"] == 0 and record["shipped"] is False


def test_run_refuses_a_memory_holding_dev_questions() -> None:
    with pytest.raises(RuntimeError, match="dev questions are in the training memory"):
        run(_study(memory_ids=["t1", "dev-2", "t3"]), text_weight=14.0)
