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
    """Every text list that reaches the model, in order (the real model still runs): bulk calls
    through ``_encode``, the memo's small calls through ``_encode_short``."""

    calls: list[list[str]] = []
    real, real_short = N._encode, N._encode_short

    def counting(texts, batch_size, progress):
        calls.append(list(texts))
        return real(texts, batch_size, progress)

    def counting_short(texts):
        calls.append(list(texts))
        return real_short(texts)

    monkeypatch.setattr(N, "_encode", counting)
    monkeypatch.setattr(N, "_encode_short", counting_short)
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


def test_short_calls_give_the_sentence_transformer_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo's small calls run through ONNX Runtime (``models.onnx_encoder``) when it is there:
    the same vectors as the sentence-transformers model, padded batch or not."""

    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("QA_WORKSPACE", str(tmp_path))
    monkeypatch.setattr(N, "_short_encoder", None)  # look again, with this workspace
    texts = ["What is the name of the main train station in San Francisco?", "San Francisco", "Barack Obama"]
    short = N._encode_short(texts)
    assert N._short_encoder, "the ONNX twin was not built"
    assert np.allclose(short, N._encode(texts, 8, False), atol=1e-5)
    assert np.allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    monkeypatch.setenv("QA_ONNX_RUNTIME", "false")
    monkeypatch.setattr(N, "_short_encoder", None)
    assert np.allclose(N._encode_short(texts), short, atol=1e-5) and N._short_encoder is False  # PyTorch, same vectors


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
