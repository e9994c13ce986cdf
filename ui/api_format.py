"""The HTTP API's request bodies and how answers and facts are written back (JSON, cited reply text).

Why apart from ``ui.api``: the routes (keys, rate limits, errors) and the shapes they exchange change
for different reasons; the OpenAI-compatible reply text and its citations are tested on their own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qa_system.errors import InputError
from qa_system.relations import readable_relation
from qa_system.types import Answer, FactView, Provenance

MODEL_ID = "qa-system"
MAX_INGEST_CHARS = 1_000_000  # one document (``qa_system.ingest.documents.PART_CHARS``); larger corpora: `qa-system ingest`
MAX_CITATIONS = 8


# -- request bodies -----------------------------------------------------------------------------------
class AskRequest(BaseModel):
    question: str = Field(description="the question, in English", examples=["Who directed Inception?"])
    fallback: bool = Field(False, description="when the graph is not sure, ask the LLM and check its claims (slow)")


class IngestRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_INGEST_CHARS, description="the document's text")
    id: str | None = Field(None, min_length=1, max_length=200, description="document id (default: title or 'api' + a hash of the text)")
    title: str | None = Field(None, max_length=500, description="where the text comes from (kept as the document's source)")
    dry_run: bool = Field(False, description="extract and resolve only: say what would be added, write nothing")


class ReviewRequest(BaseModel):
    reason: str = Field("", max_length=2000, description="why (required to reject)")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted and ignored

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    fallback: bool = Field(False, description="extra field: ask the LLM fallback when the graph is not sure")


# -- rendering --------------------------------------------------------------------------------------------
def fact_json(view: FactView) -> dict[str, Any]:
    return view.model_dump(mode="json") | {"relation_name": readable_relation(view.relation)}


def source_label(p: Provenance) -> str:
    kind = getattr(p.source_kind, "value", str(p.source_kind))
    if kind == "dataset":
        return p.dataset or "dataset"
    if kind == "extractor":
        return f"extracted from {p.document_id or 'a document'}"
    if kind == "llm":
        return f"proposed by LLM {p.model}".strip()
    return f"entered by {p.reviewer or 'a maintainer'}"


def citation(view: FactView) -> str:
    return (f"{view.subject_name} — {readable_relation(view.relation)} → {view.object_name} "
            f"({view.status.value}; {source_label(view.provenance)})")


def reply_text(answer: Answer) -> str:
    """The chat reply: the answer with numbered citations of its evidence, then the citations."""

    cited = answer.evidence[:MAX_CITATIONS]
    marks = "".join(f"[{i}]" for i in range(1, len(cited) + 1))
    notes: list[str] = []
    if answer.answer is None:
        head = answer.message or "I could not find an answer in the graph."
    else:
        head = f"{answer.answer.name} {marks}".strip()
        if answer.source == "graph-unsure":
            notes.append(f"Not sure: confidence {answer.confidence:.0%}.")
        elif answer.source == "llm":
            checked = "a supporting claim passed entailment" if answer.validated else "not supported by the graph"
            notes.append(f"Answered by the LLM fallback ({checked}).")
        if answer.message:
            notes.append(answer.message)
    parts = [head, " ".join(notes)] if notes else [head]
    if cited:
        parts.append("\n".join(f"[{i}] {citation(f)}" for i, f in enumerate(cited, 1)))
    return "\n\n".join(parts)


def question_of(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
                content = " ".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
            return content or ""
    raise InputError("no user message: the last user message is the question")


def _document_id(body: IngestRequest) -> str:
    if body.id:
        return body.id.strip()
    stem = re.sub(r"[^\w.-]+", "_", body.title or "").strip("_")[:80] or "api"
    return f"{stem}-{hashlib.sha1(body.text.encode('utf-8')).hexdigest()[:10]}"


def _preview_triple(t: Any) -> dict[str, Any]:
    s = t.sentence
    return {
        "action": t.action, "reason": t.reason, "fact_id": t.fact_id or None, "score": round(float(t.score), 4),
        "subject": {"id": t.subject_id, "name": t.subject_name, "text": t.subject_text, "new": t.subject_new},
        "relation": t.relation, "relation_name": readable_relation(t.relation),
        "object": {"id": t.object_id, "name": t.object_name, "text": t.object_text, "new": t.object_new},
        "sentence": {"document_id": s.document_id, "text": s.text, "start": s.start, "end": s.end},
    }  # fmt: skip
