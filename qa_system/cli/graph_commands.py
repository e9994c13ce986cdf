"""Graph commands: ``import-kg``, ``stats``, ``neighbors``, ``cypher``."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from qa_system.errors import InputError
from qa_system.explore import resolve_entity
from qa_system.types import is_literal

MAX_HOPS = 3


@contextmanager
def opened_store(settings: Any) -> Iterator[Any]:
    from graph.open import open_store

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

    options = _source_options(args)  # mapping errors before the store is opened
    with opened_store(settings) as store:
        summary = import_kg(store, args.source, progress=progress, data_dir=settings.data_dir, options=options)
    for bar in bars.values():
        bar.close()
    payload = summary.__dict__
    if args.json:
        from qa_system.cli import emit_json

        emit_json(payload)
    else:
        values = f", values +{summary.literals_added} (existing {summary.literals_merged})" if summary.literals_added + summary.literals_merged else ""
        sys.stdout.write(
            f"imported {summary.dataset}: entities +{summary.entities_added} (existing {summary.entities_merged}), "
            f"facts +{summary.facts_added} (existing {summary.facts_merged}){values}\n"
        )
    if summary.unnamed:
        sys.stderr.write(f"warning: {summary.unnamed} node(s) had no name property and are named by their id (see --name-property)\n")
    return 0


def _source_options(args: argparse.Namespace) -> Any:
    from graph.importers import SourceOptions
    from graph.source_mapping import build_mapping

    mapping = build_mapping(args.mapping, id_property=args.id_property, name_properties=args.name_property or (), batch_size=args.batch_size)
    return SourceOptions(mapping=mapping, user=args.source_user, password=args.source_password, database=args.source_database)


def _stats(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.cli import emit_json

    with opened_store(settings) as store:
        stats = store.stats()
    if args.json:
        emit_json(stats.model_dump())
        return 0
    out = [f"backend: {stats.backend}", f"entities: {stats.entities:,}", f"facts: {stats.facts:,}"]
    if stats.literals:
        out.insert(2, f"literal values: {stats.literals:,}")
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
    from qa_system.maintain.actions import resolve_merged

    with opened_store(settings) as store:
        wanted = resolve_merged(settings.workspace, args.entity.strip(), store)  # a merged-away id names the entity kept
        entity = resolve_entity(store, wanted)
        subgraph = store.neighbors(
            [entity.id], hops=args.hops, relations=args.relation or None, limit_per_entity=args.limit
        )
    facts = sorted(subgraph.facts, key=lambda f: (f.hop, f.relation, f.subject_name, f.object_name))
    if args.json:
        emit_json(
            {
                "entity": entity.model_dump(),
                **({"merged_from": args.entity.strip()} if wanted != args.entity.strip() else {}),
                "hops": args.hops,
                "truncated": subgraph.truncated,
                "facts": [
                    {
                        "id": f.id,
                        "hop": f.hop,
                        "subject": {"id": f.subject, "name": f.subject_name},
                        "relation": f.relation,
                        "object": {"id": f.object, "name": f.object_name, "literal": is_literal(f.object)},
                        "status": f.status.value,
                        "split": f.provenance.split,
                        "properties": f.provenance.properties,  # the source relationship's own properties
                    }
                    for f in facts
                ],
            }
        )
        return 0
    if wanted != args.entity.strip():
        sys.stdout.write(f"({args.entity.strip()} was merged into {entity.id})\n")
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
    p = commands.add_parser(
        "import-kg", help="import a KG: 'demo', a FB15k-237/WN18RR folder, a neo4j-admin CSV folder, RDF files, or a Neo4j URI"
    )
    p.add_argument(
        "source",
        help="'demo', 'fb15k-237', 'wn18rr', a folder with train/dev/test TSV files, a folder with nodes*.csv + "
        "relationships*.csv (neo4j-admin header style), an .nt/.ttl/.jsonld file or folder of them, or "
        "bolt://HOST:PORT (also neo4j://, bolt+s://, neo4j+s://) to read a running Neo4j",
    )
    p.add_argument("--source-user", default="neo4j", help="Bolt source: user name (default neo4j)")
    p.add_argument("--source-password", default=None, help="Bolt source: password (default: $QA_SOURCE_NEO4J_PASSWORD)")
    p.add_argument("--source-database", default=None, help="Bolt source: database name (default: the server's default)")
    p.add_argument("--id-property", default=None, help="property graphs: entity ids from this node property instead of the source's node ids")
    p.add_argument(
        "--name-property", action="append", metavar="LABEL=PROP",
        help="property graphs: names of LABEL nodes from PROP (repeatable; default: name, title, label, caption)",
    )
    p.add_argument("--mapping", default=None, metavar="FILE", help="property graphs: a JSON or YAML mapping file (see README, 'Bring your own graph')")
    p.add_argument("--batch-size", type=int, default=None, help="property graphs: records read and written per batch (default: 10000 from Bolt, 200000 from files)")
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
