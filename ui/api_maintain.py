"""The HTTP API's curator routes: forget a document, merge entities, read the audit trail, undo.

Why apart from ``ui.api``: these are the maintainers' graph actions of ``qa_system.maintain``, the same
functions ``qa-system forget | merge | review log | review undo`` and the app's panels call, under
the key's account name (its role checked: forget, merge and undo are curator actions). Each action
is one store transaction with its audit event, so two servers on one database stay consistent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field


class ForgetRequest(BaseModel):
    document: str = Field(min_length=1, max_length=1000, description="a document id, or the path of an ingested file")
    reason: str = Field("", max_length=2000, description="why (kept in the audit trail)")
    dry_run: bool = Field(False, description="only say what would be removed")


class MergeRequest(BaseModel):
    keep: str = Field(min_length=1, max_length=1000, description="the entity id that stays")
    duplicates: list[str] = Field(min_length=1, max_length=100, description="entity ids folded into the kept one")
    reason: str = Field("", max_length=2000, description="why (kept in the audit trail)")


class UndoRequest(BaseModel):
    reason: str = Field("", max_length=2000, description="why (kept in the audit trail)")


def add_maintain_routes(v1: APIRouter, store: Any, workspace: Callable[[], Path], maintainer: Callable[..., str], keys: Any) -> None:
    """Add the routes to ``v1``; ``maintainer`` is the API's key dependency (it returns the key's
    account name), ``keys.require(name, action)`` refuses a role that may not (403)."""

    from qa_system.maintain import actions, events

    @v1.post("/forget", tags=["maintainers"],
             summary="Take back an ingested document: its facts, the entities only it made, its passages (curator)")
    def forget(body: ForgetRequest, user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        keys.require(user, "forget")
        report = actions.forget_document(store, workspace(), body.document, dry_run=body.dry_run, reason=body.reason, reviewer=user)
        return {**report.model_dump(mode="json"), "counts": report.counts()}

    @v1.post("/merge", tags=["maintainers"], summary="Fold duplicates into the kept entity: facts move, names become aliases (curator)")
    def merge(body: MergeRequest, user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        keys.require(user, "merge")
        return actions.merge_entities(store, workspace(), body.keep, body.duplicates, reason=body.reason, reviewer=user).model_dump(mode="json")

    @v1.get("/events", tags=["maintainers"], summary="The maintainers' audit trail, newest first")
    def audit_trail(limit: int = Query(50, ge=1, le=500), about: str | None = Query(None, max_length=500, description="a fact or entity id"),
                    _user: str = Depends(maintainer)) -> list[dict[str, Any]]:  # noqa: B008
        return [events.summary(e) for e in events.list_events(store, limit, about=about)]

    @v1.post("/events/{event_id}/undo", tags=["maintainers"],
             summary="Revert an event when no later event depends on it (409 names the one that does) (curator)")
    def undo(event_id: str, body: UndoRequest | None = None, user: str = Depends(maintainer)) -> dict[str, Any]:  # noqa: B008
        keys.require(user, "undo")
        event = actions.undo(store, workspace(), event_id, user, reason=(body or UndoRequest()).reason)
        return events.summary(event)
