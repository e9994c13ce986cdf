"""Latency of the LLM fallback with validation: unsure question -> LLM -> entailment -> proposed facts.

    python -m evaluation.bench_fallback [--questions 30] [--threads 2] [--workspace DIR] [--data-dir DIR] \
        [--out evaluation/results/fallback-latency.json]

Questions: WebQSP filtered test questions, in file order, that the shipped reader is *not sure*
of on the demo graph (``pipeline.wants_fallback``): the ones the product sends to the LLM. Their
text only is used. For each, one ``ask`` on the graph path, then ``fall_back``: the LLM call
(the embedded SmolLM2 served by llama.cpp unless ``OPENAI_BASE_URL`` is set), resolution of its
triples, entailment against retrieved premises, and insertion of the entailed ones as
``proposed``. Timed with ``perf_counter`` per question, split into graph, LLM and
validation+insert; two warm-up questions are not counted.

One-time costs are reported apart: importing the demo graph, loading the models, starting the LLM
server, embedding the graph's entity descriptions for the passage index, and the first ``ask``
(which builds the linker's name index on a fresh workspace). The workspace is a
fresh temporary one unless ``--workspace`` is given (it receives the proposed facts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from evaluation.qa_data import load_qa
from evaluation.timing import latency_summary


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/max/mean in seconds (``samples`` in seconds); empty input gives an empty dict."""

    return latency_summary(samples, quantiles=(0.5, 0.95), unit="s", digits=3, extra=("max", "mean"), empty="none")


def unsure_questions(pipeline: Any, questions: list[str], wanted: int) -> list[str]:
    """The first ``wanted`` questions whose graph answer the pipeline would send to the fallback."""

    picked = []
    for q in questions:
        if pipeline.wants_fallback(pipeline.ask(q, fallback=False)):
            picked.append(q)
            if len(picked) == wanted:
                break
    return picked


def time_one(pipeline: Any, question: str) -> dict[str, Any]:
    """One question through graph + fallback, with the time of each part and what came of it."""

    t0 = time.perf_counter()
    graph_answer = pipeline.ask(question, fallback=False)
    t1 = time.perf_counter()
    final = pipeline.fall_back(graph_answer)
    t2 = time.perf_counter()
    summary = final.fallback
    llm_s = summary.latency_s if summary is not None else 0.0
    return {
        "question": question, "total_s": t2 - t0, "graph_s": t1 - t0, "llm_s": llm_s,
        "validation_s": max(0.0, (t2 - t1) - llm_s),
        "status": summary.status if summary is not None else "none",
        "triples": len(summary.decisions) if summary is not None else 0,
        "proposed": len(summary.proposed) if summary is not None else 0,
        "validated": bool(final.validated), "source": final.source,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (reader and entailment)")
    parser.add_argument("--workspace", type=Path, help="existing workspace to use (default: a fresh temporary one)")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("evaluation/results/fallback-latency.json"))
    args = parser.parse_args()
    if args.questions < 1:
        parser.error(f"--questions must be at least 1; got {args.questions}")
    torch.set_num_threads(args.threads)

    from graph.open import open_store
    from qa_system.ask.pipeline import load_pipeline
    from qa_system.config import load_settings
    from qa_system.explore import ensure_demo_graph
    from qa_system.fallback.step import build_fallback_step

    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="bench-fallback-"))
    settings = load_settings(workspace=workspace)
    texts = [e.question for e in load_qa("webqsp", "test", "filtered", args.data_dir)]
    store = open_store(settings)
    one_time: dict[str, float] = {}
    server = None
    try:
        t = time.perf_counter()
        ensure_demo_graph(store)
        one_time["demo_graph_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pipeline = load_pipeline(settings, store)
        step = build_fallback_step(settings, store)
        pipeline.fallback = step
        one_time["load_models_s"] = time.perf_counter() - t
        if step.validator is None:
            raise SystemExit("the entailment validator could not be loaded; nothing to measure")
        t = time.perf_counter()
        step.validator.retriever.refresh(progress=True)
        one_time["passage_index_s"] = time.perf_counter() - t
        server = step.fallback.client.server
        if server is not None:
            t = time.perf_counter()
            server.start()
            one_time["llm_server_start_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pipeline.ask(texts[0], fallback=False)  # builds the linker's name index on a fresh workspace
        one_time["first_ask_s"] = time.perf_counter() - t
        picked = unsure_questions(pipeline, texts, args.questions + 2)
        for q in picked[:2]:  # warm-up
            time_one(pipeline, q)
        runs = [time_one(pipeline, q) for q in picked[2:]]
        llm = step.fallback.client.status()
    finally:
        if server is not None:
            server.stop()
        store.close()
        if args.workspace is None:
            shutil.rmtree(workspace, ignore_errors=True)

    record = {
        "benchmark": "fallback-latency", "questions": len(runs), "dataset": "webqsp filtered test (unsure on the demo graph)",
        "llm": llm, "threads": args.threads,
        "total": percentiles([r["total_s"] for r in runs]), "graph": percentiles([r["graph_s"] for r in runs]),
        "llm_call": percentiles([r["llm_s"] for r in runs]), "validation_and_insert": percentiles([r["validation_s"] for r in runs]),
        "status": {s: sum(1 for r in runs if r["status"] == s) for s in sorted({r["status"] for r in runs})},
        "triples_proposed_by_llm": sum(r["triples"] for r in runs), "triples_inserted_as_proposed": sum(r["proposed"] for r in runs),
        "answers_validated": sum(r["validated"] for r in runs),
        "one_time": {k: round(v, 2) for k, v in one_time.items()},
        "per_question": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in runs],
        "load_average": os.getloadavg(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m evaluation.bench_fallback " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "per_question"}, default=str))


if __name__ == "__main__":
    main()
