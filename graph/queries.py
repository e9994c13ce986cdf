"""All Cypher the product sends, parameterised, with per-backend variants.

User text never becomes Cypher: it travels only in parameters. The LadybugDB (Kùzu dialect) and
Neo4j variants differ where the dialects do (``label(r)`` vs ``type(r)``, no ``SET n += $map`` in
Kùzu, ``COPY`` for bulk loads); everything else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa_system.types import LITERAL_PREFIX

# Columns every fact read returns, in this order (see ``graph.rows.fact_view``).
FACT_COLUMNS = (
    "f.id, s.id, s.name, f.rel_type, o.id, o.name, f.status, f.confidence, f.split, f.source_kind, "
    "f.dataset, f.provenance"
)
ENTITY_COLUMNS = "e.id, e.name, e.aliases, e.type, e.description, e.image_url, e.url"
EVENT_COLUMNS = "e.id, e.action, e.actor, e.at, e.reason, e.targets, e.data, e.undoes, e.undone_by"
# Literal attribute values are ``Entity`` nodes whose id starts with ``lit:`` (``qa_system.types.literal_entity``):
# entity counts, types and HittER's training triples leave them out. The prefix is our constant, never user text.
_IS_LITERAL = f"STARTS WITH '{LITERAL_PREFIX}'"


@dataclass(frozen=True)
class Queries:
    """One backend's statements."""

    schema: tuple[str, ...]
    upsert_entity: str
    insert_fact: str
    entity_by_id: str
    entities_by_ids: str
    entity_texts_by_ids: str  # id, name, description only: what the answer-text match and reranker read per question
    all_entities: str
    existing_entity_ids: str
    all_entity_ids: str
    all_fact_ids: str
    existing_fact_ids: str
    facts_out: str
    facts_in: str
    facts_both: str
    facts_linking: str  # facts with one end in $anchors and the other in $ids, statuses in $statuses
    fact_by_id: str
    set_fact_status: str
    list_facts: str
    export_triples: str
    count_entities: str  # graph entities only (literal values are counted by count_literals)
    count_literals: str
    count_facts: str
    facts_by_status: str
    facts_by_relation: str
    facts_by_split: str
    entities_by_type: str
    clear: tuple[str, ...]
    # Maintenance (``qa-system forget`` / ``merge``). ``$needle`` is a document id as it appears in
    # the provenance JSON; the store checks ``document_id`` exactly on what comes back.
    facts_mentioning: str = (
        f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.provenance CONTAINS $needle RETURN {FACT_COLUMNS}"
    )
    delete_facts: str = "MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.id IN $ids DELETE f"
    delete_entities: str = "MATCH (e:Entity) WHERE e.id IN $ids DETACH DELETE e"
    # The audit trail (``AuditEvent`` nodes; ``GraphStore.apply_change``). ``fact_statuses`` and
    # ``event_undone_by`` are the checks of a change: on Neo4j they write a version counter first,
    # which takes the write lock, so the status read after it is the committed one (see NEO4J).
    fact_statuses: str = "MATCH ()-[f:Fact]->() WHERE f.id IN $ids RETURN f.id, f.status"
    # the same through each fact's subject (``$rows``: ``{id, s}`` maps): an index seek per fact, where
    # ``f.id IN $ids`` compares every fact with every id (10 s for 3,000 ids on the embedded demo graph).
    # Two MATCH clauses: LadybugDB plans the one-pattern form as a join (3-4x slower).
    fact_statuses_by_subject: str = (
        "UNWIND $rows AS r MATCH (s:Entity {id: r.s}) MATCH (s)-[f:Fact]->(o:Entity) WHERE f.id = r.id RETURN f.id, f.status"
    )
    delete_facts_by_subject: str = "UNWIND $rows AS r MATCH (s:Entity {id: r.s}) MATCH (s)-[f:Fact]->(o:Entity) WHERE f.id = r.id DELETE f"
    event_undone_by: str = "MATCH (e:AuditEvent) WHERE e.id = $id RETURN e.undone_by"
    events_touching: str = ""
    update_facts: str = (
        "UNWIND $rows AS r MATCH (s:Entity {id: r.subject}) MATCH (s)-[f:Fact]->(o:Entity) WHERE f.id = r.id "
        "SET f.status = r.status, f.confidence = r.confidence, f.split = r.split, f.source_kind = r.source_kind, "
        "f.dataset = r.dataset, f.provenance = r.provenance, f.updated_at = $now RETURN count(*)"
    )
    create_event: str = (
        "CREATE (e:AuditEvent {id: $id, action: $action, actor: $actor, at: $at, reason: $reason, "
        "targets: $targets, data: $data, undoes: $undoes, undone_by: ''})"
    )
    mark_undone: str = "MATCH (e:AuditEvent) WHERE e.id = $id SET e.undone_by = $by RETURN e.id"
    event_by_id: str = f"MATCH (e:AuditEvent) WHERE e.id = $id RETURN {EVENT_COLUMNS}"
    list_events: str = f"MATCH (e:AuditEvent) RETURN {EVENT_COLUMNS} ORDER BY e.at DESC, e.id DESC SKIP $offset LIMIT $limit"


_SHARED = dict(
    entity_by_id=f"MATCH (e:Entity) WHERE e.id = $id RETURN {ENTITY_COLUMNS}",
    entities_by_ids=f"MATCH (e:Entity) WHERE e.id IN $ids RETURN {ENTITY_COLUMNS}",
    entity_texts_by_ids="MATCH (e:Entity) WHERE e.id IN $ids RETURN e.id, e.name, e.description",
    all_entities=f"MATCH (e:Entity) RETURN {ENTITY_COLUMNS}",
    existing_entity_ids="MATCH (e:Entity) WHERE e.id IN $ids RETURN e.id",
    existing_fact_ids="MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.id IN $ids RETURN f.id",
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
    export_triples=(  # HittER's training data: attribute facts (object a literal value) are left out
        f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE f.status IN $statuses AND NOT o.id {_IS_LITERAL} "
        "RETURN s.id, f.rel_type, o.id, f.split"
    ),
    count_entities=f"MATCH (e:Entity) WHERE NOT e.id {_IS_LITERAL} RETURN count(e)",
    count_literals=f"MATCH (e:Entity) WHERE e.id {_IS_LITERAL} RETURN count(e)",
    count_facts="MATCH ()-[f:Fact]->() RETURN count(f)",
    facts_by_status="MATCH ()-[f:Fact]->() RETURN f.status, count(f)",
    facts_by_relation="MATCH ()-[f:Fact]->() RETURN f.rel_type, count(f)",
    facts_by_split="MATCH ()-[f:Fact]->() RETURN f.split, count(f)",
    entities_by_type=f"MATCH (e:Entity) WHERE NOT e.id {_IS_LITERAL} RETURN e.type, count(e)",
)

# Neighbour reads. Embedded: one entity per query (``id = $id`` uses the primary-key index; ``IN $ids``
# scans); the undirected pattern binds ``s`` to the seed, and the trailing ``f.subject`` tells the
# reader when to swap the ends back.
# Status and relation filters are applied by the reader in Python: bound list parameters and the
# extra predicates made each read 50% slower, and an entity has few facts once hubs are windowed.
_EMBEDDED_NEIGHBOURS = f"RETURN {FACT_COLUMNS}, f.subject"
# sampling window over the fact's fixed random rank ``rnd`` in [0, 1): [lo, hi) plus [0, wrap)
_EMBEDDED_WINDOW = "AND ((f.rnd >= $lo AND f.rnd < $hi) OR f.rnd < $wrap)"
_NEO4J_NEIGHBOURS = f"AND f.status IN $statuses AND ($all_relations OR f.rel_type IN $relations) RETURN {FACT_COLUMNS}"

# Embedded only: bulk load. COPY takes no parameters; ``path`` is always our own temp Parquet file
# and ``table`` one of our two tables, never user text.
EMBEDDED_COPY = "COPY {table} FROM '{path}'"
EMBEDDED_TABLES = ("Entity", "Fact")

# Embedded only: a hub's facts inside a sampling window (see ``EmbeddedStore._fetch``).
EMBEDDED_WINDOWED = {
    "out": f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id = $id {_EMBEDDED_WINDOW} {_EMBEDDED_NEIGHBOURS}",
    "in": f"MATCH (o:Entity)<-[f:Fact]-(s:Entity) WHERE o.id = $id {_EMBEDDED_WINDOW} {_EMBEDDED_NEIGHBOURS}",
    "both": f"MATCH (s:Entity)-[f:Fact]-(o:Entity) WHERE s.id = $id {_EMBEDDED_WINDOW} {_EMBEDDED_NEIGHBOURS}",
}

# Embedded only: Kùzu scans the whole node table for ``e.id IN $ids``; UNWIND + a primary-key match
# is one index lookup per id (36 ms -> 0.1 ms for two ids on the 14.5k-entity demo graph).
_EMBEDDED_BY_IDS = dict(
    entities_by_ids=f"UNWIND $ids AS i MATCH (e:Entity {{id: i}}) RETURN {ENTITY_COLUMNS}",
    entity_texts_by_ids="UNWIND $ids AS i MATCH (e:Entity {id: i}) RETURN e.id, e.name, e.description",
    existing_entity_ids="UNWIND $ids AS i MATCH (e:Entity {id: i}) RETURN e.id",
    delete_entities="UNWIND $ids AS i MATCH (e:Entity {id: i}) DETACH DELETE e",
)

# Embedded only: facts of a change (``apply_change``), one ``UNWIND`` of ``graph.rows.fact_params`` maps
# inside its transaction (``COPY`` cannot run in one). Two MATCH clauses, not one with a comma: the
# comma form was planned as a join over the whole table (12 s against 0.4 s for 3,000 facts).
EMBEDDED_UPSERT_ENTITIES = (
    "UNWIND $rows AS r MERGE (e:Entity {id: r.id}) ON CREATE SET e.created_at = $now "
    "SET e.name = r.name, e.aliases = r.aliases, e.type = r.type, e.description = r.description, "
    "e.image_url = r.image_url, e.url = r.url, e.updated_at = $now"
)
EMBEDDED_INSERT_FACTS = (
    "UNWIND $rows AS r MATCH (s:Entity {id: r.subject}) MATCH (o:Entity {id: r.object}) "
    "CREATE (s)-[:Fact {id: r.id, subject: r.subject, rnd: r.rnd, rel_type: r.relation, status: r.status, confidence: r.confidence, "
    "split: r.split, source_kind: r.source_kind, dataset: r.dataset, provenance: r.provenance, "
    "created_at: $now, updated_at: $now}]->(o) RETURN count(*)"
)

# Embedded only: every entity's number of facts (both directions, any status), read once and cached.
EMBEDDED_DEGREES = "MATCH (e:Entity)-[f:Fact]-() RETURN e.id, count(f)"


EMBEDDED = Queries(
    all_entity_ids="MATCH (e:Entity) RETURN e.id",
    all_fact_ids="MATCH ()-[f:Fact]->() RETURN f.id",
    schema=(
        "CREATE NODE TABLE IF NOT EXISTS Entity(id STRING PRIMARY KEY, name STRING, aliases STRING[], "
        "type STRING, description STRING, image_url STRING, url STRING, created_at STRING, updated_at STRING)",
        "CREATE REL TABLE IF NOT EXISTS Fact(FROM Entity TO Entity, id STRING, subject STRING, rnd DOUBLE, rel_type STRING, status STRING, "
        "confidence DOUBLE, split STRING, source_kind STRING, dataset STRING, provenance STRING, "
        "created_at STRING, updated_at STRING)",
        "CREATE NODE TABLE IF NOT EXISTS AuditEvent(id STRING PRIMARY KEY, action STRING, actor STRING, at STRING, "
        "reason STRING, targets STRING[], data STRING, undoes STRING, undone_by STRING)",
    ),
    events_touching=(
        f"MATCH (e:AuditEvent) WHERE e.at > $after AND list_has_any(e.targets, $targets) RETURN {EVENT_COLUMNS} ORDER BY e.at, e.id"
    ),
    upsert_entity=(
        "MERGE (e:Entity {id: $id}) ON CREATE SET e.created_at = $now "
        "SET e.name = $name, e.aliases = $aliases, e.type = $type, e.description = $description, "
        "e.image_url = $image_url, e.url = $url, e.updated_at = $now"
    ),
    insert_fact=(
        "MATCH (s:Entity), (o:Entity) WHERE s.id = $subject AND o.id = $object "
        "CREATE (s)-[:Fact {id: $id, subject: $subject, rnd: $rnd, rel_type: $relation, status: $status, confidence: $confidence, "
        "split: $split, source_kind: $source_kind, dataset: $dataset, provenance: $provenance, "
        "created_at: $now, updated_at: $now}]->(o) RETURN count(*)"
    ),
    facts_out=f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id = $id {_EMBEDDED_NEIGHBOURS}",
    facts_in=f"MATCH (o:Entity)<-[f:Fact]-(s:Entity) WHERE o.id = $id {_EMBEDDED_NEIGHBOURS}",
    # s is bound to the seed whichever way the fact points; o is the other end
    facts_both=f"MATCH (s:Entity)-[f:Fact]-(o:Entity) WHERE s.id = $id {_EMBEDDED_NEIGHBOURS}",
    # from each anchor by its primary key (anchoring on the other side, or matching both ends by
    # key, was 1.3x and 60x slower on the demo graph); statuses filtered by the reader, as above,
    # and the trailing ``f.subject`` restores each fact's direction
    facts_linking=f"UNWIND $anchors AS a MATCH (s:Entity {{id: a}})-[f:Fact]-(o:Entity) WHERE o.id IN $ids {_EMBEDDED_NEIGHBOURS}",
    clear=("MATCH (e:Entity) DETACH DELETE e",),
    **(_SHARED | _EMBEDDED_BY_IDS),
)

NEO4J = Queries(
    # Whole-graph id scans as one list in one record: 310k ids arrive in ~1.7 s, against ~7 s as
    # 310k one-value records.
    all_entity_ids="MATCH (e:Entity) RETURN collect(e.id)",
    all_fact_ids="MATCH ()-[f:Fact]->() RETURN collect(f.id)",
    schema=(
        "CREATE CONSTRAINT entity_id IF NOT EXISTS FOR (e:Entity) REQUIRE e.id IS UNIQUE",
        "CREATE INDEX entity_name_key IF NOT EXISTS FOR (e:Entity) ON (e.name_key)",
        "CREATE INDEX fact_id IF NOT EXISTS FOR ()-[f:Fact]-() ON (f.id)",
        "CREATE CONSTRAINT audit_event_id IF NOT EXISTS FOR (e:AuditEvent) REQUIRE e.id IS UNIQUE",
    ),
    # The checks of a change write first (a version counter), which takes the write lock: a second
    # decision on the same fact waits for the first to commit, then reads its status (Neo4j reads
    # committed values), instead of both reading "proposed" and both writing. ArcadeDB, optimistic,
    # fails the second commit instead (retried by ``Neo4jStore._in_transaction``).
    fact_statuses="MATCH ()-[f:Fact]->() WHERE f.id IN $ids SET f.version = coalesce(f.version, 0) + 1 RETURN f.id, f.status",
    fact_statuses_by_subject=(
        "UNWIND $rows AS r MATCH (s:Entity {id: r.s}) MATCH (s)-[f:Fact]->(o:Entity) WHERE f.id = r.id "
        "SET f.version = coalesce(f.version, 0) + 1 RETURN f.id, f.status"
    ),
    event_undone_by="MATCH (e:AuditEvent) WHERE e.id = $id SET e.version = coalesce(e.version, 0) + 1 RETURN e.undone_by",
    events_touching=(
        f"MATCH (e:AuditEvent) WHERE e.at > $after AND any(t IN e.targets WHERE t IN $targets) RETURN {EVENT_COLUMNS} ORDER BY e.at, e.id"
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
    facts_out=f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id IN $ids {_NEO4J_NEIGHBOURS}",
    facts_in=f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE o.id IN $ids {_NEO4J_NEIGHBOURS}",
    # Two directed matches, not one undirected: each fact comes back once, with its true ends.
    facts_both=(
        f"CALL {{ MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id IN $ids RETURN s, f, o "
        f"UNION MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE o.id IN $ids RETURN s, f, o }} "
        f"WITH s, f, o WHERE true {_NEO4J_NEIGHBOURS}"
    ),
    facts_linking=(
        f"CALL {{ MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id IN $anchors AND o.id IN $ids RETURN s, f, o "
        f"UNION MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE o.id IN $anchors AND s.id IN $ids RETURN s, f, o }} "
        f"WITH s, f, o WHERE f.status IN $statuses RETURN {FACT_COLUMNS}"
    ),
    clear=("MATCH (e:Entity) DETACH DELETE e",),
    **_SHARED,
)

# -- Neo4j / Bolt only ---------------------------------------------------------------------------
# Everything below is standard Cypher that runs unchanged on Neo4j 5 and on ArcadeDB's Bolt plugin
# (the test server; it accepts every statement here, including the schema ones, checked on 26.10).
#
# Names stay on the nodes for other clients' Cypher (``name_key`` is ``graph.name_index.normalise(name)``,
# ``alias_keys`` the same for each alias, ``name_tokens`` the lower-cased words of name and aliases),
# but the store looks names up in its local index (``graph.name_index.MirroredNameIndex``): the
# lookups on these properties scanned every node, ~19 ms each on ArcadeDB's demo graph.

# Bulk writes: one ``UNWIND`` per transaction of a few thousand rows; ``$now`` travels once.
NEO4J_UPSERT_ENTITIES = (
    "UNWIND $rows AS row MERGE (e:Entity {id: row.id}) ON CREATE SET e.created_at = $now "
    "SET e.name = row.name, e.name_key = row.name_key, e.aliases = row.aliases, e.alias_keys = row.alias_keys, "
    "e.name_tokens = row.name_tokens, e.type = row.type, e.description = row.description, "
    "e.image_url = row.image_url, e.url = row.url, e.updated_at = $now RETURN count(e)"
)
# Facts the store has checked are new (by id, as the embedded store does) are CREATEd: MERGE on a
# relationship pattern re-reads the edges of both ends per row, which is what makes hubs slow.
# Writers in one process are serialised; two processes importing the same KG at once could both
# create a fact (the fact id is then duplicated; ``existing_fact_ids`` still sees it as one).
# Rows are lists, not maps: ``[id, subject, relation, object, variant, rnd]``, where ``variant`` indexes
# ``$variants`` (``[status, confidence, split, source_kind, dataset, provenance]``, shared by the
# 100k facts of a dataset split). The driver packs parameters in pure Python: map rows repeat ten
# keys per fact and made the 310k-fact demo import spend 20-30 s in packing alone, lists ~4 s.
NEO4J_INSERT_FACTS = (
    "UNWIND $rows AS row MATCH (s:Entity {id: row[1]}) MATCH (o:Entity {id: row[3]}) "
    "WITH s, o, row, $variants[row[4]] AS v "
    "CREATE (s)-[:Fact {id: row[0], rnd: row[5], rel_type: row[2], status: v[0], confidence: v[1], split: v[2], "
    "source_kind: v[3], dataset: v[4], provenance: v[5], created_at: $now, updated_at: $now}]->(o) RETURN count(*)"
)
# Capped neighbour reads (``limit_per_entity``): count each frontier entity's facts first; an entity
# with more than 3x the cap (a hub: a country has thousands) is read through a window over the
# fact's fixed random rank ``rnd`` (``graph.rows.fact_rank``), [lo, hi) plus [0, wrap), the same
# window the embedded store uses, instead of shipping every fact over Bolt to sample a few.
_NEO4J_FILTER = "f.status IN $statuses AND ($all_relations OR f.rel_type IN $relations)"
NEO4J_COUNT_OUT = f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id IN $ids AND {_NEO4J_FILTER} RETURN s.id, count(f)"
NEO4J_COUNT_IN = f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE o.id IN $ids AND {_NEO4J_FILTER} RETURN o.id, count(f)"
_NEO4J_WINDOW = f"AND {_NEO4J_FILTER} AND ((f.rnd >= $lo AND f.rnd < $hi) OR f.rnd < $wrap) RETURN {FACT_COLUMNS}"
NEO4J_WINDOW_OUT = f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.id = $id {_NEO4J_WINDOW}"
NEO4J_WINDOW_IN = f"MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE o.id = $id {_NEO4J_WINDOW}"
# Every entity node, literal values included: the staleness check of the store's local name index
# (``graph.name_index.MirroredNameIndex``), one per lookup. A label count is answered without a scan
# (~1 ms over Bolt on ArcadeDB's demo graph; leaving literals out made it a 36 ms scan).
NEO4J_COUNT_ENTITY_NODES = "MATCH (e:Entity) RETURN count(e)"
# Wipes the store's own graph (tests and ``--fresh`` imports), in batches so a 300k-fact graph does
# not need one huge transaction.
NEO4J_CLEAR_BATCH = (
    "MATCH (e:Entity) WITH e LIMIT $limit DETACH DELETE e RETURN count(*)"
)
NEO4J_CLEAR_EVENTS_BATCH = "MATCH (e:AuditEvent) WITH e LIMIT $limit DETACH DELETE e RETURN count(*)"
