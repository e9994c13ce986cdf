"""Subgraph retrieval onto a HittER vocabulary, on a real embedded store with the tiny KG."""

from __future__ import annotations

import pytest

from graph.embedded import EmbeddedStore
from qa_system.types import FactStatus
from retrievers.subgraph import SubgraphRetriever


@pytest.fixture()
def store(tiny_store: EmbeddedStore) -> EmbeddedStore:
    return tiny_store


def vocab(store: EmbeddedStore) -> tuple[dict[str, int], dict[str, int]]:
    triples = store.export_triples()
    entities = sorted({t[0] for t in triples} | {t[2] for t in triples})
    relations = sorted({t[1] for t in triples})
    return {e: i for i, e in enumerate(entities)}, {r: i for i, r in enumerate(relations)}


def test_pairs_use_reciprocal_relations_and_candidates_exclude_topics(store: EmbeddedStore) -> None:
    ents, rels = vocab(store)
    ctx = SubgraphRetriever(store, ents, rels, hops=2).retrieve(["/m/inception"])
    assert ctx.topic_index == ents["/m/inception"]
    r = len(rels)
    assert (ents["/m/dicaprio"], rels["/film/film/starring"]) in ctx.neighbour_pairs  # inception -> dicaprio
    assert (ents["/m/nolan"], rels["/film/director/film"] + r) in ctx.neighbour_pairs  # nolan -> inception, seen from inception
    assert "/m/inception" not in ctx.candidates
    assert {"/m/nolan", "/m/dicaprio", "/m/usa", "/m/titanic"} <= set(ctx.candidates)  # hop 2 included
    assert ctx.candidate_indices == [ents[c] for c in ctx.candidates]
    linking = dict(zip(ctx.candidates, ctx.candidate_relations))
    assert linking["/m/nolan"] == [rels["/film/director/film"] + r]  # seen from the topic: the reciprocal
    assert linking["/m/usa"] == []  # hop 2: no direct relation
    assert [f.relation for f in ctx.facts_between("/m/inception", "/m/nolan")] == ["/film/director/film"]
    assert len(ctx.facts_between("/m/inception", "/m/usa")) == 2  # inception -> dicaprio -> usa


def test_rejected_and_proposed_facts_never_feed_answers(store: EmbeddedStore) -> None:
    ents, rels = vocab(store)
    fact = next(f for f in store.neighbors(["/m/inception"]).facts if f.object == "/m/dicaprio")
    store.set_fact_status(fact.id, FactStatus.REJECTED, reviewer="t", reason="test")
    ctx = SubgraphRetriever(store, ents, rels, hops=1).retrieve(["/m/inception"])
    assert "/m/dicaprio" not in ctx.candidates


def test_unknown_topic_and_bad_arguments(store: EmbeddedStore) -> None:
    ents, rels = vocab(store)
    ctx = SubgraphRetriever(store, ents, rels).retrieve(["/m/nowhere"])
    assert ctx.topic_index is None and ctx.candidates == [] and ctx.neighbour_pairs == []
    with pytest.raises(ValueError, match="hops"):
        SubgraphRetriever(store, ents, rels, hops=3)
    with pytest.raises(ValueError, match="max_candidates"):
        SubgraphRetriever(store, ents, rels, max_candidates=0)


def test_neighbour_context_is_a_seeded_sample_of_all_hop1_facts(store: EmbeddedStore) -> None:
    ents, rels = vocab(store)
    full = SubgraphRetriever(store, ents, rels).retrieve(["/m/inception"])
    assert len(full.neighbour_pairs) >= 3
    small = SubgraphRetriever(store, ents, rels, max_neighbours=2)
    first, again = small.retrieve(["/m/inception"]), small.retrieve(["/m/inception"])
    assert len(first.neighbour_pairs) == 2 and set(first.neighbour_pairs) <= set(full.neighbour_pairs)
    assert first.neighbour_pairs == again.neighbour_pairs  # deterministic for a topic
    assert first.candidates == full.candidates  # sampling the context never drops candidates
