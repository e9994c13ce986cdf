"""k-hop neighbourhood expansion with per-entity sampling caps, shared by both backends.

Why in Python: both dialects lack a uniform "sample k edges per node" clause, and hubs (a country
has thousands of facts) must not blow up a 2-hop expansion. Each hop is one or two batched queries.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence

from qa_system.types import Direction, Entity, FactStatus, FactView, Subgraph, is_literal

# fetch(entity_ids, "out" | "in" | "both") -> facts touching those entities in that direction
Fetch = Callable[[list[str], str], list[FactView]]


def expand(
    seeds: Sequence[str],
    fetch: Fetch,
    *,
    hops: int,
    direction: Direction,
    limit_per_entity: int | None,
    seed: int,
) -> Subgraph:
    if hops < 1:
        raise ValueError(f"hops must be at least 1, got {hops}")
    rng = random.Random(seed)
    seen_facts: dict[str, FactView] = {}
    visited: set[str] = set(seeds)
    frontier = list(dict.fromkeys(seeds))
    truncated = False
    for hop in range(1, hops + 1):
        if not frontier:
            break
        per_entity: dict[str, list[FactView]] = defaultdict(list)
        frontier_set = set(frontier)
        fetched = {fact.id: fact for fact in fetch(frontier, direction)}  # a fact between two frontier entities comes back twice
        for fact in fetched.values():
            if direction != "in" and fact.subject in frontier_set:
                per_entity[fact.subject].append(fact)
            if direction != "out" and fact.object in frontier_set and fact.object != fact.subject:
                per_entity[fact.object].append(fact)
        next_frontier: list[str] = []
        for entity_id in frontier:
            facts = per_entity.get(entity_id, [])
            facts.sort(key=lambda f: f.id)  # deterministic before sampling
            if limit_per_entity is not None and len(facts) > limit_per_entity:
                facts = rng.sample(facts, limit_per_entity)
                truncated = True
            for fact in facts:
                if fact.id in seen_facts:
                    continue
                fact.hop = hop
                seen_facts[fact.id] = fact
                other = fact.object if fact.subject == entity_id else fact.subject
                if other not in visited:
                    visited.add(other)
                    if not is_literal(other):  # a literal value ends a path: expanding it reaches nothing new
                        next_frontier.append(other)
        frontier = next_frontier
    names: dict[str, str] = {}
    for fact in seen_facts.values():
        names.setdefault(fact.subject, fact.subject_name)
        names.setdefault(fact.object, fact.object_name)
    entities = {entity_id: _named(entity_id, name) for entity_id, name in names.items()}
    return Subgraph.model_construct(seeds=list(seeds), entities=entities, facts=list(seen_facts.values()), truncated=truncated)


def _named(entity_id: str, name: str) -> Entity:
    """A name-only entity, built without validation (values come from the store; this runs per fact)."""

    entity = object.__new__(Entity)
    object.__setattr__(entity, "__dict__", {"id": entity_id, "name": name, "aliases": (), "type": "", "description": "", "image_url": "", "url": ""})
    object.__setattr__(entity, "__pydantic_fields_set__", {"id", "name"})
    object.__setattr__(entity, "__pydantic_extra__", None)
    object.__setattr__(entity, "__pydantic_private__", None)
    return entity


def status_values(statuses: Sequence[FactStatus | str] | None) -> list[str]:
    """Default: every status except rejected (rejected facts never feed answers or views by default)."""

    if statuses is None:
        return [s.value for s in FactStatus if s is not FactStatus.REJECTED]
    return [FactStatus(s).value for s in statuses]
