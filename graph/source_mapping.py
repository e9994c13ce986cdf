"""How a graph from elsewhere becomes our entities and facts: one mapping for every source.

Why one module: a Neo4j database read over Bolt, a neo4j-admin CSV folder and (after its triples
are grouped by subject) an RDF file are all "nodes with labels and properties, typed relationships
with properties". Mapping them in one place means a ``Person {name: 'Keanu Reeves', born: 1964}``
becomes the same entity, the same ``born`` attribute fact and the same literal node whichever way
it arrived, and the importers only read and validate their own format.

The mapping (overridable with ``--id-property``, ``--name-property LABEL=PROP`` and a JSON or YAML
``--mapping`` file; see ``Mapping``):

* node → ``Entity``: id = the source's node id (or the ``id_property`` value); name = the first
  present of ``name_keys`` (``name``, ``title``, ``label``, ``caption``; a per-label property wins);
  type = the labels joined with ``;``; description = the first of ``description_keys``; aliases =
  the ``alias_keys`` values. A node without a name gets its id as name and is counted (``unnamed``).
* every other scalar or list property → an attribute fact ``(entity, property, lit:…)`` per value
  (``qa_system.types.literal_entity``: one literal node per subject, attribute and value).
* relationship → ``Fact(start, TYPE, end)`` with the relationship's properties in
  ``Provenance.properties``; provenance ``source_kind=dataset``, ``dataset`` = the source name.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Mapping as MappingABC
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from graph.import_batch import FactRow, GraphBatch, ImportCounts  # noqa: F401  (re-exported: the importers' names)
from graph.store import GraphStore
from qa_system.errors import DataFormatError, InputError
from qa_system.types import Entity, Fact, literal_entity

log = logging.getLogger(__name__)

DEFAULT_NAME_KEYS = ("name", "title", "label", "caption")
DEFAULT_DESCRIPTION_KEYS = ("description", "summary")
DEFAULT_ALIAS_KEYS = ("aliases", "alias")
DEFAULT_BATCH = 10_000  # a Bolt source is paged: memory stays flat whatever its size
# A file is parsed whole before anything is written (a malformed line must write nothing), so its
# writes need not be small: each store write has a fixed cost (id scans, one COPY), and 10k batches
# made a 100k-fact CSV import 2x slower than one batch.
FILE_BATCH = 200_000
MAX_ID_CHARS = 512  # ``Entity.id``'s limit; longer source ids keep a prefix and a hash

# (stage, done, total) for progress bars, as ``graph.importers.StageProgress``
StageProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Mapping:
    """Which source properties fill which entity fields; everything else becomes attribute facts."""

    id_property: str | None = None
    name_properties: dict[str, str] = field(default_factory=dict)  # label -> property holding the name
    name_keys: tuple[str, ...] = DEFAULT_NAME_KEYS
    description_keys: tuple[str, ...] = DEFAULT_DESCRIPTION_KEYS
    alias_keys: tuple[str, ...] = DEFAULT_ALIAS_KEYS
    skip_properties: frozenset[str] = frozenset()  # never attribute facts (e.g. internal timestamps)
    batch_size: int | None = None  # None: DEFAULT_BATCH from Bolt, FILE_BATCH from files

    @property
    def page_size(self) -> int:
        return self.batch_size or DEFAULT_BATCH

    @property
    def file_batch_size(self) -> int:
        return self.batch_size or FILE_BATCH


_FILE_KEYS = {"id_property", "name_properties", "name_keys", "description_keys", "alias_keys", "skip_properties", "batch_size"}


def load_mapping(path: str | Path) -> dict[str, Any]:
    """The fields a mapping file sets (JSON, or YAML for ``.yaml``/``.yml``); unknown keys are an error
    so that a typo does not silently import with the defaults."""

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataFormatError(f"cannot read the mapping file: {e}", path=str(path)) from e
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - JSON and YAML parsers raise their own types
        raise DataFormatError(f"not a valid mapping file: {' '.join(str(e).split())[:300]}", path=str(path)) from e
    if not isinstance(data, dict):
        raise DataFormatError("a mapping file holds one object (id_property, name_properties, ...)", path=str(path))
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise DataFormatError(f"unknown mapping key(s) {unknown}; known: {sorted(_FILE_KEYS)}", path=str(path))
    return data


def build_mapping(
    mapping_file: str | Path | None = None,
    *,
    id_property: str | None = None,
    name_properties: Sequence[str] = (),
    batch_size: int | None = None,
) -> Mapping:
    """The mapping of a mapping file with the command-line flags on top (flags win)."""

    data = load_mapping(mapping_file) if mapping_file else {}
    names = dict(data.get("name_properties") or {})
    for item in name_properties:
        label, sep, prop = item.partition("=")
        if not sep or not label.strip() or not prop.strip():
            raise InputError(f"--name-property wants LABEL=PROPERTY, got {item!r}")
        names[label.strip()] = prop.strip()
    mapping = Mapping(
        id_property=id_property or data.get("id_property") or None,
        name_properties={str(k): str(v) for k, v in names.items()},
        name_keys=tuple(data.get("name_keys") or DEFAULT_NAME_KEYS),
        description_keys=tuple(data.get("description_keys") or DEFAULT_DESCRIPTION_KEYS),
        alias_keys=tuple(data.get("alias_keys") or DEFAULT_ALIAS_KEYS),
        skip_properties=frozenset(data.get("skip_properties") or ()),
    )
    size = batch_size or data.get("batch_size")
    if size is not None:
        if int(size) < 1:
            raise InputError(f"the batch size must be at least 1, got {size}")
        mapping = replace(mapping, batch_size=int(size))
    return mapping


def stable_id(raw: Any) -> str:
    """A source id as an entity id: its text, or (over 512 characters) a prefix plus a hash of it."""

    text = str(raw)
    if len(text) <= MAX_ID_CHARS:
        return text
    return f"{text[:400]}~{hashlib.sha1(text.encode('utf-8')).hexdigest()}"


def plain_value(value: Any) -> Any:
    """A source value as a plain Python value: driver temporal types become ``datetime`` values (or
    ISO text), points and other objects their text; lists stay lists."""

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    to_native = getattr(value, "to_native", None)
    if callable(to_native):
        try:
            return to_native()
        except (ValueError, TypeError, OverflowError, AttributeError):
            pass
    iso = getattr(value, "iso_format", None) or getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    return str(value)


def json_value(value: Any) -> Any:
    """A value as JSON can hold it (for ``Provenance.properties``): dates become ISO text."""

    value = plain_value(value)
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    iso = getattr(value, "isoformat", None)
    return iso() if callable(iso) else str(value)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if v is not None and str(v).strip()), "")
    return " ".join(str(plain_value(value) if value is not None else "").split())


class GraphMapper:
    """Maps source nodes and relationships to entities and facts under one ``Mapping`` and source name."""

    def __init__(self, mapping: Mapping, dataset: str) -> None:
        self.mapping = mapping
        self.dataset = dataset

    def batch(self, records: int = 0) -> GraphBatch:
        return GraphBatch(dataset=self.dataset, records=records)

    def properties(self, properties: MappingABC[str, Any] | None) -> dict[str, Any] | None:
        """A relationship's properties as JSON values (None when it has none)."""

        if not properties:
            return None
        props = {str(k): json_value(v) for k, v in properties.items() if v is not None}
        return props or None

    def link(self, into: GraphBatch, subject: str, relation: str, obj: str, properties: MappingABC[str, Any] | None = None) -> None:
        """A fact ``(subject, relation, obj)`` with the relationship's properties (kept in its provenance)."""

        into.rows.append((subject, relation, obj, self.properties(properties)))

    def fact(self, subject: str, relation: str, obj: str, properties: MappingABC[str, Any] | None = None) -> Fact:
        """The same fact as a ``Fact`` model."""

        batch = self.batch()
        self.link(batch, subject, relation, obj, properties)
        return batch.facts[0]

    def node_id(self, raw_id: Any, properties: MappingABC[str, Any]) -> str:
        key = self.mapping.id_property
        if key and properties.get(key) not in (None, ""):
            return stable_id(_text(properties[key]))
        return stable_id(raw_id)

    def _name_key(self, labels: Sequence[str], properties: MappingABC[str, Any]) -> str | None:
        for label in labels:
            key = self.mapping.name_properties.get(label)
            if key and _text(properties.get(key)):
                return key
        for key in self.mapping.name_keys:
            if _text(properties.get(key)):
                return key
        return None

    def node(self, raw_id: Any, labels: Sequence[str], properties: MappingABC[str, Any], into: GraphBatch) -> str:
        """Add the node's entity, literal nodes and attribute facts to ``into``; return its entity id."""

        entity_id = self.node_id(raw_id, properties)
        name_key = self._name_key(labels, properties)
        name = _text(properties[name_key])[:2048] if name_key else ""
        if not name:
            into.unnamed += 1
            name = entity_id[:2048]
        used = {name_key, self.mapping.id_property} | set(self.mapping.skip_properties)
        description = ""
        for key in self.mapping.description_keys:
            if _text(properties.get(key)):
                description = _text_all(properties[key])
                used.add(key)
                break
        aliases: list[str] = []
        for key in self.mapping.alias_keys:
            if key in properties and key not in used:
                values = properties[key] if isinstance(properties[key], (list, tuple)) else [properties[key]]
                aliases += [t for t in (_text(v) for v in values) if t and t != name]
                used.add(key)
        into.entities.append(
            Entity(id=entity_id, name=name, aliases=tuple(dict.fromkeys(aliases)), type=";".join(labels), description=description)
        )
        for key in sorted(properties):
            if key in used:
                continue
            self.attribute(entity_id, key, properties[key], into)
        return entity_id

    def attribute(self, entity_id: str, attribute: str, value: Any, into: GraphBatch) -> None:
        """One attribute fact per value (a list gives one per element); empty values are skipped."""

        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            item = plain_value(item)
            if item is None or isinstance(item, (dict, list, bytes, bytearray)):
                continue
            try:
                literal = literal_entity(entity_id, attribute, item)
            except ValueError:  # empty text
                continue
            into.literals.append(literal)
            into.rows.append((entity_id, attribute, literal.id, None))


def _text_all(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value if _text(v))
    return _text(value)


class StoreWriter:
    """Writes batches through the ``GraphStore`` contract: entities, then their literal values, then
    facts (a fact's ends must exist first). Any backend; the embedded store has a faster path
    (``graph.embedded_bulk.BulkWriter``, the same stored result)."""

    whole_source = False  # whether a file source is best written as one batch

    def __init__(self, store: GraphStore) -> None:
        self.store = store

    def write(self, batch: GraphBatch, counts: ImportCounts) -> None:
        store = self.store
        if batch.entities:
            counts.add("entities", store.upsert_entities(batch.entities))
        if batch.literals:
            counts.add("literals", store.upsert_entities(batch.literals))
        if batch.rows:
            counts.add("facts", store.upsert_facts(batch.facts))
        counts.unnamed += batch.unnamed

    def flush(self) -> None:
        """Nothing waits: every batch is written when given."""


def batch_writer(store: GraphStore) -> Any:
    """The fastest writer for ``store`` (``write(batch, counts)``, then ``flush()`` once at the end):
    the embedded store's bulk path, or the store's own upserts. One writer per import: the bulk path
    remembers what it wrote and may hold batches back until ``flush``."""

    from graph.embedded_bulk import BulkWriter

    return BulkWriter(store) if BulkWriter.supports(store) else StoreWriter(store)


def write_batch(store: GraphStore, batch: GraphBatch, counts: ImportCounts) -> None:
    writer = batch_writer(store)
    writer.write(batch, counts)
    writer.flush()


def write_in_batches(
    writer: Any,
    batches: Iterable[GraphBatch],
    *,
    stage: str,
    total: int,
    progress: StageProgress | None = None,
    counts: ImportCounts | None = None,
) -> ImportCounts:
    """Write batches in order, reporting ``progress(stage, done, total)`` in source records."""

    counts = counts or ImportCounts()
    done = 0
    for batch in batches:
        writer.write(batch, counts)
        done += batch.records
        if progress:
            progress(stage, min(done, total) if total else done, total)
    return counts


def write_graph(store: GraphStore, node_batches: list[GraphBatch], link_batches: list[GraphBatch], dataset: str, *,
                progress: StageProgress | None = None) -> tuple[str, ImportCounts]:
    """A file source read and checked whole: its nodes (with their attribute facts), then the links
    between them, then the warning about nodes named by their id. The bulk writer takes it all in
    one write (one ``COPY`` per table: each has a fixed cost, and copying into a non-empty
    relationship table is slower than into an empty one)."""

    writer = batch_writer(store)
    node_total, link_total = sum(b.records for b in node_batches), sum(b.records for b in link_batches)
    if writer.whole_source:
        whole = GraphBatch(dataset=dataset)
        for batch in [*node_batches, *link_batches]:
            whole.extend(batch)
        counts = ImportCounts()
        writer.write(whole, counts)
        writer.flush()
        if progress:
            progress("nodes", node_total, node_total)
            progress("relationships", link_total, link_total)
    else:
        counts = write_in_batches(writer, node_batches, stage="nodes", total=node_total, progress=progress)
        write_in_batches(writer, link_batches, stage="relationships", total=link_total, progress=progress, counts=counts)
        writer.flush()
    warn_unnamed(counts, dataset)
    return dataset, counts


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while a source is mapped: mapping builds hundreds of
    thousands of small long-lived objects (rows, entities), and the collections they trigger took
    40% of a CSV file's read time. Nothing here makes reference cycles, so nothing waits for it."""

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def warn_unnamed(counts: ImportCounts, dataset: str) -> None:
    if counts.unnamed:
        log.warning("%s: %d node(s) have no name property (named by their id); see --name-property", dataset, counts.unnamed)
