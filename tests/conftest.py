"""Shared fixtures: a tiny real KG on disk, and the full demo graph imported once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Unit tests run tiny models: one intra-op thread avoids spin-waiting on a 2-core machine (CI, or
# this one while a training runs), which made a 60-step tiny training take minutes.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_TRAIN = [
    ("/m/nolan", "/film/director/film", "/m/inception"),
    ("/m/nolan", "/film/director/film", "/m/memento"),
    ("/m/nolan", "/people/person/nationality", "/m/uk"),
    ("/m/inception", "/film/film/starring", "/m/dicaprio"),
    ("/m/inception", "/film/film/genre", "/m/scifi"),
    ("/m/dicaprio", "/people/person/nationality", "/m/usa"),
    ("/m/titanic", "/film/film/starring", "/m/dicaprio"),
    ("/m/cameron", "/film/director/film", "/m/titanic"),
    ("/m/cameron", "/people/person/nationality", "/m/canada"),
]
TINY_DEV = [("/m/memento", "/film/film/genre", "/m/thriller")]
TINY_TEST = [("/m/titanic", "/film/film/genre", "/m/romance")]
TINY_NAMES = {
    "/m/nolan": "Christopher Nolan",
    "/m/inception": "Inception",
    "/m/memento": "Memento",
    "/m/uk": "United Kingdom",
    "/m/dicaprio": "Leonardo DiCaprio",
    "/m/scifi": "Science fiction",
    "/m/usa": "United States of America",
    "/m/titanic": "Titanic",
    "/m/cameron": "James Cameron",
    "/m/canada": "Canada",
    "/m/thriller": "Thriller",
    "/m/romance": "Romance film",
}


def write_tiny_kg(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, triples in (("train", TINY_TRAIN), ("dev", TINY_DEV), ("test", TINY_TEST)):
        (folder / f"{name}.tsv").write_text("".join("\t".join(t) + "\n" for t in triples), encoding="utf-8")
    (folder / "entity2text.txt").write_text("".join(f"{k}\t{v}\n" for k, v in TINY_NAMES.items()), encoding="utf-8")
    (folder / "entity_details.tsv").write_text(
        "mid\twikidata_id\ttype\taliases\tdescription\twikipedia_url\n"
        "/m/nolan\tQ25191\t/people/person\tChris Nolan|Nolan\tBritish-American film director\thttps://en.wikipedia.org/wiki/Christopher_Nolan\n"
        "/m/usa\tQ30\t/location/country\tUSA|United States\tcountry in North America\t\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture()
def tiny_kg_dir(tmp_path: Path) -> Path:
    return write_tiny_kg(tmp_path / "tiny-kg")


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the full FB15k-237 demo graph imported (about 10 s), shared by the session."""

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg

    workspace = tmp_path_factory.mktemp("demo-workspace")
    store = EmbeddedStore.open(workspace)
    try:
        import_kg(store, "demo")
    finally:
        store.close()
    return workspace


@pytest.fixture()
def tiny_store(tmp_path: Path, tiny_kg_dir: Path):
    """A real embedded store holding the tiny KG (12 entities, 11 facts)."""

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg

    store = EmbeddedStore.open(tmp_path / "tiny-ws")
    import_kg(store, tiny_kg_dir)
    yield store
    store.close()
