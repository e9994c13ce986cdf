"""The recent-text memo of ``name_embeddings.embed``: the question embedded with its mentions is
not embedded again by the answer-text match (one MiniLM pass per question, not two)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import retrievers.name_embeddings as N
from retrievers.answer_text import AnswerTextMatcher
from retrievers.linking import GraphEntityLinker


@pytest.fixture()
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every text list that reaches the model, in order (the real model still runs)."""

    calls: list[list[str]] = []
    real = N._encode

    def counting(texts, batch_size, progress):
        calls.append(list(texts))
        return real(texts, batch_size, progress)

    monkeypatch.setattr(N, "_encode", counting)
    monkeypatch.setattr(N, "recent_vectors", N.RecentVectors())
    return calls


def test_also_texts_are_embedded_in_the_same_pass_and_reused(encoded: list[list[str]]) -> None:
    question = "Who played Rachel Green in Friends?"
    mentions = N.embed(["Rachel Green", "Friends"], also=[question])
    assert encoded == [["Rachel Green", "Friends", question]]
    (again,) = N.embed([question])
    assert len(encoded) == 1  # a memo hit: no second model call
    fresh = N._encode([question], 128, False)[0]  # the question alone, unpadded: the same vector
    assert np.allclose(again, fresh, atol=1e-5) and mentions.shape == (2, 384)
    assert np.isclose(float(np.linalg.norm(again)), 1.0, atol=1e-5)


def test_only_the_missing_texts_are_embedded(encoded: list[list[str]]) -> None:
    first = N.embed(["Inception"])
    both = N.embed(["Christopher Nolan", "Inception"])
    assert encoded == [["Inception"], ["Christopher Nolan"]]
    assert np.array_equal(both[1], first[0]) and not np.allclose(both[0], both[1])


def test_bulk_calls_bypass_the_memo(encoded: list[list[str]]) -> None:
    texts = [f"entity number {i}" for i in range(N.RECENT_MAX_CALL + 1)]
    assert N.embed(texts).shape == (len(texts), 384)
    assert len(N.recent_vectors) == 0 and encoded == [texts]
    assert N.embed([]).shape == (0, 384)


def test_the_memo_is_bounded_least_recently_used_first() -> None:
    memo = N.RecentVectors(size=2)
    for text in ["a", "b"]:
        memo.put(text, np.full(3, ord(text), dtype=np.float32))
    assert memo.get("a") is not None  # "a" is now the most recent
    memo.put("c", np.zeros(3, dtype=np.float32))
    assert len(memo) == 2 and memo.get("b") is None and memo.get("a") is not None


def test_linker_and_answer_text_match_share_one_pass(tiny_store: object, tmp_path: Path, encoded: list[list[str]]) -> None:
    """The pipeline's wiring: a linker with ``embed_questions`` embeds the question with its fuzzy
    mentions; the answer-text match then finds it in the memo."""

    linker = GraphEntityLinker(tiny_store, index_dir=tmp_path / "indexes", embed_questions=True).load()  # type: ignore[arg-type]
    encoded.clear()  # the index build's bulk pass
    question = "Which films starred Leonardo Di Caprio?"
    linked = linker.link(question)
    assert linked[0].entity.id == "/m/dicaprio"
    assert len(encoded) == 1 and question in encoded[0]
    matcher = AnswerTextMatcher(lambda ids: {i: "Inception: 2010 film" for i in ids}, weight=1.0)
    (scores,) = matcher([question], [["/m/inception"]])
    assert all(question not in call for call in encoded[1:])  # only the candidate text was embedded
    assert encoded[1:] == [["Inception: 2010 film"]] and scores.shape == (1,)


def test_without_embed_questions_the_linker_embeds_only_mentions(tiny_store: object, tmp_path: Path, encoded: list[list[str]]) -> None:
    linker = GraphEntityLinker(tiny_store, index_dir=tmp_path / "indexes").load()  # type: ignore[arg-type]
    encoded.clear()
    question = "Which films starred Leonardo Di Caprio?"
    linker.link(question)
    assert encoded and all(question not in call for call in encoded)
