"""Looking entities up for people: resolution by id or name, suggestions, first-run demo import.

Shared by the CLI and the app so both behave the same.
"""

from __future__ import annotations

import logging
from typing import Any

from qa_system.errors import EntityNotFoundError, InputError
from qa_system.types import Entity

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 500


def resolve_entity(store: Any, id_or_name: str) -> Entity:
    """An entity by id, else by exact name/alias (case-insensitive); unknown → EntityNotFoundError."""

    text = (id_or_name or "").strip()
    if not text:
        raise InputError("empty entity name")
    if len(text) > MAX_NAME_CHARS:
        raise InputError(f"entity name is {len(text)} characters; the limit is {MAX_NAME_CHARS}")
    entity = store.get_entity(text)
    if entity is not None:
        return entity
    matches = store.find_entities(text, limit=5)
    if matches:
        return matches[0]
    suggestions = [e.name for e in store.search_entities(text, limit=5)]
    hint = f"; did you mean: {', '.join(suggestions)}" if suggestions else ""
    raise EntityNotFoundError(f"unknown entity {text!r} (no id, name or alias matches){hint}")


def ensure_demo_graph(store: Any) -> bool:
    """Import the shipped demo graph when the store is empty (first start). True when it imported."""

    if store.stats().entities > 0:
        return False
    from graph.importers import import_kg

    log.info("empty graph: importing the FB15k-237 demo graph (first start, about 15 s)")
    import_kg(store, "demo")
    return True
