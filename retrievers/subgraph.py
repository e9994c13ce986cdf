"""Subgraph retrieval for the reader: the topic entities' neighbourhood from the graph store,
turned into HittER inputs (sampled neighbour pairs) and a candidate answer set.

Only facts answers may rely on are read (verified and extracted; proposed and rejected never
feed an answer). Hop-1 reads are uncapped by default: on the filtered test sets 90.5% (WebQSP) and
88.3% (FreebaseQA) of gold answers are direct neighbours of the gold topic, against 71% / 87% with a
200-fact cap. HittER's context is a seeded uniform sample of ``max_neighbours`` of those facts, as
HittER samples neighbours in training. Each candidate carries the relations (reciprocal ids) that
link it to the topic, which the reader scores against the question's predicted relation.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from graph.store import ANSWERABLE_STATUSES, GraphStore
from qa_system.types import FactView, Subgraph


@dataclass
class RetrievedContext:
    """What the reader needs for one question."""

    topics: list[str]
    subgraph: Subgraph
    topic_index: int | None  # HittER vocabulary id of the first topic known to the model
    neighbour_pairs: list[tuple[int, int]]  # (entity id, relation id in [0, 2R)) around that topic
    candidates: list[str] = field(default_factory=list)  # candidate answer entity ids (graph ids)
    candidate_indices: list[int] = field(default_factory=list)  # their HittER ids (same order)
    candidate_relations: list[list[int]] = field(default_factory=list)  # relations (in [0, 2R)) linking the topic to each candidate; [] for hop 2
    # filled by the reader: P(relation | question) for its top relations, keyed (relation id, topic is the subject)
    relation_probs: dict[tuple[str, bool], float] = field(default_factory=dict)
    # the known topic's hop-1 facts the reader cannot read (a relation outside its vocabulary, or a
    # new entity or literal value at the other end): what only the relation-words reader sees
    unseen: list[FactView] = field(default_factory=list)

    def facts_between(self, topic: str, answer: str) -> list[FactView]:
        """Supporting facts: the hop-1 fact(s) linking topic and answer, else a 2-hop path through a shared entity."""

        direct = [f for f in self.subgraph.facts if {f.subject, f.object} == {topic, answer}]
        if direct:
            return direct
        touching_topic = {(f.object if f.subject == topic else f.subject): f for f in self.subgraph.facts if topic in (f.subject, f.object)}
        for fact in self.subgraph.facts:
            if answer in (fact.subject, fact.object):
                middle = fact.object if fact.subject == answer else fact.subject
                if middle in touching_topic:
                    return [touching_topic[middle], fact]
        return []


class SubgraphRetriever:
    """Reads k-hop neighbourhoods and maps them onto a HittER vocabulary."""

    def __init__(
        self,
        store: GraphStore,
        entity_index: Mapping[str, int],
        relation_index: Mapping[str, int],
        *,
        hops: int = 1,
        limit_per_entity: int | None = None,
        max_neighbours: int = 50,
        max_candidates: int = 10_000,
        seed: int = 0,
    ) -> None:
        if hops not in (1, 2):
            raise ValueError(f"hops must be 1 or 2, got {hops}")
        for name, value in (("limit_per_entity", limit_per_entity or 1), ("max_neighbours", max_neighbours), ("max_candidates", max_candidates)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.store = store
        self.entity_index = entity_index
        self.relation_index = relation_index
        self.num_relations = len(relation_index)
        self.hops = hops
        self.limit_per_entity = limit_per_entity or None  # None (or 0) = every fact of the topic
        self.max_neighbours = max_neighbours
        self.max_candidates = max_candidates
        self.seed = seed

    def retrieve(self, topics: Sequence[str]) -> RetrievedContext:
        topics = [t for t in dict.fromkeys(topics) if t]
        subgraph = self.store.neighbors(
            topics, hops=self.hops, statuses=ANSWERABLE_STATUSES, limit_per_entity=self.limit_per_entity, seed=self.seed
        )
        known_topics = [t for t in topics if t in self.entity_index]
        topic = known_topics[0] if known_topics else None
        pairs: list[tuple[int, int]] = []
        linking: dict[str, list[int]] = {}  # candidate -> relations from the topic to it
        unseen: list[FactView] = []
        if topic is not None:
            for fact in subgraph.facts:
                if fact.hop != 1 or topic not in (fact.subject, fact.object):
                    continue
                other = fact.object if fact.subject == topic else fact.subject
                if fact.relation not in self.relation_index:
                    unseen.append(fact)
                    continue
                relation = self.relation_index[fact.relation] + (0 if fact.subject == topic else self.num_relations)
                if other not in self.entity_index:
                    unseen.append(fact)
                else:
                    pairs.append((self.entity_index[other], relation))
                    linking.setdefault(other, [])
                    if relation not in linking[other]:
                        linking[other].append(relation)
            if len(pairs) > self.max_neighbours:  # HittER-style uniform sample, the same for the same topic
                rng = random.Random(zlib.crc32(f"{self.seed}:{topic}".encode()))
                pairs = rng.sample(pairs, self.max_neighbours)
        # candidates: hop-1 entities first (most answers are one hop away), then hop 2
        ordered: dict[str, None] = {}
        for hop in (1, 2):
            for fact in subgraph.facts:
                if fact.hop == hop:
                    for end in (fact.subject, fact.object):
                        if end not in topics:
                            ordered.setdefault(end)
        candidates = [c for c in ordered if c in self.entity_index][: self.max_candidates]
        return RetrievedContext(
            topics=topics,
            subgraph=subgraph,
            topic_index=self.entity_index[topic] if topic is not None else None,
            neighbour_pairs=pairs,
            candidates=candidates,
            candidate_indices=[self.entity_index[c] for c in candidates],
            candidate_relations=[linking.get(c, []) for c in candidates],
            unseen=unseen,
        )
