"""A throw-away workspace holding the demo graph and its name index, for benchmarks that grow or
probe it (``grow_then_ask``, ``unseen_entities``): the index of 34k names takes minutes to embed on
CPU, so it is copied from ``index_cache`` when one was saved, and saved there after a first build."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def demo_store_with_names(workspace: Path, index_cache: Path | None) -> tuple[Any, Any]:
    """(an embedded store with the demo graph imported, its name-embedding index)."""

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg
    from retrievers.linking import default_index_dir
    from retrievers.name_embeddings import IDS_FILE, NameVectorIndex

    store = EmbeddedStore.open(workspace)
    try:
        import_kg(store, "demo")
        index_dir = default_index_dir(store)
        cached = index_cache is not None and (index_cache / IDS_FILE).is_file()
        if cached:
            shutil.copytree(index_cache, index_dir, dirs_exist_ok=True)
        index = NameVectorIndex.for_store(store, index_dir)
        if index_cache is not None and not cached:
            shutil.copytree(index_dir, index_cache, dirs_exist_ok=True)
    except BaseException:
        store.close()
        raise
    return store, index
