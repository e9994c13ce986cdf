"""Import throughput of ``import-kg bolt://``: the FB15k-237 demo graph served over Bolt (ArcadeDB's
Bolt plugin, the project's test server) imported into a fresh embedded store.

    python -m evaluation.bench_import_bolt [--facts 0] [--out evaluation/results/import-throughput-bolt.json]

The source graph is the demo graph as a Neo4j user would hold it: one ``:Entity`` node per entity
(``mid``, ``name``, ``aliases``, ``description``, ``url``) and one relationship per fact, typed by
its relation (``/film/film/directed_by`` becomes ``film_film_directed_by``: ArcadeDB names files
after types). Loaded through the driver in ``UNWIND`` batches (types are checked identifiers;
everything else travels as parameters), then imported with ``--id-property mid``, so entity ids are
the demo's MIDs; ``url`` becomes an attribute fact, ``aliases`` and ``description`` entity fields.

The record has: the load time (not part of the throughput), the time to only read every page from
the source (``import_bolt_graph``'s own paging, nothing mapped or written: what the server and the
driver cost), the first import (read + map + write) with facts per second and this process's CPU
seconds, and a second, idempotent import. ``--facts N`` loads only the first N facts (all entities).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from evaluation.bench_import import throughput
from graph.embedded import EmbeddedStore
from graph.importers import SourceOptions, entities_of, facts_of, import_kg
from graph.kg_files import load_kg
from graph.source_mapping import Mapping
from graph.source_neo4j import BoltSource

SOURCE_DATABASE = "source"
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,199}")
_INDEX = "CREATE CONSTRAINT source_mid IF NOT EXISTS FOR (n:Entity) REQUIRE n.mid IS UNIQUE"
_NODES = (
    "UNWIND $rows AS row CREATE (n:Entity {mid: row[0], name: row[1], aliases: row[2], description: row[3], url: row[4]}) "
    "RETURN count(n)"
)
_LINKS = "UNWIND $rows AS row MATCH (a:Entity {{mid: row[0]}}) MATCH (b:Entity {{mid: row[1]}}) CREATE (a)-[:`{type}`]->(b) RETURN count(*)"
_COUNTS = ("MATCH (n) RETURN count(n)", "MATCH ()-[r]->() RETURN count(r)")


def relationship_type(relation: str) -> str:
    """``/film/film/directed_by`` -> ``film_film_directed_by``, checked before it enters a statement."""

    name = re.sub(r"[^A-Za-z0-9_]+", "_", relation).strip("_")
    if not _TYPE.fullmatch(name):
        raise ValueError(f"no relationship type for {relation!r}")
    return name


def load_source(uri: str, user: str, password: str, facts_wanted: int, batch: int = 5_000) -> dict[str, Any]:
    """The demo graph (or its first ``facts_wanted`` facts) into the server's source database."""

    import neo4j

    dataset = load_kg("demo", None)
    entities = entities_of(dataset)
    facts = facts_of(dataset)
    if facts_wanted:
        facts = facts[:facts_wanted]
    by_type: dict[str, list[list[str]]] = defaultdict(list)
    names: dict[str, str] = {}
    for fact in facts:
        rel_type = relationship_type(fact.relation)
        if names.setdefault(rel_type, fact.relation) != fact.relation:
            raise ValueError(f"{fact.relation!r} and {names[rel_type]!r} give the same type {rel_type!r}")
        by_type[rel_type].append([fact.subject, fact.object])
    started = time.perf_counter()
    with neo4j.GraphDatabase.driver(uri, auth=(user, password)) as driver:
        with driver.session(database=SOURCE_DATABASE) as session:
            session.run(_INDEX).consume()
            rows = [[e.id, e.name, list(e.aliases) or None, e.description or None, e.url or None] for e in entities]
            for start in range(0, len(rows), batch):
                session.execute_write(lambda tx, chunk=rows[start : start + batch]: tx.run(_NODES, rows=chunk).consume())
            for rel_type, pairs in sorted(by_type.items()):
                statement = _LINKS.format(type=rel_type)
                for start in range(0, len(pairs), batch):
                    session.execute_write(lambda tx, chunk=pairs[start : start + batch]: tx.run(statement, rows=chunk).consume())
            nodes, links = (session.run(q).single()[0] for q in _COUNTS)
    return {"entities": len(entities), "facts": len(facts), "relationship_types": len(by_type), "source_nodes": nodes,
            "source_relationships": links, "load_s": round(time.perf_counter() - started, 1)}


def read_only(uri: str, user: str, password: str, page_size: int) -> dict[str, Any]:
    """Every node and relationship page, read as ``import_bolt_graph`` reads them, nothing else."""

    started, cpu = time.perf_counter(), time.process_time()
    records = [0]

    def count(rows: list[list[Any]]) -> None:
        records[0] += len(rows)

    with BoltSource(uri, user, password, SOURCE_DATABASE) as source:
        source.each_node_page(page_size, count)
        source.each_relationship_page(page_size, count)
    return {"records": records[0], "read_s": round(time.perf_counter() - started, 2), "read_cpu_s": round(time.process_time() - cpu, 2)}


def measure_import(uri: str, user: str, password: str, workspace: Path, mapping: Mapping) -> dict[str, Any]:
    options = SourceOptions(mapping=mapping, user=user, password=password, database=SOURCE_DATABASE, connect_timeout_s=30)
    store = EmbeddedStore.open(workspace)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        summary = import_kg(store, uri, options=options)
        first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
        started = time.perf_counter()
        again = import_kg(store, uri, options=options)
        second = time.perf_counter() - started
        stats = store.stats()
    finally:
        store.close()
    return throughput(stats, summary, again, first, first_cpu, second)  # CPU: this process only, not the server's JVM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facts", type=int, default=0, help="load only the first N facts of the demo graph (0: all)")
    parser.add_argument("--heap", default="3g", help="the Bolt server's JVM heap")
    parser.add_argument("--out", type=Path, default=Path("evaluation/results/import-throughput-bolt.json"))
    args = parser.parse_args(argv)
    from tests.graph.bolt_server import start_arcadedb, stop_arcadedb

    mapping = Mapping(id_property="mid")
    server = start_arcadedb(heap=args.heap)
    try:
        source = load_source(server.uri, server.user, server.password, args.facts)
        print("source", json.dumps(source), flush=True)
        reading = read_only(server.uri, server.user, server.password, mapping.page_size)
        print("read", json.dumps(reading), flush=True)
        with tempfile.TemporaryDirectory(prefix="qa-bench-import-bolt-") as tmp:
            result = measure_import(server.uri, server.user, server.password, Path(tmp) / "ws", mapping)
        print("import", json.dumps(result), flush=True)
    finally:
        stop_arcadedb(server)
    record = {
        "benchmark": "import-kg throughput from Bolt: the FB15k-237 demo graph served by ArcadeDB, fresh embedded store",
        "source": {**source, "server": "ArcadeDB (arcadedb-embedded) Bolt plugin, same machine", "page_size": mapping.page_size,
                   "id_property": mapping.id_property},
        "read_only": reading,
        "results": {"bolt": result},  # the shape of import-throughput.json (one row of RESULTS.md's import table)
        "command": "python -m evaluation.bench_import_bolt" + (f" --facts {args.facts}" if args.facts else ""),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
