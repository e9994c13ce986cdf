"""Importing a KG into a ``GraphStore``: the FB15k-237 / WN18RR layout here, and (``import_kg``
dispatches on the source) a Neo4j database over Bolt (``graph.source_neo4j``), a neo4j-admin CSV
folder (``graph.source_csv``) or RDF files (``graph.source_rdf``), mapped by ``graph.source_mapping``.

Everything is parsed and validated before the first write (a malformed line names its file and
line and nothing is written). Writes are idempotent, so an import cut short is finished by running
it again, and importing twice leaves the same counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from graph.kg_files import KGDataset, load_kg
from graph.source_mapping import ImportCounts, Mapping
from graph.store import GraphStore
from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind

log = logging.getLogger(__name__)

# (stage, done, total) for progress bars
StageProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportSummary:
    dataset: str
    entities_added: int
    entities_merged: int
    facts_added: int
    facts_merged: int
    literals_added: int = 0  # literal attribute values (``lit:`` nodes) of a property-graph source
    literals_merged: int = 0
    unnamed: int = 0  # source nodes without a name property (named by their id)


def _split_name_gloss(text: str) -> tuple[str, str]:
    """WN18RR's entity2text is ``lemma, gloss``; keep the lemma as the name."""

    name, sep, gloss = text.partition(", ")
    return (name, gloss) if sep else (text, "")


def entities_of(dataset: KGDataset) -> list[Entity]:
    wordnet = "wn18rr" in dataset.name.lower()
    entities = []
    for entity_id in dataset.entity_ids():
        text = dataset.entity_names.get(entity_id, entity_id) or entity_id
        details = dataset.details.get(entity_id, {})
        name, description = _split_name_gloss(text) if wordnet else (text, "")
        entities.append(
            Entity(
                id=entity_id,
                name=name.replace("_", " ") if wordnet else name,
                aliases=details.get("aliases", ""),
                type=details.get("type", ""),
                description=details.get("description", "") or description,
                url=details.get("wikipedia_url", ""),
                image_url=details.get("image_url", ""),
            )
        )
    return entities


def facts_of(dataset: KGDataset) -> list[Fact]:
    # One shared provenance record per split: 300k identical copies cost seconds to build.
    by_split = {
        split: Provenance(source_kind=SourceKind.DATASET, dataset=dataset.name, split=split) for split in dataset.splits
    }
    facts = []
    for split, (head, relation, tail) in dataset.all_triples():
        provenance = by_split[split]
        facts.append(Fact.model_construct(subject=head, relation=relation, object=tail, status=FactStatus.VERIFIED, confidence=1.0, provenance=provenance))
    return facts


@dataclass(frozen=True)
class SourceOptions:
    """How to read a property-graph source: the mapping, and the login for a Bolt source."""

    mapping: Mapping = Mapping()
    user: str = "neo4j"
    password: str | None = None  # None: ``$QA_SOURCE_NEO4J_PASSWORD``
    database: str | None = None
    connect_timeout_s: float = 10.0


def _summary(dataset: str, counts: ImportCounts) -> ImportSummary:
    return ImportSummary(
        dataset=dataset,
        entities_added=counts.entities_added,
        entities_merged=counts.entities_merged,
        facts_added=counts.facts_added,
        facts_merged=counts.facts_merged,
        literals_added=counts.literals_added,
        literals_merged=counts.literals_merged,
        unnamed=counts.unnamed,
    )


def import_kg(
    store: GraphStore,
    source: str | Path,
    *,
    progress: StageProgress | None = None,
    data_dir: Path | None = None,
    options: SourceOptions | None = None,
) -> ImportSummary:
    """Import ``demo``, a dataset name, a folder path (FB15k-237 layout, or neo4j-admin CSV), RDF
    files, or a ``bolt://``/``neo4j://`` URI into the store."""

    from graph.source_csv import import_csv_graph, is_csv_graph
    from graph.source_neo4j import import_bolt_graph, is_bolt_uri
    from graph.source_rdf import import_rdf_graph, is_rdf_source

    options = options or SourceOptions()
    text = str(source)
    if is_bolt_uri(text):
        name, counts = import_bolt_graph(
            store, text, options.mapping, user=options.user, password=options.password, database=options.database,
            progress=progress, connect_timeout_s=options.connect_timeout_s,
        )
        return _summary(name, counts)
    path = Path(text)
    if is_csv_graph(path):
        return _summary(*import_csv_graph(store, path, options.mapping, progress=progress))
    if is_rdf_source(path) and not (path.is_dir() and any(path.glob("train.*"))):  # RDF, not the FB15k-237 layout
        return _summary(*import_rdf_graph(store, path, options.mapping, progress=progress))
    dataset = load_kg(str(source), data_dir)  # parses everything first: errors before any write
    entities = entities_of(dataset)
    facts = facts_of(dataset)
    log.info("importing %s: %d entities, %d facts", dataset.name, len(entities), len(facts))
    entity_result = store.upsert_entities(entities, progress=(lambda d, t: progress("entities", d, t)) if progress else None)
    fact_result = store.upsert_facts(facts, progress=(lambda d, t: progress("facts", d, t)) if progress else None)
    return ImportSummary(
        dataset=dataset.name,
        entities_added=entity_result.added,
        entities_merged=entity_result.merged,
        facts_added=fact_result.added,
        facts_merged=fact_result.merged,
    )
