"""Questions about entities the graph encoder never saw: the product's ``ask`` with a third of the
test topics hidden from HittER (and the reader), against the same questions with nothing hidden.

    python -m evaluation.unseen_entities [--dataset webqsp|freebaseqa] [--split test] [--limit N] \
        [--index-cache DIR] [--out evaluation/results/unseen-entities-DATASET.json]

A topic is hidden when a hash of its id falls in the held-out third; hiding it removes it from the
vocabulary the retriever maps onto HittER, exactly what an entity added after training looks like
to the pipeline (no HittER row, no reader candidate index). Questions about hidden topics are then
answered by the relation-words reader from the store's facts, with no retraining. Answers that are
hidden entities are hidden too. Linking is the product's own (predicted), on the FB15k-237-filtered
test questions (topic and answer in the graph). Hits@1: the answer is a gold answer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from tqdm import tqdm


def hidden(entity_id: str) -> bool:
    """The held-out third: fixed by the id alone, so every run hides the same entities."""

    return zlib.crc32(entity_id.encode("utf-8")) % 3 == 0


def hits(pipeline: Any, examples: list[Any]) -> tuple[list[bool], list[str]]:
    found, sources = [], []
    for example in tqdm(examples, desc="ask", unit="q"):
        answer = pipeline.ask(example.question, fallback=False)
        found.append(answer.answer is not None and answer.answer.id in set(example.answer_ids))
        sources.append(answer.source)
    return found, sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", choices=("webqsp", "freebaseqa"), default="webqsp", help="benchmark")
    parser.add_argument("--split", choices=("dev", "test"), default="test", help="split (filtered setting)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many questions about hidden topics (0: all)")
    parser.add_argument("--index-cache", type=Path, help="saved name index of the pristine demo graph (copied in; saved when absent)")
    parser.add_argument("--relation-scorer", choices=("shipped", "zero-shot", "trained", "mean"), default="shipped",
                        help="the words reader's relation scorer (default: the one qa_system/data/words-calibration.json names)")
    parser.add_argument("--out", type=Path, help="record path (default evaluation/results/unseen-entities-DATASET.json)")
    args = parser.parse_args()

    from evaluation.demo_workspace import demo_store_with_names
    from evaluation.qa_data import load_qa
    from qa_system.ask.pipeline import load_pipeline
    from qa_system.config import Settings

    examples = [e for e in load_qa(args.dataset, args.split, "filtered") if e.topic_ids and hidden(e.topic_ids[0])]
    if args.limit:
        examples = examples[: args.limit]
    workspace = Path(tempfile.mkdtemp(prefix="unseen-entities-"))
    store, _ = demo_store_with_names(workspace, args.index_cache)
    try:
        pipeline = load_pipeline(Settings(workspace=workspace), store)
        if args.relation_scorer != "shipped":
            from qa_system.ask.words_loading import relation_scorer_factory

            pipeline.words_reader.scorer = relation_scorer_factory(args.relation_scorer)()
        t0 = time.perf_counter()
        seen_hits, seen_sources = hits(pipeline, examples)
        seen_s = time.perf_counter() - t0
        vocabulary = pipeline.retriever.entity_index
        pipeline.retriever.entity_index = {e: i for e, i in vocabulary.items() if not hidden(e)}
        t0 = time.perf_counter()
        unseen_hits, unseen_sources = hits(pipeline, examples)
        unseen_s = time.perf_counter() - t0
    finally:
        store.close()
        shutil.rmtree(workspace, ignore_errors=True)
    n = max(len(examples), 1)
    sure = [h for h, s in zip(unseen_hits, unseen_sources) if s == "graph"]
    record = {
        "benchmark": "unseen-entities", "dataset": args.dataset, "split": args.split, "setting": "filtered", "linking": "predicted",
        "questions_about_hidden_topics": len(examples), "hidden_share_of_entities": round(sum(hidden(e) for e in vocabulary) / max(len(vocabulary), 1), 4),
        "hits_at_1_all_seen": round(sum(seen_hits) / n, 4), "hits_at_1_topics_hidden": round(sum(unseen_hits) / n, 4),
        "answered_sure_hidden": round(len(sure) / n, 4), "precision_when_sure_hidden": round(sum(sure) / max(len(sure), 1), 4),
        "ask_ms_mean_seen": round(1000 * seen_s / n, 1), "ask_ms_mean_hidden": round(1000 * unseen_s / n, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "relation_scorer": args.relation_scorer,
        "command": f"python -m evaluation.unseen_entities --dataset {args.dataset} --split {args.split}" + (f" --limit {args.limit}" if args.limit else "")
        + (f" --relation-scorer {args.relation_scorer}" if args.relation_scorer != "shipped" else ""),
    }
    out = args.out or Path(f"evaluation/results/unseen-entities-{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
