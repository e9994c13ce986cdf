"""Name lookups on the Neo4j backend: the store's local name index against the server-side lookups it
replaced (a match on every node's ``name_key``/``alias_keys``), same answers and time.

    python -m evaluation.bench_name_lookups [--questions 200] [--out evaluation/results/name-lookups-bolt.json]

With ``NEO4J_URI`` set, that server (its graph as it is); else a local ArcadeDB Bolt server is started
(``tests.graph.bolt_server``) and the demo graph imported. The mentions are the linker's dictionary
n-grams of the first N WebQSP filtered test questions; each is looked up both ways and the entity
ids compared in order; prefixes of them (2, 3 and 5 characters) through ``search_entities``'s prefix
step likewise. Writes one JSON record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from evaluation.qa_data import load_qa
from evaluation.timing import latency_summary
from graph.name_index import normalise
from graph.queries import ENTITY_COLUMNS
from retrievers.linking import GraphEntityLinker

# The server-side lookups the local index replaced (as they were in graph/queries.py), kept here to
# compare against: parameterised, read-only.
OLD_EXACT = (
    f"MATCH (e:Entity) WHERE e.name_key = $key OR $key IN e.alias_keys RETURN {ENTITY_COLUMNS} "
    "ORDER BY CASE WHEN e.name_key = $key THEN 0 ELSE 1 END, e.id LIMIT $limit"
)
OLD_PREFIX = (
    "MATCH (e:Entity) WHERE e.name_key STARTS WITH $key OR any(a IN e.alias_keys WHERE a STARTS WITH $key) "
    "WITH e, e.name_key STARTS WITH $key AS by_name, "
    "reduce(best = '', a IN [k IN e.alias_keys WHERE k STARTS WITH $key] | "
    "CASE WHEN best = '' OR size(a) < size(best) OR (size(a) = size(best) AND a < best) THEN a ELSE best END) AS alias_key "
    "WITH e, CASE WHEN by_name THEN 0 ELSE 1 END AS is_alias, CASE WHEN by_name THEN e.name_key ELSE alias_key END AS match_key "
    f"RETURN {ENTITY_COLUMNS} ORDER BY is_alias, size(match_key), match_key, e.id LIMIT $limit"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("evaluation/results/name-lookups-bolt.json"))
    args = parser.parse_args(argv)
    from graph.neo4j_store import Neo4jStore

    server = None
    if os.environ.get("NEO4J_URI"):
        store = Neo4jStore(os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"), os.environ.get("NEO4J_PASSWORD", ""),
                           os.environ.get("NEO4J_DATABASE") or None, connect_timeout_s=30)
    else:
        from tests.graph.bolt_server import start_arcadedb

        server = start_arcadedb()
        store = Neo4jStore(server.uri, server.user, server.password, server.database, connect_timeout_s=30)
    try:
        if store.stats().entities == 0:
            from graph.importers import import_kg

            import_kg(store, "demo")
        questions = [e.question for e in load_qa("webqsp", "test", "filtered", args.data_dir)[: args.questions]]
        linker = GraphEntityLinker(store, use_ner=False, use_faiss=False)
        per_question = [[q[s.start : s.end] for s in linker._ngrams(q)] for q in questions]
        mentions = list(dict.fromkeys(m for ms in per_question for m in ms))
        started = time.perf_counter()
        store.names.current()  # the first lookup builds the index from the database (timed apart)
        build_s = time.perf_counter() - started
        new_times, new = [], {}
        for ms in per_question:  # as the linker asks: every n-gram of a question at once
            t0 = time.perf_counter()
            found = store.find_entities_many(ms, limit=10)
            new_times.append(time.perf_counter() - t0)
            new.update({m: [e.id for e in found[m]] for m in ms})
        old_times, old = [], {}
        for ms in per_question:
            t0 = time.perf_counter()
            for m in ms:
                if m not in old:
                    key = normalise(m)
                    old[m] = [r[0] for r in store._rows(OLD_EXACT, {"key": key, "limit": 10})] if key else []
            old_times.append(time.perf_counter() - t0)
        differ = [m for m in mentions if old[m] != new[m]]
        prefixes = sorted({normalise(m)[:k] for m in mentions[:300] for k in (2, 3, 5) if len(normalise(m)) >= k})
        prefix_differ = [p for p in prefixes
                         if [r[0] for r in store._rows(OLD_PREFIX, {"key": normalise(p), "limit": 10})] != store.names.prefix(p, 10)]
        counts = store.stats()
        record = {
            "benchmark": "name-lookups",
            "backend": store.backend,
            "server": getattr(store, "_agent", None),
            "graph": {"entities": counts.entities, "literals": counts.literals, "facts": counts.facts},
            "questions": len(questions),
            "mentions": len(mentions),
            "mentions_with_matches": sum(1 for m in mentions if new[m]),
            "exact_differ": len(differ),
            "exact_differ_examples": differ[:10],
            "prefixes": len(prefixes),
            "prefix_differ": len(prefix_differ),
            "prefix_differ_examples": prefix_differ[:10],
            "index_build_s": round(build_s, 2),
            "per_question_local_index": latency_summary(new_times, quantiles=(0.5, 0.95), unit="ms", digits=2, extra=("mean",)),
            "per_question_server_lookups": latency_summary(old_times, quantiles=(0.5, 0.95), unit="ms", digits=2, extra=("mean",)),
            "load_average": os.getloadavg(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "python -m evaluation.bench_name_lookups " + " ".join(argv if argv is not None else sys.argv[1:]),
        }
    finally:
        store.close()
        if server is not None:
            from tests.graph.bolt_server import stop_arcadedb

            stop_arcadedb(server)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
