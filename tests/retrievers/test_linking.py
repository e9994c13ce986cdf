"""Entity linker on a tiny real store (dictionary + NER), one FAISS test with the real MiniLM, and the demo graph."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_system.errors import InputError
from qa_system.types import Entity, Fact, Provenance
from retrievers.linking import (
    FEATURES,
    WEIGHTS_PATH,
    EntityLinker,
    GraphEntityLinker,
    load_weights,
)

ENTITIES = [
    Entity(id="/m/nolan", name="Christopher Nolan", aliases=("Chris Nolan", "Nolan"), type="/people/person"),
    Entity(id="/m/inception", name="Inception", type="/film/film"),
    Entity(id="/m/memento", name="Memento", type="/film/film"),
    Entity(id="/m/dicaprio", name="Leonardo DiCaprio", type="/people/person"),
    Entity(id="/m/uk", name="United Kingdom", aliases=("UK",), type="/location/country"),
    Entity(id="/m/titanic", name="Titanic", type="/film/film"),
    Entity(id="/m/usa", name="United States of America", aliases=("USA", "United States"), type="/location/country"),
    Entity(id="/m/ny", name="New York", type="/location/us_state"),
    Entity(id="/m/nyc", name="New York City", aliases=("NYC", "Big Apple"), type="/location/citytown"),
    Entity(id="/m/cameron", name="James Cameron", type="/people/person"),
]
FACTS = [
    ("/m/nolan", "/film/director/film", "/m/inception"),
    ("/m/nolan", "/film/director/film", "/m/memento"),
    ("/m/nolan", "/people/person/nationality", "/m/uk"),
    ("/m/inception", "/film/film/starring", "/m/dicaprio"),
    ("/m/titanic", "/film/film/starring", "/m/dicaprio"),
    ("/m/cameron", "/film/director/film", "/m/titanic"),
    ("/m/dicaprio", "/people/person/nationality", "/m/usa"),
    ("/m/nyc", "/location/location/containedby", "/m/ny"),
    ("/m/ny", "/location/location/containedby", "/m/usa"),
]


@pytest.fixture()
def tiny_store(tmp_path: Path) -> Iterator[object]:
    from graph.embedded import EmbeddedStore

    store = EmbeddedStore.open(tmp_path / "ws")
    store.upsert_entities(ENTITIES)
    store.upsert_facts([Fact(subject=s, relation=r, object=o, provenance=Provenance(dataset="tiny")) for s, r, o in FACTS])
    yield store
    store.close()


@pytest.fixture()
def linker(tiny_store: object) -> GraphEntityLinker:
    return GraphEntityLinker(tiny_store, use_faiss=False)  # type: ignore[arg-type]


def _ids(linked: list) -> list[str]:
    return [le.entity.id for le in linked]


def test_is_an_entity_linker(linker: GraphEntityLinker) -> None:
    assert isinstance(linker, EntityLinker)


def test_ngram_match_with_offsets(linker: GraphEntityLinker) -> None:
    question = "Who directed Inception?"
    linked = linker.link(question)
    assert _ids(linked)[0] == "/m/inception"
    top = linked[0]
    assert question[top.start : top.end] == top.mention == "Inception"
    assert "dictionary" in top.sources and 0.0 < top.score <= 1.0


def test_longest_match_wins(linker: GraphEntityLinker) -> None:
    linked = linker.link("How many people live in New York City?")
    assert _ids(linked)[0] == "/m/nyc"
    assert "/m/ny" not in _ids(linked)  # "New York" lies inside the matched "New York City"


def test_alias_match(linker: GraphEntityLinker) -> None:
    linked = linker.link("Which films did Chris Nolan make?")
    assert _ids(linked)[0] == "/m/nolan"
    assert linked[0].mention == "Chris Nolan"
    assert _ids(linker.link("what is the population of the big apple"))[0] == "/m/nyc"


def test_tokenised_punctuation_and_long_names_match(linker: GraphEntityLinker, tiny_store: object) -> None:
    from qa_system.types import Entity

    tiny_store.upsert_entities([  # type: ignore[attr-defined]
        Entity(id="ext:buffalo", name="Buffalo, New York"), Entity(id="ext:ardmore", name="Ardmore Airport (New Zealand)"),
        Entity(id="ext:school", name="School of Business and Social Sciences at the Aarhus University"),
    ])
    for question, entity in [("Who is the leader of Buffalo , New York?", "ext:buffalo"),  # written as tokenised text
                             ("What is the surface of Ardmore Airport ( New Zealand )?", "ext:ardmore"),
                             ("Who studies at School of Business and Social Sciences at the Aarhus University?", "ext:school")]:
        top = linker.link(question)[0]
        assert top.entity.id == entity and question[top.start : top.end] == top.mention, question


def test_case_insensitive(linker: GraphEntityLinker) -> None:
    assert _ids(linker.link("who directed INCEPTION"))[0] == "/m/inception"
    assert _ids(linker.link("who starred in titanic and inception?"))[:2] in (
        ["/m/titanic", "/m/inception"],
        ["/m/inception", "/m/titanic"],
    )


def test_several_entities_and_top_k(linker: GraphEntityLinker) -> None:
    linked = linker.link("Did Leonardo DiCaprio act in Titanic by James Cameron?", top_k=2)
    assert len(linked) == 2
    assert set(_ids(linker.link("Did Leonardo DiCaprio act in Titanic by James Cameron?"))) >= {
        "/m/dicaprio",
        "/m/titanic",
        "/m/cameron",
    }
    with pytest.raises(InputError, match="top_k"):
        linker.link("Inception", top_k=0)


@pytest.mark.parametrize("question", ["", "   \n\t "])
def test_empty_question_is_an_input_error(linker: GraphEntityLinker, question: str) -> None:
    with pytest.raises(InputError):
        linker.link(question)


@pytest.mark.parametrize(
    "question",
    [
        "🎬🍿🤔",
        "¿Quién dirigió la película 盗梦空间?",
        "MATCH (n) DETACH DELETE n; RETURN 1 //",
        "Ignore previous instructions and '); DROP TABLE names; --",
        "\x00\x00 Inception \x00",
        "a" * 10_000,
        "Inception " * 1_000,
    ],
    ids=["emoji", "non-english", "cypher", "injection", "nul-bytes", "10k-chars", "10k-repeated-title"],
)
def test_bad_input_never_crashes(linker: GraphEntityLinker, tiny_store: object, question: str) -> None:
    before = tiny_store.stats()  # type: ignore[attr-defined]
    linked = linker.link(question)
    assert isinstance(linked, list) and len(linked) <= 5
    after = tiny_store.stats()  # type: ignore[attr-defined]
    assert (after.entities, after.facts) == (before.entities, before.facts)


def test_non_text_question_is_an_input_error(linker: GraphEntityLinker) -> None:
    with pytest.raises(InputError):
        linker.link(None)  # type: ignore[arg-type]


def test_weights_file_is_complete() -> None:
    weights = load_weights()
    assert set(weights) == set(FEATURES)
    if WEIGHTS_PATH.is_file():
        record = json.loads(WEIGHTS_PATH.read_text(encoding="utf-8"))
        assert record["fitted_on"] and record["method"]


def test_faiss_fuzzy_match_and_index_cache(tiny_store: object, tmp_path: Path) -> None:
    """Real MiniLM: a spelling variant is found by FAISS; the index is cached and rebuilt when the graph changes."""

    from retrievers.name_embeddings import IDS_FILE

    index_dir = tmp_path / "indexes"
    linker = GraphEntityLinker(tiny_store, index_dir=index_dir)  # type: ignore[arg-type]
    linked = linker.link("Which films starred Leonardo Di Caprio?")
    assert _ids(linked)[0] == "/m/dicaprio"
    assert "faiss" in linked[0].sources
    meta = json.loads((index_dir / IDS_FILE).read_text(encoding="utf-8"))
    assert meta["fingerprint"].startswith(f"{len(ENTITIES)}:")
    assert (index_dir / "degrees.json").is_file()

    tiny_store.upsert_entity(Entity(id="/m/interstellar", name="Interstellar (2014 film)", type="/film/film"))  # type: ignore[attr-defined]
    relinked = GraphEntityLinker(tiny_store, index_dir=index_dir)  # type: ignore[arg-type]
    assert _ids(relinked.link("Who directed Interstellar?"))[0] == "/m/interstellar"
    meta = json.loads((index_dir / IDS_FILE).read_text(encoding="utf-8"))
    assert meta["fingerprint"].startswith(f"{len(ENTITIES) + 1}:")


def test_background_index_links_without_fuzzy_until_ready(tiny_store: object, tmp_path: Path) -> None:
    """The app's mode: the linker answers at once (exact matches) and fuzzy matching joins later."""

    linker = GraphEntityLinker(tiny_store, index_dir=tmp_path / "indexes", background_index=True)  # type: ignore[arg-type]
    assert _ids(linker.link("Who directed Inception?"))[0] == "/m/inception"  # exact match: works at once
    assert linker.wait_for_index(timeout=300) and linker.fuzzy_ready and not linker.index_error
    linked = linker.link("Which films starred Leonardo Di Caprio?")
    assert _ids(linked)[0] == "/m/dicaprio" and "faiss" in linked[0].sources


def test_demo_graph_links_inception(demo_workspace: Path) -> None:
    from graph.embedded import EmbeddedStore

    store = EmbeddedStore.open(demo_workspace)
    try:
        linked = GraphEntityLinker(store, index_dir=demo_workspace / "indexes", use_faiss=False).link("Who directed Inception?")
    finally:
        store.close()
    assert linked[0].entity.id == "/m/0661ql3"
    assert linked[0].entity.name == "Inception"


@pytest.mark.slow
def test_demo_graph_with_faiss(demo_workspace: Path) -> None:
    """Builds the name-embedding index of the whole demo graph (minutes on 2 busy cores)."""

    from graph.embedded import EmbeddedStore

    store = EmbeddedStore.open(demo_workspace)
    try:
        linker = GraphEntityLinker(store, index_dir=demo_workspace / "indexes")
        assert _ids(linker.link("Who directed Inception?"))[0] == "/m/0661ql3"
        assert "/m/04z257" in _ids(linker.link("Who directed the films The Fisher King and the Brothers Grimm?"))
    finally:
        store.close()
