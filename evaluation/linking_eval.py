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
from retrievers.linking import DEFAULT_WEIGHTS, FEATURES, WEIGHTS_PATH, GraphEntityLinker, clean_question

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
    """L2-regularised pointwise logistic regression (bias unpenalised) by L-BFGS; returns the weights."""

    from scipy.optimize import minimize

    penalty = np.ones(x.shape[1])
    penalty[FEATURES.index("bias")] = 0.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        p = 1.0 / (1.0 + np.exp(-z))
        value = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum(penalty * w * w)
        grad = x.T @ (p - y) / len(y) + l2 * penalty * w
        return float(value), grad

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x


def fit_listwise(x: np.ndarray, y: np.ndarray, groups: np.ndarray, l2: float = FIT_L2) -> np.ndarray:
    """Softmax over each question's candidates, maximising the probability of its gold ones (the ranking
    objective recall@1 asks for). Groups must be contiguous; questions without a gold candidate are skipped.
    The bias cancels in a softmax: its weight stays 0 (set later by Platt scaling)."""

    from scipy.optimize import minimize

    keep = np.isin(groups, np.unique(groups[y > 0]))
    x, y, groups = x[keep], y[keep], groups[keep]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    index = np.cumsum(np.r_[False, groups[1:] != groups[:-1]])  # candidate -> group number
    n_groups = len(starts)

    def log_sum_exp(z: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zm = np.where(mask, z, -np.inf)
        top = np.maximum.reduceat(zm, starts)
        e = np.where(mask, np.exp(zm - top[index]), 0.0)
        total = np.add.reduceat(e, starts)
        return top + np.log(total), e / total[index]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        all_lse, p_all = log_sum_exp(z, np.ones_like(y, dtype=bool))
        pos_lse, p_pos = log_sum_exp(z, y > 0)
        value = np.sum(all_lse - pos_lse) / n_groups + 0.5 * l2 * np.sum(w * w)
        grad = x.T @ (p_all - p_pos) / n_groups + l2 * w
        return float(value), grad

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x


def platt(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rescale ``w`` (a * w, bias b) so sigmoid(x @ w) is a calibrated probability; the ranking is unchanged."""

    ab = _fit_ab(x @ w, y)
    scaled = ab[0] * w
    scaled[FEATURES.index("bias")] += ab[1]
    return scaled


def _fit_ab(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        t = ab[0] * z + ab[1]
        p = 1.0 / (1.0 + np.exp(-t))
        return float(np.mean(np.logaddexp(0.0, t) - y * t)), np.array([np.mean((p - y) * z), np.mean(p - y)])

    return minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x


def grouped_recall_at_1(x: np.ndarray, y: np.ndarray, groups: np.ndarray, w: np.ndarray, questions: int) -> float:
    """Share of questions whose best-scored candidate is gold (the candidate-level proxy of recall@1)."""

    scores = x @ w
    best: dict[int, tuple[float, float]] = {}
    for g, s, label in zip(groups, scores, y):
        if g not in best or s > best[g][0]:
            best[int(g)] = (float(s), float(label))
    return sum(label for _, label in best.values()) / questions if questions else 0.0


def _matrix_cached(linker: GraphEntityLinker, examples: list[QAExample], cache: Path | None, name: str):
    path = cache / f"{name}.npz" if cache is not None else None
    if path is not None and path.is_file():
        data = np.load(path)
        if data["x"].shape[1] == len(FEATURES) and int(data["questions"]) == len(examples):
            return data["x"], data["y"], data["g"]
    x, y, g = candidate_matrix(linker, examples)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x, y=y, g=g, questions=len(examples))
    return x, y, g


def fit(linker: GraphEntityLinker, limit: int | None = None, cache: Path | None = None) -> dict[str, Any]:
    """Fit the weights on the train splits, pick the variant with the best dev recall@1, save them."""

    train = [e for spec in FIT_SETS for e in load_qa(*spec)[:limit] if e.topic_ids]
    dev = [e for d in ("freebaseqa", "webqsp") for e in load_qa(d, "dev", "filtered")[:limit]]
    x, y, g = _matrix_cached(linker, train, cache, f"train-{limit}")
    xd, yd, gd = _matrix_cached(linker, dev, cache, f"dev-{limit}")
    variants = {"hand-set defaults": np.asarray([DEFAULT_WEIGHTS[name] for name in FEATURES])}
    for l2 in (1e-2, 1e-4):
        variants[f"pointwise logistic, L2={l2:g}"] = fit_logistic(x, y, l2)
        variants[f"listwise softmax + Platt scaling, L2={l2:g}"] = platt(x, y, fit_listwise(x, y, g, l2))
    dev_recall = {name: round(grouped_recall_at_1(xd, yd, gd, w, len(dev)), 4) for name, w in variants.items()}
    best = max(dev_recall, key=lambda name: dev_recall[name])
    record = {
        "weights": {name: round(float(v), 4) for name, v in zip(FEATURES, variants[best])},
        "method": best + " over (mention, entity) candidates (scipy L-BFGS); chosen by dev recall@1 among the variants",
        "fitted_on": [f"{d}/{s}/{st}" for d, s, st in FIT_SETS] + ["(questions whose gold topic is in the graph)"],
        "train_questions": len(train),
        "train_candidates": int(len(y)),
        "train_positive": int(y.sum()),
        "dev_sets": ["freebaseqa/dev/filtered", "webqsp/dev/filtered (10% carve of train)"],
        "dev_questions": len(dev),
        "dev_recall@1_by_variant": dev_recall,
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
    parser.add_argument("--fit-cache", type=Path, default=None, help="folder caching the candidate features of --fit")
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
            record: dict[str, Any] = fit(linker, args.limit, args.fit_cache)
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
