"""Import throughput of ``import-kg`` for graphs of one's own: a generated Movies-style graph written
as a neo4j-admin CSV folder and as N-Triples and Turtle, each imported into a fresh embedded store.

    python -m evaluation.bench_import [--facts 100000] [--out evaluation/results/import-throughput.json]

Why generated: the size is the point (the demo graph is in the FB15k-237 layout, not these
formats), and a seeded generator makes the record reproducible. The graph: people (name, born),
movies (title, released, tagline), ``ACTED_IN`` relationships with a ``roles`` list; about 14% of
the facts are attribute facts (literal values). For each format the record has the wall time of the
first import (read + parse + map + write, everything ``import_kg`` does), facts per second, and
the time of a second, idempotent import of the same source (nothing new is written). Each format
is imported ``--repeats`` times into a fresh store and the fastest run is reported (all are in the
record): the box is shared, and a neighbour's burst is not the importer's time. The CPU
seconds of the first import (this process, every thread) are recorded too: on a shared 2-core box
the wall time mostly measures the neighbours (the load average is in the record).

Bolt sources: ``evaluation/bench_import_bolt.py`` (the demo graph served by ArcadeDB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from graph.embedded import EmbeddedStore
from graph.importers import import_kg

EX = "http://example.org/bench/"
XSD_INT = "http://www.w3.org/2001/XMLSchema#integer"
SCHEMA_NAME = "http://schema.org/name"


def generate(facts: int, seed: int = 0) -> dict[str, Any]:
    """People, movies and ACTED_IN edges whose facts (edges + attributes) add up to about ``facts``."""

    rng = random.Random(seed)
    people, movies = max(1, facts // 10), max(1, facts // 50)
    edges_wanted = facts - people - 2 * movies  # born per person; released and tagline per movie
    edges: dict[tuple[int, int], str] = {}
    while len(edges) < edges_wanted:
        edges[(rng.randrange(people), rng.randrange(movies))] = f"Role {rng.randrange(1000)}"
    return {
        "people": [(f"p{i}", f"Person {i}", 1900 + rng.randrange(120)) for i in range(people)],
        "movies": [(f"m{i}", f"Movie {i}", 1920 + rng.randrange(100), f"Tagline number {i}") for i in range(movies)],
        "edges": [(f"p{p}", f"m{m}", role) for (p, m), role in edges.items()],
    }


def write_csv(graph: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "nodes.csv", "w", encoding="utf-8") as out:
        out.write("id:ID,:LABEL,name,title,born:int,released:int,tagline\n")
        out.writelines(f"{i},Person,{name},,{born},,\n" for i, name, born in graph["people"])
        out.writelines(f"{i},Movie,,{title},,{year},{tagline}\n" for i, title, year, tagline in graph["movies"])
    with open(folder / "relationships.csv", "w", encoding="utf-8") as out:
        out.write(":START_ID,:END_ID,:TYPE,roles:string[]\n")
        out.writelines(f"{p},{m},ACTED_IN,{role}\n" for p, m, role in graph["edges"])
    return folder


def _triples(graph: dict[str, Any]) -> list[str]:
    lines = []
    for i, name, born in graph["people"]:
        lines += [f'<{EX}{i}> <{SCHEMA_NAME}> "{name}" .', f'<{EX}{i}> <{EX}born> "{born}"^^<{XSD_INT}> .']
    for i, title, year, tagline in graph["movies"]:
        lines += [
            f'<{EX}{i}> <{SCHEMA_NAME}> "{title}" .',
            f'<{EX}{i}> <{EX}released> "{year}"^^<{XSD_INT}> .',
            f'<{EX}{i}> <{EX}tagline> "{tagline}" .',
        ]
    lines += [f"<{EX}{p}> <{EX}actedIn> <{EX}{m}> ." for p, m, _role in graph["edges"]]
    return lines


def write_ntriples(graph: dict[str, Any], path: Path) -> Path:
    path.write_text("\n".join(_triples(graph)) + "\n", encoding="utf-8")
    return path


def write_turtle(graph: dict[str, Any], path: Path) -> Path:
    # N-Triples is valid Turtle; the Turtle parser is a different (slower) code path in rdflib.
    path.write_text("\n".join(_triples(graph)) + "\n", encoding="utf-8")
    return path


def measure(source: Path, workspace: Path, repeats: int = 1) -> dict[str, Any]:
    """The best of ``repeats`` first imports, each into a fresh store, then a re-import into the last."""

    times, cpus = [], []
    for attempt in range(repeats):
        store = EmbeddedStore.open(workspace / f"run{attempt}")
        try:
            started, cpu = time.perf_counter(), time.process_time()
            summary = import_kg(store, source)
            times.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            if attempt < repeats - 1:
                continue
            started = time.perf_counter()
            again = import_kg(store, source)
            second = time.perf_counter() - started
            stats = store.stats()
        finally:
            store.close()
    first, first_cpu = min(times), min(cpus)
    record = throughput(stats, summary, again, first, first_cpu, second)
    record["import_s_runs"] = [round(t, 2) for t in times]
    return record


def throughput(stats: Any, summary: Any, again: Any, first: float, first_cpu: float, second: float) -> dict[str, Any]:
    """One import's record: the stored counts, the first import's wall and CPU time (this process,
    all threads: less at the mercy of a busy box than the wall time) and the idempotent re-import."""

    return {
        "entities": stats.entities,
        "literals": stats.literals,
        "facts": stats.facts,
        "import_s": round(first, 2),
        "facts_per_s": round(stats.facts / first),
        "import_cpu_s": round(first_cpu, 2),
        "facts_per_cpu_s": round(stats.facts / first_cpu),
        "reimport_s": round(second, 2),
        "reimport_added": again.facts_added + again.entities_added + again.literals_added,
        "dataset": summary.dataset,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facts", type=int, default=100_000, help="about this many facts in the generated graph")
    parser.add_argument("--formats", default="csv,nt,ttl", help="comma-separated: csv, nt, ttl")
    parser.add_argument("--repeats", type=int, default=3, help="first imports per format (fresh store each); the fastest is reported")
    parser.add_argument("--out", type=Path, default=Path("evaluation/results/import-throughput.json"))
    args = parser.parse_args(argv)
    graph = generate(args.facts)
    writers = {"csv": lambda d: write_csv(graph, d / "movies-csv"), "nt": lambda d: write_ntriples(graph, d / "movies.nt"),
               "ttl": lambda d: write_turtle(graph, d / "movies.ttl")}
    results = {}
    with tempfile.TemporaryDirectory(prefix="qa-bench-import-") as tmp:
        for fmt in args.formats.split(","):
            folder = Path(tmp) / fmt
            folder.mkdir()
            source = writers[fmt](folder)
            results[fmt] = measure(source, folder / "ws", args.repeats)
            print(fmt, json.dumps(results[fmt]), flush=True)
    record = {
        "benchmark": "import-kg throughput, generated Movies-style graph, fresh embedded store",
        "facts_requested": args.facts,
        "repeats": args.repeats,
        "command": f"python -m evaluation.bench_import --facts {args.facts} --repeats {args.repeats}",
        "results": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
