"""Importing RDF (N-Triples ``.nt``, Turtle ``.ttl``, JSON-LD ``.jsonld``, RDF/XML ``.rdf``/``.owl``) with rdflib.

Why rdflib: it parses every common serialisation into one triple model, so the mapping below is
written once. The whole input (a file or a folder of them) is parsed before the first write: a
syntax error names the file (and rdflib's line when it gives one) and nothing is written.

Mapping (our property-graph view of RDF):

* every IRI or blank node that is a subject, or the IRI/blank-node object of a triple, is an entity;
  IRIs are the ids; a blank node gets a stable id ``_:<source>:<canonical id>`` from rdflib's
  canonical labelling of the parsed graph (the same file always gives the same ids, so a re-import
  merges instead of duplicating).
* names: ``rdfs:label``, ``schema:name``, ``foaf:name``, ``skos:prefLabel`` (English or untagged
  first): the first is the name, the others and ``skos:altLabel`` aliases; an entity with none is
  named by its id (and counted: ``unnamed``).
* ``rdf:type`` → the entity type (the class IRI's local name, ``;``-joined); ``rdfs:comment`` /
  ``schema:description`` / ``dcterms:description`` → the description.
* any other predicate: a literal object is an attribute fact (relation = the predicate IRI, object a
  ``lit:`` node, ``qa_system.types.literal_entity``), an IRI or blank-node object a fact.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from graph.source_mapping import GraphBatch, GraphMapper, ImportCounts, Mapping, StageProgress, paused_gc, stable_id, write_graph
from graph.store import GraphStore
from qa_system.errors import DataFormatError
from qa_system.types import Entity

FORMATS = {".nt": "nt", ".ttl": "turtle", ".jsonld": "json-ld", ".json-ld": "json-ld", ".rdf": "xml", ".owl": "xml", ".n3": "n3"}

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RDFS = "http://www.w3.org/2000/01/rdf-schema#"
_SKOS = "http://www.w3.org/2004/02/skos/core#"
_TYPE = _RDF + "type"
NAME_PREDICATES = (
    _RDFS + "label",
    "http://schema.org/name",
    "https://schema.org/name",
    "http://xmlns.com/foaf/0.1/name",
    _SKOS + "prefLabel",
)
ALIAS_PREDICATES = (_SKOS + "altLabel",)
DESCRIPTION_PREDICATES = (
    _RDFS + "comment",
    "http://schema.org/description",
    "https://schema.org/description",
    "http://purl.org/dc/terms/description",
    "http://purl.org/dc/elements/1.1/description",
)
_TEXT_PREDICATES = frozenset(NAME_PREDICATES + ALIAS_PREDICATES + DESCRIPTION_PREDICATES)
_CONTEXT_FREE = frozenset({"nt", "turtle", "xml"})  # formats rdflib parses into a store without contexts


def rdf_files(path: Path) -> list[Path]:
    """The RDF files of a file or folder (by extension), sorted."""

    if path.is_file():
        return [path] if path.suffix.lower() in FORMATS else []
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
    return []


def is_rdf_source(path: Path) -> bool:
    return bool(rdf_files(path))


def local_name(iri: str) -> str:
    """``http://schema.org/Person`` → ``Person``; ``http://ex.org/ns#Film`` → ``Film``."""

    text = iri.rstrip("/#")
    for sep in ("#", "/"):
        if sep in text:
            text = text.rsplit(sep, 1)[-1]
            break
    return text or iri


def parse_rdf(path: Path) -> Any:
    """All files of ``path`` in one rdflib graph, blank nodes relabelled canonically (stable ids)."""

    import rdflib
    from rdflib.compare import to_canonical_graph

    files = rdf_files(path)
    if not files:
        raise DataFormatError(f"no RDF file ({', '.join(sorted(FORMATS))})", path=str(path))
    # rdflib's context-free store where every file's parser works without contexts (JSON-LD and N3
    # need them): 25% less CPU on a Turtle file than the default store.
    simple = all(FORMATS[f.suffix.lower()] in _CONTEXT_FREE for f in files)
    graph = rdflib.Graph(store="SimpleMemory" if simple else "default")
    for file in files:
        try:
            graph.parse(str(file), format=FORMATS[file.suffix.lower()])
        except Exception as e:  # noqa: BLE001 - each rdflib parser raises its own types
            raise _parse_error(file, e) from e
    if any(isinstance(term, rdflib.BNode) for triple in graph for term in (triple[0], triple[2])):
        graph = to_canonical_graph(graph)
    return graph


def _parse_error(file: Path, error: Exception) -> DataFormatError:
    message = " ".join(str(error).split())[:300] or type(error).__name__
    return DataFormatError(f"not valid {FORMATS[file.suffix.lower()]}: {message}", path=str(file))


# N-Triples lines of the common shape, read without rdflib's per-term parsing: rdflib's own term
# patterns (``rdflib.plugins.parsers.ntriples``), narrowed to text without backslash escapes, and
# IRIs whose scheme part holds no space or bracket (so the one way rdflib splits the line is this
# one). Every other line (escapes, blank nodes, errors) is rdflib's.
_IRI = r'<([^\s"<>\\:]+:[^\s"<>\\]*)>'
_FAST_TRIPLE = re.compile(
    rf'[ \t]*{_IRI}[ \t]+{_IRI}[ \t]+(?:{_IRI}|"([^"\\]*)"(?:@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*)|\^\^{_IRI})?)[ \t]*\.[ \t]*(?:#.*)?'
)


class _BlankNodes(Exception):
    """An N-Triples file has blank nodes: their stable ids need the whole rdflib graph."""


def _ntriples(files: list[Path]) -> list[tuple[str, str, Any]]:
    """The distinct triples of N-Triples files, in file order: IRIs as text, literals as rdflib
    ``Literal`` (built as rdflib's parser builds them). Lines of the common shape are matched by
    one pattern; any other line goes through rdflib's N-Triples parser, which also reports errors
    (as ``graph.parse`` would). Raises ``_BlankNodes`` when a blank node appears."""

    from rdflib import Literal, URIRef
    from rdflib.plugins.parsers.ntriples import W3CNTriplesParser

    class Sink:
        def __init__(self) -> None:
            self.triples: list[tuple[Any, Any, Any]] = []

        def triple(self, s: Any, p: Any, o: Any) -> None:
            self.triples.append((s, p, o))

    literals: dict[tuple[str, str | None, str | None], Any] = {}
    triples: dict[tuple[str, str, Any], None] = {}
    match = _FAST_TRIPLE.fullmatch
    for file in files:
        try:
            with open(file, encoding="utf-8", errors="strict") as handle:
                for line in handle:
                    found = match(line.rstrip("\r\n"))
                    if found is not None:
                        s, p, iri, lexical, lang, datatype = found.groups()
                        if iri is None:
                            key = (lexical, lang, datatype)
                            obj = literals.get(key)
                            if obj is None:
                                obj = literals[key] = Literal(lexical, lang or None, URIRef(datatype) if datatype else None)
                        else:
                            obj = iri
                        triples[(s, p, obj)] = None
                        continue
                    text = line.strip()
                    if not text or text.startswith("#"):
                        continue
                    if "_:" in text:
                        raise _BlankNodes
                    sink = Sink()
                    W3CNTriplesParser(sink).parsestring(line)
                    for s, p, o in sink.triples:
                        triples[(str(s), str(p), o if isinstance(o, Literal) else str(o))] = None
        except _BlankNodes:
            raise
        except UnicodeDecodeError as e:
            raise DataFormatError(f"not valid nt: not UTF-8 text ({e.reason} at byte {e.start})", path=str(file)) from e
        except OSError as e:
            raise DataFormatError(f"cannot read file: {e}", path=str(file)) from e
        except Exception as e:  # noqa: BLE001 - rdflib's parser raises its own types
            raise _parse_error(file, e) from e
    return list(triples)


def _triples(path: Path) -> list[tuple[Any, Any, Any]]:
    """The source's distinct triples. N-Triples without blank nodes are read line by line
    (``_ntriples``, ten times faster than into a graph); anything else is parsed into an rdflib
    graph. In the order read: ``read_rdf_graph`` sorts what the order decides (a subject's names,
    descriptions and types), and sorting every triple took a third of a Turtle file's read time."""

    files = rdf_files(path)
    if files and all(FORMATS[f.suffix.lower()] == "nt" for f in files):
        try:
            return _ntriples(files)
        except _BlankNodes:
            pass
    return list(parse_rdf(path))


def _prefer_english(literals: list[Any]) -> list[Any]:
    """Untagged or English literals first (stable order otherwise)."""

    return sorted(literals, key=lambda lit: 0 if (getattr(lit, "language", None) or "en").lower().startswith("en") else 1)


def _literal_value(literal: Any) -> Any:
    import rdflib

    value = literal.toPython()
    return str(literal) if isinstance(value, rdflib.Literal) else value


def read_rdf_graph(path: Path, mapping: Mapping) -> tuple[list[GraphBatch], list[GraphBatch], str]:
    """Parse and map: (entity batches with their attribute facts, batches of entity-to-entity facts, source name)."""

    import rdflib

    triples = _triples(path)
    dataset = f"rdf:{path.stem if path.is_file() else path.name}"
    mapper = GraphMapper(mapping, dataset)

    def node_id(term: Any) -> str:
        return stable_id(f"_:{dataset}:{term}" if isinstance(term, rdflib.BNode) else str(term))

    texts: dict[Any, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    types: dict[Any, list[str]] = defaultdict(list)
    attributes: dict[Any, list[tuple[str, Any]]] = defaultdict(list)
    links: list[tuple[Any, str, Any]] = []
    nodes: dict[Any, None] = {}
    for s, p, o in triples:
        nodes.setdefault(s)
        predicate = str(p)
        if predicate == _TYPE and not isinstance(o, rdflib.Literal):
            types[s].append(o)
        elif isinstance(o, rdflib.Literal):
            if predicate in _TEXT_PREDICATES:
                texts[s][predicate].append(o)
            else:
                attributes[s].append((predicate, _literal_value(o)))
        else:
            nodes.setdefault(o)
            links.append((s, predicate, o))
    # The order sorted triples give, where the order decides what is stored: which of a subject's
    # labels is its name (then its aliases' order), which comment its description, its types' order.
    for own in texts.values():
        for values in own.values():
            values.sort()
    for classes in types.values():
        classes.sort()
    batches: list[GraphBatch] = [mapper.batch()]
    for term in nodes:
        if len(batches[-1].entities) >= mapping.file_batch_size:
            batches.append(mapper.batch())
        batch, entity_id = batches[-1], node_id(term)
        own = texts.get(term, {})
        names = [" ".join(str(v).split()) for p in NAME_PREDICATES for v in _prefer_english(own.get(p, []))]
        names = [n for n in dict.fromkeys(names) if n]
        aliases = names[1:] + [" ".join(str(v).split()) for p in ALIAS_PREDICATES for v in own.get(p, [])]
        descriptions = [str(v).strip() for p in DESCRIPTION_PREDICATES for v in _prefer_english(own.get(p, []))]
        if not names:
            batch.unnamed += 1
        batch.entities.append(
            Entity(
                id=entity_id,
                name=(names[0] if names else entity_id)[:2048],
                aliases=tuple(a for a in dict.fromkeys(aliases) if a and a != (names[0] if names else "")),
                type=";".join(dict.fromkeys(local_name(str(c)) for c in types.get(term, []))),
                description=next((d for d in descriptions if d), ""),
            )
        )
        for predicate, value in attributes.get(term, []):
            mapper.attribute(entity_id, predicate, value, batch)
        batch.records += 1
    link_batches: list[GraphBatch] = [mapper.batch()]
    for s, predicate, o in links:
        if len(link_batches[-1].rows) >= mapping.file_batch_size:
            link_batches.append(mapper.batch())
        mapper.link(link_batches[-1], node_id(s), predicate, node_id(o))
        link_batches[-1].records += 1
    return batches, link_batches, dataset


def import_rdf_graph(store: GraphStore, path: Path, mapping: Mapping, *, progress: StageProgress | None = None) -> tuple[str, ImportCounts]:
    """Parse everything, then write entities (with their attribute facts), then the links between them."""

    with paused_gc():
        batches, link_batches, dataset = read_rdf_graph(path, mapping)
        return write_graph(store, batches, link_batches, dataset, progress=progress)
