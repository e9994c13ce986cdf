"""The linker's dictionary step looks every n-gram up at once (``find_entities_many``); a store
without it is asked one ``find_entities`` per n-gram. Both give the same links."""

from __future__ import annotations

from typing import Any

from retrievers.linking import GraphEntityLinker
from tests.retrievers.test_linking import tiny_store  # noqa: F401  (fixture)

QUESTIONS = [
    "Who directed Inception?",
    "which film did chris nolan make with leonardo dicaprio in the united states",
    "what is the population of the big apple",
    "Did James Cameron direct Titanic in the UK or the USA?",
    "nothing here matches",
]


class OneByOne:
    """The store without ``find_entities_many``, counting its ``find_entities`` calls."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls = 0

    def find_entities(self, name: str, *, limit: int = 10) -> list:
        self.calls += 1
        return self._store.find_entities(name, limit=limit)

    def __getattr__(self, name: str) -> Any:
        if name == "find_entities_many":
            raise AttributeError(name)
        return getattr(self._store, name)


def _links(linker: GraphEntityLinker) -> list[list[tuple[str, str, float]]]:
    return [[(e.entity.id, e.mention, round(e.score, 9)) for e in links] for links in linker.link_many(QUESTIONS, top_k=5)]


def test_batched_lookup_links_as_one_by_one(tiny_store: Any) -> None:  # noqa: F811
    one_by_one = OneByOne(tiny_store)
    batched = GraphEntityLinker(tiny_store, use_faiss=False)
    single = GraphEntityLinker(one_by_one, use_faiss=False)  # type: ignore[arg-type]
    assert _links(batched) == _links(single)
    assert one_by_one.calls > len(QUESTIONS)  # one call per n-gram, where the batched path made one per batch
    found = tiny_store.find_entities_many(["Chris Nolan", "nolan", "UK", "nobody"])
    assert {k: [e.id for e in v] for k, v in found.items()} == {
        "Chris Nolan": ["/m/nolan"], "nolan": ["/m/nolan"], "UK": ["/m/uk"], "nobody": []}
