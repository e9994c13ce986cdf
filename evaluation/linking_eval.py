"""Entity-linking evaluation (recall@1/@5 of the gold topic entity) and calibration of the linker weights.

    python -m evaluation.linking_eval --dataset webqsp --split test --setting filtered --json
    python -m evaluation.linking_eval --fit          # refit retrievers/linker_weights.json on the train splits

Recall@k: a question counts as linked when one of its gold topic MIDs is among the top-k linked entities.
On ``full``, questions whose gold topic is not in the graph count as misses; ``answerable`` metrics are over
the questions whose gold topic is in the graph. Each run writes one JSON record to
``evaluation/results/linking-<dataset>-<setting>.json`` (``-<split>`` added for non-test splits).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.qa_data import QAExample, load_qa
from graph.store import GraphStore
from retrievers.linking import FEATURES, WEIGHTS_PATH, GraphEntityLinker, clean_question

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).with_name("results")
TOP_K = (1, 5)
# Calibration data: train splits only (WebQSP train minus its dev carve).
FIT_SETS = (("freebaseqa", "train", "filtered"), ("webqsp", "train", "full"))
FIT_L2 = 1e-2


def evaluate(linker: GraphEntityLinker, examples: list[QAExample], *, batch: int = 64) -> dict[str, Any]:
    """Recall@1/@5 overall and over the answerable subset, plus timing."""

    hits = {k: 0 for k in TOP_K}
    hits_answerable = {k: 0 for k in TOP_K}
    answerable = sum(bool(e.topic_ids) for e in examples)
    started = time.perf_counter()
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        results = linker.link_many([e.question for e in chunk], top_k=max(TOP_K))
        for example, linked in zip(chunk, results):
            ids = [le.entity.id for le in linked]
            for k in TOP_K:
                if set(ids[:k]) & set(example.topic_ids):
                    hits[k] += 1
                    hits_answerable[k] += 1
        log.info("linked %d/%d questions", min(start + batch, len(examples)), len(examples))
    seconds = time.perf_counter() - started
    n = len(examples)
    metrics: dict[str, Any] = {"questions": n, "answerable": answerable}
    for k in TOP_K:
        metrics[f"recall@{k}"] = round(hits[k] / n, 4) if n else 0.0
        metrics[f"answerable_recall@{k}"] = round(hits_answerable[k] / answerable, 4) if answerable else 0.0
    metrics["seconds"] = round(seconds, 1)
    metrics["ms_per_question"] = round(1000 * seconds / n, 1) if n else 0.0
    return metrics


# -- calibration -------------------------------------------------------------------------------
def candidate_matrix(linker: GraphEntityLinker, examples: list[QAExample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features X (N, F), labels y (N,) and question index g (N,) of every candidate."""

    rows, labels, groups = [], [], []
    for start in range(0, len(examples), 128):
        chunk = examples[start : start + 128]
        for offset, (example, cands) in enumerate(zip(chunk, linker.candidates_many([clean_question(e.question) for e in chunk]))):
            gold = set(example.topic_ids)
            for cand in cands:
                rows.append([cand.features.get(name, 0.0) for name in FEATURES])
                labels.append(float(cand.entity_id in gold))
                groups.append(start + offset)
        log.info("candidates for %d/%d questions", min(start + 128, len(examples)), len(examples))
    return np.asarray(rows, dtype=np.float64), np.asarray(labels), np.asarray(groups)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = FIT_L2) -> np.ndarray:
    """L2-regularised logistic regression (bias unpenalised) by L-BFGS; returns the weight vector."""

    from scipy.optimize import minimize

    penalty = np.ones(x.shape[1])
    penalty[FEATURES.index("bias")] = 0.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        p = 1.0 / (1.0 + np.exp(-z))
        value = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum(penalty * w * w)
        grad = x.T @ (p - y) / len(y) + l2 * penalty * w
        return float(value), grad

    result = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B")
    return result.x


def grouped_recall_at_1(x: np.ndarray, y: np.ndarray, groups: np.ndarray, w: np.ndarray, questions: int) -> float:
    """Share of questions whose best-scored candidate is gold (the candidate-level proxy of recall@1)."""

    scores = x @ w
    best: dict[int, tuple[float, float]] = {}
    for g, s, label in zip(groups, scores, y):
        if g not in best or s > best[g][0]:
            best[int(g)] = (float(s), float(label))
    return sum(label for _, label in best.values()) / questions if questions else 0.0


def fit(linker: GraphEntityLinker, limit: int | None = None) -> dict[str, Any]:
    """Fit the weights on the train splits, compare with the hand-set defaults on the dev splits, save."""

    train = [e for spec in FIT_SETS for e in load_qa(*spec)[:limit] if e.topic_ids]
    dev = [e for d in ("freebaseqa", "webqsp") for e in load_qa(d, "dev", "filtered")[:limit]]
    x, y, g = candidate_matrix(linker, train)
    weights = fit_logistic(x, y)
    xd, yd, gd = candidate_matrix(linker, dev)
    default = np.asarray([linker.weights.get(name, 0.0) for name in FEATURES])
    record = {
        "weights": {name: round(float(v), 4) for name, v in zip(FEATURES, weights)},
        "fitted_on": [f"{d}/{s}/{st}" for d, s, st in FIT_SETS] + ["(questions whose gold topic is in the graph)"],
        "method": f"pointwise logistic regression over (mention, entity) candidates, L2={FIT_L2} (bias free), scipy L-BFGS",
        "train_questions": len(train),
        "train_candidates": int(len(y)),
        "train_positive": int(y.sum()),
        "dev_candidate_recall@1": {
            "fitted": round(grouped_recall_at_1(xd, yd, gd, weights, len(dev)), 4),
            "previous": round(grouped_recall_at_1(xd, yd, gd, default, len(dev)), 4),
            "dev_sets": ["freebaseqa/dev/filtered", "webqsp/dev/filtered (10% carve of train)"],
        },
        "command": " ".join(["python -m evaluation.linking_eval", *sys.argv[1:]]),
        "time": _now(),
    }
    WEIGHTS_PATH.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    linker.weights = dict(record["weights"])
    return record


# -- CLI -------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_workspace(workspace: Path) -> GraphStore:
    """The embedded store of ``workspace``, importing the FB15k-237 demo graph when it is empty."""

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg

    store = EmbeddedStore.open(workspace)
    if store.stats().entities == 0:
        log.info("empty workspace %s: importing the FB15k-237 demo graph", workspace)
        import_kg(store, "demo")
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.linking_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("webqsp", "freebaseqa"), default="webqsp")
    parser.add_argument("--split", choices=("train", "dev", "test"), default="test")
    parser.add_argument("--setting", choices=("filtered", "full"), default="filtered")
    parser.add_argument("--limit", type=int, default=None, help="first N questions only")
    parser.add_argument("--workspace", type=Path, default=None, help="graph workspace (default: QA_WORKSPACE)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--no-faiss", action="store_true", help="dictionary + NER only")
    parser.add_argument("--fit", action="store_true", help="refit the linker weights on the train splits")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from qa_system.config import load_settings

    workspace = args.workspace or load_settings().workspace
    store = open_workspace(workspace)
    try:
        linker = GraphEntityLinker(store, use_faiss=not args.no_faiss)
        started = time.perf_counter()
        linker.load()
        load_s = time.perf_counter() - started
        if args.fit:
            record: dict[str, Any] = fit(linker, args.limit)
        else:
            examples = load_qa(args.dataset, args.split, args.setting, args.data_dir)[: args.limit]
            record = {
                "task": "entity-linking",
                "dataset": args.dataset,
                "split": args.split,
                "setting": args.setting,
                "metrics": evaluate(linker, examples),
                "linker": {"name": "GraphEntityLinker", "faiss": not args.no_faiss, "weights": _weights_note(),
                           "load_s": round(load_s, 1)},
                "graph": {"entities": store.stats().entities, "workspace": str(workspace)},
                "limit": args.limit,
                "command": " ".join(["python -m evaluation.linking_eval", *(argv if argv is not None else sys.argv[1:])]),
                "time": _now(),
            }
            suffix = "" if args.split == "test" else f"-{args.split}"
            out = args.out or RESULTS_DIR / f"linking-{args.dataset}-{args.setting}{suffix}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    finally:
        store.close()
    if args.json:
        print(json.dumps(record, indent=1))
    return 0


def _weights_note() -> str:
    if not WEIGHTS_PATH.is_file():
        return "hand-set defaults"
    data = json.loads(WEIGHTS_PATH.read_text(encoding="utf-8"))
    return f"{WEIGHTS_PATH.name} ({data.get('time', '?')})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
