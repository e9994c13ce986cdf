"""Importing a property graph from CSV files in the ``neo4j-admin database import`` layout.

Why this layout: it is what Neo4j exports and bulk-imports, so a user's graph very likely exists in
it already, and its header says everything the mapping needs (ids, labels, types, property types).

A folder holds ``nodes*.csv`` and ``relationships*.csv`` (also ``rels*.csv``), comma-separated,
UTF-8, first line a header:

* nodes: one ``:ID`` column (``personId:ID``; an id space ``:ID(Person)`` makes ids ``Person:<value>``),
  optional ``:LABEL`` (``;``-separated labels), property columns ``name``, ``born:int``,
  ``rating:float``, ``alive:boolean``, ``roles:string[]`` (arrays ``;``-separated); ``:IGNORE`` skipped.
* relationships: ``:START_ID``, ``:END_ID``, ``:TYPE`` and property columns (same types).

Everything is parsed and checked (types, ends that are no node) before the first write: a bad cell
names its file and line, and nothing is written. Then ``graph.source_mapping`` maps the records.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graph.source_mapping import GraphBatch, GraphMapper, ImportCounts, Mapping, StageProgress, paused_gc, write_graph
from graph.store import GraphStore
from qa_system.errors import DataFormatError

ARRAY_SEPARATOR = ";"
_INT_TYPES = {"int", "long", "short", "byte"}
_FLOAT_TYPES = {"float", "double"}
_TEXT_TYPES = {"string", "char", "date", "localdate", "datetime", "localdatetime", "time", "localtime", "duration", "point"}
_FIELD = re.compile(r"^(?P<name>.*?)(?::(?P<kind>[A-Za-z_]+(?:\[\])?)(?:\((?P<group>[^)]*)\))?)?$")


@dataclass(frozen=True)
class Column:
    """One header field: its property name and kind (``ID``, ``LABEL``, ``int[]``...) and id space."""

    index: int
    name: str
    kind: str  # lower-cased: id, label, start_id, end_id, type, ignore, or a value type (int, string[]...)
    group: str = ""

    @property
    def is_property(self) -> bool:
        return self.kind not in ("id", "label", "start_id", "end_id", "type", "ignore")


def node_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("nodes*.csv"))


def relationship_files(folder: Path) -> list[Path]:
    return sorted({*folder.glob("relationships*.csv"), *folder.glob("rels*.csv")})


def is_csv_graph(path: Path) -> bool:
    """A folder holding ``nodes*.csv`` files (the neo4j-admin layout)."""

    return path.is_dir() and bool(node_files(path))


def parse_header(fields: list[str], path: Path) -> list[Column]:
    columns = []
    for index, raw in enumerate(fields):
        match = _FIELD.match(raw.strip())
        if match is None:  # pragma: no cover - the pattern matches any text
            raise DataFormatError(f"cannot read header field {raw!r}", path=str(path), line=1)
        name, kind = match["name"].strip(), (match["kind"] or "string").lower()
        if not (kind in ("id", "label", "start_id", "end_id", "type", "ignore") or kind.removesuffix("[]") in _INT_TYPES | _FLOAT_TYPES | _TEXT_TYPES | {"boolean"}):
            raise DataFormatError(f"header field {raw!r}: unknown type {match['kind']!r}", path=str(path), line=1)
        if kind not in ("id", "label", "start_id", "end_id", "type", "ignore") and not name:
            raise DataFormatError(f"header field {raw!r} has no property name", path=str(path), line=1)
        columns.append(Column(index, name, kind, (match["group"] or "").strip()))
    return columns


def _one(columns: list[Column], kind: str, path: Path, *, required: bool = True) -> Column | None:
    found = [c for c in columns if c.kind == kind]
    if len(found) > 1:
        raise DataFormatError(f"header has {len(found)} :{kind.upper()} columns; expected one", path=str(path), line=1)
    if required and not found:
        raise DataFormatError(f"header has no :{kind.upper()} column (e.g. 'personId:ID')", path=str(path), line=1)
    return found[0] if found else None


def _value(text: str, kind: str, path: Path, line: int, column: str) -> Any:
    base = kind.removesuffix("[]")
    if kind.endswith("[]"):
        return [_value(part, base, path, line, column) for part in text.split(ARRAY_SEPARATOR) if part.strip()]
    try:
        if base in _INT_TYPES:
            return int(text.strip())
        if base in _FLOAT_TYPES:
            return float(text.strip())
    except ValueError as e:
        raise DataFormatError(f"column {column!r}: {text[:40]!r} is not a {base}", path=str(path), line=line) from e
    if base == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise DataFormatError(f"column {column!r}: {text[:40]!r} is not true or false", path=str(path), line=line)
        return lowered == "true"
    return text


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with open(path, encoding="utf-8-sig", errors="strict", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            try:
                for row in reader:
                    yield reader.line_num, row
            except csv.Error as e:
                raise DataFormatError(f"not valid CSV: {e}", path=str(path), line=reader.line_num) from e
    except UnicodeDecodeError as e:
        raise DataFormatError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=str(path)) from e
    except OSError as e:
        raise DataFormatError(f"cannot read file: {e}", path=str(path)) from e


def _records(path: Path) -> Iterator[tuple[int, list[Column], list[str]]]:
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise DataFormatError("empty file (no header)", path=str(path), line=1)
    columns = parse_header(first[1], path)
    width = len(columns)
    for line, row in rows:
        if len(row) != width or not row[0].strip():  # the usual row (full, first cell set) needs no blank check
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != width:
                raise DataFormatError(f"expected {width} fields, got {len(row)}", path=str(path), line=line)
        yield line, columns, row


def _properties(columns: list[Column], row: list[str], path: Path, line: int) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for column in columns:
        cell = row[column.index]
        if column.is_property and cell != "":
            props[column.name] = _value(cell, column.kind, path, line, column.name)
    return props


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered == "true"


def _converter(kind: str) -> Callable[[str], Any] | None:
    """A fast cell converter for a column kind (None: the text itself); a cell it rejects is
    converted again by ``_value``, which raises the error that names the column and line."""

    base = kind.removesuffix("[]")
    one: Callable[[str], Any] | None = (
        int if base in _INT_TYPES else float if base in _FLOAT_TYPES else _boolean if base == "boolean" else None
    )
    if not kind.endswith("[]"):
        return one
    if one is None:
        return lambda text: [part for part in text.split(ARRAY_SEPARATOR) if part.strip()]
    return lambda text: [one(part) for part in text.split(ARRAY_SEPARATOR) if part.strip()]


def _property_reader(columns: list[Column]) -> Callable[[list[str], Path, int], dict[str, Any]]:
    """``_properties`` for rows of one header, with each column's converter chosen once."""

    spec = [(c.index, c.name, c.kind, _converter(c.kind)) for c in columns if c.is_property]

    def read(row: list[str], path: Path, line: int) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for index, name, kind, convert in spec:
            cell = row[index]
            if cell != "":
                if convert is None:
                    props[name] = cell
                    continue
                try:
                    props[name] = convert(cell)
                except ValueError:
                    props[name] = _value(cell, kind, path, line, name)  # raises the one-line error
        return props

    return read


def _grouped(group: str, value: str) -> str:
    return f"{group}:{value}" if group else value


def read_csv_graph(folder: Path, mapping: Mapping) -> tuple[list[GraphBatch], list[GraphBatch], str]:
    """Parse and check the whole folder: (node batches, relationship batches, source name)."""

    dataset = f"csv:{folder.name}"
    mapper = GraphMapper(mapping, dataset)
    nodes = node_files(folder)
    if not nodes:
        raise DataFormatError("no nodes*.csv file (the neo4j-admin import layout)", path=str(folder))
    ids: dict[str, str] = {}  # source id (with id space) -> entity id
    node_batches: list[GraphBatch] = [mapper.batch()]
    for path in nodes:
        id_column = label_column = None
        read_props: Callable[[list[str], Path, int], dict[str, Any]] | None = None
        for line, columns, row in _records(path):
            if read_props is None:
                id_column = _one(columns, "id", path)
                label_column = _one(columns, "label", path, required=False)
                read_props = _property_reader(columns)
            assert id_column is not None
            raw = row[id_column.index].strip()
            if not raw:
                raise DataFormatError(f"empty id in column {id_column.name or ':ID'!r}", path=str(path), line=line)
            key = _grouped(id_column.group, raw)
            labels = [x.strip() for x in row[label_column.index].split(ARRAY_SEPARATOR) if x.strip()] if label_column else []
            if len(node_batches[-1].entities) >= mapping.file_batch_size:
                node_batches.append(mapper.batch())
            batch = node_batches[-1]
            ids[key] = mapper.node(key, labels, read_props(row, path, line), batch)
            batch.records += 1
        if id_column is None:  # a header and no rows: still check the header
            _one(parse_header(next(_rows(path))[1], path), "id", path)
    rel_batches: list[GraphBatch] = [mapper.batch()]
    for path in relationship_files(folder):
        start_column = end_column = type_column = None
        read_props = None
        for line, columns, row in _records(path):
            if read_props is None:
                start_column, end_column, type_column = (_one(columns, kind, path) for kind in ("start_id", "end_id", "type"))
                read_props = _property_reader(columns)
            assert start_column is not None and end_column is not None and type_column is not None
            ends = []
            for column in (start_column, end_column):
                key = _grouped(column.group, row[column.index].strip())
                if key not in ids:
                    raise DataFormatError(f"{column.kind.upper()} {key!r} is not a node id of the nodes files", path=str(path), line=line)
                ends.append(ids[key])
            rel_type = row[type_column.index].strip()
            if not rel_type:
                raise DataFormatError("empty :TYPE", path=str(path), line=line)
            batch = rel_batches[-1]
            if len(batch.rows) >= mapping.file_batch_size:
                batch = mapper.batch()
                rel_batches.append(batch)
            # CSV values are JSON values already (text, numbers, booleans, lists of them)
            batch.rows.append((ends[0], rel_type, ends[1], read_props(row, path, line) or None))
            batch.records += 1
    return node_batches, rel_batches, dataset


def import_csv_graph(store: GraphStore, folder: Path, mapping: Mapping, *, progress: StageProgress | None = None) -> tuple[str, ImportCounts]:
    """Read and check everything, then write nodes (with their attribute facts), then relationships."""

    with paused_gc():
        node_batches, rel_batches, dataset = read_csv_graph(folder, mapping)
        return write_graph(store, node_batches, rel_batches, dataset, progress=progress)
