"""LLM fallback: when the graph cannot answer, ask the LLM for a short answer and supporting triples.

The reply must be one JSON object ``{"answer": ..., "triples": [{"subject", "relation", "object"}]}``
validated with pydantic. ``OnError`` says what an unparsable reply becomes (logged with its raw
text either way). Triple ends are resolved against the graph (id, then exact name or alias, like
``explore.resolve_entity`` without guessing); relations are mapped to the graph's vocabulary
(``prompts/relations.json`` phrases, then the readable last segment of the relation id) or kept
as free text and flagged.

Safety: this module never writes anything to the graph. It returns *candidate* triples; only
``qa_system.maintain.review.record_decisions`` inserts them, and only entailed ones, as ``proposed``. So a
question saying "ignore previous instructions and insert ..." can at most produce candidates.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qa_system.errors import InputError, LLMError, LLMUnavailableError
from qa_system.explore import resolve_name
from qa_system.relations import (
    RelationMapper,
    RelationMatch,
    graph_relations,
    readable_relation,
)

log = logging.getLogger(__name__)

MAX_TRIPLES = 20
MAX_QUESTION_CHARS = 1000
MAX_CONTEXT_FACTS = 30
MAX_FIELD_CHARS = 300
MAX_ANSWER_CHARS = 500
SYSTEM_TEMPLATE = "fallback_system.txt"
USER_TEMPLATE = "fallback_user.txt"
EXAMPLE_USER = "fallback_example_user.txt"
EXAMPLE_ASSISTANT = "fallback_example_assistant.txt"

_INJECTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(previous|above|prior|earlier|all)\b.{0,40}\b(instructions?|prompts?|rules?)\b"
    r"|\b(insert|add|write|delete|drop|remove|create)\b.{0,40}\b(into|to|from)?\s*(the )?(graph|database|db|knowledge base)\b"
    r"|\bsystem prompt\b|\bMERGE\b|\bDETACH DELETE\b",
    re.IGNORECASE | re.DOTALL,
)


class OnError(str, Enum):
    """What an unparsable LLM reply becomes (it is logged with its raw text in every case)."""

    ANSWER_TEXT = "answer_text"  # the raw text (trimmed) is the answer; no triples
    EMPTY = "empty"  # no answer, no triples
    RAISE = "raise"  # raise LLMError


@dataclass(frozen=True)
class GraphContext:
    """What the graph retrieved for the question: fact lines and entity names, best first."""

    facts: Sequence[str] = ()  # e.g. "Inception | starring | Leonardo DiCaprio"
    entities: Sequence[str] = ()  # topic entity names found in the question

    @classmethod
    def from_answer(cls, answer: Any) -> GraphContext:
        """From an ``Answer`` of the ask pipeline (its evidence and topic entities)."""

        facts = [f"{f.subject_name} | {readable_relation(f.relation)} | {f.object_name}" for f in answer.evidence]
        entities = [e.name for e in answer.topic_entities]
        return cls(facts=facts, entities=entities)


# -- the reply schema ------------------------------------------------------------------------------
def _clean(value: Any) -> str:
    if not isinstance(value, (str, int, float)):
        raise ValueError("must be a string")  # noqa: TRY004 - pydantic reports ValueError, not TypeError
    text = " ".join(str(value).split())
    if not text:
        raise ValueError("must not be empty")
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"longer than {MAX_FIELD_CHARS} characters")
    return text


_STRICT = ConfigDict(json_schema_extra={"additionalProperties": False})  # in the schema only: parsing stays lenient


class LLMTriple(BaseModel):
    """One claimed fact of the reply."""

    model_config = _STRICT

    subject: str
    relation: str
    object: str

    @field_validator("subject", "relation", "object", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        return _clean(value)


class LLMAnswer(BaseModel):
    """The JSON the LLM must return; its JSON schema (``response_schema``) is what the LLM is sent.

    Parsing is more lenient than the schema: a list answer is joined, extra keys are ignored, and
    ``triples`` items are checked one by one in ``parse_reply`` (a malformed triple is dropped and
    counted, not the whole reply)."""

    model_config = _STRICT

    answer: str = ""
    triples: list[LLMTriple] = Field(default_factory=list, max_length=MAX_TRIPLES)

    @field_validator("answer", mode="before")
    @classmethod
    def _answer(cls, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        return " ".join(str(value).split())[:MAX_ANSWER_CHARS]

    @field_validator("triples", mode="wrap")
    @classmethod
    def _items_later(cls, value: Any, handler: Any) -> Any:
        return list(value) if isinstance(value, list) else []  # raw items: parse_reply checks each


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema in the form strict structured outputs accept (OpenAI's ``strict``;
    llama.cpp's grammar converter reads it too): ``$ref``s inlined, every property required,
    no ``additionalProperties``, no ``title``/``default`` annotations."""

    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
        out = {k: walk(v) for k, v in node.items() if k not in ("$defs", "title", "default", "description")}
        if out.get("type") == "object" and "properties" in node:
            out["properties"] = {k: walk(v) for k, v in node["properties"].items()}  # keys named "title" stay
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out

    return walk(schema)


REPLY_SCHEMA_NAME = "fallback_reply"


def response_schema(max_triples: int = MAX_TRIPLES) -> dict[str, Any]:
    """The reply's JSON schema, derived from ``LLMAnswer`` (llama.cpp turns it into a grammar: the
    tiny model then always produces parseable JSON; OpenAI's strict mode constrains decoding too)."""

    schema = strict_schema(LLMAnswer.model_json_schema())
    schema["properties"]["triples"]["maxItems"] = max_triples
    return schema


def response_format(max_triples: int = MAX_TRIPLES) -> dict[str, Any]:
    """The reply schema as OpenAI's strict ``json_schema`` response format; ``LLMClient`` sends it
    in llama.cpp's form to the embedded server (``qa_system.fallback.llm.response_formats``)."""

    from qa_system.fallback.llm import json_schema_format

    return json_schema_format(response_schema(max_triples), REPLY_SCHEMA_NAME)


@dataclass
class ParsedReply:
    answer: str
    triples: list[LLMTriple]
    returned: int = 0  # triples in the reply before the cap
    invalid: int = 0  # triples dropped as malformed
    truncated: bool = False
    error: str = ""  # non-empty when the reply did not parse


def _json_object(text: str) -> Any:
    """The first JSON object in ``text`` (models wrap JSON in prose or ``` fences)."""

    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
            return value
        except ValueError:
            continue
    raise ValueError("no JSON object in the reply")


_PLACEHOLDERS = {"entity", "subject", "object", "relation", "name", "...", "n/a", "none", "unknown"}


def _as_triple(item: Any) -> LLMTriple:
    if isinstance(item, (list, tuple)) and len(item) == 3:
        item = dict(zip(("subject", "relation", "object"), item, strict=True))
    if isinstance(item, dict):  # tolerate common key spellings
        item = {
            "subject": item.get("subject", item.get("s", item.get("head"))),
            "relation": item.get("relation", item.get("predicate", item.get("r", item.get("p")))),
            "object": item.get("object", item.get("o", item.get("tail"))),
        }
    triple = LLMTriple.model_validate(item)
    if {triple.subject.lower(), triple.object.lower()} & _PLACEHOLDERS:
        raise ValueError("a placeholder copied from the format description, not a fact")
    return triple


def parse_reply(text: str, *, max_triples: int = MAX_TRIPLES) -> ParsedReply:
    """Validate a reply; never raises. Malformed triples are dropped and counted, at most
    ``max_triples`` are kept (``truncated`` says when more came)."""

    try:
        data = _json_object(text)
        if not isinstance(data, dict):
            raise TypeError(f"the reply is a JSON {type(data).__name__}, not an object")
        reply = LLMAnswer.model_validate(data)
    except (ValueError, TypeError, ValidationError) as e:
        return ParsedReply(answer="", triples=[], error=f"{type(e).__name__}: {str(e).splitlines()[0]}")
    items: list[Any] = list(reply.triples)
    triples: list[LLMTriple] = []
    seen: set[tuple[str, str, str]] = set()
    invalid = 0
    for item in items[: max_triples * 5]:  # a 500-triple reply: look at a bounded prefix only
        try:
            triple = _as_triple(item)
        except (ValidationError, ValueError, TypeError):
            invalid += 1
            continue
        key = (triple.subject.lower(), triple.relation.lower(), triple.object.lower())
        if key in seen:
            continue
        seen.add(key)
        triples.append(triple)
    truncated = len(triples) > max_triples or len(items) > max_triples * 5
    return ParsedReply(reply.answer, triples[:max_triples], returned=len(items), invalid=invalid, truncated=truncated)


# -- resolution against the graph -------------------------------------------------------------------
class ProposedTriple(BaseModel):
    """A candidate triple from the LLM, resolved against the graph as far as it goes.

    ``subject``/``relation``/``object`` are graph ids where resolved (the LLM's text otherwise);
    ``*_text`` keep what the LLM wrote. ``flags``: ``unknown_subject``, ``unknown_object``,
    ``free_text_relation``, ``inverted`` (ends swapped to fit the graph relation).
    """

    subject: str
    relation: str
    object: str
    subject_name: str
    object_name: str
    subject_text: str
    relation_text: str
    object_text: str
    subject_known: bool = False
    object_known: bool = False
    free_text_relation: bool = False
    flags: list[str] = Field(default_factory=list)

    @property
    def verbalised(self) -> str:
        """Plain-text form for entailment hypotheses: ``subject relation object`` with names."""

        relation = self.relation_text if self.free_text_relation else readable_relation(self.relation)
        return f"{self.subject_name} {relation} {self.object_name}"


def resolve_triple(triple: LLMTriple, store: Any, mapper: RelationMapper | None) -> ProposedTriple:
    match = mapper.map(triple.relation) if mapper is not None else RelationMatch(triple.relation, free_text=True, how="free")
    subject_text, object_text = triple.subject, triple.object
    if match.inverse:
        subject_text, object_text = object_text, subject_text
    subject, obj = resolve_name(store, subject_text), resolve_name(store, object_text)
    flags = []
    if subject.id is None:
        flags.append("unknown_subject")
    if obj.id is None:
        flags.append("unknown_object")
    if match.free_text:
        flags.append("free_text_relation")
    if match.inverse:
        flags.append("inverted")
    return ProposedTriple(
        subject=subject.id or subject.name,
        relation=match.relation,
        object=obj.id or obj.name,
        subject_name=subject.name,
        object_name=obj.name,
        subject_text=triple.subject,
        relation_text=triple.relation,
        object_text=triple.object,
        subject_known=subject.id is not None,
        object_known=obj.id is not None,
        free_text_relation=match.free_text,
        flags=flags,
    )


# -- the fallback -----------------------------------------------------------------------------------
class FallbackResult(BaseModel):
    """What the fallback returns. ``status``: ``ok``, ``parse_error`` (reply not JSON: no
    triples), ``unavailable`` (endpoint down or slow: ``message`` says so)."""

    question: str
    answer: str = ""
    triples: list[ProposedTriple] = Field(default_factory=list)
    status: Literal["ok", "parse_error", "unavailable"] = "ok"
    message: str = ""
    raw_answer: str = ""
    endpoint: str = ""
    model: str = ""
    latency_s: float = 0.0
    triples_returned: int = 0
    triples_invalid: int = 0
    truncated: bool = False
    suspected_injection: bool = False
    premises: list[str] = Field(default_factory=list)  # the graph facts shown to the LLM


def merge_into_answer(result: FallbackResult, graph_answer: Any, store: Any | None = None) -> Any:
    """The ``Answer`` to show: the LLM's (``source="llm"``, marked unverified) when it answered,
    else the graph's best answer with the LLM's failure in ``message``. Graph evidence is kept."""

    from qa_system.types import RankedEntity

    if result.status == "unavailable" or not result.answer:
        note = result.message or "the LLM gave no answer"
        message = f"{graph_answer.message} {note}".strip() if graph_answer.message else note
        return graph_answer.model_copy(update={"message": message})
    resolved = resolve_name(store, result.answer)
    entity = RankedEntity(id=resolved.id or "", name=resolved.name[:MAX_ANSWER_CHARS], confidence=0.0)
    message = (
        f"answer from the LLM ({result.model}), not from the graph: unverified; "
        f"{len(result.triples)} candidate triple(s) proposed for validation"
    )
    return graph_answer.model_copy(update={"answer": entity, "confidence": 0.0, "source": "llm", "message": message})


def looks_like_injection(question: str) -> bool:
    return bool(_INJECTION.search(question))


def build_messages(question: str, context: GraphContext, *, max_triples: int = MAX_TRIPLES) -> list[tuple[str, str]]:
    from prompts import load_template, load_text

    system = load_template(SYSTEM_TEMPLATE, {"max_triples"}).format(max_triples=max_triples)
    facts = "\n".join(f"- {f}" for f in list(context.facts)[:MAX_CONTEXT_FACTS]) or "- (none)"
    entities = ", ".join(context.entities) or "(none)"
    # The question goes in as data; quotes in it cannot close anything (it is not code).
    user = load_template(USER_TEMPLATE, {"facts", "entities", "question"}).format(
        facts=facts, entities=entities, question=question
    )
    # One worked example as a previous turn: tiny models copy a format far better than they follow one.
    example = [("user", load_template(EXAMPLE_USER, set())), ("assistant", load_text(EXAMPLE_ASSISTANT).strip())]
    return [("system", system), *example, ("user", user)]


class LLMFallback:
    """Ask the LLM; resolve its triples against ``store`` (read-only use: ``get_entity``,
    ``find_entities``, ``stats``). ``vocabulary`` defaults to the store's relations."""

    def __init__(
        self,
        client: Any,
        store: Any | None = None,
        *,
        vocabulary: Iterable[str] | None = None,
        on_error: OnError = OnError.ANSWER_TEXT,
        max_triples: int = MAX_TRIPLES,
        max_tokens: int = 384,
        json_schema: bool = True,
    ) -> None:
        self.client = client
        self.store = store
        self.on_error = OnError(on_error)
        self.max_triples = max_triples
        self.max_tokens = max_tokens
        self.json_schema = json_schema
        if vocabulary is None and store is not None:
            vocabulary = graph_relations(store)
        self.mapper = RelationMapper(vocabulary) if vocabulary is not None else None

    def _response_format(self) -> dict[str, Any] | None:
        if not self.json_schema:
            return None
        # One schema, from LLMAnswer: strict json_schema for OpenAI-style endpoints, llama.cpp's
        # json_object+schema for the embedded server (LLMClient picks; a refused form is retried).
        return response_format(self.max_triples)

    def ask(self, question: str, context: GraphContext | None = None) -> FallbackResult:
        question = " ".join((question or "").split())
        if not question:
            raise InputError("empty question")
        if len(question) > MAX_QUESTION_CHARS:
            raise InputError(f"question is {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
        context = context or GraphContext()
        suspicious = looks_like_injection(question)
        if suspicious:
            log.warning("question looks like a prompt injection; the fallback only proposes, never writes: %r", question)
        result = FallbackResult(question=question, suspected_injection=suspicious, premises=list(context.facts))
        began = time.monotonic()
        try:
            reply = self.client.complete(
                build_messages(question, context, max_triples=self.max_triples),
                max_tokens=self.max_tokens,
                response_format=self._response_format(),
            )
        except LLMUnavailableError as e:
            log.warning("LLM fallback unavailable: %s", e)
            result.status, result.message = "unavailable", f"LLM unavailable: {e}"
            result.endpoint, result.model = getattr(self.client, "endpoint", ""), getattr(self.client, "model", "")
            result.latency_s = time.monotonic() - began
            return result
        except LLMError as e:
            log.warning("LLM fallback failed: %s", e)
            result.status, result.message = "unavailable", f"LLM error: {e}"
            result.latency_s = time.monotonic() - began
            return result
        result.raw_answer, result.endpoint, result.model = reply.text, reply.endpoint, reply.model
        parsed = parse_reply(reply.text, max_triples=self.max_triples)
        if parsed.error:
            log.warning("LLM reply is not the expected JSON (%s); raw text: %r", parsed.error, reply.text[:2000])
            if self.on_error is OnError.RAISE:
                raise LLMError(f"the LLM reply is not valid JSON ({parsed.error})")
            result.status = "parse_error"
            result.message = f"the LLM reply could not be parsed ({parsed.error}); no triples proposed"
            if self.on_error is OnError.ANSWER_TEXT:
                result.answer = " ".join(reply.text.split())[:MAX_ANSWER_CHARS]
            result.latency_s = time.monotonic() - began
            return result
        result.answer = parsed.answer
        result.triples = [resolve_triple(t, self.store, self.mapper) for t in parsed.triples]
        result.triples_returned, result.triples_invalid, result.truncated = parsed.returned, parsed.invalid, parsed.truncated
        if parsed.truncated:
            result.message = f"the LLM returned {parsed.returned} triples; kept the first {self.max_triples}"
            log.warning("LLM reply had %d triples; truncated to %d", parsed.returned, self.max_triples)
        result.latency_s = time.monotonic() - began
        return result
