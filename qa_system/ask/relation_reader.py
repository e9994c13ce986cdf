"""Answering from any fact the store holds, by the words of its relation.

The trained reader ranks candidates it knows: HittER entities joined to the topic by one of the
237 FB15k-237 relations. Facts that arrived later (ingested documents, accepted LLM facts, an
imported Neo4j/CSV/RDF graph, literal attributes) are invisible to it. This reader needs no
vocabulary: every hop-1 fact of a linked topic is a candidate, grouped by (relation, direction);
a ``RelationScorer`` scores each group from the relation's readable words against the question;
a softmax over the groups of the linked topics says which relation the question asks for, and
its candidates are the answers. So a fact written a moment ago is answerable at once.

Why groups and not candidates: "Who acted in The Matrix?" has five right answers joined by the
same relation; the question decides the relation, not one actor. The confidence is the
probability of the chosen group (summed over the groups that hold the answer); how sure the linker
was of each topic enters the softmax, so a weakly linked topic's groups lose to a well linked one's.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from qa_system.types import FactView, is_literal, literal_datatype


class RelationScorer(Protocol):
    """Scores (relation id, topic is the subject) pairs against a question; higher is better."""

    def score(self, question: str, topic_name: str, relations: Sequence[tuple[str, bool]]) -> np.ndarray: ...


class MeanOfScorers:
    """The mean of several scorers' logits (all on the same cosine x scale footing): the scorer
    trained on FB15k-237 relations beside plain MiniLM cosine, which reads names it never saw
    as well as the trained one does."""

    def __init__(self, scorers: Sequence[RelationScorer]) -> None:
        self.scorers = list(scorers)

    def score(self, question: str, topic_name: str, relations: Sequence[tuple[str, bool]]) -> np.ndarray:
        return np.mean([np.asarray(s.score(question, topic_name, relations), dtype=np.float64) for s in self.scorers], axis=0)

    def relation_text(self, relation: str, topic_is_subject: bool) -> str:
        return self.scorers[0].relation_text(relation, topic_is_subject)  # type: ignore[attr-defined]

    def relation_vectors(self, texts: Sequence[str]) -> None:
        for scorer in self.scorers:  # each encodes (and caches) its own texts for the same relations
            if hasattr(scorer, "relation_vectors"):
                scorer.relation_vectors(texts)


class LazyRelationScorer:
    """Loads the relation scorer on its first question: a graph the trained reader fully covers
    (the demo graph) never pays for loading it."""

    def __init__(self, load: Callable[[], RelationScorer]) -> None:
        self._load = load
        self._scorer: RelationScorer | None = None
        self._lock = threading.Lock()

    def score(self, question: str, topic_name: str, relations: Sequence[tuple[str, bool]]) -> np.ndarray:
        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = self._load()
        return self._scorer.score(question, topic_name, relations)

    def warm(self, relations: Sequence[str], lock: Any, chunk: int = 64) -> int:
        """Load the scorer and encode every relation's texts (both directions) ahead of the
        questions, ``chunk`` at a time under ``lock`` (the pipeline's model lock: a question waits for
        one chunk at most). The app calls it in a background thread at start; returns texts encoded."""

        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = self._load()
        scorer: Any = self._scorer
        if not hasattr(scorer, "relation_vectors"):
            return 0
        texts = [scorer.relation_text(r, d) for r in relations for d in (True, False)]
        for start in range(0, len(texts), chunk):
            with lock:
                scorer.relation_vectors(texts[start : start + chunk])
        return len(texts)


@dataclass(frozen=True)
class LinkedTopic:
    """A linked entity the reader may answer about: its id, name and link score."""

    id: str
    name: str
    link_score: float


@dataclass
class WordsReading:
    """What the reader concluded for one question."""

    ranked: list[tuple[str, float]]  # candidate ids, best first, with P(candidate is right)
    topic: str  # the topic the best answer hangs off
    group_probs: dict[tuple[str, str, bool], float]  # (topic, relation, topic is subject) -> probability
    facts: list[FactView] = field(default_factory=list)  # every fact read
    log_partition: float = 0.0  # log of the summed exp(group logits): how well the best relations fit at all

    def evidence(self, answer: str) -> list[FactView]:
        """The facts joining the answer's topic and the answer, the most probable relation first."""

        found = [f for f in self.facts if {f.subject, f.object} == {self.topic, answer}]
        return sorted(found, key=lambda f: -self.group_probs.get((self.topic, f.relation, f.subject == self.topic), 0.0))


# What a question wants, from its first words: a date or a number (a literal), or an entity.
_WANTS_DATE = re.compile(r"\b(when|what year|which year|what date|which date|in what year|since when)\b", re.I)
_WANTS_NUMBER = re.compile(r"\b(how (many|much|old|tall|long|high|big|large|deep|wide|far|heavy)|what (is|was) the (number|population|height|length|area|size))\b", re.I)
_WANTS_ENTITY = re.compile(r"^\s*(who|whom|whose|where|which (person|actor|actress|director|city|country|company|film|movie|team|band))\b", re.I)


_VALUE_TYPES = frozenset({"date", "integer", "float"})


def _value_like(node: str, kind: str) -> bool:
    return is_literal(node) or kind in _VALUE_TYPES


@dataclass(frozen=True)
class AnswerTypePrior:
    """Nats added to a group's score when the kind of its candidates fits the question's wh-word:
    "When was Keanu Reeves born?" wants the literal ``born 1964``, not a birth place; "Who ..."
    never wants a literal. Rules, not fitted: they encode what the wh-words mean."""

    fits: float = 2.0
    misfits: float = -2.0

    def __call__(self, question: str, candidates: Sequence[tuple[str, str]]) -> float:
        """``candidates``: (id, datatype) of the group: a literal's datatype, or for an entity whose
        name is a number or a date (ingest makes "1980" an entity) that type, else ""."""

        values = [(node, kind) for node, kind in candidates if _value_like(node, kind)]
        literal_kinds = {kind for _, kind in values}
        all_literal = bool(candidates) and len(values) == len(candidates)
        if _WANTS_DATE.search(question):
            if all_literal and literal_kinds & {"date", "integer"}:
                return self.fits
            return self.misfits / 2 if all_literal else 0.0
        if _WANTS_NUMBER.search(question):
            if all_literal and literal_kinds & {"integer", "float"}:
                return self.fits
            return self.misfits / 2
        if _WANTS_ENTITY.search(question):
            return self.misfits if all_literal else 0.0
        return 0.0


class RelationWordsReader:
    """Ranks every hop-1 neighbour of the linked topics by its relation's words (see module)."""

    def __init__(
        self,
        scorer: RelationScorer,
        *,
        temperature: float = 1.0,
        link_weight: float = 1.0,
        prior: AnswerTypePrior | None = None,
        max_topics: int = 2,
        null_logit: float | None = None,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}")
        self.scorer = scorer
        self.temperature = temperature
        self.link_weight = link_weight  # nats per unit of log link score: a better-linked topic's groups lead
        self.prior = prior or AnswerTypePrior()
        self.max_topics = max_topics
        # "none of these relations": a group with this fixed logit joins the softmax (and is never an
        # answer), so when no relation of the topic fits the question the confidence falls instead of
        # the least bad relation taking all the probability. Fitted on grown-graph dev questions.
        self.null_logit = null_logit

    def read(self, question: str, topics: Sequence[LinkedTopic], facts_by_topic: dict[str, list[FactView]]) -> WordsReading | None:
        """None when no topic has a fact to answer from."""

        groups: dict[tuple[str, str, bool], list[str]] = {}
        read_facts: list[FactView] = []
        datatypes: dict[str, str] = {}
        link = {}
        for topic in topics[: self.max_topics]:
            link[topic.id] = topic
            for fact in facts_by_topic.get(topic.id, []):
                if fact.hop != 1 or topic.id not in (fact.subject, fact.object) or fact.subject == fact.object:
                    continue
                forward = fact.subject == topic.id
                other = fact.object if forward else fact.subject
                if is_literal(other):  # its value text re-typed: stored values are canonical (``literal_datatype``)
                    datatypes[other] = literal_datatype(fact.object_name)[1]
                else:  # an entity named like a value ("1980", "600") answers "when" and "how many" as a literal would
                    shape = literal_datatype(fact.object_name if forward else fact.subject_name)[1]
                    if shape in _VALUE_TYPES:
                        datatypes[other] = shape
                members = groups.setdefault((topic.id, fact.relation, forward), [])
                if other not in members:
                    members.append(other)
                read_facts.append(fact)
        if not groups:
            return None
        keys = list(groups)
        logits = np.empty(len(keys), dtype=np.float64)
        by_topic: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            by_topic.setdefault(key[0], []).append(i)
        for topic_id, positions in by_topic.items():
            raw = np.asarray(self.scorer.score(question, link[topic_id].name, [keys[i][1:] for i in positions]), dtype=np.float64)
            link_term = self.link_weight * math.log(max(link[topic_id].link_score, 1e-6))
            for j, i in enumerate(positions):
                kinds = [(node, datatypes.get(node, "")) for node in groups[keys[i]]]
                logits[i] = raw[j] / self.temperature + self.prior(question, kinds) + link_term
        top = float(logits.max())
        probs = np.exp(logits - top)
        total = float(probs.sum())
        log_partition = top + math.log(total)
        if self.null_logit is not None:
            total += math.exp(min(self.null_logit - top, 700.0))
        probs /= total
        group_probs = {key: float(p) for key, p in zip(keys, probs)}
        # a candidate is right when any group holding it is the asked one; ties: fewer rivals in its group
        score: dict[str, float] = {}
        home: dict[str, tuple[float, str]] = {}
        for key, members in groups.items():
            p = group_probs[key]
            for node in members:
                score[node] = score.get(node, 0.0) + p
                if node not in home or p > home[node][0]:
                    home[node] = (p, key[0])
        topic_ids = set(link)
        named = _named_in_properties(question, read_facts, topic_ids)
        order = sorted((n for n in score if n not in topic_ids), key=lambda n: (-score[n], n))
        if not order:
            return None
        # a property the question names breaks ties among the answers of the leading relation only:
        # "Who directed Hoffa?" must not answer the actor whose role is "Hoffa"
        top = score[order[0]]
        head = [n for n in order if score[n] >= 0.9 * top]
        order = sorted(head, key=lambda n: n not in named) + order[len(head):]
        ranked = [(n, min(1.0, score[n])) for n in order]
        return WordsReading(ranked=ranked, topic=home[order[0]][1], group_probs=group_probs, facts=read_facts, log_partition=log_partition)


_WORD = re.compile(r"\w+")


def _named_in_properties(question: str, facts: Sequence[FactView], topics: set[str]) -> set[str]:
    """Candidates whose fact with a topic carries a property value the question names: "In which
    movie did Keanu Reeves play Neo?" names the ``roles: ['Neo']`` of one ``ACTED_IN`` fact. Such a
    candidate leads the answers of its relation (whose probability is unchanged)."""

    text = " " + " ".join(_WORD.findall(question.lower())) + " "
    named = set()
    for fact in facts:
        properties = fact.provenance.properties
        if not properties:
            continue
        values = [v for value in properties.values() for v in (value if isinstance(value, list) else [value])]
        for value in values:
            words = " ".join(_WORD.findall(str(value).lower()))
            if len(words) >= 2 and not words.isdigit() and f" {words} " in text:
                named.add(fact.object if fact.subject in topics else fact.subject)
                break
    return named
