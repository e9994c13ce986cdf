"""`ask` latency on the KG path (link -> retrieve -> read), warm, and batched throughput.

    python -m evaluation.bench_ask [--checkpoint DIR] [--questions 200] [--threads 2] \
        [--out evaluation/results/ask-latency.json]
    python -m evaluation.bench_ask --bolt --out evaluation/results/ask-latency-bolt.json

``--bolt``: the Neo4j backend. With ``NEO4J_URI`` set, that server; else a local ArcadeDB Bolt
server is started (``tests.graph.bolt_server``, the test extra) and stopped at the end. Either way
the demo graph is imported when the database is empty (the import time is recorded).

Questions: the first N WebQSP filtered test questions (their text only; no labels are used).
After the answer-text vectors are warmed (as the app does in the background; the time is
recorded) and a warm-up of 10 questions, each ``pipeline.ask`` is timed with ``perf_counter``, and
inside that same pass its stages (:class:`StageClock`: link; retrieve, summed over the topics read;
read, the ranker over every reading, with the answer reranker's second stage when one ships and
``--no-reranker`` not given; constrain, the re-ordering by the question's other named entities,
unless ``--no-constraints``); then the same questions are answered in one ``ask_many`` call, which
batches the reader (the throughput ratio is against the sequential run in the same process).
Writes one JSON record with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from evaluation.qa_data import load_qa
from evaluation.timing import latency_summary
from graph.open import open_store
from qa_system.ask.pipeline import freeze_loaded_heap, load_pipeline
from qa_system.config import load_settings
from qa_system.explore import ensure_demo_graph
from qa_system.models.onnx_encoder import OnnxBertEncoder
from qa_system.models.precision import PRECISIONS
from retrievers import name_embeddings
from retrievers.answer_text import store_rows
from retrievers.name_embeddings import recent_vectors


def forget_recent_texts() -> None:
    """Empty the embedder's recent-text memo (``name_embeddings.RecentVectors``): the passes below
    ask the same questions again, which would otherwise find their mentions already embedded."""

    recent_vectors.clear()


def percentiles(samples: list[float]) -> dict[str, float]:
    return latency_summary(samples, quantiles=(0.5, 0.95, 0.99), unit="ms", digits=2, extra=("mean",))


class StageClock:
    """Times named methods of live objects while they run inside ``ask``, summed per question.

    Why inside the timed pass and not in a second, hand-written one: ``ask`` reads several topics
    when ``read_topics`` > 1 and starts the reader's question pass ahead of linking; a copy of its
    steps would time other work than the one measured (it read only the first topic)."""

    def __init__(self) -> None:
        self._current: dict[str, float] = {}
        self._wrapped: list[tuple[object, str, object]] = []  # (owner, name, what its own __dict__ held)

    def wrap(self, owner: object, name: str, stage: str) -> None:
        inner = getattr(owner, name)
        own = vars(owner).get(name, _ABSENT)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self._current[stage] = self._current.get(stage, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)  # on the instance: the class and other instances are untouched
        self._wrapped.append((owner, name, own))

    def take(self) -> dict[str, float]:
        """Seconds per stage since the last call (stages not reached are absent)."""

        taken, self._current = self._current, {}
        return taken

    def unwrap(self) -> None:
        """Put every wrapped method back as it was."""

        for owner, name, own in reversed(self._wrapped):
            if own is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, own)
        self._wrapped.clear()


_ABSENT = object()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--no-reranker", action="store_true", help="leave the shipped answer reranker out (the reader's order)")
    parser.add_argument("--reranker-top-k", type=int, help="candidates the reranker reads (default: its card's)")
    parser.add_argument("--reranker-precision", choices=PRECISIONS, help="the reranker's precision (default: its card's)")
    parser.add_argument("--read-topics", type=int, default=1, help="linked entities read per question (PipelineConfig.read_topics)")
    parser.add_argument("--no-constraints", action="store_true", help="leave out the re-ordering by the question's other named entities")
    parser.add_argument("--bolt", action="store_true", help="the Neo4j backend: NEO4J_URI, else a local ArcadeDB Bolt server")
    parser.add_argument("--out", type=Path, default=Path("evaluation/results/ask-latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    questions = [e.question for e in load_qa("webqsp", "test", "filtered", args.data_dir)[: args.questions]]
    server = None
    if args.bolt and not os.environ.get("NEO4J_URI"):
        from tests.graph.bolt_server import start_arcadedb

        server = start_arcadedb()
        os.environ.update(NEO4J_URI=server.uri, NEO4J_USER=server.user, NEO4J_PASSWORD=server.password,
                          NEO4J_DATABASE=server.database or "")
    settings = load_settings()
    if args.bolt and settings.graph_backend != "neo4j":
        parser.error("--bolt needs NEO4J_URI (or arcadedb-embedded to start a local server)")
    store = open_store(settings)
    graph: dict[str, object] = {"backend": store.backend, "server": getattr(store, "_agent", None)}
    try:
        started = time.perf_counter()
        if ensure_demo_graph(store):
            graph["demo_import_s"] = round(time.perf_counter() - started, 1)
        counts = store.stats()
        graph.update(entities=counts.entities, literals=counts.literals, facts=counts.facts)
        started = time.perf_counter()
        pipeline = load_pipeline(settings, store, reader_dir=args.checkpoint, rerank=not args.no_reranker, rerank_top_k=args.reranker_top_k, read_topics=args.read_topics,
                                 rerank_precision=args.reranker_precision, constraints=not args.no_constraints)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        matcher = getattr(pipeline.ranker, "answer_bias", None)
        if hasattr(matcher, "warm_up"):  # as the app does in the background at start: every candidate text, once
            matcher.warm_up(store_rows(store))
        warm_up_s = time.perf_counter() - started
        for q in questions[:10]:
            pipeline.ask(q)
        freeze_loaded_heap()  # as `ask --file` and the app do after loading
        total, sources = [], {}
        stages: dict[str, list[float]] = {"link": [], "retrieve": [], "read": []}
        clock = StageClock()
        clock.wrap(pipeline.linker, "link", "link")
        clock.wrap(pipeline.retriever, "retrieve", "retrieve")
        clock.wrap(pipeline, "_rank", "read")
        if pipeline.constraints is not None:  # the question's other named entities (one store read when there are any)
            stages["constrain"] = []
            clock.wrap(pipeline.constraints, "apply", "constrain")
        forget_recent_texts()  # each timed pass meets its questions for the first time
        for q in questions:
            t0 = time.perf_counter()
            answer = pipeline.ask(q)
            total.append(time.perf_counter() - t0)
            sources[answer.source] = sources.get(answer.source, 0) + 1
            for stage, seconds in clock.take().items():  # only the stages this question reached
                stages[stage].append(seconds)
        clock.unwrap()
        forget_recent_texts()
        t0 = time.perf_counter()
        pipeline.ask_many(questions)
        batched_s = time.perf_counter() - t0
    finally:
        store.close()
        if server is not None:
            from tests.graph.bolt_server import stop_arcadedb

            stop_arcadedb(server)
    sequential_qps = len(questions) / sum(total)
    record = {
        "benchmark": "ask-latency",
        "questions": len(questions),
        "threads": args.threads,
        "backend": graph["backend"],
        "graph": graph,
        "reranker": getattr(pipeline.ranker, "reranker", None) is not None,
        "reranker_top_k": getattr(getattr(getattr(pipeline.ranker, "reranker", None), "reranker", None), "top_k", None),
        "reranker_precision": getattr(getattr(getattr(pipeline.ranker, "reranker", None), "reranker", None), "precision", None),
        "answer_text_match": getattr(pipeline.ranker, "answer_bias", None) is not None,
        "read_topics": pipeline.config.read_topics,
        "constraints": None if pipeline.constraints is None else pipeline.constraints.weights.to_dict(),
        # short MiniLM passes (linking, the reader's question) through ONNX Runtime (QA_ONNX_RUNTIME)
        "onnx_runtime": {"reader": isinstance(getattr(getattr(pipeline.ranker, "reader", None), "encoder", None), OnnxBertEncoder),
                         "embedder": name_embeddings.onnx_twin_active()},
        "pipeline_load_s": round(load_s, 1),
        "answer_text_warm_up_s": round(warm_up_s, 1),
        "ask": percentiles(total),
        "stages": {stage: percentiles(times) for stage, times in stages.items()},
        "stages_timed": "inside the timed ask pass; retrieve summed over the topics read, read over every reading",
        "sources": sources,
        "sequential_questions_per_s": round(sequential_qps, 1),
        "batched_questions_per_s": round(len(questions) / batched_s, 1),
        "batched_over_sequential": round(len(questions) / batched_s / sequential_qps, 2),
        "load_average": os.getloadavg(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m evaluation.bench_ask " + " ".join(sys.argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
