"""Looking entities up for people: resolution by id or name, suggestions, first-run demo import.

Shared by the CLI and the app so both behave the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qa_system.errors import EntityNotFoundError, InputError
from qa_system.types import Entity, FactStatus, FactView

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 500
MAX_HOPS = 3
# Facts counted for an entity card; a hub (a country) can have tens of thousands, so beyond this
# the counts come from a uniform sample and say so.
CARD_FACT_LIMIT = 2000
STATUS_ORDER: tuple[FactStatus, ...] = (
    FactStatus.VERIFIED,
    FactStatus.EXTRACTED,
    FactStatus.PROPOSED,
    FactStatus.REJECTED,
)


def resolve_entity(store: Any, id_or_name: str) -> Entity:
    """An entity by id, else by exact name/alias (case-insensitive); unknown → EntityNotFoundError."""

    text = (id_or_name or "").strip()
    if not text:
        raise InputError("empty entity name")
    if len(text) > MAX_NAME_CHARS:
        raise InputError(f"entity name is {len(text)} characters; the limit is {MAX_NAME_CHARS}")
    entity = store.get_entity(text)
    if entity is not None:
        return entity
    matches = store.find_entities(text, limit=5)
    if matches:
        return matches[0]
    suggestions = [e.name for e in store.search_entities(text, limit=5)]
    hint = f"; did you mean: {', '.join(suggestions)}" if suggestions else ""
    raise EntityNotFoundError(f"unknown entity {text!r} (no id, name or alias matches){hint}")


def ensure_demo_graph(store: Any) -> bool:
    """Import the shipped demo graph when the store is empty (first start). True when it imported."""

    if store.stats().entities > 0:
        return False
    from graph.importers import import_kg

    log.info("empty graph: importing the FB15k-237 demo graph (first start, about 15 s)")
    import_kg(store, "demo")
    return True


@dataclass
class FactCounts:
    """An entity's own facts counted by relation and status (the card's summary).

    ``by_relation`` maps relation id → {status value → count}; ``sampled`` is true when the entity
    has more than ``CARD_FACT_LIMIT`` facts and the counts come from a uniform sample of them.
    """

    by_relation: dict[str, dict[str, int]] = field(default_factory=dict)
    sampled: bool = False

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_relation.values())


def group_facts(facts: Iterable[FactView], entity_id: str) -> dict[str, dict[str, int]]:
    """Count the facts that touch ``entity_id`` (either end) by relation then status.

    Relations come out most frequent first (ties by id) so the card lists what matters first;
    every status in ``STATUS_ORDER`` is present (zero included) so tables line up.
    """

    counts: dict[str, dict[str, int]] = {}
    for f in facts:
        if entity_id not in (f.subject, f.object):
            continue
        row = counts.setdefault(f.relation, {s.value: 0 for s in STATUS_ORDER})
        row[f.status.value] = row.get(f.status.value, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


def entity_fact_counts(store: Any, entity_id: str, *, limit: int = CARD_FACT_LIMIT) -> FactCounts:
    """The card's counts: the entity's one-hop facts of every status, rejected included."""

    subgraph = store.neighbors([entity_id], hops=1, statuses=list(STATUS_ORDER), limit_per_entity=int(limit))
    return FactCounts(by_relation=group_facts(subgraph.facts, entity_id), sampled=subgraph.truncated)


def relations_present(facts: Iterable[FactView]) -> list[str]:
    """The distinct relation ids of a neighbourhood, sorted, for a relation-type filter."""

    return sorted({f.relation for f in facts})


def filter_by_relations(facts: Iterable[FactView], relations: Sequence[str] | None) -> list[FactView]:
    """Facts whose relation is one of ``relations``; an empty or missing selection keeps them all."""

    wanted = set(relations or ())
    facts = list(facts)
    return [f for f in facts if f.relation in wanted] if wanted else facts


def next_hops(hops: int | float, *, max_hops: int = MAX_HOPS) -> int:
    """One more hop, clamped to ``1..max_hops`` (a three-hop neighbourhood is already large)."""

    return max(1, min(int(hops) + 1, max_hops))


@dataclass(frozen=True)
class ResolvedEntity:
    id: str | None
    name: str
    how: str  # id | name | unresolved


def resolve_name(store: Any, text: str) -> ResolvedEntity:
    """An entity by id, else by exact name or alias (case-insensitive); never a fuzzy guess."""

    if store is None:
        return ResolvedEntity(None, text, "unresolved")
    entity = store.get_entity(text)
    if entity is not None:
        return ResolvedEntity(entity.id, entity.name, "id")
    bare = re.sub(r"^(the|a|an)\s+", "", text, flags=re.IGNORECASE)  # "The United States of America"
    for candidate in dict.fromkeys((text, bare)):
        matches = store.find_entities(candidate, limit=2)
        if matches:
            return ResolvedEntity(matches[0].id, matches[0].name, "name")
    return ResolvedEntity(None, text, "unresolved")
