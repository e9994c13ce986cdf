"""What the app's tabs render alike: readable relation labels, provenance lines, status colours, the entity card.

Why one module: Ask, Explore, Dashboard, Ingest, Review and the graph picture all show facts; one
place keeps a relation, a status or a provenance looking the same on every tab (and keeps the tabs
from importing each other).
"""

from __future__ import annotations

import html
from typing import Any

from qa_system.explore import STATUS_ORDER, FactCounts
from qa_system.types import Provenance

STATUS_COLOURS = {"verified": "#1a7f37", "extracted": "#0969da", "proposed": "#9a6700", "rejected": "#cf222e"}


def relation_label(relation: str) -> str:
    """A readable label for a relation id: ``/film/film/starring./film/performance/actor`` → ``starring › actor``."""

    parts = [p for p in relation.split(".") if p]
    names = [p.rstrip("/").rsplit("/", 1)[-1].replace("_", " ") for p in parts]
    segments = [s for s in relation.split("/") if s]
    if len(parts) == 1 and len(segments) >= 3 and segments[-1] == segments[0]:  # /film/director/film
        names = [segments[-2].replace("_", " "), names[0]]
    return " › ".join(n for n in names if n) or relation


def provenance_text(p: Provenance) -> str:
    kind = getattr(p.source_kind, "value", str(p.source_kind))
    if kind == "dataset":
        text = f"dataset {p.dataset or '?'}" + (f" ({p.split})" if p.split else "")
    elif kind == "extractor":
        text = f"extracted from {p.document_id or 'a document'}" + (f": “{p.sentence[:160]}”" if p.sentence else "")
    elif kind == "llm":
        text = f"proposed by LLM {p.model or ''}".rstrip() + (f", entailment {max(p.scores):.2f}" if p.scores else "")
    else:
        text = "entered by a maintainer"
    if p.reviewer:
        text += f"; reviewed by {p.reviewer}"
    return text


def facts_html(counts: FactCounts) -> str:
    """The card's facts: one row per relation (readable label, raw id on hover), counts per status."""

    esc = html.escape
    if not counts.by_relation:
        return "<p><small>No facts about this entity.</small></p>"
    head = "".join(
        f'<th style="text-align:right;padding:2px 6px;color:{STATUS_COLOURS[s.value]}">{s.value}</th>' for s in STATUS_ORDER
    )
    rows = []
    for relation, by_status in counts.by_relation.items():
        cells = "".join(
            f'<td style="text-align:right;padding:2px 6px">{by_status.get(s.value, 0) or "·"}</td>' for s in STATUS_ORDER
        )
        rows.append(f'<tr><td title="{esc(relation, quote=True)}" style="padding:2px 6px">{esc(relation_label(relation))}</td>{cells}</tr>')
    note = f" (counted over a sample of {counts.total})" if counts.sampled else ""
    return (
        f'<details open class="entity-facts"><summary>{counts.total} facts by relation and status{note}</summary>'
        f'<table style="border-collapse:collapse;font-size:0.9em"><thead><tr><th style="text-align:left;padding:2px 6px">relation</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def card_html(entity: Any, counts: FactCounts | None = None) -> str:
    """Entity card; every value is escaped (names come from data and users)."""

    esc = html.escape
    image = (
        f'<img src="{esc(entity.image_url, quote=True)}" alt="" style="max-width:160px;float:right;border-radius:8px">'
        if entity.image_url
        else ""
    )
    link = (
        f'<a href="{esc(entity.url, quote=True)}" target="_blank" rel="noopener noreferrer">Wikipedia</a>'
        if entity.url.startswith(("https://", "http://"))
        else ""
    )
    aliases = f"<div><small>also: {esc(', '.join(entity.aliases[:8]))}</small></div>" if entity.aliases else ""
    return (
        f'<div class="entity-card" style="padding:12px;border:1px solid #ddd;border-radius:10px">{image}'
        f"<h3 style='margin:0'>{esc(entity.name)}</h3>"
        f"<div><code>{esc(entity.id)}</code> · <em>{esc(entity.type or 'entity')}</em></div>"
        f"<p>{esc(entity.description or 'No description.')}</p>{aliases}<div>{link}</div>"
        f"{facts_html(counts) if counts is not None else ''}</div>"
    )
