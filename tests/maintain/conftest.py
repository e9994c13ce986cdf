"""Fixtures of the maintainer tests: the tiny KG on each backend (``kg``), the CLI pointed at it
(``cli_env``), and helpers to propose facts and compare the whole graph before and after."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_system.types import Fact, FactStatus, Provenance, SourceKind
from tests.conftest import write_tiny_kg
from tests.graph.bolt_server import bolt_server, neo4j_store  # noqa: F401  (fixtures)


@pytest.fixture(params=["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def kg(request: pytest.FixtureRequest, tmp_path: Path):
    """(store holding the tiny KG, workspace folder, backend name)."""

    from graph.importers import import_kg

    if request.param == "embedded":
        from graph.embedded import EmbeddedStore

        store = EmbeddedStore.open(tmp_path / "ws")
        request.addfinalizer(store.close)
    else:
        store = request.getfixturevalue("neo4j_store")
    import_kg(store, write_tiny_kg(tmp_path / "kg"))
    return store, tmp_path / "ws", request.param


def _llm(question: str = "q?") -> Provenance:
    return Provenance(source_kind=SourceKind.LLM, model="fake", question=question, premises=["p"], scores=[0.9], score=0.9)


def _propose(store, *triples: tuple[str, str, str]) -> list[str]:
    facts = [Fact(subject=s, relation=r, object=o, status=FactStatus.PROPOSED, confidence=0.9, provenance=_llm()) for s, r, o in triples]
    store.upsert_facts(facts)
    return [f.id for f in facts]


def snapshot(store) -> dict:
    facts = {f.id: (f.status, f.confidence, f.provenance.model_dump_json()) for f in store.list_facts(statuses=list(FactStatus), limit=10_000)}
    entities = {i: store.get_entity(i) for f in store.list_facts(statuses=list(FactStatus), limit=10_000) for i in (f.subject, f.object)}
    return {"facts": facts, "entities": entities, "stats": store.stats()}


@pytest.fixture()
def cli_env(kg, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The CLI pointed at the same store as ``kg`` (Neo4j through the environment)."""

    for name in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    if kg[2] == "neo4j":
        server = request.getfixturevalue("bolt_server")
        monkeypatch.setenv("NEO4J_URI", server.uri)
        monkeypatch.setenv("NEO4J_USER", server.user)
        monkeypatch.setenv("NEO4J_PASSWORD", server.password)
        if server.database:
            monkeypatch.setenv("NEO4J_DATABASE", server.database)
