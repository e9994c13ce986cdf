"""All Cypher the product sends, parameterised, with per-backend variants.

User text never becomes Cypher: it travels only in parameters. The LadybugDB (Kùzu dialect) and
Neo4j variants differ where the dialects do (``label(r)`` vs ``type(r)``, no ``SET n += $map`` in
Kùzu, ``COPY`` for bulk loads); everything else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

# Columns every fact read returns, in this order (see ``graph.rows.fact_view``).
FACT_COLUMNS = (
    "f.id, s.id, s.name, f.rel_type, o.id, o.name, f.status, f.confidence, f.split, f.source_kind, "
    "f.dataset, f.provenance"
)
ENTITY_COLUMNS = "e.id, e.name, e.aliases, e.type, e.description, e.image_url, e.url"


@dataclass(frozen=True)
class Queries:
    """One backend's statements."""

    schema: tuple[str, ...]
    upsert_entity: str
    insert_fact: str
    entity_by_id: str
    entities_by_ids: str
    all_entities: str
    existing_entity_ids: str
    all_entity_ids: str
    all_fact_ids: str
    existing_fact_ids: str
    facts_out: str
    facts_in: str
    fact_by_id: str
    set_fact_status: str
    list_facts: str
    export_triples: str
    count_entities: str
    count_facts: str
    facts_by_status: str
    facts_by_relation: str
    facts_by_split: str
    entities_by_type: str
    clear: tuple[str, ...]


_SHARED = dict(
    entity_by_id=f"MATCH (e:Entity) WHERE e.id = $id RETURN {ENTITY_COLUMNS}",
    entities_by_ids=f"MATCH (e:Entity) WHERE e.id IN $ids RETURN {ENTITY_COLUMNS}",
    all_entities=f"MATCH (e:Entity) RETURN {ENTITY_COLUMNS}",
    existing_entity_ids="MATCH (e:Entity) WHERE e.id IN $ids RETURN e.id",
    all_entity_ids="MATCH (e:Entity) RETURN e.id",
    all_fact_ids="MATCH ()-[f:Fact]->() RETURN f.id",
    existing_fact_ids="MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.id IN $ids RETURN f.id",
    facts_out=(
        f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id IN $ids AND f.status IN $statuses "
        f"AND ($all_relations OR f.rel_type IN $relations) RETURN {FACT_COLUMNS}"
    ),
    facts_in=(
        f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE o.id IN $ids AND f.status IN $statuses "
        f"AND ($all_relations OR f.rel_type IN $relations) RETURN {FACT_COLUMNS}"
    ),
    fact_by_id=f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.id = $id RETURN {FACT_COLUMNS}",
    set_fact_status=(
        "MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.id = $id "
        "SET f.status = $status, f.provenance = $provenance, f.updated_at = $now RETURN f.id"
    ),
    list_facts=(
        f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.status IN $statuses "
        f"AND ($all_relations OR f.rel_type = $relation) "
        f"RETURN {FACT_COLUMNS} ORDER BY f.updated_at DESC, f.id SKIP $offset LIMIT $limit"
    ),
    export_triples=(
        "MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.status IN $statuses RETURN s.id, f.rel_type, o.id, f.split"
    ),
    count_entities="MATCH (e:Entity) RETURN count(e)",
    count_facts="MATCH ()-[f:Fact]->() RETURN count(f)",
    facts_by_status="MATCH ()-[f:Fact]->() RETURN f.status, count(f)",
    facts_by_relation="MATCH ()-[f:Fact]->() RETURN f.rel_type, count(f)",
    facts_by_split="MATCH ()-[f:Fact]->() RETURN f.split, count(f)",
    entities_by_type="MATCH (e:Entity) RETURN e.type, count(e)",
)

EMBEDDED = Queries(
    schema=(
        "CREATE NODE TABLE IF NOT EXISTS Entity(id STRING PRIMARY KEY, name STRING, aliases STRING[], "
        "type STRING, description STRING, image_url STRING, url STRING, created_at STRING, updated_at STRING)",
        "CREATE REL TABLE IF NOT EXISTS Fact(FROM Entity TO Entity, id STRING, rel_type STRING, status STRING, "
        "confidence DOUBLE, split STRING, source_kind STRING, dataset STRING, provenance STRING, "
        "created_at STRING, updated_at STRING)",
    ),
    upsert_entity=(
        "MERGE (e:Entity {id: $id}) ON CREATE SET e.created_at = $now "
        "SET e.name = $name, e.aliases = $aliases, e.type = $type, e.description = $description, "
        "e.image_url = $image_url, e.url = $url, e.updated_at = $now"
    ),
    insert_fact=(
        "MATCH (s:Entity), (o:Entity) WHERE s.id = $subject AND o.id = $object "
        "CREATE (s)-[:Fact {id: $id, rel_type: $relation, status: $status, confidence: $confidence, "
        "split: $split, source_kind: $source_kind, dataset: $dataset, provenance: $provenance, "
        "created_at: $now, updated_at: $now}]->(o) RETURN count(*)"
    ),
    clear=("MATCH (e:Entity) DETACH DELETE e",),
    **_SHARED,
)

NEO4J = Queries(
    schema=(
        "CREATE CONSTRAINT entity_id IF NOT EXISTS FOR (e:Entity) REQUIRE e.id IS UNIQUE",
        "CREATE INDEX entity_name_key IF NOT EXISTS FOR (e:Entity) ON (e.name_key)",
        "CREATE INDEX fact_id IF NOT EXISTS FOR ()-[f:Fact]-() ON (f.id)",
    ),
    upsert_entity=(
        "MERGE (e:Entity {id: $id}) ON CREATE SET e.created_at = $now "
        "SET e.name = $name, e.name_key = $name_key, e.aliases = $aliases, e.alias_keys = $alias_keys, "
        "e.type = $type, e.description = $description, e.image_url = $image_url, e.url = $url, e.updated_at = $now"
    ),
    insert_fact=(
        "MATCH (s:Entity {id: $subject}), (o:Entity {id: $object}) "
        "CREATE (s)-[:Fact {id: $id, rel_type: $relation, status: $status, confidence: $confidence, "
        "split: $split, source_kind: $source_kind, dataset: $dataset, provenance: $provenance, "
        "created_at: $now, updated_at: $now}]->(o) RETURN count(*)"
    ),
    clear=("MATCH (e:Entity) DETACH DELETE e",),
    **_SHARED,
)

# Neo4j only: names live on the nodes (no local index file shared between clients).
NEO4J_FIND_EXACT = (
    f"MATCH (e:Entity) WHERE e.name_key = $key OR $key IN e.alias_keys RETURN {ENTITY_COLUMNS} "
    "ORDER BY CASE WHEN e.name_key = $key THEN 0 ELSE 1 END, e.id LIMIT $limit"
)
NEO4J_FIND_PREFIX = (
    f"MATCH (e:Entity) WHERE e.name_key STARTS WITH $key OR any(a IN e.alias_keys WHERE a STARTS WITH $key) "
    f"RETURN {ENTITY_COLUMNS} ORDER BY size(e.name), e.id LIMIT $limit"
)
