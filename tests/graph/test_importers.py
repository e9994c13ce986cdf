"""Importer: the FB15k-237/WN18RR layout, atomic validation, idempotence, the shipped demo graph."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from graph.embedded import EmbeddedStore
from graph.importers import import_kg
from graph.kg_files import load_kg, resolve_dataset
from qa_system.errors import DataFormatError, DatasetNotFoundError
from tests.conftest import TINY_DEV, TINY_NAMES, TINY_TEST, TINY_TRAIN


def test_tiny_import_names_details_and_splits(tiny_kg_dir: Path, embedded_store: EmbeddedStore) -> None:
    summary = import_kg(embedded_store, tiny_kg_dir)
    assert summary.entities_added == len(TINY_NAMES)
    assert summary.facts_added == len(TINY_TRAIN) + len(TINY_DEV) + len(TINY_TEST)
    nolan = embedded_store.get_entity("/m/nolan")
    assert nolan.name == "Christopher Nolan" and "Chris Nolan" in nolan.aliases
    assert nolan.url.endswith("Christopher_Nolan") and nolan.type == "/people/person"
    assert embedded_store.stats().facts_by_split == {"train": 9, "dev": 1, "test": 1}
    view = embedded_store.neighbors(["/m/titanic"], relations=["/film/film/genre"]).facts[0]
    assert view.provenance.split == "test" and view.provenance.dataset == "tiny-kg"


def test_import_twice_leaves_same_counts(tiny_kg_dir: Path, embedded_store: EmbeddedStore) -> None:
    import_kg(embedded_store, tiny_kg_dir)
    before = embedded_store.stats()
    again = import_kg(embedded_store, tiny_kg_dir)
    assert again.entities_added == 0 and again.facts_added == 0
    after = embedded_store.stats()
    assert (after.entities, after.facts) == (before.entities, before.facts)


def test_malformed_line_names_file_and_line_and_writes_nothing(tiny_kg_dir: Path, embedded_store: EmbeddedStore) -> None:
    with open(tiny_kg_dir / "test.tsv", "a", encoding="utf-8") as handle:
        handle.write("/m/a\tonly-two-fields\n")
    with pytest.raises(DataFormatError, match=r"test\.tsv:2: expected 'head<TAB>relation<TAB>tail'"):
        import_kg(embedded_store, tiny_kg_dir)
    assert embedded_store.stats().entities == 0 and embedded_store.stats().facts == 0


def test_non_utf8_and_gzip_files(tiny_kg_dir: Path, embedded_store: EmbeddedStore) -> None:
    (tiny_kg_dir / "dev.tsv").write_bytes(b"/m/a\t/r\t\xff\xfe\n")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        load_kg(str(tiny_kg_dir))
    (tiny_kg_dir / "dev.tsv").unlink()
    with gzip.open(tiny_kg_dir / "valid.tsv.gz", "wt", encoding="utf-8") as handle:
        handle.write("\t".join(TINY_DEV[0]) + "\r\n")
    assert load_kg(str(tiny_kg_dir)).splits["dev"] == TINY_DEV


def test_unknown_dataset_and_missing_train(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="unknown dataset"):
        resolve_dataset("no-such-dataset", data_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no train.tsv"):
        load_kg(str(tmp_path / "empty"))


def test_demo_graph_is_shipped_in_the_package() -> None:
    demo = load_kg("demo")
    assert {k: len(v) for k, v in demo.splits.items()} == {"train": 272_115, "dev": 17_535, "test": 20_466}
    assert len(demo.entity_ids()) == 14_541 and len(demo.relation_ids()) == 237
    assert "shared" not in str(demo.path)


def test_full_demo_import(demo_workspace: Path) -> None:
    store = EmbeddedStore.open(demo_workspace)
    try:
        stats = store.stats()
        assert (stats.entities, stats.facts) == (14_541, 310_116)
        assert stats.facts_by_split == {"train": 272_115, "dev": 17_535, "test": 20_466}
        nolan = store.find_entities("Christopher Nolan")[0]
        films = {f.object_name for f in store.neighbors([nolan.id], relations=["/film/director/film"]).facts}
        assert {"Inception", "Memento", "The Prestige"} <= films
    finally:
        store.close()
