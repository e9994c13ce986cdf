"""The passage index: build, search, incremental refresh on change, descriptions from a real store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.errors import InputError
from retrievers.passages import INDEX_DIR, Passage, PassageRetriever, PassageStore

SENTENCES = [
    "Christopher Nolan directed the film Inception in 2010.",
    "Leonardo DiCaprio was born in Los Angeles.",
    "The Eiffel Tower is located in Paris.",
]


def _add(workspace: Path, texts: list[str], doc: str = "doc") -> int:
    at, passages = 0, []
    for text in texts:
        passages.append(Passage.sentence(doc, text, at, at + len(text)))
        at += len(text) + 1
    return PassageStore(workspace).add_many(passages)


class CountingEmbedder:
    """A deterministic bag-of-words embedder (64-d hashed words) that counts what it embeds."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(".", " ").split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def test_real_minilm_index_finds_the_right_sentence_and_saves_a_manifest(tmp_path):
    _add(tmp_path, SENTENCES)
    retriever = PassageRetriever(tmp_path).refresh()
    (best, score), *_ = retriever.search("Where was DiCaprio born?", k=2)
    assert best.text == SENTENCES[1] and best.kind == "sentence"
    assert 0.3 < score <= 1.0
    manifest = json.loads((tmp_path / INDEX_DIR / "manifest.json").read_text())
    assert manifest["count"] == 3 and manifest["fingerprint"].startswith("3:")
    assert len(retriever.search("Paris", k=10)) == 3  # k larger than the index: all of it


def test_refresh_embeds_only_new_sentences_and_reloads_from_disk(tmp_path):
    embedder = CountingEmbedder()
    _add(tmp_path, SENTENCES[:2])
    PassageRetriever(tmp_path, embedder=embedder).refresh()
    assert len(embedder.embedded) == 2
    _add(tmp_path, SENTENCES[2:], doc="doc2")
    fresh = PassageRetriever(tmp_path, embedder=embedder).refresh()  # a new process: loads, extends
    assert embedder.embedded[2:] == [SENTENCES[2]]
    assert fresh.last_refresh["reused"] == 2 and len(fresh) == 3
    assert fresh.search("eiffel tower located paris", k=1)[0][0].text == SENTENCES[2]
    seen = len(embedder.embedded)  # the three sentences and the query
    again = PassageRetriever(tmp_path, embedder=embedder).refresh()
    assert again.last_refresh["embedded"] == 0 and len(embedder.embedded) == seen


def test_a_corrupt_index_is_rebuilt_not_trusted(tmp_path):
    embedder = CountingEmbedder()
    _add(tmp_path, SENTENCES)
    PassageRetriever(tmp_path, embedder=embedder).refresh()
    (tmp_path / INDEX_DIR / "passages.faiss").write_bytes(b"not an index")
    retriever = PassageRetriever(tmp_path, embedder=embedder).refresh()
    assert retriever.last_refresh["embedded"] == 3
    assert retriever.search("eiffel tower located paris", k=1)[0][0].text == SENTENCES[2]


def test_empty_workspace_searches_to_nothing_and_bad_k_is_an_input_error(tmp_path):
    retriever = PassageRetriever(tmp_path, embedder=CountingEmbedder())
    assert retriever.search("anything") == []
    with pytest.raises(InputError, match="k must be at least 1; got 0"):
        retriever.search("anything", k=0)


def test_descriptions_from_the_graph_are_indexed_and_follow_graph_changes(tiny_store, tmp_path):
    from qa_system.types import Entity

    embedder = CountingEmbedder()
    _add(tmp_path, SENTENCES[:1])
    retriever = PassageRetriever(tmp_path, tiny_store, embedder=embedder).refresh()
    kinds = sorted(p.kind for p, _ in retriever.search("film director", k=10))
    assert kinds == ["description", "description", "sentence"]  # Nolan and USA have descriptions
    (nolan,) = retriever.for_entities(["/m/nolan", "/m/inception", "/m/unknown"])
    assert nolan.kind == "description" and nolan.entity_id == "/m/nolan"
    assert nolan.text == "Christopher Nolan: British-American film director"
    tiny_store.upsert_entity(Entity(id="/m/memento", name="Memento", description="2000 film by Christopher Nolan"))
    before = len(embedder.embedded)
    assert len(PassageRetriever(tmp_path, tiny_store, embedder=embedder).refresh()) == 4
    assert embedder.embedded[before:] == ["Memento: 2000 film by Christopher Nolan"]


def test_a_long_lived_retriever_sees_new_passages_after_its_refresh_interval(tmp_path):
    embedder = CountingEmbedder()
    _add(tmp_path, SENTENCES[:1])
    retriever = PassageRetriever(tmp_path, embedder=embedder, refresh_interval_s=0.0)
    assert len(retriever.search("film", k=5)) == 1
    _add(tmp_path, SENTENCES[1:], doc="doc2")
    assert len(retriever.search("film", k=5)) == 3
    cached = PassageRetriever(tmp_path, embedder=embedder, refresh_interval_s=3600.0)
    assert len(cached.search("film", k=5)) == 3
    _add(tmp_path, ["A fourth sentence about films."], doc="doc3")
    assert len(cached.search("film", k=5)) == 3  # within the interval: no re-check
