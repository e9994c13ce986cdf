"""Turning database rows into our types, and our types into parameter dicts (both backends)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qa_system.types import Entity, Fact, FactStatus, FactView, Provenance, SourceKind, utc_now


def entity_from_row(row: Sequence[Any]) -> Entity:
    ident, name, aliases, etype, description, image_url, url = row
    return Entity.model_construct(
        id=ident,
        name=name or ident,
        aliases=tuple(aliases or ()),
        type=etype or "",
        description=description or "",
        image_url=image_url or "",
        url=url or "",
    )


_SHARED_PROVENANCE: dict[tuple[str, str, str], Provenance] = {}


def provenance_from_columns(source_kind: str | None, dataset: str | None, split: str | None, blob: str | None) -> Provenance:
    """Dataset facts store no JSON (300k copies of the same record); others store the full record.

    Dataset records are shared instances (building one per row was most of a neighbour read's
    time); treat provenance as immutable and ``model_copy`` it to change it."""

    if blob:
        return Provenance.model_validate_json(blob)
    key = (source_kind or "dataset", dataset or "", split or "")
    record = _SHARED_PROVENANCE.get(key)
    if record is None:
        record = _SHARED_PROVENANCE.setdefault(key, Provenance(source_kind=SourceKind(key[0]), dataset=key[1], split=key[2]))
    return record


def oriented(row: Sequence[Any]) -> list[Any]:
    """A fact row (``FACT_COLUMNS``) with its true ends: an embedded undirected match binds ``s``
    to the node it started from, and a 13th column (``f.subject``) then says which end is the
    subject; rows without it (directed matches, Neo4j) are already oriented."""

    row = list(row)
    if len(row) > 12 and row[12] != row[1]:
        row = [row[0], row[4], row[5], row[3], row[1], row[2], *row[6:12]]
    return row[:12]


def fact_from_row(row: Sequence[Any], hop: int = 1) -> FactView:
    fid, s, s_name, rel, o, o_name, status, confidence, split, source_kind, dataset, blob = row
    # Built without validation (values come from our own schema): this runs for every row read.
    view = object.__new__(FactView)
    object.__setattr__(
        view,
        "__dict__",
        {
            "id": fid,
            "subject": s,
            "subject_name": s_name or s,
            "relation": rel,
            "object": o,
            "object_name": o_name or o,
            "status": _STATUS[status],
            "confidence": float(confidence if confidence is not None else 1.0),
            "provenance": provenance_from_columns(source_kind, dataset, split, blob),
            "hop": hop,
        },
    )
    object.__setattr__(view, "__pydantic_fields_set__", _FACT_VIEW_FIELDS)
    object.__setattr__(view, "__pydantic_extra__", None)
    object.__setattr__(view, "__pydantic_private__", None)
    return view


_STATUS = {s.value: s for s in FactStatus}
_FACT_VIEW_FIELDS = set(FactView.model_fields)


def entity_params(entity: Entity, now: str) -> dict[str, Any]:
    return {
        "id": entity.id,
        "name": entity.name,
        "aliases": list(entity.aliases),
        "type": entity.type,
        "description": entity.description,
        "image_url": entity.image_url,
        "url": entity.url,
        "now": now,
    }


def fact_params(fact: Fact, now: str) -> dict[str, Any]:
    prov = fact.provenance
    is_plain_dataset = prov.source_kind == SourceKind.DATASET and not (prov.reviewer or prov.sentence or prov.model or prov.properties)
    return {
        "id": fact.id,
        "rnd": fact_rank(fact.id),
        "subject": fact.subject,
        "relation": fact.relation,
        "object": fact.object,
        "status": fact.status.value,
        "confidence": float(fact.confidence),
        "split": prov.split,
        "source_kind": prov.source_kind.value,
        "dataset": prov.dataset,
        "provenance": "" if is_plain_dataset else prov.model_dump_json(),
        "now": now,
    }


def fact_rank(fact_id_hex: str) -> float:
    """A fixed, uniform random rank in [0, 1) per fact (from its SHA-1 id): lets the embedded store
    sample a hub's facts with an indexed-free range filter instead of reading thousands of rows."""

    return int(fact_id_hex[:8], 16) / 2**32


def now_iso() -> str:
    return utc_now().isoformat()


def reviewed_provenance(view: FactView, reviewer: str, reason: str) -> str:
    record = view.provenance.model_copy(update={"reviewer": reviewer, "reviewed_at": utc_now(), "review_reason": reason})
    return record.model_dump_json()


def count_rows(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    return {str(key if key is not None else ""): int(count) for key, count in rows}


def json_safe(value: Any) -> Any:
    """Plain JSON values only (driver node/rel objects become dicts)."""

    if value is None or type(value) in (str, int, float, bool):  # most columns: no json.dumps round trip
        return value
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): json_safe(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [json_safe(v) for v in value]
        return str(value)
