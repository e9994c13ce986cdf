"""Relation vocabulary: how a relation id reads as words, and mapping free phrases onto a graph's ids.

``readable_relation`` and ``relation_words`` spell relations for people and for the entailment
model (its WebNLG training pairs and the validator's hypotheses share ``relation_words``);
``RelationMapper`` maps an LLM's relation phrase to the graph's vocabulary (``prompts/relations.json``
phrases, then the readable last segment of the relation id) or says it is free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def readable_relation(relation: str) -> str:
    """A relation id of any vocabulary as words: ``/people/person/place_of_birth`` → ``place of birth``,
    ``birthPlace`` → ``birth place``, ``ACTED_IN`` → ``acted in``, ``http://schema.org/birthDate`` →
    ``birth date`` (an IRI's local name, after ``#`` or the last ``/``), and a Freebase path through a
    mediator, ``/award/award_nominee/award_nominations./award/award_nomination/award`` → ``award
    nominations award`` (the last segment of each leg)."""

    words = [_local_words(leg) for leg in relation.split("./")]
    return " ".join(w for w in words if w) or " ".join(relation.split()).lower()


def _local_words(relation: str) -> str:
    last = relation.rstrip("/#")
    if "#" in last:
        last = last.rsplit("#", 1)[-1]
    if "/" in last:
        last = last.split("/")[-1]
    if ":" in last.strip(":"):  # a prefixed name or URN: ``foaf:knows``, ``urn:x:hasPart``
        last = last.strip(":").rsplit(":", 1)[-1]
    last = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", last)
    return " ".join(re.sub(r"[_.\-:]+", " ", last).lower().split())


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def relation_words(relation: str) -> str:
    """A relation as the entailment model reads it (its WebNLG training pairs and the validator's
    hypotheses use this one spelling): ``numberOfMembers`` → ``number of members``,
    ``OCLC_number`` → ``OCLC number`` (acronyms kept), ``3rd_runway_LengthFeet`` → ``3rd runway
    length feet``, ``/people/person/place_of_birth`` → ``place of birth``; phrases stay."""

    last = relation.rstrip("/").split("/")[-1] if "/" in relation else relation
    words = []
    for part in re.sub(r"[_.\-]+", " ", last).split():
        for word in _CAMEL.sub(" ", part).split():
            words.append(word if word.isupper() and len(word) > 1 else word.lower())
    return " ".join(words)


_STOP = {"is", "was", "are", "were", "the", "a", "an", "of", "has", "have", "had", "its", "his", "her"}


def _key(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower())
    kept = [w for w in words if w not in _STOP]
    return " ".join(kept or words)


@dataclass(frozen=True)
class RelationMatch:
    relation: str  # a graph relation id, or the LLM's text when free
    inverse: bool = False  # the LLM's subject/object must be swapped to fit the graph relation
    free_text: bool = False
    how: str = ""  # exact | alias | readable | free


class RelationMapper:
    """Maps an LLM's relation phrase to the graph's relation vocabulary (or says it cannot)."""

    def __init__(self, vocabulary: Iterable[str], aliases: dict[str, Any] | None = None) -> None:
        self.vocabulary = sorted(set(vocabulary))
        if aliases is None:
            from prompts import load_json

            aliases = load_json("relations.json")
        self._exact = {r.lower(): r for r in self.vocabulary}
        self._alias: dict[str, tuple[str, bool]] = {}
        for relation, entry in aliases.items():
            if relation.startswith("_") or relation not in self._exact.values():
                continue  # only phrases for relations this graph has
            for phrase in entry.get("aliases", []):
                self._alias.setdefault(_key(phrase), (relation, False))
            for phrase in entry.get("inverse_aliases", []):
                self._alias.setdefault(_key(phrase), (relation, True))
        readable: dict[str, list[str]] = {}
        for relation in self.vocabulary:
            readable.setdefault(_key(readable_relation(relation)), []).append(relation)
        self._readable = {k: v[0] for k, v in readable.items() if len(v) == 1 and k}  # ambiguous keys map nowhere

    def map(self, text: str) -> RelationMatch:
        text = text.strip()
        if text.lower() in self._exact:
            return RelationMatch(self._exact[text.lower()], how="exact")
        key = _key(text)
        if key in self._alias:
            relation, inverse = self._alias[key]
            return RelationMatch(relation, inverse=inverse, how="alias")
        if key in self._readable:
            return RelationMatch(self._readable[key], how="readable")
        return RelationMatch(text, free_text=True, how="free")


def graph_relations(store: Any) -> list[str]:
    """The relation vocabulary of a store (relation ids that occur in facts)."""

    return sorted(store.stats().facts_by_relation)
