"""``open_store``: the one place that picks a ``GraphStore`` implementation from the settings.

It lives apart from the protocol (``graph.store``) because it imports the implementations, and
they import the protocol's types: in ``graph.store`` it made an import cycle.
"""

from __future__ import annotations

from typing import Any

from graph.store import GraphStore


def open_store(settings: Any, *, read_only: bool = False) -> GraphStore:
    """The store the settings point at: Neo4j when ``NEO4J_URI`` is set, else embedded LadybugDB."""

    if settings.graph_backend == "neo4j":
        from graph.neo4j_store import Neo4jStore

        return Neo4jStore.from_settings(settings)
    from graph.embedded import EmbeddedStore

    return EmbeddedStore.open(settings.workspace, read_only=read_only)
