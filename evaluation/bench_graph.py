"""Graph-store benchmark: demo import time and neighbour latency (1 hop, 2 hops capped).

    python -m evaluation.bench_graph --backend embedded [--out evaluation/results/graph-embedded.json]
    python -m evaluation.bench_graph --backend bolt      # starts a local ArcadeDB Bolt server (test extra)

Latencies are measured over the same 200 random entities (seed 0) for both backends, after one
warm-up pass, with ``perf_counter`` around each ``store.neighbors`` call (conversion to our types
included). Writes one JSON record.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evaluation.timing import latency_summary
from graph.importers import import_kg
from graph.kg_files import load_kg

log = logging.getLogger("evaluation.bench_graph")


def _percentiles(samples: list[float]) -> dict[str, float]:
    return latency_summary(samples, quantiles=(0.5, 0.95), unit="ms", digits=None, extra=("mean",))


def measure_neighbours(store: Any, entities: list[str], *, hops: int, cap: int | None) -> dict[str, float]:
    for entity in entities[:20]:  # warm-up
        store.neighbors([entity], hops=hops, limit_per_entity=cap)
    samples, sizes = [], []
    for entity in entities:
        start = time.perf_counter()
        sub = store.neighbors([entity], hops=hops, limit_per_entity=cap)
        samples.append(time.perf_counter() - start)
        sizes.append(len(sub.facts))
    return {**_percentiles(samples), "mean_facts": statistics.fmean(sizes), "cap_per_entity": cap}


def open_backend(backend: str, workspace: Path) -> tuple[Any, Any]:
    if backend == "embedded":
        from graph.embedded import EmbeddedStore

        return EmbeddedStore.open(workspace), None
    from graph.neo4j_store import Neo4jStore
    from tests.graph.bolt_server import start_arcadedb

    server = start_arcadedb()
    store = Neo4jStore(server.uri, server.user, server.password, server.database, connect_timeout_s=30)
    store.clear()
    return store, server


def markdown_table(results: Path) -> str:
    """The README table, generated from the two JSON records (never typed by hand)."""

    e = json.loads((results / "graph-embedded.json").read_text())
    b = json.loads((results / "graph-bolt.json").read_text())

    def row(name: str, key: str, target: str) -> str:
        return f"| {name} | {target} | {e[key]['p50_ms']:.2f} ms (p95 {e[key]['p95_ms']:.2f}) | {b[key]['p50_ms']:.2f} ms (p95 {b[key]['p95_ms']:.2f}) |"

    return "\n".join(
        [
            "| measure | target | embedded (LadybugDB) | Bolt (ArcadeDB via the neo4j driver) |",
            "|---|---|---|---|",
            f"| import of the demo graph (14,541 entities, 310,116 facts, + name index) | ≤ 30 s | {e['import_s']:.1f} s | {b['import_s']:.1f} s |",
            row("1-hop neighbours, p50", "one_hop", "≤ 1 ms"),
            row("2-hop neighbours, ≤ 20 facts per entity per hop, p50", "two_hop", "≤ 10 ms"),
            f"| mean facts returned (1 hop / 2 hops) | | {e['one_hop']['mean_facts']:.0f} / {e['two_hop']['mean_facts']:.0f} | {b['one_hop']['mean_facts']:.0f} / {b['two_hop']['mean_facts']:.0f} |",
            f"| 1-minute load average during the run | | {e['load_average_1m']} | {b['load_average_1m']} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "bolt"], default="embedded")
    parser.add_argument("--entities", type=int, default=200)
    parser.add_argument("--cap", type=int, default=20, help="facts per entity per hop for the 2-hop run")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, metavar="RESULTS_DIR", help="print the README table from RESULTS_DIR and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(args.table))
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        store, server = open_backend(args.backend, Path(tmp))
        try:
            start = time.perf_counter()
            summary = import_kg(store, "demo")
            import_s = time.perf_counter() - start
            entities = random.Random(0).sample(load_kg("demo").entity_ids(), args.entities)
            record = {
                "benchmark": "graph-store",
                "backend": args.backend,
                "dataset": "fb15k-237 demo",
                "entities": summary.entities_added,
                "facts": summary.facts_added,
                "import_s": round(import_s, 2),
                "one_hop": measure_neighbours(store, entities, hops=1, cap=None),
                "two_hop": measure_neighbours(store, entities, hops=2, cap=args.cap),
                "sampled_entities": args.entities,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                # other work on the machine inflates latencies; recorded so numbers can be read honestly
                "load_average_1m": round(os.getloadavg()[0], 2),
                "command": "python -m evaluation.bench_graph " + " ".join(argv if argv is not None else sys.argv[1:]),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        finally:
            store.close()
            if server is not None:
                from tests.graph.bolt_server import stop_arcadedb

                stop_arcadedb(server)
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
