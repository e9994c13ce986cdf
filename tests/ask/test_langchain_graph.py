"""LangChain's GraphStore over the embedded store: GraphCypherQAChain (langchain-neo4j, the real package)
runs read-only on the tiny graph; add_graph_documents writes through review statuses.

The chain tests use LangChain's fake chat model with a fixed Cypher string (the wiring); one slow test
drives the chain with the real embedded LLM (SmolLM2-135M served by llama.cpp).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_neo4j", reason="pip install 'qa-system[langchain]'")

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_neo4j import GraphCypherQAChain
from langchain_neo4j.graphs.graph_document import GraphDocument, Node, Relationship
from langchain_neo4j.graphs.graph_store import GraphStore

from graph.embedded import EmbeddedStore
from qa_system.ask.langchain_graph import LangChainGraph
from qa_system.errors import InputError, QueryError, ReadOnlyViolationError
from qa_system.ingest.langchain_documents import document_id
from qa_system.types import FactStatus, SourceKind, fact_id
from tests.conftest import write_tiny_kg
from tests.graph.bolt_server import bolt_server, neo4j_store  # noqa: F401  (fixtures)

DIRECTED_INCEPTION = (
    "MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE o.name = 'Inception' AND f.rel_type = '/film/director/film' "
    "AND f.status IN ['verified', 'extracted'] RETURN s.name AS director"
)


@pytest.fixture()
def graph(tiny_store: EmbeddedStore, tmp_path: Path) -> LangChainGraph:
    return LangChainGraph(tiny_store, workspace=tmp_path / "tiny-ws")


def chain(graph: LangChainGraph, *replies: str, **kwargs) -> GraphCypherQAChain:
    llm = FakeListChatModel(responses=list(replies))
    return GraphCypherQAChain.from_llm(llm, graph=graph, allow_dangerous_requests=True, return_intermediate_steps=True, **kwargs)


def test_it_is_a_langchain_graph_store_with_our_schema(graph: LangChainGraph) -> None:
    assert isinstance(graph, GraphStore)
    schema = graph.get_structured_schema
    assert schema["relationships"] == [{"start": "Entity", "type": "Fact", "end": "Entity"}]
    fact_props = {p["property"]: p for p in schema["rel_props"]["Fact"]}
    assert fact_props["rel_type"]["values"][0] in {"/film/director/film", "/film/film/genre", "/people/person/nationality"}
    assert fact_props["rel_type"]["distinct_count"] == 4
    assert fact_props["status"]["values"] == ["verified", "extracted", "proposed", "rejected"]
    assert {p["property"] for p in schema["node_props"]["Entity"]} >= {"id", "name", "aliases", "description"}
    text = graph.get_schema
    assert "(:Entity)-[:Fact]->(:Entity)" in text and "f.rel_type" in text and "'/film/film/starring' (starring; 2 facts)" in text


def test_query_runs_read_only_cypher_with_parameters(graph: LangChainGraph, tiny_store: EmbeddedStore) -> None:
    rows = graph.query("MATCH (e:Entity) WHERE e.name = $name RETURN e.id AS id", {"name": "Christopher Nolan"})
    assert rows == [{"id": "/m/nolan"}]
    for write in ("MATCH (n:Entity) DETACH DELETE n", "CREATE (e:Entity {id: 'x', name: 'x'}) RETURN e",
                  "MATCH (e:Entity) SET e.name = 'x' RETURN e"):  # fmt: skip
        with pytest.raises(ReadOnlyViolationError):
            graph.query(write)
    with pytest.raises(QueryError):
        graph.query("MATCH (e:Nope) RETURN e")
    assert tiny_store.stats().facts == 11 and tiny_store.get_entity("/m/nolan").name == "Christopher Nolan"


def test_graph_cypher_qa_chain_answers_from_the_embedded_store(graph: LangChainGraph) -> None:
    qa = chain(graph, f"```cypher\n{DIRECTED_INCEPTION}\n```", "Christopher Nolan directed Inception.")
    assert "`rel_type`: STRING Available options: ['/film/director/film'" in qa.graph_schema
    assert "Available options: ['verified', 'extracted', 'proposed', 'rejected']" in qa.graph_schema
    out = qa.invoke({"query": "Who directed Inception?"})
    assert out["result"] == "Christopher Nolan directed Inception."
    assert out["intermediate_steps"][0]["query"].strip() == DIRECTED_INCEPTION
    assert out["intermediate_steps"][1]["context"] == [{"director": "Christopher Nolan"}]


def test_our_cypher_prompt_carries_the_storage_notes_and_relation_types(graph: LangChainGraph) -> None:
    prompt = graph.cypher_prompt()
    text = prompt.format(schema="SCHEMA", examples="", question="Who directed Inception?")
    assert "SCHEMA" in text and "never write type(f)" in text and "'/film/director/film' (film; 3 facts)" in text
    assert text.rstrip().endswith("Who directed Inception?")
    qa = chain(graph, DIRECTED_INCEPTION, "Christopher Nolan.", cypher_prompt=prompt)
    assert qa.invoke({"query": "Who directed Inception?"})["intermediate_steps"][1]["context"] == [{"director": "Christopher Nolan"}]


def test_a_generated_write_is_refused_and_nothing_changes(graph: LangChainGraph, tiny_store: EmbeddedStore) -> None:
    qa = chain(graph, "MATCH (n:Entity) DETACH DELETE n", "done")
    with pytest.raises(ReadOnlyViolationError):
        qa.invoke({"query": "Delete everything"})
    assert tiny_store.stats().facts == 11 and tiny_store.stats().entities == 12


def _tenet_document(**source_metadata) -> GraphDocument:
    nolan, tenet = Node(id="Christopher Nolan", type="Person"), Node(id="Tenet", type="Movie", properties={"released": 2020})
    inception = Node(id="Inception", type="Movie")
    return GraphDocument(
        nodes=[nolan, tenet, inception],
        relationships=[
            Relationship(source=nolan, target=tenet, type="DIRECTED", properties={"confidence": 0.8}),
            Relationship(source=nolan, target=inception, type="/film/director/film"),  # verified in the graph already
            Relationship(source=nolan, target=nolan, type="KNOWS"),  # a self-loop: skipped
        ],
        source=Document(page_content="Christopher Nolan directed Tenet (2020) and Inception.", metadata=source_metadata)
        if source_metadata else None,
    )  # fmt: skip


def test_graph_documents_are_written_as_proposed_for_review(graph: LangChainGraph, tiny_store: EmbeddedStore) -> None:
    result = graph.add_graph_documents([_tenet_document(source="tenet.txt")])
    assert result["status"] == "proposed" and result["facts_added"] == 2 and result["facts_unchanged"] == 1
    assert result["entities_added"] == 2 and len(result["skipped"]) == 1  # Tenet and its release-year literal
    tenet = tiny_store.find_entities("Tenet")[0]
    assert tenet.id.startswith("ext:") and tenet.type == "Movie"
    directed = tiny_store.get_fact(fact_id("/m/nolan", "DIRECTED", tenet.id))  # "Christopher Nolan" resolved to /m/nolan
    assert directed.status is FactStatus.PROPOSED and directed.confidence == pytest.approx(0.8)
    assert directed.provenance.source_kind is SourceKind.EXTRACTOR and directed.provenance.properties == {"confidence": 0.8}
    assert directed.provenance.document_id.startswith("tenet-") and "directed Tenet" in directed.provenance.sentence
    proposed = {f.relation for f in tiny_store.list_facts(statuses=[FactStatus.PROPOSED])}
    assert proposed == {"DIRECTED", "released"}  # both wait for a maintainer
    assert tiny_store.get_fact(fact_id("/m/nolan", "/film/director/film", "/m/inception")).status is FactStatus.VERIFIED
    assert "'DIRECTED'" in graph.get_schema  # the schema shows new relation types
    again = graph.add_graph_documents([_tenet_document(source="tenet.txt")])
    assert again["facts_added"] == 0 and again["entities_added"] == 0 and again["facts_unchanged"] == 3


def test_extracted_needs_the_source_and_verified_is_refused(graph: LangChainGraph, tiny_store: EmbeddedStore) -> None:
    with pytest.raises(InputError, match="no source Document"):
        graph.add_graph_documents([_tenet_document()], status="extracted")
    for status in ("verified", "rejected", "bogus"):
        with pytest.raises(InputError):
            graph.add_graph_documents([_tenet_document(source="tenet.txt")], status=status)
        with pytest.raises(InputError):
            LangChainGraph(tiny_store, status=status)
    assert tiny_store.stats().facts == 11
    doc = _tenet_document(source="tenet.txt")
    result = graph.add_graph_documents([doc], status=FactStatus.EXTRACTED)
    assert result["status"] == "extracted" and result["facts_added"] == 2
    written = tiny_store.facts_of_document(document_id(doc.source))  # what `qa-system forget` takes back
    assert {f.relation for f in written} == {"DIRECTED", "released"} and {f.status for f in written} == {FactStatus.EXTRACTED}


@pytest.mark.neo4j
def test_the_same_adapter_works_over_the_bolt_store(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from graph.importers import import_kg

    bolt_store = request.getfixturevalue("neo4j_store")  # ArcadeDB's Bolt server, or NEO4J_URI
    import_kg(bolt_store, write_tiny_kg(tmp_path / "kg"))
    graph = LangChainGraph(bolt_store, workspace=tmp_path / "ws")
    out = chain(graph, DIRECTED_INCEPTION, "Christopher Nolan.").invoke({"query": "Who directed Inception?"})
    assert out["intermediate_steps"][1]["context"] == [{"director": "Christopher Nolan"}]
    with pytest.raises(ReadOnlyViolationError):
        graph.query("MATCH (n:Entity) DETACH DELETE n")
    assert graph.add_graph_documents([_tenet_document(source="tenet.txt")])["facts_added"] == 2
    assert {f.relation for f in bolt_store.list_facts(statuses=[FactStatus.PROPOSED])} == {"DIRECTED", "released"}


@pytest.mark.slow
def test_the_chain_runs_with_the_real_embedded_llm(graph: LangChainGraph, tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI

    from qa_system.fallback.local_server import LocalLLMServer, llama_server_installed

    if not llama_server_installed():
        pytest.skip("llama-cpp-python[server] is not installed (pip install 'qa-system[llm]')")
    server = LocalLLMServer(tmp_path / "llm-ws", n_threads=1)
    base_url = server.start()
    try:
        llm = ChatOpenAI(base_url=base_url, api_key="local", model=server.alias, temperature=0, max_tokens=60, timeout=120)
        qa = GraphCypherQAChain.from_llm(
            llm, graph=graph, allow_dangerous_requests=True, return_intermediate_steps=True,
            cypher_llm_kwargs={"prompt": graph.cypher_prompt(), "stop": ["\n"]},  # one line: SmolLM2 rambles on after the query
        )  # fmt: skip
        example = ("# Which films did James Cameron direct?\nMATCH (s:Entity)-[f:Fact]->(o:Entity) "
                   "WHERE s.name = 'James Cameron' AND f.rel_type = '/film/director/film' RETURN o.name")  # fmt: skip
        out = qa.invoke({"query": "Which films did Christopher Nolan direct?", "examples": example})
    finally:
        server.stop()
    assert "Christopher Nolan" in out["intermediate_steps"][0]["query"]
    assert sorted(row["o.name"] for row in out["intermediate_steps"][1]["context"]) == ["Inception", "Memento"]
    assert out["result"].strip()
