"""The ``store`` fixture runs every contract test on each backend: embedded always, Neo4j (Bolt) under the marker."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.graph.bolt_server import bolt_server, neo4j_store  # noqa: F401  (fixtures)
from tests.graph.movies_source import movies_source  # noqa: F401  (fixture)


@pytest.fixture()
def embedded_store(tmp_path: Path) -> Iterator[object]:
    from graph.embedded import EmbeddedStore

    store = EmbeddedStore.open(tmp_path / "ws")
    yield store
    store.close()


@pytest.fixture(params=["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest) -> object:
    return request.getfixturevalue("embedded_store" if request.param == "embedded" else "neo4j_store")
