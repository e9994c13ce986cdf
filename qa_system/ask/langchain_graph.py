"""LangChain's ``GraphStore`` over our graph store, so ``GraphCypherQAChain`` runs on it.

:class:`LangChainGraph` has the shape of ``langchain_neo4j.graphs.graph_store.GraphStore`` (the
protocol ``langchain_neo4j.GraphCypherQAChain`` takes; ``pip install 'qa-system[langchain]'``):

- ``query(cypher, params)`` runs the Cypher **read-only**, through the store's ``run_read_query`` —
  the path of ``qa-system cypher`` and the Cypher workbench: a statement check (``graph.readonly``),
  then a read transaction. A generated ``CREATE``/``MERGE``/``DELETE`` is refused with
  ``ReadOnlyViolationError`` and nothing runs. Works on the embedded store and on Neo4j.
- ``get_structured_schema`` / ``get_schema`` describe the graph as it is stored: every node an
  ``:Entity``, every fact one ``(:Entity)-[:Fact]->(:Entity)`` relationship whose kind is the string
  property ``rel_type`` (one relationship table, not one per type), with ``status`` and provenance
  on the fact. The structured schema is in the "enhanced" form (``_enhanced_schema``), so the chain's
  prompt shows the status options and an example ``rel_type``; :meth:`LangChainGraph.cypher_prompt`
  adds the notes a model needs (``f.rel_type``, not ``type(f)``; answer from verified and extracted
  facts) and the relation types, most frequent first.
- ``add_graph_documents`` writes ``GraphDocument`` nodes and relationships as facts through the
  ``GraphStore`` contract, honouring review: status ``proposed`` by default (they wait for a
  maintainer in ``qa-system review``; answers never use them), or ``extracted`` when each graph
  document carries its ``source`` Document (its id goes into the provenance, as ``ingest`` does, so
  ``qa-system forget`` takes them back). ``verified`` is refused: only review verifies. Nodes resolve
  to existing entities by exact name or alias (the ingest resolver; ``use_embeddings=True`` adds its
  MiniLM similarity step), else become ``ext:`` entities; an existing fact is never changed (a
  verified fact stays verified). Scalar node properties other than ``name``/``description`` become
  literal attribute facts, as ``import-kg`` maps them.

The generated Cypher reads any fact, proposed and rejected ones included: the read-only path guards
writes, not statuses, so the prompt asks for ``f.status IN ['verified', 'extracted']``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from qa_system.errors import InputError
from qa_system.relations import readable_relation
from qa_system.types import (
    Entity,
    Fact,
    FactStatus,
    Provenance,
    SourceKind,
    literal_entity,
)

# What the stores write on every node and fact (``graph.queries``), as the chain's schema lists them.
NODE_LABEL = "Entity"
FACT_TYPE = "Fact"
NODE_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("id", "STRING"), ("name", "STRING"), ("aliases", "LIST"), ("type", "STRING"), ("description", "STRING"), ("url", "STRING"),
)  # fmt: skip
FACT_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("id", "STRING"), ("rel_type", "STRING"), ("status", "STRING"), ("confidence", "FLOAT"), ("source_kind", "STRING"),
    ("dataset", "STRING"), ("split", "STRING"), ("provenance", "STRING"),
)  # fmt: skip
WRITE_STATUSES = (FactStatus.PROPOSED, FactStatus.EXTRACTED)
PROMPT_RELATIONS = 150  # relation types listed in ``cypher_prompt`` (the demo graph has 237)
SOURCE_TEXT_CHARS = 1000  # the source document's text kept in a written fact's provenance
MAX_RELATION_CHARS = 200
DEFAULT_MODEL = "langchain-graph-document"

SCHEMA_NOTES = """How this graph is stored:
- Every node is an :Entity (properties id, name, aliases, type, description). Find one by name: WHERE e.name = 'Inception'.
- Every fact is one relationship (s:Entity)-[f:Fact]->(o:Entity). Its kind is the string property f.rel_type; there are no other relationship types, so never write type(f) or [:SOME_TYPE].
- f.status is 'verified', 'extracted', 'proposed' (awaiting review) or 'rejected': answer only from facts with f.status IN ['verified', 'extracted'].
- Literal values (years, numbers, dates) are :Entity nodes whose id starts with 'lit:'; the value is their name.
- Example: MATCH (s:Entity)-[f:Fact]->(o:Entity) WHERE s.name = 'Some Name' AND f.rel_type = '{example}' AND f.status IN ['verified', 'extracted'] RETURN o.name
Relation types (values of f.rel_type, most frequent first, with their meaning):
{relations}"""

CYPHER_TEMPLATE = """Task: Generate a Cypher statement to query a graph database.
Instructions:
Use only the provided relationship types and properties in the schema.
Do not use any other relationship types or properties that are not provided.
Schema:
{schema}
{notes}
Note: Do not include any explanations or apologies in your responses.
Do not respond to any questions that might ask anything else than for you to construct a Cypher statement.
Do not include any text except the generated Cypher statement.

Examples (optional):
{examples}

The question is:
{question}"""


class LangChainGraph:
    """A ``GraphStore`` (LangChain's protocol) over one of our stores; see the module docstring.

    ``store`` is any of our ``GraphStore``s (``graph.open.open_store``); ``workspace`` lets
    ``add_graph_documents`` share the ingest mention memo (same entities for the same names);
    ``status`` is the default write status (``proposed`` or ``extracted``); ``max_rows`` caps a query.
    """

    _enhanced_schema = True  # read by GraphCypherQAChain.from_llm: show property values/options

    def __init__(
        self,
        store: Any,
        *,
        workspace: Any = None,
        status: FactStatus | str = FactStatus.PROPOSED,
        use_embeddings: bool = False,
        model: str = DEFAULT_MODEL,
        max_rows: int = 1000,
    ) -> None:
        if max_rows < 1:
            raise InputError(f"max_rows must be at least 1; got {max_rows}")
        self.store = store
        self.workspace = workspace
        self.status = _write_status(status)
        self.use_embeddings = use_embeddings
        self.model = model
        self.max_rows = max_rows
        self._structured: dict[str, Any] | None = None
        self._relations: list[tuple[str, int]] = []

    # -- reads ---------------------------------------------------------------------------------------
    def query(self, query: str, params: dict | None = None) -> list[dict[str, Any]]:
        """Rows of a read-only Cypher query (``ReadOnlyViolationError`` on a write, ``QueryError`` on a bad one)."""

        return self.store.run_read_query(query, dict(params or {}), limit=self.max_rows)

    def refresh_schema(self) -> None:
        """Re-read the counts the schema shows (relation types, statuses, entity types)."""

        stats = self.store.stats()
        self._relations = sorted(stats.facts_by_relation.items(), key=lambda kv: (-kv[1], kv[0]))
        relation_values = [r for r, _ in self._relations]
        entity_types = [t for t, _ in sorted(stats.entities_by_type.items(), key=lambda kv: (-kv[1], kv[0])) if t]
        statuses = [s.value for s in FactStatus]
        sources = [s.value for s in SourceKind]
        values: dict[tuple[str, str], tuple[list[Any], int]] = {
            (FACT_TYPE, "rel_type"): (relation_values[:PROMPT_RELATIONS], len(relation_values)),
            (FACT_TYPE, "status"): (statuses, len(statuses)),
            (FACT_TYPE, "source_kind"): (sources, len(sources)),
            (NODE_LABEL, "type"): (entity_types[:PROMPT_RELATIONS], len(entity_types)),
        }

        def described(label: str, properties: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
            out = []
            for name, kind in properties:
                prop: dict[str, Any] = {"property": name, "type": kind}
                if (label, name) in values:
                    prop["values"], prop["distinct_count"] = values[(label, name)]
                out.append(prop)
            return out

        self._structured = {
            "node_props": {NODE_LABEL: described(NODE_LABEL, NODE_PROPERTIES)},
            "rel_props": {FACT_TYPE: described(FACT_TYPE, FACT_PROPERTIES)},
            "relationships": [{"start": NODE_LABEL, "type": FACT_TYPE, "end": NODE_LABEL}],
            "metadata": {"constraint": [], "index": []},
        }

    def _schema(self) -> dict[str, Any]:
        if self._structured is None:
            self.refresh_schema()
        assert self._structured is not None
        return self._structured

    @property
    def get_structured_schema(self) -> dict[str, Any]:
        return self._schema()

    @property
    def get_schema(self) -> str:
        schema = self._schema()

        def props(items: list[dict[str, Any]]) -> str:
            return ", ".join(f"{p['property']}: {p['type']}" for p in items)

        lines = ["Node properties:"]
        lines += [f"{label} {{{props(items)}}}" for label, items in schema["node_props"].items()]
        lines.append("Relationship properties:")
        lines += [f"{label} {{{props(items)}}}" for label, items in schema["rel_props"].items()]
        lines.append("The relationships:")
        lines += [f"(:{r['start']})-[:{r['type']}]->(:{r['end']})" for r in schema["relationships"]]
        return "\n".join(lines) + "\n" + self.schema_notes()

    def schema_notes(self, limit: int = PROMPT_RELATIONS) -> str:
        """How facts are stored, and the relation types (``f.rel_type``) with their readable names."""

        self._schema()  # fills the relation counts on first use
        shown = self._relations[:limit]
        listed = "\n".join(f"- '{r}' ({readable_relation(r)}; {n} facts)" for r, n in shown)
        if len(self._relations) > limit:
            listed += f"\n- ... and {len(self._relations) - limit} rarer ones"
        example = shown[0][0] if shown else "directed"
        return SCHEMA_NOTES.format(example=example, relations=listed or "- (no facts yet)")

    def cypher_prompt(self, limit: int = PROMPT_RELATIONS) -> Any:
        """A Cypher-generation prompt for ``GraphCypherQAChain.from_llm(cypher_prompt=...)``: the chain's
        own instructions and schema, plus ``schema_notes`` (how facts are stored, the relation types)."""

        from langchain_core.prompts import PromptTemplate

        return PromptTemplate(template=CYPHER_TEMPLATE, input_variables=["schema", "examples", "question"],
                              partial_variables={"notes": self.schema_notes(limit)})  # fmt: skip

    # -- writes --------------------------------------------------------------------------------------
    def add_graph_documents(
        self, graph_documents: Iterable[Any], include_source: bool = False, *, status: FactStatus | str | None = None
    ) -> dict[str, Any]:
        """Write GraphDocuments' nodes and relationships as facts (see the module docstring).

        The source Document, when a graph document has one, is always named in the provenance
        (``include_source`` is accepted for the protocol; this graph keeps no Document nodes).
        Returns the counts: entities and facts added, facts already present (left unchanged), and
        what was skipped (empty names or relation types, self-loops)."""

        from qa_system.ingest.entity_resolution import EntityResolver, clean_mention

        write_status = self.status if status is None else _write_status(status)
        documents = list(graph_documents)
        sources = [_source(doc) for doc in documents]
        if write_status is FactStatus.EXTRACTED:
            for number, (doc_id, _text) in enumerate(sources):
                if not doc_id:
                    raise InputError(
                        f"graph document {number} has no source Document: status 'extracted' needs the text the facts "
                        "came from; give it a source, or write it as 'proposed' for review"
                    )
        names: list[str] = []
        for doc in documents:
            for node in [*doc.nodes, *(n for r in doc.relationships for n in (r.source, r.target))]:
                names.append(_node_name(node))
        resolver = EntityResolver(self.store, workspace=self.workspace, use_embeddings=self.use_embeddings)
        try:
            resolutions = resolver.resolve_many(names)
            entities: dict[str, Entity] = {}
            facts: dict[str, Fact] = {}
            skipped: list[str] = []

            def entity_of(node: Any) -> str | None:
                name = _node_name(node)
                found = resolutions.get(clean_mention(name))
                if found is None:
                    skipped.append(f"node {name[:60]!r}: empty or over-long name")
                    return None
                if found.is_new and found.entity_id not in entities:
                    properties = getattr(node, "properties", None) or {}
                    kind = str(getattr(node, "type", "") or "")
                    entities[found.entity_id] = Entity(
                        id=found.entity_id, name=found.name, type="" if kind == "Node" else kind[:200],
                        description=str(properties.get("description") or f"added from a LangChain graph document ({self.model})")[:2000],
                    )  # fmt: skip
                return found.entity_id

            for doc, (doc_id, text) in zip(documents, sources):
                provenance = dict(source_kind=SourceKind.EXTRACTOR, document_id=doc_id, sentence=text[:SOURCE_TEXT_CHARS], model=self.model)
                for node in doc.nodes:
                    subject = entity_of(node)
                    if subject is None:
                        continue
                    for key, value in (getattr(node, "properties", None) or {}).items():
                        if key in ("name", "description", "id") or not _scalar(value) or not str(value).strip():
                            continue
                        literal = literal_entity(subject, str(key), value)
                        entities.setdefault(literal.id, literal)
                        fact = Fact(subject=subject, relation=str(key), object=literal.id, status=write_status,
                                    confidence=0.5, provenance=Provenance(**provenance))  # fmt: skip
                        facts.setdefault(fact.id, fact)
                for rel in doc.relationships:
                    subject, obj = entity_of(rel.source), entity_of(rel.target)
                    relation = " ".join(str(rel.type or "").split())
                    if subject is None or obj is None:
                        continue
                    if not relation or len(relation) > MAX_RELATION_CHARS:
                        skipped.append(f"relationship {relation[:60]!r}: empty or over-long type")
                        continue
                    if subject == obj:
                        skipped.append(f"relationship {relation!r}: subject and object are the same entity ({subject})")
                        continue
                    properties = _json_safe(dict(getattr(rel, "properties", None) or {}))
                    fact = Fact(subject=subject, relation=relation, object=obj, status=write_status,
                                confidence=_confidence(properties), provenance=Provenance(**provenance, properties=properties))  # fmt: skip
                    facts.setdefault(fact.id, fact)

            fresh = [e for e in entities.values() if self.store.get_entity(e.id) is None]
            added_entities = self.store.upsert_entities(fresh).added if fresh else 0
            written = self.store.upsert_facts(list(facts.values())) if facts else None
            used = {clean_mention(_node_name(n)) for doc in documents
                    for n in [*doc.nodes, *(m for r in doc.relationships for m in (r.source, r.target))]}  # fmt: skip
            resolver.remember((m, r) for m, r in resolutions.items() if m in used)
        finally:
            resolver.close()
        self._structured = None  # new relation types show in the next schema
        return {
            "status": write_status.value,
            "entities_added": added_entities,
            "facts_added": written.added if written else 0,
            "facts_unchanged": written.merged if written else 0,
            "skipped": skipped,
        }


def _write_status(status: FactStatus | str) -> FactStatus:
    try:
        value = FactStatus(status)
    except ValueError as e:
        raise InputError(f"unknown fact status {status!r}; use 'proposed' or 'extracted'") from e
    if value not in WRITE_STATUSES:
        raise InputError(
            f"graph documents are written as 'proposed' (reviewed before answers use them) or 'extracted' (with their "
            f"source); not {value.value!r}: only a maintainer's review verifies or rejects a fact"
        )
    return value


def _node_name(node: Any) -> str:
    properties = getattr(node, "properties", None) or {}
    name = properties.get("name")
    return str(name if isinstance(name, str) and name.strip() else getattr(node, "id", ""))


def _source(graph_document: Any) -> tuple[str, str]:
    """(document id, text) of a graph document's source Document; ("", "") without one."""

    source = getattr(graph_document, "source", None)
    if source is None or not isinstance(getattr(source, "page_content", None), str) or not source.page_content.strip():
        return "", ""
    from qa_system.ingest.langchain_documents import document_id

    return document_id(source), source.page_content


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _confidence(properties: dict[str, Any]) -> float:
    """A relationship's ``confidence``/``score`` property when it is a probability, else 0.5 (unknown)."""

    for key in ("confidence", "score"):
        value = properties.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0:
            return float(value)
    return 0.5


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))
