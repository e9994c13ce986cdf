"""Relation scorer: the shipped checkpoint, unseen relation names, direction, and a training smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.models.relation_scorer import (
    RelationScorerConfig,
    content_stems,
    lexical_overlap,
    load_relation_scorer,
    mask_topic,
    relation_text,
    shipped_checkpoint,
)

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def scorer():
    if not (shipped_checkpoint() / "card.json").is_file():
        pytest.fail("the relation-scorer checkpoint is not shipped")
    return load_relation_scorer()


def test_mask_topic_whole_name_and_partial():
    assert mask_topic("Who directed The Matrix?", "The Matrix") == "Who directed X?"
    assert mask_topic("who directed the matrix", "The Matrix") == "who directed X"
    assert mask_topic("who was vice president after kennedy died?", "John F. Kennedy") == "who was vice president after X died?"
    assert mask_topic("What is this?", "Bananaman") == "What is this?"


def test_relation_text_reads_words_and_direction():
    assert relation_text("/film/film/directed_by", True) == "X directed by what"
    assert relation_text("ACTED_IN", False) == "what acted in X"
    assert relation_text("leaderName", True, "of") == "what is the leader name of X"


def test_lexical_overlap_stems():
    assert lexical_overlap(content_stems("Who created X?"), "creator") == 1.0
    assert lexical_overlap(content_stems("Who directed X?"), "directed by") == 1.0
    assert lexical_overlap(content_stems("Who directed X?"), "tagline") == 0.0


def test_shipped_checkpoint_is_small_and_loads(scorer):
    size = sum(p.stat().st_size for p in shipped_checkpoint().iterdir())
    assert size < 10 * 1024 * 1024
    assert not scorer.zero_shot
    card = json.loads((shipped_checkpoint() / "card.json").read_text())
    assert card["command"].startswith("qa-system train relations") and "test" in card


@pytest.mark.parametrize(
    ("question", "topic", "relations", "expected"),
    [
        ("Who directed The Matrix?", "The Matrix",
         [("DIRECTED", False), ("ACTED_IN", False), ("released", True), ("tagline", True)], ("DIRECTED", False)),
        ("When was Keanu Reeves born?", "Keanu Reeves",
         [("ACTED_IN", True), ("DIRECTED", True), ("born", True), ("name", True)], ("born", True)),
        ("Who created Bananaman?", "Bananaman",
         [("creator", True), ("firstAired", True), ("starring", True)], ("creator", True)),
        ("Who is the leader of Azerbaijan?", "Azerbaijan",
         [("capital", True), ("leaderName", True), ("currency", True), ("language", True)], ("leaderName", True)),
    ],
)
def test_prefers_right_unseen_relation_and_direction(scorer, question, topic, relations, expected):
    scores = scorer.score(question, topic, relations)
    assert scores.shape == (len(relations),) and np.isfinite(scores).all()
    assert relations[int(np.argmax(scores))] == expected


DIRECTION = pytest.mark.xfail(strict=False, reason="known weakness: the direction within one relation rests on a "
                               "small learned term over pooled frozen MiniLM vectors (see the module docstring)")


def test_direction_within_one_relation_acted_in(scorer):
    relations = [("ACTED_IN", True), ("ACTED_IN", False), ("born", True), ("DIRECTED", True)]
    scores = scorer.score("Which films did Keanu Reeves act in?", "Keanu Reeves", relations)
    assert relations[int(np.argmax(scores))] == ("ACTED_IN", True)


@DIRECTION
def test_direction_acted_in_from_the_film(scorer):
    scores = scorer.score("Who acted in The Matrix?", "The Matrix", [("ACTED_IN", False), ("ACTED_IN", True)])
    assert scores[0] > scores[1]


def test_direction_matters_for_directed(scorer):
    # "Who directed X" asks for the subject of DIRECTED when X is a film (topic is the object).
    scores = scorer.score("Who directed The Matrix?", "The Matrix", [("DIRECTED", False), ("DIRECTED", True)])
    assert scores[0] > scores[1]


def test_empty_relations(scorer):
    assert scorer.score("Who directed The Matrix?", "The Matrix", []).shape == (0,)


def test_zero_shot_fallback_without_checkpoint(tmp_path: Path):
    fallback = load_relation_scorer(tmp_path / "nothing")
    assert fallback.zero_shot
    scores = fallback.score("Who created Bananaman?", "Bananaman", [("creator", True), ("firstAired", True)])
    assert scores.shape == (2,)
    from qa_system.errors import CheckpointError

    with pytest.raises(CheckpointError):
        load_relation_scorer(tmp_path / "nothing", fallback=False)


def test_training_smoke_writes_loadable_checkpoint(tmp_path: Path):
    from evaluation.relation_questions import RelationExample
    from qa_system.training.relation_scorer import train_relation_scorer

    def example(i, q, topic, cands, pos):
        return RelationExample(str(i), "freebaseqa", q, topic, tuple(cands), frozenset(pos))

    cands = [("/film/film/directed_by", True), ("/film/film/genre", True), ("/film/film/starring", True)]
    data = [
        example(1, "Who directed Inception?", "Inception", cands, [cands[0]]),
        example(2, "What genre is Memento?", "Memento", cands, [cands[1]]),
        example(3, "Who starred in Titanic?", "Titanic", cands, [cands[2]]),
        example(4, "Where was Nolan born?", "Christopher Nolan", [("/people/person/place_of_birth", True)],
                [("/people/person/place_of_birth", True)]),
    ]
    config = RelationScorerConfig(lora_r=4, tiny=TINY)
    summary = train_relation_scorer(tmp_path / "run", epochs=1, batch_size=4, max_steps=1, config=config,
                                    train_examples=data, dev_examples=data[:2], threads=1, command="qa-system train relations")
    assert summary["best_epoch"] == 1 and summary["history"][0]["steps"] == 1
    loaded = load_relation_scorer(tmp_path / "run" / "best", fallback=False)
    assert not loaded.zero_shot
    assert loaded.score("Who directed Inception?", "Inception", cands).shape == (3,)
