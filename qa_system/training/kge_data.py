"""Knowledge-graph datasets as id arrays for HittER training and link-prediction evaluation.

``load_kge_dataset`` accepts ``fb15k-237`` (or ``demo``), ``wn18rr``, a folder path, or
``workspace`` (the facts of the current graph store). Ids follow ``KGDataset.entity_ids()`` /
``relation_ids()`` (LibKGE first-appearance order over train, dev, test), so a checkpoint's
vocabulary can be checked against the dataset it is evaluated on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qa_system.errors import DatasetNotFoundError
from qa_system.models.checkpoint import vocab_hash

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


class TripleExporter(Protocol):
    """What ``workspace`` training needs from a graph store."""

    def export_triples(self, statuses: tuple[str, ...] = ("verified", "extracted")) -> list[tuple[str, str, str, str]]: ...


@dataclass
class KGEData:
    """A KG as integer arrays: ``splits[name]`` is an (M, 3) int64 array of (head, relation, tail)."""

    name: str
    entities: list[str]
    relations: list[str]
    splits: dict[str, np.ndarray]

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    def vocab_hash(self) -> str:
        return vocab_hash(self.entities, self.relations)

    def all_triples(self) -> np.ndarray:
        return np.concatenate([self.splits[s] for s in SPLITS if len(self.splits.get(s, ()))], axis=0)


def from_string_splits(name: str, splits: dict[str, list[tuple[str, str, str]]]) -> KGEData:
    """Encode string triples with first-appearance ids (train, then dev, then test; head before tail)."""

    ent: dict[str, int] = {}
    rel: dict[str, int] = {}
    for split in SPLITS:
        for h, r, t in splits.get(split, []):
            ent.setdefault(h, len(ent))
            ent.setdefault(t, len(ent))
            rel.setdefault(r, len(rel))
    arrays = {}
    for split in SPLITS:
        rows = [(ent[h], rel[r], ent[t]) for h, r, t in splits.get(split, [])]
        arrays[split] = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return KGEData(name=name, entities=list(ent), relations=list(rel), splits=arrays)


def load_kge_dataset(name_or_path: str, data_dir: Path | None = None, *, store: Any = None) -> KGEData:
    """Load a dataset by name or path (``workspace`` needs ``store`` with ``export_triples``)."""

    if name_or_path == "workspace":
        if store is None:
            raise DatasetNotFoundError("dataset 'workspace' needs an open graph store")
        return from_store(store)
    from graph.kg_files import load_kg

    dataset = load_kg(name_or_path, data_dir=data_dir)
    if not dataset.splits.get("train"):
        raise DatasetNotFoundError(f"dataset {name_or_path!r} has no training triples in {dataset.path}")
    data = from_string_splits(name_or_path, dataset.splits)
    if data.entities != dataset.entity_ids() or data.relations != dataset.relation_ids():  # pragma: no cover
        raise DatasetNotFoundError(f"dataset {name_or_path!r}: id order differs from KGDataset.entity_ids()")
    log.info(
        "dataset %s: %d entities, %d relations, train/dev/test %d/%d/%d",
        name_or_path, data.num_entities, data.num_relations,
        *(len(data.splits[s]) for s in SPLITS),
    )
    return data


def from_store(store: TripleExporter) -> KGEData:
    """Facts of the graph store (verified + extracted). Split ``train`` or empty: training; dev/test kept."""

    rows = store.export_triples(statuses=("verified", "extracted"))
    splits: dict[str, list[tuple[str, str, str]]] = {s: [] for s in SPLITS}
    for subject, relation, obj, split in rows:
        key = (split or "train").lower()
        key = {"valid": "dev", "validation": "dev"}.get(key, key)
        if key not in splits:
            key = "train"
        splits[key].append((subject, relation, obj))
    if not splits["train"]:
        raise DatasetNotFoundError("the graph store has no verified or extracted facts to train on")
    return from_string_splits("workspace", splits)
