"""The ask pipeline the LangChain way, so users plug the graph into their own chains.

- :class:`GraphEvidenceRetriever` is a ``BaseRetriever``: a question in, ``Document`` objects out -
  one per evidence triple (the path from topic entity to answer, with status and provenance in the
  metadata) and one passage per entity description (topic entities and the answer).
- :func:`answer_runnable` is a ``Runnable`` that answers: a question (or ``{"question": ...}``) in,
  the pipeline's :class:`~qa_system.types.Answer` out; ``batch`` keeps input order.

Both wrap one loaded :class:`~qa_system.ask.pipeline.AskPipeline`; nothing is reloaded per call.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from qa_system.types import Answer, FactView


def _relation_text(relation: str) -> str:
    """``/film/film/directed_by`` -> ``directed by`` (the last path segment, readable)."""

    return relation.rstrip("/").rsplit("/", 1)[-1].replace("_", " ") or relation


def fact_document(fact: FactView, question: str) -> Document:
    return Document(
        page_content=f"{fact.subject_name} — {_relation_text(fact.relation)} — {fact.object_name}",
        metadata={
            "kind": "triple",
            "fact_id": fact.id,
            "subject": fact.subject,
            "relation": fact.relation,
            "object": fact.object,
            "status": fact.status.value,
            "confidence": fact.confidence,
            "provenance": {k: v for k, v in fact.provenance.model_dump(mode="json").items() if v not in ("", None, [], {})},
            "question": question,
        },
    )


def answer_documents(answer: Answer) -> list[Document]:
    """Evidence triples first, then the descriptions of the topic entities and the answer."""

    docs = [fact_document(f, answer.question) for f in answer.evidence]
    entities = [*answer.topic_entities, *([answer.answer] if answer.answer else [])]
    seen: set[str] = set()
    for entity in entities:
        if entity.id in seen or not entity.description:
            continue
        seen.add(entity.id)
        docs.append(Document(
            page_content=f"{entity.name}: {entity.description}",
            metadata={"kind": "passage", "entity_id": entity.id, "entity_name": entity.name, "question": answer.question},
        ))
    return docs


class GraphEvidenceRetriever(BaseRetriever):
    """Documents supporting the graph's answer to a question (empty when the graph names no entity)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Any  # AskPipeline (typed loosely so tests can pass a fake)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return answer_documents(self.pipeline.ask(query))


def _question_of(value: Any) -> Any:
    if isinstance(value, dict):
        if "question" not in value:
            raise KeyError("the input mapping needs a 'question' key")
        return value["question"]
    return value


def answer_runnable(pipeline: Any) -> Runnable[Any, Answer]:
    """A Runnable answering with ``pipeline`` (bad questions raise the pipeline's ``InputError``)."""

    return RunnableLambda(lambda value: pipeline.ask(_question_of(value)), name="qa_system_ask")
