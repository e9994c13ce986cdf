"""The name-embedding index grows with the graph instead of being rebuilt (ingest adds entities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import retrievers.name_embeddings as N
from qa_system.types import Entity


def test_added_entities_are_appended_not_re_embedded(tiny_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    embedded: list[list[str]] = []
    real_embed = N.embed

    def counting_embed(texts, **kwargs):
        embedded.append(list(texts))
        return real_embed(texts, **kwargs)

    monkeypatch.setattr(N, "embed", counting_embed)
    index_dir = tmp_path / "idx"
    first = N.NameVectorIndex.for_store(tiny_store, index_dir)
    assert len(embedded) == 1 and len(embedded[0]) == first.index.ntotal  # built from scratch: every name
    tiny_store.upsert_entities([Entity(id="ext:bean", name="Alan Bean", aliases=("Alan LaVern Bean",))])
    grown = N.NameVectorIndex.for_store(tiny_store, index_dir)
    assert embedded[1:2] == [["Alan Bean", "Alan LaVern Bean"]]  # only the new entity's names
    assert grown.index.ntotal == first.index.ntotal + 2
    (hits,) = grown.search(["Alan L. Bean"], k=1)
    assert hits[0].entity_id == "ext:bean" and hits[0].cosine > 0.88
    calls = len(embedded)
    again = N.NameVectorIndex.for_store(tiny_store, index_dir)  # saved with the new fingerprint: just loaded
    assert len(embedded) == calls and again.ids == grown.ids


def test_an_index_with_entities_the_graph_lost_is_rebuilt(tiny_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    index_dir = tmp_path / "idx"
    N.NameVectorIndex.for_store(tiny_store, index_dir)
    meta = (index_dir / N.IDS_FILE).read_text(encoding="utf-8").replace('"/m/nolan"', '"/m/gone"')
    (index_dir / N.IDS_FILE).write_text(meta.replace('"fingerprint": "', '"fingerprint": "stale'), encoding="utf-8")
    rebuilt = N.NameVectorIndex.for_store(tiny_store, index_dir)
    assert "/m/gone" not in rebuilt.ids and "/m/nolan" in rebuilt.ids


def test_a_float32_index_of_the_previous_format_is_converted_without_re_embedding(
        tiny_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Workspaces saved before the float16 storage (format 1, ``IndexFlatIP``) keep their vectors."""

    import json

    import faiss

    index_dir = tmp_path / "idx"
    built = N.NameVectorIndex.for_store(tiny_store, index_dir)
    vectors = built.index.reconstruct_n(0, built.index.ntotal)
    old = faiss.IndexFlatIP(vectors.shape[1])  # what format 1 saved
    old.add(vectors)
    faiss.write_index(old, str(index_dir / N.INDEX_FILE))
    meta = json.loads((index_dir / N.IDS_FILE).read_text(encoding="utf-8"))
    (index_dir / N.IDS_FILE).write_text(json.dumps({**meta, "format": 1}), encoding="utf-8")

    def no_embedding(texts, **kwargs):
        raise AssertionError(f"re-embedded {len(texts)} texts")

    monkeypatch.setattr(N, "_encode", no_embedding)
    converted = N.NameVectorIndex.for_store(tiny_store, index_dir)
    assert converted.ids == built.ids and converted.index.ntotal == old.ntotal
    assert json.loads((index_dir / N.IDS_FILE).read_text(encoding="utf-8"))["format"] == N._FORMAT  # saved converted
    queries = vectors[:4] * 0.9 + vectors[4:8] * 0.1
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_scores, exact_rows = old.search(queries, 3)
    scores, rows = converted.index.search(queries, 3)
    assert (rows[:, 0] == exact_rows[:, 0]).all() and np.abs(scores - exact_scores).max() < 2e-3


def test_an_index_of_an_unknown_format_is_rebuilt(tiny_store, tmp_path: Path):
    import json

    index_dir = tmp_path / "idx"
    built = N.NameVectorIndex.for_store(tiny_store, index_dir)
    meta = json.loads((index_dir / N.IDS_FILE).read_text(encoding="utf-8"))
    (index_dir / N.IDS_FILE).write_text(json.dumps({**meta, "format": 99}), encoding="utf-8")
    rebuilt = N.NameVectorIndex.for_store(tiny_store, index_dir)
    assert rebuilt.ids == built.ids
    assert json.loads((index_dir / N.IDS_FILE).read_text(encoding="utf-8"))["format"] == N._FORMAT
