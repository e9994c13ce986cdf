"""Graph commands: ``import-kg``, ``stats``, ``neighbors``, ``cypher``."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from qa_system.errors import InputError
from qa_system.explore import resolve_entity

MAX_HOPS = 3


@contextmanager
def opened_store(settings: Any) -> Iterator[Any]:
    from graph.store import open_store

    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def _import_kg(args: argparse.Namespace, settings: Any) -> int:
    from tqdm import tqdm

    from graph.importers import import_kg

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"import {stage}", unit="row", file=sys.stderr)
        bar.update(done - bar.n)

    with opened_store(settings) as store:
        summary = import_kg(store, args.source, progress=progress, data_dir=settings.data_dir)
    for bar in bars.values():
        bar.close()
    payload = summary.__dict__
    if args.json:
        from qa_system.cli import emit_json

        emit_json(payload)
    else:
        sys.stdout.write(
            f"imported {summary.dataset}: entities +{summary.entities_added} (existing {summary.entities_merged}), "
            f"facts +{summary.facts_added} (existing {summary.facts_merged})\n"
        )
    return 0


def _stats(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.cli import emit_json

    with opened_store(settings) as store:
        stats = store.stats()
    if args.json:
        emit_json(stats.model_dump())
        return 0
    out = [f"backend: {stats.backend}", f"entities: {stats.entities:,}", f"facts: {stats.facts:,}"]
    out += [f"  {status}: {count:,}" for status, count in sorted(stats.facts_by_status.items())]
    out += ["splits: " + ", ".join(f"{k or '-'} {v:,}" for k, v in sorted(stats.facts_by_split.items()))]
    top = sorted(stats.facts_by_relation.items(), key=lambda kv: -kv[1])[:10]
    out += ["top relations:"] + [f"  {count:>8,}  {relation}" for relation, count in top]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _neighbors(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.cli import emit_json

    if not 1 <= args.hops <= MAX_HOPS:
        raise InputError(f"--hops must be between 1 and {MAX_HOPS}, got {args.hops}")
    if args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    with opened_store(settings) as store:
        entity = resolve_entity(store, args.entity)
        subgraph = store.neighbors(
            [entity.id], hops=args.hops, relations=args.relation or None, limit_per_entity=args.limit
        )
    facts = sorted(subgraph.facts, key=lambda f: (f.hop, f.relation, f.subject_name, f.object_name))
    if args.json:
        emit_json(
            {
                "entity": entity.model_dump(),
                "hops": args.hops,
                "truncated": subgraph.truncated,
                "facts": [
                    {
                        "id": f.id,
                        "hop": f.hop,
                        "subject": {"id": f.subject, "name": f.subject_name},
                        "relation": f.relation,
                        "object": {"id": f.object, "name": f.object_name},
                        "status": f.status.value,
                        "split": f.provenance.split,
                    }
                    for f in facts
                ],
            }
        )
        return 0
    sys.stdout.write(f"{entity.name} ({entity.id}) — {entity.description}\n")
    for f in facts:
        sys.stdout.write(f"  [{f.hop}] {f.subject_name} —{f.relation}→ {f.object_name}  ({f.status.value})\n")
    if subgraph.truncated:
        sys.stdout.write(f"  (sampled: at most {args.limit} facts per entity per hop)\n")
    return 0


def _cypher(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.cli import emit_json

    params = {}
    if args.params:
        try:
            params = json.loads(args.params)
        except ValueError as e:
            raise InputError(f"--params is not JSON: {e}") from e
        if not isinstance(params, dict):
            raise InputError("--params must be a JSON object")
    with opened_store(settings) as store:
        rows = store.run_read_query(args.query, params, limit=args.limit)
    if args.json:
        emit_json({"rows": rows, "count": len(rows)})
    else:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return 0


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = commands.add_parser("import-kg", help="import a KG (FB15k-237/WN18RR layout): PATH, a dataset name, or 'demo'")
    p.add_argument("source", help="folder with train/dev/test TSV files, 'demo', 'fb15k-237' or 'wn18rr'")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_import_kg)

    p = commands.add_parser("stats", help="counts of entities and facts")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_stats)

    p = commands.add_parser("neighbors", help="facts around an entity (by id or exact name)")
    p.add_argument("entity", help="entity id or exact name")
    p.add_argument("--hops", type=int, default=1, help="how many hops out from the entity")
    p.add_argument("--limit", type=int, default=200, help="at most this many facts per entity per hop (sampled)")
    p.add_argument("--relation", action="append", help="only this relation (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_neighbors)

    p = commands.add_parser("cypher", help="run a read-only Cypher query")
    p.add_argument("query", help="a read-only Cypher query")
    p.add_argument("--params", help="query parameters as a JSON object")
    p.add_argument("--limit", type=int, default=1000, help="at most this many rows")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cypher)
