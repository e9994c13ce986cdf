"""The LangChain retriever and Runnable over the ask pipeline (tiny real graph, fake linker/ranker)."""

from __future__ import annotations

import pytest
from langchain_core.runnables import RunnablePassthrough

from graph.embedded import EmbeddedStore
from qa_system.ask.langchain_integration import GraphEvidenceRetriever, answer_runnable
from qa_system.errors import InputError
from tests.ask.test_pipeline import pipeline


def test_retriever_returns_the_evidence_triples_with_provenance(tiny_store: EmbeddedStore) -> None:
    retriever = GraphEvidenceRetriever(pipeline=pipeline(tiny_store, {"/m/nolan": 0.9}))
    docs = retriever.invoke("Who directed Inception?")
    triples = [d for d in docs if d.metadata["kind"] == "triple"]
    assert [d.page_content for d in triples] == ["Christopher Nolan — film — Inception"]
    assert triples[0].metadata["status"] == "verified" and triples[0].metadata["fact_id"]
    assert triples[0].metadata["provenance"]["source_kind"] == "dataset"
    assert all(d.metadata["question"] == "Who directed Inception?" for d in docs)


def test_retriever_is_empty_when_no_entity_is_named(tiny_store: EmbeddedStore) -> None:
    retriever = GraphEvidenceRetriever(pipeline=pipeline(tiny_store, {}))
    assert retriever.invoke("What is the capital of Atlantis?") == []


def test_runnable_answers_in_a_chain_and_keeps_batch_order(tiny_store: EmbeddedStore) -> None:
    chain = RunnablePassthrough() | answer_runnable(pipeline(tiny_store, {"/m/nolan": 0.9}))
    answer = chain.invoke({"question": "Who directed Inception?"})
    assert answer.answer.name == "Christopher Nolan"
    batch = chain.batch(["Who directed Memento?", "What is the capital of Atlantis?"])
    assert batch[0].answer.name == "Christopher Nolan" and batch[1].answer is None


def test_runnable_surfaces_bad_questions(tiny_store: EmbeddedStore) -> None:
    runnable = answer_runnable(pipeline(tiny_store, {}))
    with pytest.raises(InputError):
        runnable.invoke("   ")
    with pytest.raises(KeyError, match="question"):
        runnable.invoke({"q": "Who directed Inception?"})
