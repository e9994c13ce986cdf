"""The question/answer text match added to the reader's candidate scores."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from qa_system.types import Entity
from retrievers.answer_text import (
    CARD_KEY,
    AnswerTextMatcher,
    entity_text,
    matcher_from_card,
    store_texts,
)

VOCAB = ["actress", "actor", "football", "club", "state", "film", "black", "cats"]


class BagOfWords:
    """A deterministic stand-in for MiniLM: normalised word counts over ``VOCAB``; counts its calls."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.embedded += texts
        rows = np.zeros((len(texts), len(VOCAB) + 1), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for j, v in enumerate(VOCAB):
                rows[i, j] = words.count(v)
            rows[i, -1] = 0.1  # no zero vectors
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


TEXTS = {
    "/m/sun": entity_text("Sunderland A.F.C.", "association football club nicknamed the Black Cats"),
    "/m/ny": entity_text("New York", "state of the United States"),
    "/m/jen": entity_text("Jennifer Aniston", "American actress"),
}


def lookup(ids):
    return {i: TEXTS[i] for i in ids if i in TEXTS}


def test_entity_text_joins_name_and_description() -> None:
    assert entity_text("  Ska ", "music  genre") == "Ska: music genre"
    assert entity_text("Ska") == "Ska"


def test_the_candidate_the_question_describes_scores_highest() -> None:
    matcher = AnswerTextMatcher(lookup, 10.0, embed=BagOfWords())
    [scores] = matcher(["Which football club is nicknamed the Black Cats?"], [["/m/ny", "/m/sun", "/m/jen", "/m/unknown"]])
    assert scores.shape == (4,) and scores.dtype == np.float32
    assert int(np.argmax(scores)) == 1
    assert scores[3] == 0.0  # no text: no opinion
    assert 0.0 < scores[1] <= 10.0 + 1e-5  # weight x cosine


def test_weight_scales_and_zero_weight_embeds_nothing() -> None:
    question, row = ["which actress"], [["/m/jen", "/m/ny"]]
    one = AnswerTextMatcher(lookup, 1.0, embed=BagOfWords())(question, row)[0]
    five = AnswerTextMatcher(lookup, 5.0, embed=BagOfWords())(question, row)[0]
    np.testing.assert_allclose(five, 5 * one, rtol=1e-5)
    embed = BagOfWords()
    assert AnswerTextMatcher(lookup, 0.0, embed=embed)(question, row)[0].tolist() == [0.0, 0.0]
    assert embed.embedded == []
    with pytest.raises(ValueError):
        AnswerTextMatcher(lookup, -1.0)
    with pytest.raises(ValueError):
        AnswerTextMatcher(lookup, 1.0, embed=embed)(["a", "b"], [["/m/jen"]])


def test_candidates_are_embedded_once_and_again_when_their_text_changes() -> None:
    texts = dict(TEXTS)
    embed = BagOfWords()
    matcher = AnswerTextMatcher(lambda ids: {i: texts[i] for i in ids if i in texts}, 1.0, embed=embed)
    matcher(["q1"], [["/m/jen", "/m/ny"]])
    matcher(["q2"], [["/m/ny", "/m/jen", "/m/sun"]])
    candidate_texts = [t for t in embed.embedded if not t.startswith("q")]
    assert sorted(candidate_texts) == sorted(TEXTS.values())  # each candidate once
    texts["/m/jen"] = entity_text("Jennifer Aniston", "American actor")
    before = matcher(["which actor"], [["/m/jen"]])[0][0]
    assert embed.embedded[-1] == texts["/m/jen"]
    assert before > 0.5  # the new text is what is scored


def test_matcher_follows_the_card_and_reads_the_store() -> None:
    class Store:
        def get_entity(self, entity_id):
            return Entity(id=entity_id, name="Ska", description="music genre") if entity_id == "/m/ska" else None

    assert matcher_from_card({}, Store()) is None
    assert matcher_from_card({CARD_KEY: 0}, Store()) is None
    matcher = matcher_from_card({CARD_KEY: 3.5}, Store())
    assert matcher is not None and matcher.weight == 3.5
    assert store_texts(Store())(["/m/ska", "/m/none"]) == {"/m/ska": "Ska: music genre"}


def test_rank_adds_the_bias_before_the_softmax() -> None:
    from qa_system.ask.reader_loading import rank
    from tests.models.test_reader import tiny_reader
    from tests.training.test_reader_training import CharTokenizer, features

    reader, data = tiny_reader(), features()
    plain = rank(reader, data, CharTokenizer())
    calls = []

    def bias(questions, candidates):
        calls.append(len(questions))
        return [np.array([0.0, 0.0, 100.0], dtype=np.float32) for _ in candidates]

    pushed = rank(reader, data, CharTokenizer(), answer_bias=bias)
    assert sum(calls) == len(data)
    assert all(r[0][0] == "/m/c" and r[0][1] > 0.99 for r in pushed)
    assert any(r[0][0] != "/m/c" for r in plain)  # the bias, not the reader, put /m/c first
    assert all(abs(sum(p for _, p in r) - 1.0) < 1e-4 for r in pushed)


def test_shipped_reader_card_turns_the_text_match_on() -> None:
    from qa_system.ask.reader_loading import shipped_reader

    card_path = shipped_reader() / "card.json"
    if not card_path.is_file():
        pytest.skip("no reader checkpoint shipped")
    assert float(json.loads(card_path.read_text())[CARD_KEY]) > 0


def test_warm_up_embeds_every_text_once_and_a_new_process_starts_from_the_saved_cache(tmp_path) -> None:
    embed = BagOfWords()
    cache = tmp_path / "indexes" / "answer_text.npz"
    matcher = AnswerTextMatcher(lookup, 1.0, embed=embed, cache_path=cache)
    assert matcher.warm_up(TEXTS.items(), batch_size=2) == 3 and len(matcher) == 3 and cache.is_file()
    assert matcher.warm_up(TEXTS.items()) == 0  # nothing new: nothing embedded, nothing rewritten
    matcher(["which actress"], [list(TEXTS)])
    assert sorted(embed.embedded[:3]) == sorted(TEXTS.values()) and embed.embedded[3:] == ["which actress"]

    fresh_embed = BagOfWords()
    restarted = AnswerTextMatcher(lookup, 1.0, embed=fresh_embed, cache_path=cache)
    assert len(restarted) == 3
    scores = restarted(["which actress"], [["/m/jen", "/m/ny"]])[0]
    assert fresh_embed.embedded == ["which actress"]  # candidates came from the cache
    np.testing.assert_allclose(scores, matcher(["which actress"], [["/m/jen", "/m/ny"]])[0], rtol=1e-6)
    vectors = restarted.vectors()  # the cached vectors by entity id, as the saved file holds them
    assert sorted(vectors) == sorted(TEXTS)
    np.testing.assert_allclose(vectors["/m/jen"], embed([TEXTS["/m/jen"]])[0], rtol=1e-6)


def test_a_broken_cache_file_is_ignored_and_rebuilt(tmp_path) -> None:
    cache = tmp_path / "answer_text.npz"
    cache.write_bytes(b"not an npz file")
    embed = BagOfWords()
    matcher = AnswerTextMatcher(lookup, 1.0, embed=embed, cache_path=cache)
    assert len(matcher) == 0
    assert matcher.warm_up(TEXTS.items()) == 3
    assert len(AnswerTextMatcher(lookup, 1.0, embed=BagOfWords(), cache_path=cache)) == 3


def test_store_texts_reads_a_real_store_in_one_query_and_skips_unknown_ids(tiny_store) -> None:
    some = [row["e.id"] for row in tiny_store.run_read_query("MATCH (e:Entity) RETURN e.id ORDER BY e.id", limit=3)]
    texts = store_texts(tiny_store)([*some, "/m/not-in-the-graph"])
    assert sorted(texts) == sorted(some)
    for entity_id in some:
        entity = tiny_store.get_entity(entity_id)
        assert texts[entity_id] == entity_text(entity.name, entity.description)
    assert store_texts(tiny_store)([]) == {}
