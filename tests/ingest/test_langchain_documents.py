"""LangChain Documents into ingest: real loaders (langchain-community's TextLoader and BSHTMLLoader,
langchain-text-splitters) feed the Ingester on the embedded store, and the facts reach ``ask``."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_community", reason="pip install 'qa-system[langchain]'")

from langchain_community.document_loaders import BSHTMLLoader, TextLoader
from langchain_core.documents import Document as LCDocument
from langchain_text_splitters import RecursiveCharacterTextSplitter

from graph.embedded import EmbeddedStore
from qa_system.errors import InputError
from qa_system.ingest.documents import PART_CHARS, read_documents
from qa_system.ingest.ingester import Ingester
from qa_system.ingest.langchain_documents import (
    document_id,
    from_langchain,
    ingest_langchain_documents,
    preview_langchain_documents,
)
from qa_system.types import FactStatus
from tests.ask.test_pipeline import pipeline
from tests.ingest_support import RuleExtractor

HTML = """<!doctype html><html><head><title>Memento (film)</title></head>
<body><h1>Memento</h1><p>Memento stars Guy Pearce. Christopher Nolan directed Memento.</p></body></html>
"""


def ingester(store: EmbeddedStore, tmp_path: Path) -> Ingester:
    return Ingester(store, RuleExtractor(), workspace=tmp_path / "tiny-ws")


def test_a_text_loader_document_is_the_same_document_as_the_cli_reads(tiny_store: EmbeddedStore, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("Tenet stars John David Washington.\n", encoding="utf-8")
    loaded = TextLoader(str(notes), encoding="utf-8").load()
    assert [d.id for d in from_langchain(loaded)] == [d.id for d in read_documents([notes])]
    summary = ingest_langchain_documents(ingester(tiny_store, tmp_path), loaded)
    assert summary.documents == 1 and summary.triples_added == 1 and summary.new_entities == 2
    fact = tiny_store.facts_of_document(document_id(loaded[0]))[0]
    assert (fact.subject_name, fact.relation, fact.object_name) == ("Tenet", "starring", "John David Washington")
    assert fact.status is FactStatus.EXTRACTED and fact.provenance.sentence == "Tenet stars John David Washington."
    again = ingester(tiny_store, tmp_path).ingest(read_documents([notes]))  # `qa-system ingest notes.md` adds nothing
    assert again.triples_added == 0 and again.triples_merged == 1


def test_html_loader_facts_reach_ask(tiny_store: EmbeddedStore, tmp_path: Path) -> None:
    page = tmp_path / "memento.html"
    page.write_text(HTML, encoding="utf-8")
    # the separator keeps the heading out of the first sentence (the default "" glues "Memento" to "Memento stars")
    loaded = BSHTMLLoader(str(page), open_encoding="utf-8", bs_kwargs={"features": "html.parser"}, get_text_separator="\n").load()
    assert loaded[0].metadata["title"] == "Memento (film)"
    preview = preview_langchain_documents(ingester(tiny_store, tmp_path), loaded)
    assert preview.counts() == {"add": 2, "merge": 0, "skip": 0} and tiny_store.stats().facts == 11  # nothing written
    summary = ingest_langchain_documents(ingester(tiny_store, tmp_path), loaded)
    assert summary.triples_added == 2 and summary.passages_added >= 2
    pearce = tiny_store.find_entities("Guy Pearce")[0]
    answer = pipeline(tiny_store, {pearce.id: 0.9}).ask("Who starred in Memento?")
    assert answer.answer.name == "Guy Pearce"
    evidence = answer.evidence[0]
    assert evidence.status is FactStatus.EXTRACTED and evidence.provenance.document_id == document_id(loaded[0])
    assert evidence.provenance.document_id.startswith("memento-")


def test_splitter_chunks_of_one_source_are_separate_documents(tiny_store: EmbeddedStore, tmp_path: Path) -> None:
    text = "Memento stars Guy Pearce.\n\n" + "Filler words here. " * 20 + "\n\nTitanic stars Kate Winslet."
    chunks = RecursiveCharacterTextSplitter(chunk_size=120, chunk_overlap=0).split_documents(
        [LCDocument(page_content=text, metadata={"source": "https://example.org/films"})]
    )
    assert len(chunks) > 2
    documents = list(from_langchain(chunks))
    # one id per distinct text (repeated filler chunks are one document, ingested once)
    assert len({d.id for d in documents}) == len({c.page_content for c in chunks}) > 2
    assert all(d.id.startswith("films-") for d in documents)
    assert {d.source for d in documents} == {"https://example.org/films"}
    summary = ingest_langchain_documents(ingester(tiny_store, tmp_path), chunks)
    assert summary.triples_added == 2


def test_ids_pages_and_bad_documents() -> None:
    assert document_id(LCDocument(page_content="x", id="doc-7")) == "doc-7"
    assert document_id(LCDocument(page_content="x", metadata={"id": 42})) == "42"
    page = next(from_langchain([LCDocument(page_content="Page three.", metadata={"source": "/tmp/report.pdf", "page": 2})]))
    assert page.source == "/tmp/report.pdf#page=2" and page.id.startswith("report-")
    assert [d.id for d in from_langchain([LCDocument(page_content="a " * PART_CHARS, id="big")])][:2] == ["big#1", "big#2"]
    with pytest.raises(InputError, match="no text"):
        list(from_langchain([LCDocument(page_content="   ", metadata={"source": "empty.txt"})]))
    with pytest.raises(InputError, match="page_content"):
        list(from_langchain(["just a string"]))
