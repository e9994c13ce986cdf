"""Domain types shared by every layer: entities, facts with status and provenance, subgraphs.

Why pydantic: these cross every public boundary (store, CLI JSON, app, evaluation records), so
they are validated once, serialise to JSON the same way everywhere, and reject bad values early.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qa_system.errors import InputError


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FactStatus(str, Enum):
    """Lifecycle of a fact. Answers use verified and extracted facts; proposed ones await review."""

    VERIFIED = "verified"
    EXTRACTED = "extracted"
    PROPOSED = "proposed"
    REJECTED = "rejected"


class SourceKind(str, Enum):
    """Where a fact came from."""

    DATASET = "dataset"  # imported from a curated KG (FB15k-237, WN18RR...)
    EXTRACTOR = "extractor"  # extracted from text by a model
    LLM = "llm"  # proposed by an LLM and entailment-checked
    MAINTAINER = "maintainer"  # entered or edited by a person


class Entity(BaseModel):
    """A graph node. ``id`` is stable (a Freebase MID, a WordNet synset id, or a generated id)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=512)
    name: str = Field(min_length=1, max_length=2048)
    aliases: tuple[str, ...] = ()
    type: str = ""
    description: str = ""
    image_url: str = ""
    url: str = ""

    @property
    def is_literal(self) -> bool:
        """A literal attribute value (see ``literal_entity``), not a graph entity."""

        return self.id.startswith(LITERAL_PREFIX)

    @field_validator("aliases", mode="before")
    @classmethod
    def _aliases_tuple(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(a for a in value.split("|") if a)
        return tuple(value)


class Provenance(BaseModel):
    """Why a fact is in the graph. Fields not relevant to ``source_kind`` stay empty.

    dataset: ``dataset`` + ``split``; extractor: ``document_id``, ``sentence``, offsets, ``model``,
    ``checkpoint``, ``score``; llm: ``model``, ``endpoint``, ``question``, ``raw_answer``,
    ``premises``, ``scores``; review: ``reviewer``, ``reviewed_at``, ``review_reason``.
    """

    model_config = ConfigDict(extra="forbid")

    source_kind: SourceKind = SourceKind.DATASET
    dataset: str = ""
    split: str = ""
    document_id: str = ""
    sentence: str = ""
    sentence_start: int | None = None
    sentence_end: int | None = None
    model: str = ""
    checkpoint: str = ""
    endpoint: str = ""
    question: str = ""
    raw_answer: str = ""
    premises: list[str] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    score: float | None = None
    vocabulary: str = ""  # relation vocabulary the relation belongs to (freebase, webnlg, free-text)
    reviewer: str = ""
    reviewed_at: datetime | None = None
    review_reason: str = ""
    # properties the source graph kept on the relationship itself (``ACTED_IN {roles: ['Neo']}``)
    properties: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utc_now)


def fact_id(subject: str, relation: str, obj: str) -> str:
    """Stable id of a (subject, relation, object) triple: the same triple always maps to the same fact."""

    digest = hashlib.sha1(f"{subject}\t{relation}\t{obj}".encode("utf-8")).hexdigest()
    return digest[:20]


# -- literal attribute values ------------------------------------------------------------------
# A literal (a birth year, a tagline) is stored as a node of its own in the entity table, one per
# (subject, attribute, value), with an id in the ``lit:`` namespace and a ``literal:<datatype>``
# type: a neighbour read returns entity facts and attribute facts in the same query, and every
# fact-level feature (status, provenance, review, export) works for both unchanged. Being one node
# per fact, a literal never becomes a hub joining unrelated entities. The stores keep literals out
# of the name indexes and the entity counts, HittER never sees them, and they cannot be topics.
LITERAL_PREFIX = "lit:"
LITERAL_TYPE_PREFIX = "literal:"
LiteralDatatype = Literal["integer", "float", "date", "boolean", "string"]


def is_literal(entity_id: str) -> bool:
    """Whether a node id names a literal attribute value rather than a graph entity."""

    return entity_id.startswith(LITERAL_PREFIX)


def literal_datatype(value: Any) -> tuple[str, LiteralDatatype]:
    """A source value as (canonical text, datatype): ``1964`` → ``("1964", "integer")``,
    ``date(1999, 3, 31)`` → ``("1999-03-31", "date")``, ``"1999-03-31"`` → date too."""

    import datetime as _dt

    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, int):
        return str(value), "integer"
    if isinstance(value, float):
        return (str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)), "float"
    if isinstance(value, _dt.datetime):
        return value.isoformat(), "date"
    if isinstance(value, _dt.date):
        return value.isoformat(), "date"
    text = " ".join(str(value).split())
    if _DATE_TEXT.fullmatch(text):
        return text, "date"
    if _INT_TEXT.fullmatch(text):
        return text, "integer"
    if _FLOAT_TEXT.fullmatch(text):
        return text, "float"
    return text, "string"


_DATE_TEXT = re.compile(r"-?\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?")
_INT_TEXT = re.compile(r"[+-]?\d{1,18}")
_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?")


def literal_entity(subject: str, attribute: str, value: Any) -> Entity:
    """The node holding ``value`` as the object of ``(subject, attribute, value)``: its id is
    stable (the same triple always maps to the same node), its name the value as text."""

    text, datatype = literal_datatype(value)
    if not text:
        raise ValueError(f"empty literal value for {subject!r} {attribute!r}")
    digest = hashlib.sha1(f"{subject}\t{attribute}\t{datatype}\t{text}".encode("utf-8")).hexdigest()[:20]
    return Entity(id=f"{LITERAL_PREFIX}{digest}", name=text[:2048], type=f"{LITERAL_TYPE_PREFIX}{datatype}")


class Fact(BaseModel):
    """A directed, typed edge with status, confidence and provenance."""

    subject: str = Field(min_length=1)
    relation: str = Field(min_length=1)
    object: str = Field(min_length=1)
    status: FactStatus = FactStatus.VERIFIED
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    provenance: Provenance = Field(default_factory=Provenance)

    @property
    def id(self) -> str:
        # Cached by hand: model_construct skips __init__, and bulk imports ask for it several times.
        cached = self.__dict__.get("_id_cache")
        key = (self.subject, self.relation, self.object)
        if cached is None or cached[0] != key:
            cached = (key, fact_id(*key))
            self.__dict__["_id_cache"] = cached
        return cached[1]


class FactView(BaseModel):
    """A fact as read back from the store, with the names of both ends for display."""

    id: str
    subject: str
    subject_name: str
    relation: str
    object: str
    object_name: str
    status: FactStatus
    confidence: float
    provenance: Provenance
    hop: int = 1


class Subgraph(BaseModel):
    """The neighbourhood of some seed entities: what retrieval hands to the reader and the UI."""

    seeds: list[str]
    entities: dict[str, Entity] = Field(default_factory=dict)
    facts: list[FactView] = Field(default_factory=list)
    truncated: bool = False


class GraphStats(BaseModel):
    """Counts the dashboard and ``qa-system stats`` report."""

    entities: int  # graph entities; literal attribute values are counted in ``literals``
    facts: int
    literals: int = 0
    facts_by_status: dict[str, int] = Field(default_factory=dict)
    facts_by_relation: dict[str, int] = Field(default_factory=dict)
    facts_by_split: dict[str, int] = Field(default_factory=dict)
    entities_by_type: dict[str, int] = Field(default_factory=dict)
    backend: str = ""


Direction = Literal["out", "in", "both"]


class RankedEntity(BaseModel):
    """An entity (or, ``kind="value"``, a literal attribute value) with the model's confidence in it."""

    id: str
    name: str
    description: str = ""
    confidence: float = Field(ge=0.0, le=1.0)
    kind: Literal["entity", "value"] = "entity"


class FallbackSummary(BaseModel):
    """What the LLM fallback did for one answer: who answered, and what became of its triples.

    ``proposed`` are the fact ids inserted as ``proposed`` (entailment supported them, review
    pending); ``rejected`` counts the triples sent to the rejected log; ``decisions`` has one
    record per triple (hypothesis, decision, score, reason) so the user sees why.
    """

    status: str = ""  # ok, parse_error, unavailable, skipped
    model: str = ""
    endpoint: str = ""
    llm_answer: str = ""
    latency_s: float = 0.0
    proposed: list[str] = Field(default_factory=list)
    rejected: int = 0
    decisions: list[dict[str, Any]] = Field(default_factory=list)


class Answer(BaseModel):
    """What ``ask`` returns: the answer (or none), why, and how sure.

    ``source`` is ``graph`` (the reader answered from graph facts), ``graph-unsure`` (below the
    calibrated threshold: shown with a warning, the LLM fallback hooks in here), ``llm`` (the
    fallback answered; ``validated`` says whether entailment supported a triple behind the answer)
    or ``none``.
    """

    question: str
    answer: RankedEntity | None = None
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    source: Literal["graph", "graph-unsure", "llm", "none"] = "none"
    message: str = ""
    topic_entities: list[RankedEntity] = Field(default_factory=list)
    evidence: list[FactView] = Field(default_factory=list)
    alternatives: list[RankedEntity] = Field(default_factory=list)
    validated: bool | None = None  # LLM answers only: a supporting triple passed entailment
    fallback: FallbackSummary | None = None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "hours"}


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``2d``, ``1w`` (a bare number is hours)."""

    match = _DURATION.match(text or "")
    if not match:
        raise InputError(f"bad duration {text!r}; use e.g. 30m, 12h, 2d, 1w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
