"""The name-embedding index grows with the graph instead of being rebuilt (ingest adds entities)."""

from __future__ import annotations

from pathlib import Path

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
