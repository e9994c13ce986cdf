"""Question constraints: the other entities a question names re-order the head of a ranking.

The reader reads one topic's neighbourhood, so in "Which Scottish city is home to the Ninewells
hospital?" it ranks Ninewells' neighbours without looking at Scotland, and an answer the question
itself names ("Which country borders France?" answered France) is as welcome as any other. After
ranking, two adjustments of each head candidate's log-probability:

- **adjacent**: + ``adjacent`` nats when the graph holds a fact between the candidate and
  another entity the question names (linked with score ≥ ``min_link_score``, not the topic and
  not another reading of the topic's own mention);
- **mentioned**: − ``mentioned`` nats when the candidate is itself an entity the question names
  (linked with score ≥ ``mention_min_score``).

The weights are chosen on dev (``qa-system tune constraints``) and kept in the reader's card
(``constraints``); the facts that tied the answer to a named entity join its evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from qa_system.errors import QAError
from qa_system.models.head_reorder import log_probabilities, reorder_head

log = logging.getLogger(__name__)

CARD_KEY = "constraints"


@dataclass(frozen=True)
class ConstraintWeights:
    adjacent: float = 0.0  # nats added to a head candidate that shares a fact with a named entity
    mentioned: float = 0.0  # nats taken from a head candidate the question names itself
    min_link_score: float = 0.05  # a named entity counts as a constraint from this link score
    mention_min_score: float = 0.2  # ... and as "mentioned" from this one
    head: int = 5  # how many of the ranking's first candidates may move
    link_top_k: int = 8  # how many linked entities the question is searched for

    def __post_init__(self) -> None:
        for name in ("adjacent", "mentioned", "min_link_score", "mention_min_score"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"constraint {name} must be a finite number ≥ 0; got {value!r}")
        if self.head < 1 or self.link_top_k < 1:
            raise ValueError(f"constraint head and link_top_k must be ≥ 1; got {self.head}, {self.link_top_k}")

    @property
    def active(self) -> bool:
        return self.adjacent > 0 or self.mentioned > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConstraintWeights:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def weights_from_card(card: dict[str, Any] | None) -> ConstraintWeights | None:
    """The card's constraint weights; None when it has none (or they do nothing)."""

    values = (card or {}).get(CARD_KEY)
    if not values:
        return None
    weights = ConstraintWeights.from_dict(values)
    return weights if weights.active else None


@dataclass(frozen=True)
class NamedEntities:
    """What the question names besides the topic: constraint anchors and mentioned entities."""

    anchors: tuple[str, ...]
    mentioned: frozenset[str]


def named_entities(linked: Sequence[Any], topic: str, weights: ConstraintWeights) -> NamedEntities:
    """``linked``: the linker's ``LinkedEntity`` list (``entity.id``, ``score``, ``start``, ``end``).
    Entities whose mention overlaps the topic's are other readings of the same words ("Friends"
    the series or the film), not constraints."""

    topic_spans = [(e.start, e.end) for e in linked if e.entity.id == topic]
    anchors: list[str] = []
    mentioned: set[str] = set()
    for e in linked[: weights.link_top_k]:
        entity_id = e.entity.id
        if entity_id == topic:
            continue
        if e.score >= weights.mention_min_score:
            mentioned.add(entity_id)
        overlaps_topic = any(e.start < end and start < e.end for start, end in topic_spans)
        if e.score >= weights.min_link_score and not overlaps_topic and entity_id not in anchors:
            anchors.append(entity_id)
    return NamedEntities(tuple(anchors), frozenset(mentioned))


def adjacent_candidates(facts: Sequence[Any], anchors: Sequence[str], candidates: Sequence[str]) -> set[str]:
    """Candidates at one end of a fact whose other end is an anchor (not the candidate itself)."""

    anchor_set, wanted = set(anchors), set(candidates)
    found = set()
    for fact in facts:
        for end, other in ((fact.subject, fact.object), (fact.object, fact.subject)):
            if end in wanted and other in anchor_set and other != end:
                found.add(end)
    return found


def constrain(ranking: Sequence[tuple[str, float]], adjacent: set[str], mentioned: frozenset[str] | set[str],
              weights: ConstraintWeights) -> list[tuple[str, float]]:
    """Re-order the first ``weights.head`` entries of ``[(entity id, probability)]``, best first.
    Their scores are the log-probabilities made non-increasing down the list (the answer reranker
    may have ordered the head against the raw probabilities; its order is kept as the baseline)
    plus the adjustments; the rest keep their place (``head_reorder.reorder_head``, as the answer
    reranker's ``rerank`` forms them, so the confidence calibration reads them the same way)."""

    if not ranking:
        return []
    k = min(weights.head, len(ranking))
    bonus = np.array([weights.adjacent * (c in adjacent) - weights.mentioned * (c in mentioned) for c, _ in ranking[:k]])
    if not bonus.any():
        return list(ranking)
    log_probs = log_probabilities(ranking)
    return reorder_head(ranking, np.minimum.accumulate(log_probs[:k]) + bonus, log_probs)


class QuestionConstraints:
    """Applies :func:`constrain` with the graph store's facts; one store read per question that
    names an entity besides its topic."""

    def __init__(self, store: Any, weights: ConstraintWeights, statuses: Sequence[Any] | None = None) -> None:
        from graph.store import ANSWERABLE_STATUSES

        self.store = store
        self.weights = weights
        self.statuses = tuple(statuses) if statuses is not None else ANSWERABLE_STATUSES

    def apply(self, ranking: Sequence[tuple[str, float]], linked: Sequence[Any], topic: str) -> tuple[list[tuple[str, float]], list[Any]]:
        """The re-ordered ranking and the facts that tie its head candidates to named entities. A
        store read that fails (``QAError``: the database went away, a query error) is logged and
        leaves the adjacency out; the mention adjustment still applies."""

        named = named_entities(linked, topic, self.weights)
        head = [c for c, _ in ranking[: self.weights.head]]
        facts: list[Any] = []
        if named.anchors and self.weights.adjacent > 0:
            try:
                facts = self.store.facts_linking(named.anchors, head, statuses=self.statuses)
            except QAError as e:  # the answer is already ranked: a failed read only loses the adjustment
                log.warning("question constraints skipped: %s", e)
        adjacent = adjacent_candidates(facts, named.anchors, head)
        return constrain(ranking, adjacent, named.mentioned, self.weights), facts
