"""How many benchmark questions the graph can answer at all: the ceiling under every Hits@1.

    python -m evaluation.answer_reachability --dataset webqsp --split test --setting full --json

A KGQA system over FB15k-237 can only be right when a gold answer is an entity of the graph that
the question's topic reaches. Each question falls in exactly one class:

- ``no_topic``: none of its gold topic entities is in the graph;
- ``no_answer``: a topic is, but none of its gold answers is;
- ``one_hop``: a gold answer is a neighbour of a topic (what the reader's candidates cover:
  ``retrievers.subgraph`` reads one hop);
- ``two_hops``: the nearest gold answer is two facts away;
- ``beyond_two_hops``: the answers are in the graph but farther away or not connected.

The shares give three ceilings on Hits@1 (gold topic given): ``one_hop`` (a reader of one-hop
candidates, ours), ``within_two_hops``, and ``answer_in_graph`` (any system answering from this
graph). Directions are ignored (a question may ask for a fact's subject). The graph is the
shipped demo graph (FB15k-237 train+dev+test facts), the graph the QA benchmarks are run on; a
workspace with ingested or reviewed facts may reach more. One JSON record per run goes to
``evaluation/results/reachability-<dataset>-<setting>[-<split>].json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evaluation.qa_data import DATASETS, SETTINGS, SPLITS, QAExample, load_qa

RESULTS_DIR = Path(__file__).with_name("results")
CLASSES = ("no_topic", "no_answer", "one_hop", "two_hops", "beyond_two_hops")

Adjacency = Mapping[str, frozenset[str]]


def undirected_adjacency(triples: Iterable[tuple[str, str, str]]) -> dict[str, frozenset[str]]:
    """Entity -> its neighbours through any fact, either direction."""

    neighbours: dict[str, set[str]] = defaultdict(set)
    for head, _relation, tail in triples:
        neighbours[head].add(tail)
        neighbours[tail].add(head)
    return {entity: frozenset(others) for entity, others in neighbours.items()}


def reach_class(example: QAExample, adjacency: Adjacency) -> str:
    """Which of :data:`CLASSES` a question falls in (its nearest gold answer, from any gold topic)."""

    topics = [t for t in example.topic_ids if t in adjacency]
    if not topics:
        return "no_topic"
    answers = {a for a in example.answer_ids if a in adjacency}
    if not answers:
        return "no_answer"
    first = set().union(*(adjacency[t] for t in topics))
    if answers & first:
        return "one_hop"
    second = set().union(*(adjacency.get(n, frozenset()) for n in first))
    return "two_hops" if answers & second else "beyond_two_hops"


def summarise(classes: Sequence[str]) -> dict[str, Any]:
    """Counts, shares and the three Hits@1 ceilings of a list of question classes."""

    total = len(classes)
    counts = Counter(classes)
    share = (lambda n: round(n / total, 4)) if total else (lambda n: 0.0)
    one, two, beyond = counts["one_hop"], counts["two_hops"], counts["beyond_two_hops"]
    return {
        "questions": total,
        "counts": {name: counts[name] for name in CLASSES},
        "shares": {name: share(counts[name]) for name in CLASSES},
        "ceilings": {"one_hop": share(one), "within_two_hops": share(one + two), "answer_in_graph": share(one + two + beyond)},
    }


def demo_adjacency() -> dict[str, frozenset[str]]:
    """The shipped FB15k-237 demo graph, every split's facts."""

    from graph.kg_files import load_kg

    kg = load_kg("demo")
    return undirected_adjacency(triple for _split, triple in kg.all_triples())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.answer_reachability", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, default="webqsp")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--setting", choices=SETTINGS, default="full")
    parser.add_argument("--data-dir", type=Path, default=None, help="benchmark data (default $QA_DATA_DIR or ../shared/data)")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON record goes (default evaluation/results/...)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    args = parser.parse_args(argv)
    examples = load_qa(args.dataset, args.split, args.setting, args.data_dir)
    adjacency = demo_adjacency()
    record = {
        "task": "answer-reachability",
        "dataset": args.dataset,
        "split": args.split,
        "setting": args.setting,
        "graph": {"name": "FB15k-237 demo graph (train+dev+test facts)", "entities": len(adjacency)},
        **summarise([reach_class(e, adjacency) for e in examples]),
        "command": " ".join(["python -m evaluation.answer_reachability", *(argv if argv is not None else sys.argv[1:])]),
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    suffix = "" if args.split == "test" else f"-{args.split}"
    out = args.out or RESULTS_DIR / f"reachability-{args.dataset}-{args.setting}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        print(f"{args.dataset} {args.split}/{args.setting}: {record['questions']} questions, ceilings {record['ceilings']} -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
