"""Relation-scorer benchmark: relation Hits@1 on FreebaseQA + WebQSP (filtered setting).

For each question the scorer ranks the gold topic's 1-hop (relation, direction)s of the FB15k-237
demo graph; a hit is a top-scored one that links the topic to a gold answer (ties share the hit).
Questions with no such relation-direction are counted apart (``without_gold_relation``).

The *zero-shot relations* benchmark (issue 7a): on the test questions whose gold relations all lie
in the held-out third (``held_out``: sha1(relation id) mod 3 == 0), compare a model trained without
them (``--holdout-third``), the same model trained on all relations, and plain MiniLM cosine.

    python -m evaluation.relation_scorer_eval --checkpoint DIR --name NAME [--split test] [--output FILE]
    python -m evaluation.relation_scorer_eval --zero-shot --name minilm-cosine --output FILE

Each record holds the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def latency(scorer: Any, examples: list, *, repeats: int = 1) -> dict[str, float]:
    """Warm per-question latency of ``score`` (relation texts cached after a first pass)."""

    for e in examples:
        scorer.score(e.question, e.topic_name, e.candidates)
    times = []
    for _ in range(repeats):
        for e in examples:
            start = time.perf_counter()
            scorer.score(e.question, e.topic_name, e.candidates)
            times.append(1000 * (time.perf_counter() - start))
    sizes = [len(e.candidates) for e in examples]
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2),
            "mean_ms": round(float(np.mean(times)), 2), "questions": len(examples),
            "mean_candidates": round(float(np.mean(sizes)), 1)}


def latency_fixed(scorer: Any, examples: list, *, size: int = 50) -> dict[str, float]:
    """Warm latency with exactly ``size`` relation-directions per question (its own, then others)."""

    pool = sorted({c for e in examples for c in e.candidates})
    sets = []
    for e in examples:
        own = list(e.candidates)[:size]
        sets.append(own + [c for c in pool if c not in set(own)][: size - len(own)])
    for e, rels in zip(examples, sets):
        scorer.score(e.question, e.topic_name, rels)
    times = []
    for e, rels in zip(examples, sets):
        start = time.perf_counter()
        scorer.score(e.question, e.topic_name, rels)
        times.append(1000 * (time.perf_counter() - start))
    return {"relations_per_question": size, "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2), "mean_ms": round(float(np.mean(times)), 2),
            "questions": len(examples)}


def run(checkpoint: Path | None, *, zero_shot: bool = False, split: str = "test", template: str | None = None,
        mask: bool | None = None, threads: int = 2, with_latency: bool = True) -> dict[str, Any]:
    import torch

    from evaluation.relation_questions import DATASETS, build_examples, evaluate, held_out
    from qa_system.models.relation_scorer import RelationScorerConfig, load_relation_scorer, zero_shot_scorer

    if threads:
        torch.set_num_threads(threads)
    if checkpoint is None and not zero_shot:
        from qa_system.models.relation_scorer import shipped_checkpoint

        checkpoint = shipped_checkpoint()
    if zero_shot:
        overrides = {k: v for k, v in (("template", template), ("mask", mask)) if v is not None}
        scorer = zero_shot_scorer(RelationScorerConfig(lora_r=0, lexical=False, **overrides))
    else:
        scorer = load_relation_scorer(checkpoint, fallback=False)
    examples = build_examples(DATASETS, split)
    record: dict[str, Any] = {
        "task": "relation scorer: relation Hits@1 (top-scored relation-direction links topic and a gold answer)",
        "split": split, "setting": "filtered", "datasets": list(DATASETS),
        "model": scorer.name, "checkpoint": None if zero_shot else str(checkpoint),
        "config": scorer.config.to_dict(),
        "trained_with_holdout_third": bool(scorer.card.get("data", {}).get("holdout_third")),
        "train_command": scorer.card.get("command"),
        "train_dev": scorer.card.get("dev"),
        "all": evaluate(scorer, examples),
        "held_out_third": {
            "definition": "questions whose gold relations all lie in the held-out third (sha1(id) mod 3 == 0)",
            **evaluate(scorer, examples, subset=lambda e: bool(e.positives) and all(held_out(r) for r, _ in e.positives)),
        },
        "seen_two_thirds": {
            "definition": "questions with no held-out gold relation",
            **evaluate(scorer, examples, subset=lambda e: bool(e.positives) and not any(held_out(r) for r, _ in e.positives)),
        },
    }
    if with_latency:
        fresh = zero_shot_scorer(scorer.config) if zero_shot else load_relation_scorer(checkpoint, fallback=False)
        record["latency"] = {"threads": threads, **latency(fresh, examples[:200])}
        record["latency_50_relations"] = {"threads": threads, **latency_fixed(fresh, examples[:200])}
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.relation_scorer_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--zero-shot", action="store_true", help="plain MiniLM cosine, no checkpoint")
    parser.add_argument("--template", help="zero-shot only: relation template")
    parser.add_argument("--no-mask", action="store_true", help="zero-shot only: keep the topic mention in the question")
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--name", help="record name (evaluation/results/relation-scorer-<name>.json)")
    parser.add_argument("--output", type=Path, help="write the JSON record here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    checkpoint = args.checkpoint
    if checkpoint is None and not args.zero_shot:
        from qa_system.models.relation_scorer import shipped_checkpoint

        checkpoint = shipped_checkpoint()
    record = run(checkpoint, zero_shot=args.zero_shot, split=args.split, template=args.template,
                 mask=False if args.no_mask else None, threads=args.threads, with_latency=not args.no_latency)
    record["name"] = args.name
    record["command"] = "python -m evaluation.relation_scorer_eval " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    output = args.output or (Path(__file__).parent / "results" / f"relation-scorer-{args.name}.json" if args.name else None)
    text = json.dumps(record, indent=2, ensure_ascii=False)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
