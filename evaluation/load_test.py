"""Load test of the app: concurrent askers over HTTP plus one reviewer accepting proposed facts.

    python -m evaluation.load_test --askers 8 --duration 120 --json \
        [--workspace DIR] [--seed-facts 600] [--review-interval 0.25] [--out evaluation/results/load-test.json]

What runs: the real app and HTTP API (``ui.app.build_app`` and ``ui.api.create_api`` around the ONE
shared ask pipeline with the shipped reader, mounted in one uvicorn server as ``qa-system serve`` does,
with its queue settings; no API rate limit, as every asker comes from one address) in a server process
on a private copy of the demo graph with seeded proposed facts. ``--askers`` threads, each its own HTTP
connection, ``POST /v1/ask`` over loopback until ``--duration`` seconds have passed or
``--max-requests`` per asker were sent (bounded in count and time). Meanwhile one reviewer logs in as the maintainer and accepts the proposed fact the page selects every
``--review-interval`` seconds through the Review tab's own Accept event (the HTTP
queue protocol the browser uses, ``evaluation.gradio_http``; the review events are closed to
the Gradio client libraries). The app runs in a process of its own; the clients in this one.

Checked at the end: zero errors (an exception, or a response other than 200 with an ``Answer``), and zero lost
review decisions: every accept the reviewer was told succeeded is ``verified`` in the store with
the reviewer's name, and appears exactly once as an applied accept in ``review/audit.jsonl``.
Writes one JSON record (latencies in ms, p50/p95/p99, throughput, load average: the machine is
shared, so the numbers say what it did under that load).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.timing import latency_summary
from qa_system.maintain.review import read_jsonl
from qa_system.types import Fact, FactStatus, Provenance, SourceKind

log = logging.getLogger(__name__)

QUESTIONS = [
    "Who directed Inception?",
    "What is the nationality of Christopher Nolan?",
    "Who directed Titanic?",
    "Which country is Toronto in?",
    "What genre is The Dark Knight?",
    "Where was Barack Obama born?",
    "What language is spoken in Brazil?",
    "Who starred in Forrest Gump?",
    "What is the capital of France?",
    "Which team does LeBron James play for?",
    "Who composed the music for Star Wars?",
    "What is the nationality of Leonardo DiCaprio?",
]
REVIEWER = "load-test-reviewer"


# -- seeding -----------------------------------------------------------------------------------------
def seed_proposed_facts(store: Any, count: int, *, seed: int = 0, sample: int = 4000) -> list[str]:
    """Insert ``count`` new facts as ``proposed`` (LLM provenance, clearly marked as seeded).

    Each is a known fact's subject and relation with the object of another fact of the same
    relation (plausible but new), with the two entities' descriptions as its premises.
    """

    rng = random.Random(seed)
    facts = store.list_facts(statuses=[FactStatus.VERIFIED], limit=sample)
    by_relation: dict[str, list[Any]] = {}
    for f in facts:
        by_relation.setdefault(f.relation, []).append(f)
    pool = [f for f in facts if len(by_relation[f.relation]) > 1]
    known = {f.id for f in facts}
    chosen: dict[str, Fact] = {}
    tries = 0
    while len(chosen) < count and tries < count * 20 and pool:
        tries += 1
        base = rng.choice(pool)
        other = rng.choice(by_relation[base.relation])
        if other.object in (base.object, base.subject):
            continue
        subject, obj = store.get_entity(base.subject), store.get_entity(other.object)
        premises = [f"{e.name}: {e.description}" if e.description else e.name for e in (subject, obj) if e is not None]
        scores = [round(rng.uniform(0.5, 0.99), 3) for _ in premises]
        fact = Fact(
            subject=base.subject, relation=base.relation, object=other.object, status=FactStatus.PROPOSED,
            confidence=max(scores), provenance=Provenance(
                source_kind=SourceKind.LLM, model="seeded (load test)", endpoint="none",
                question=f"(seeded) {base.relation.rsplit('/', 1)[-1].replace('_', ' ')} of {base.subject_name}?",
                premises=premises, scores=scores, score=max(scores), checkpoint="seeded", vocabulary="graph",
            ),
        )  # fmt: skip
        if fact.id not in known:
            chosen.setdefault(fact.id, fact)
    # one bulk write (a write per fact takes ~0.3 s); a fact already in the graph is left as it is,
    # so the seeded ones are those now proposed (one query; get_fact per id scans the edges)
    store.upsert_facts(list(chosen.values()))
    proposed = {f.id for f in store.list_facts(statuses=[FactStatus.PROPOSED], limit=max(1000, 4 * count))}
    inserted = [i for i in chosen if i in proposed]
    return inserted


# -- measuring ---------------------------------------------------------------------------------------
def percentiles(samples: list[float]) -> dict[str, float]:
    return latency_summary(samples, quantiles=(0.5, 0.95, 0.99), unit="ms", digits=1, extra=("mean", "max"))


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: int = 0  # an answer entity shown
    lock: threading.Lock = field(default_factory=threading.Lock)


def _asker(url: str, deadline: float, max_requests: int, tally: Tally, seed: int) -> None:
    """``POST /v1/ask`` (the HTTP API) with random questions, on one keep-alive connection."""

    import httpx

    rng = random.Random(seed)
    sent = 0
    with httpx.Client(base_url=url, timeout=120.0) as client:
        while time.monotonic() < deadline and sent < max_requests:
            question = rng.choice(QUESTIONS)
            started = time.perf_counter()
            try:
                response = client.post("/v1/ask", json={"question": question})
                body = response.json()
            except Exception as e:  # noqa: BLE001 (every failure is an error of the run, reported)
                with tally.lock:
                    tally.errors.append(f"ask: {type(e).__name__}: {e}")
                sent += 1
                continue
            took = time.perf_counter() - started
            sent += 1
            with tally.lock:
                tally.latencies.append(took)
                if response.status_code != 200 or "error" in body:
                    tally.errors.append(f"ask {question!r}: HTTP {response.status_code}: {str(body)[:200]}")
                elif body.get("answer"):
                    tally.answered += 1


@dataclass
class ReviewLog:
    accepted: list[str] = field(default_factory=list)  # accepts the reviewer was told succeeded
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def _reviewer(accept: Callable[[], str | None], deadline: float, interval_s: float, log_: ReviewLog) -> None:
    """Accept one fact every ``interval_s`` until the deadline (``accept`` returns its id, None when the queue is empty)."""

    from qa_system.errors import ReviewConflictError

    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            fact = accept()
        except ReviewConflictError as e:
            log_.conflicts.append(str(e))
            fact = ""
        except Exception as e:  # noqa: BLE001
            log_.errors.append(f"review: {type(e).__name__}: {e}")
            fact = ""
        took = time.perf_counter() - started
        if fact is None:
            break
        if fact:
            log_.accepted.append(fact)
            log_.latencies.append(took)
        time.sleep(max(0.0, interval_s - took))


def check_decisions(store: Any, workspace: Path, accepted: list[str]) -> list[str]:
    """Every reported accept is verified by the reviewer in the store and logged once as applied."""

    audit = read_jsonl(workspace / "review" / "audit.jsonl")
    applied = [r["fact_id"] for r in audit if r.get("action") == "accept" and r.get("outcome") == "applied" and r.get("reviewer") == REVIEWER]
    lost = []
    for fact in accepted:
        view = store.get_fact(fact)
        if view.status != FactStatus.VERIFIED or view.provenance.reviewer != REVIEWER:
            lost.append(f"{fact}: store says {view.status.value} by {view.provenance.reviewer!r}")
        if applied.count(fact) != 1:
            lost.append(f"{fact}: {applied.count(fact)} applied accepts in the audit log")
    if len(accepted) != len(set(accepted)):
        lost.append("the same fact was reported accepted twice")
    return lost


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the run -------------------------------------------------------------------------------------------
def _factory(name: str | None) -> Callable[[Any], Any] | None:
    """``"package.module:function"`` → the function (a name, so it crosses into the server process)."""

    if not name:
        return None
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def shipped_pipeline_exact_linking(store: Any) -> Any:
    """The shipped reader with the linker's FAISS fuzzy-name index off (its first build on a fresh
    demo copy takes minutes on 2 cores); for tests. The default run uses the full pipeline."""

    from qa_system.ask.pipeline import load_pipeline
    from qa_system.config import load_settings
    from retrievers.linking import default_index_dir

    index_dir = default_index_dir(store)
    return load_pipeline(load_settings(workspace=index_dir.parent if index_dir else Path(".")), store, use_faiss=False)


def _serve(workspace: str, seed_facts: int, pipeline: str | None, password: str, ready: Any, stop: Any) -> None:
    """The server process: demo graph, seeded facts, the pipeline, the app on a free loopback port."""

    from graph.embedded import EmbeddedStore
    from qa_system.config import load_settings
    from qa_system.explore import ensure_demo_graph
    from ui.api import ApiConfig, ServerThread, create_api, mount_app
    from ui.app import build_app
    from ui.auth import MaintainerAuth

    store = app = server = None
    try:
        store = EmbeddedStore.open(Path(workspace))
        ensure_demo_graph(store)
        seeded = seed_proposed_facts(store, seed_facts)
        t0 = time.perf_counter()
        factory = _factory(pipeline)
        if factory is None:
            from qa_system.ask.pipeline import load_pipeline

            ask_pipeline = load_pipeline(load_settings(workspace=Path(workspace)), store)
        else:
            ask_pipeline = factory(store)
        ask_pipeline.ask(QUESTIONS[0])  # warm: the first ask loads lazy parts
        load_s = time.perf_counter() - t0
        app = build_app(store, ask_pipeline, auth=MaintainerAuth(user=REVIEWER, password=password), workspace=Path(workspace))
        api = create_api(store, ask_pipeline, config=ApiConfig(rate_limit_per_minute=0), workspace=Path(workspace))
        server = ServerThread(mount_app(api, app.queue(default_concurrency_limit=8)))
        url = server.start()
        ready.put({"url": f"{url}/", "seeded": len(seeded), "load_s": load_s})
        stop.wait()
    except Exception as e:  # noqa: BLE001 (reported to the parent, which fails the run)
        ready.put({"error": f"{type(e).__name__}: {e}"})
    finally:
        if server is not None:
            server.stop()
        if app is not None:
            app.close()
        if store is not None:
            store.close()


def _wait_ready(ready: Any, server: Any, timeout_s: float) -> dict[str, Any]:
    """The server's ready message; fails at once when the server process died instead."""

    import queue as queue_module

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return ready.get(timeout=1.0)
        except queue_module.Empty:
            if not server.is_alive():
                raise RuntimeError(f"the app's server process exited with code {server.exitcode} before it was ready") from None
    raise RuntimeError(f"the app was not ready within {timeout_s:.0f} s")


def run_load_test(
    workspace: Path,
    *,
    askers: int = 2,
    duration_s: float = 10.0,
    max_requests: int = 10_000,
    review_interval_s: float = 0.25,
    seed_facts: int = 100,
    pipeline: str | None = None,
    start_timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Run the load test on ``workspace`` (a demo graph is imported when it is empty); one JSON-able record.

    The app runs in a server process of its own (as ``qa-system serve`` would), so the askers'
    client threads do not share its interpreter. ``pipeline`` names a factory
    ``"module:function"`` taking the store (tests pass a fake); default: the shipped reader.
    """

    import multiprocessing

    from graph.embedded import EmbeddedStore
    from ui.auth import generate_password

    if askers < 1 or duration_s <= 0 or max_requests < 1:
        raise ValueError(f"askers, duration and max requests must be positive; got {askers}, {duration_s}, {max_requests}")
    context = multiprocessing.get_context("spawn")
    ready, stop, password = context.Queue(), context.Event(), generate_password()
    server = context.Process(target=_serve, args=(str(workspace), seed_facts, pipeline, password, ready, stop), daemon=True)
    server.start()
    try:
        info = _wait_ready(ready, server, start_timeout_s)
        if "error" in info:
            raise RuntimeError(f"the app did not start: {info['error']}")
        url = info["url"]
        from evaluation.gradio_http import ReviewClient

        review_client = ReviewClient(url)
        review_client.login(REVIEWER, password)
        tally, reviews = Tally(), ReviewLog()
        started = time.monotonic()
        deadline = started + duration_s
        threads = [threading.Thread(target=_asker, args=(url, deadline, max_requests, tally, i), daemon=True) for i in range(askers)]
        threads.append(threading.Thread(target=_reviewer, args=(review_client.accept_next, deadline, review_interval_s, reviews), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=duration_s + 120)
        wall = time.monotonic() - started
        hung = sum(t.is_alive() for t in threads)
        review_client.close()
        load_average = [round(x, 2) for x in os.getloadavg()]
    finally:
        stop.set()
        server.join(timeout=60)
        if server.is_alive():
            server.terminate()
            server.join(timeout=10)
    store = EmbeddedStore.open(workspace)  # the server is gone: check the decisions on disk
    try:
        lost = check_decisions(store, workspace, reviews.accepted)
    finally:
        store.close()
    errors = tally.errors + reviews.errors + ([f"{hung} worker(s) still running after the time bound"] if hung else [])
    return {
        "benchmark": "app-load",
        "askers": askers,
        "duration_s": duration_s,
        "wall_s": round(wall, 1),
        "max_requests_per_asker": max_requests,
        "pipeline": pipeline or "shipped reader (qa_system.ask.pipeline.load_pipeline), graph path only: no LLM fallback",
        "pipeline_load_s": round(info["load_s"], 1),
        "server": "ui.app.build_app + ui.api.create_api in one uvicorn server in its own process, queue(default_concurrency_limit=8) as qa-system serve",
        "api": "POST /v1/ask (HTTP API, loopback), one keep-alive connection per asker",
        "reviewer_path": "Review tab's Accept event over the page's HTTP queue protocol, logged in as the maintainer",
        "requests": len(tally.latencies) + sum(1 for e in tally.errors if e.startswith("ask:")),
        "answered_with_entity": tally.answered,
        "requests_per_s": round(len(tally.latencies) / wall, 2) if wall else 0.0,
        "latency": percentiles(tally.latencies),
        "errors": len(errors),
        "error_samples": errors[:10],
        "seeded_proposed_facts": info["seeded"],
        "review": {
            "accepted": len(reviews.accepted),
            "conflicts": len(reviews.conflicts),
            "lost_decisions": len(lost),
            "lost_samples": lost[:10],
            "latency": percentiles(reviews.latencies),
        },
        "load_average": load_average,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--askers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=10_000, help="per asker")
    parser.add_argument("--review-interval", type=float, default=0.25, help="seconds between accepts")
    parser.add_argument("--seed-facts", type=int, default=600)
    parser.add_argument("--pipeline", help="a pipeline factory module:function taking the store (default: the shipped reader)")
    parser.add_argument("--workspace", type=Path, help="a workspace to copy (default: a fresh one with the demo graph)")
    parser.add_argument("--out", type=Path, default=Path("evaluation/results/load-test.json"))
    parser.add_argument("--json", action="store_true", help="print the record as one JSON object on stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        workspace = Path(tmp) / "ws"
        if args.workspace:
            shutil.copytree(args.workspace, workspace)
        record = run_load_test(workspace, askers=args.askers, duration_s=args.duration, max_requests=args.max_requests,
                               review_interval_s=args.review_interval, seed_facts=args.seed_facts, pipeline=args.pipeline)
    record["command"] = "python -m evaluation.load_test " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        lat = record["latency"]
        sys.stderr.write(f"{record['requests']} asks, p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms; errors {record['errors']}; "
                         f"{record['review']['accepted']} accepts, lost {record['review']['lost_decisions']}\n")
    return 0 if record["errors"] == 0 and record["review"]["lost_decisions"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
