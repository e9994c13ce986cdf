"""One batch of mapped source records and the running counts of an import: the data the importers
hand to a writer.

Why its own module: the mapper (``graph.source_mapping``) produces these and both writers — the
store's own upserts and the embedded bulk path (``graph.embedded_bulk``) — consume them; kept apart,
neither writer has to import the mapper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graph.store import UpsertResult
from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind

# One fact as the mapper emits it: (subject, relation, object, relationship properties or None).
# Plain tuples, not ``Fact`` models: a bulk write turns 100k of them into columns directly, and
# building and re-reading a model per fact was most of an import's Python time.
FactRow = tuple[str, str, str, "dict[str, Any] | None"]


@dataclass
class GraphBatch:
    """What one batch of source records maps to; ``literals`` are the ``lit:`` value nodes and
    ``rows`` the facts (attribute facts and links) as ``FactRow`` tuples."""

    entities: list[Entity] = field(default_factory=list)
    literals: list[Entity] = field(default_factory=list)
    rows: list[FactRow] = field(default_factory=list)
    dataset: str = ""  # the provenance ``dataset`` of every fact of the batch
    unnamed: int = 0
    records: int = 0  # source nodes or relationships this batch came from (progress counts them)

    def __len__(self) -> int:
        return len(self.entities) + len(self.literals) + len(self.rows)

    @property
    def facts(self) -> list[Fact]:
        """The rows as ``Fact`` models (what a store without a bulk path is given)."""

        shared = Provenance(source_kind=SourceKind.DATASET, dataset=self.dataset)
        return [
            Fact.model_construct(
                subject=s, relation=r, object=o, status=FactStatus.VERIFIED, confidence=1.0,
                provenance=Provenance(source_kind=SourceKind.DATASET, dataset=self.dataset, properties=props) if props else shared,
            )
            for s, r, o, props in self.rows
        ]  # fmt: skip

    def extend(self, other: GraphBatch) -> None:
        self.entities += other.entities
        self.literals += other.literals
        self.rows += other.rows
        self.unnamed += other.unnamed
        self.records += other.records


@dataclass
class ImportCounts:
    """Running totals over the batches of one import (what ``ImportSummary`` reports)."""

    entities_added: int = 0
    entities_merged: int = 0
    literals_added: int = 0
    literals_merged: int = 0
    facts_added: int = 0
    facts_merged: int = 0
    unnamed: int = 0

    def add(self, kind: str, result: UpsertResult) -> None:
        setattr(self, f"{kind}_added", getattr(self, f"{kind}_added") + result.added)
        setattr(self, f"{kind}_merged", getattr(self, f"{kind}_merged") + result.merged)
