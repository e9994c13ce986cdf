"""SATORI object prediction on WebNLG: precision/recall/F1 of candidate objects before and after entailment.

Setup per split (``dev`` = WebNLG ``val_triples.json``, ``test``): the split's sentences are indexed as
passages in a temporary workspace (nothing else is searchable); each distinct gold (subject, relation)
of the split is a query; candidates come from
- ``ner``: spaCy entities of the retrieved premises,
- ``graph``: the relation's objects in the split's *other* triples (another subject), the ``cap`` most
  frequent: the split plays the graph, and a query's own gold is never injected through it,
- ``llm`` (only with ``--llm``): the LLM's completion of the relation's prompt template,
then the candidate filters (stop words, length, not the subject, mentioned in a premise). A candidate
is correct when its normalised text equals a gold object of its query. Recall counts over all gold
objects of the queries, so objects no source proposes count as misses both before and after.

Entailment: each candidate's hypothesis is scored against its evidence, the premises that name both
the subject and the candidate (a premise that does not cannot entail "X ... Y"; this also saves most
model calls); a candidate with no evidence is rejected unscored. It is kept when the max score is at
least its relation's threshold; ``tune`` picks the thresholds on dev. The record also reports the
evidence rule alone (``*_evidence_only``), so what the entailment model adds is visible.

Calibrated decision (``fit_calibration``, ``qa-system tune validation --calibrate``): a
logistic regression (scikit-learn) fitted on the dev candidates with evidence over the features of
each candidate within its query (``qa_system.fallback.validation_calibration.group_features``: entailment score, evidence
count, gap to the query's best score, rank, graph source), and the highest probability threshold
keeping ``min_recall_kept`` of the dev recall; ``metrics(run, ..., calibration=...)`` then reports
before/after for that decision (what ``TripleValidator`` does with such a thresholds file).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa_system.errors import DataFormatError, DatasetNotFoundError, InputError
from qa_system.fallback.candidates import SOURCES, normalise, warm_ner

if TYPE_CHECKING:
    from qa_system.fallback.validation_calibration import Calibration, ShapePrior

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).with_name("results")
SPLIT_FILES = {"train": "train_triples.json", "dev": "val_triples.json", "test": "test_triples.json"}
GRAPH_CAP = 100
MIN_RELATION_SUPPORT = 8  # gold objects a relation needs on dev before it gets its own threshold
DEFAULT_THRESHOLD_IF_EMPTY = 0.5


@dataclass
class Query:
    subject: str
    relation: str
    gold: set[str]  # normalised gold objects


@dataclass
class Scored:
    """One candidate of one query with its entailment score (max over the premises that mention it)."""

    query: int
    text: str
    sources: list[str]
    correct: bool
    score: float = 0.0
    premises_scored: int = 0
    hypothesis: str = ""


@dataclass
class Run:
    queries: list[Query]
    candidates: list[Scored] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    hypotheses: str = ""  # the hypothesis style the scores were computed with


# -- data ---------------------------------------------------------------------------------------------
def webnlg_file(data_dir: Path | None, split: str) -> Path:
    from graph.kg_files import default_data_dir

    if split not in SPLIT_FILES:
        raise InputError(f"unknown split {split!r}; use one of {sorted(SPLIT_FILES)}")
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if base is None:
        raise DatasetNotFoundError("data folder not found: pass --data-dir or set QA_DATA_DIR")
    for folder in (base / "webnlg-casrel" / "WebNLG", base / "WebNLG", base):
        if (folder / SPLIT_FILES[split]).is_file():
            return folder / SPLIT_FILES[split]
    raise DatasetNotFoundError(f"WebNLG {split} not found under {base} (expected webnlg-casrel/WebNLG/{SPLIT_FILES[split]})")


def load_webnlg_split(path: Path) -> list[dict[str, Any]]:
    """Records ``{"text": str, "triple_list": [[s, r, o], ...]}`` (the CasRel format)."""

    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataFormatError(f"not JSON ({e})", path=str(path)) from e
    if not isinstance(records, list):
        raise DataFormatError("expected a list of records", path=str(path))
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str) or not isinstance(record.get("triple_list"), list):
            raise DataFormatError(f"record {number} lacks text/triple_list", path=str(path))
        if any(not (isinstance(t, list) and len(t) == 3) for t in record["triple_list"]):
            raise DataFormatError(f"record {number} has a triple that is not [subject, relation, object]", path=str(path))
    return records


def build_queries(records: Sequence[dict[str, Any]]) -> tuple[list[Query], dict[str, Counter[tuple[str, str]]]]:
    """Distinct (subject, relation) queries with their gold objects, and per relation the objects by subject."""

    gold: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_relation: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for record in records:
        for subject, relation, obj in record["triple_list"]:
            gold[(subject, relation)].add(normalise(obj))
            by_relation[relation][(subject, obj)] += 1
    return [Query(s, r, g) for (s, r), g in gold.items()], by_relation


def graph_objects_for(by_relation: dict[str, Counter[tuple[str, str]]], subject: str, relation: str, cap: int = GRAPH_CAP) -> list[str]:
    """The relation's objects from other subjects' triples, most frequent first (the "graph" source)."""

    counts: Counter[str] = Counter()
    for (other, obj), n in by_relation.get(relation, Counter()).items():
        if other != subject:
            counts[obj] += n
    return [obj for obj, _ in counts.most_common(cap)]


def index_sentences(records: Sequence[dict[str, Any]], workspace: Path, split: str) -> Any:
    """The split's sentences as passages of a fresh workspace, and its retriever (built now)."""

    from retrievers.passages import Passage, PassageRetriever, PassageStore

    passages = [Passage.sentence(f"webnlg-{split}-{i}", r["text"], 0, len(r["text"])) for i, r in enumerate(records) if r["text"].strip()]
    PassageStore(workspace).add_many(passages)
    return PassageRetriever(workspace).refresh(progress=log.isEnabledFor(logging.INFO))


# -- the run ------------------------------------------------------------------------------------------
def run_split(
    validator: Any,
    records: Sequence[dict[str, Any]],
    *,
    limit: int | None = None,
    graph_cap: int = GRAPH_CAP,
    llm_objects: Callable[[str, str], list[str]] | None = None,
    progress: bool = True,
) -> Run:
    """Candidates for every query, each scored by entailment (thresholds are applied later)."""

    from tqdm import tqdm

    queries, by_relation = build_queries(records)
    queries = queries[:limit] if limit else queries
    run = Run(queries, hypotheses=getattr(validator.templates, "hypotheses", ""))
    started = time.perf_counter()
    premises_of = validator.retriever.search_many([validator.templates.get(q.relation).search_query(q.subject) for q in queries], validator.k)
    warm_ner(p.text for hits in premises_of for p, _ in hits)
    run.seconds["retrieve_and_ner"] = round(time.perf_counter() - started, 1)
    items: list[tuple[list[str], str]] = []
    started = time.perf_counter()
    for number, (query, hits) in enumerate(tqdm(list(zip(queries, premises_of)), desc="candidates", disable=not progress)):
        premises = [p.text for p, _ in hits]
        llm = llm_objects(query.subject, query.relation) if llm_objects is not None else []
        found = validator.candidates(query.subject, query.relation, llm, premises=premises,
                                     graph_objects=graph_objects_for(by_relation, query.subject, query.relation, graph_cap))  # fmt: skip
        template = validator.templates.get(query.relation)
        for candidate in found:
            hypothesis = template.hypothesis_text(query.subject, candidate.text)
            run.candidates.append(Scored(number, candidate.text, list(candidate.sources), normalise(candidate.text) in query.gold,
                                         premises_scored=len(candidate.evidence), hypothesis=hypothesis))  # fmt: skip
            items.append(([premises[i] for i in candidate.evidence], hypothesis))
    run.seconds["candidates"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    chunk = 256
    for at in tqdm(range(0, len(items), chunk), desc="entailment", disable=not progress):
        for scored, scores in zip(run.candidates[at : at + chunk], validator.score_many(items[at : at + chunk])):
            scored.score = float(np.max(scores)) if len(scores) else 0.0
    run.seconds["entailment"] = round(time.perf_counter() - started, 1)
    return run


def prf(correct: int, predicted: int, gold: int) -> dict[str, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "predicted": predicted, "correct": correct}


def run_features(run: Run, shape_prior: ShapePrior | None = None) -> np.ndarray:
    """The calibration features of every candidate (rows in ``run.candidates`` order), each computed
    within its query's candidates (``qa_system.fallback.validation_calibration.group_features``; graph = the
    graph source; the shape-prior column is 0 without a ``shape_prior``)."""

    from qa_system.fallback.validation_calibration import (
        CALIBRATION_FEATURES,
        relation_group_features,
    )

    features = np.zeros((len(run.candidates), len(CALIBRATION_FEATURES)))
    by_query: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(run.candidates):
        by_query[c.query].append(i)
    for query, members in by_query.items():
        group = [run.candidates[i] for i in members]
        features[members] = relation_group_features(run.queries[query].relation, [c.text for c in group], [c.score for c in group],
                                                    [c.premises_scored for c in group], ["graph" in c.sources for c in group], shape_prior)  # fmt: skip
    return features


def calibrated_keep(run: Run, calibration: Calibration) -> np.ndarray:
    """Per candidate, whether the calibrated decision keeps it (never without evidence)."""

    if not run.candidates:
        return np.zeros(0, dtype=bool)
    evidence = np.array([c.premises_scored > 0 for c in run.candidates])
    return evidence & (calibration.probabilities(run_features(run, calibration.shape_prior)) >= calibration.threshold)


def shape_prior_from_split(data_dir: Path | None, split: str = "train") -> ShapePrior:
    """The object-shape prior of the WebNLG ``split``'s triples (train: never the split evaluated)."""

    from qa_system.fallback.validation_calibration import ShapePrior

    path = webnlg_file(data_dir, split)
    pairs = [(t[1], t[2]) for record in load_webnlg_split(path) for t in record["triple_list"]]
    return ShapePrior.from_triples(pairs, fitted_on=f"webnlg {split} ({len(pairs)} triples, {path.name})")


def metrics(run: Run, threshold_of: Callable[[str], float], *, calibration: Calibration | None = None) -> dict[str, Any]:
    """P/R/F1 before (every filtered candidate) and after (score ≥ threshold, or the calibrated
    decision when ``calibration`` is given), overall and per source."""

    gold = sum(len(q.gold) for q in run.queries)
    out: dict[str, Any] = {"queries": len(run.queries), "gold_objects": gold, "candidates": len(run.candidates),
                           "decision": "calibrated" if calibration is not None else "thresholds"}  # fmt: skip
    if calibration is not None:
        keep = [bool(k) for k in calibrated_keep(run, calibration)]
    else:
        keep = [bool(c.premises_scored) and c.score >= threshold_of(run.queries[c.query].relation) for c in run.candidates]
    for source in (None, *SOURCES):
        chosen = [c for c in run.candidates if source is None or source in c.sources]
        if source is not None and not chosen:
            continue
        kept = [c for c, k in zip(run.candidates, keep) if k and (source is None or source in c.sources)]
        before, after = prf(sum(c.correct for c in chosen), len(chosen), gold), prf(sum(c.correct for c in kept), len(kept), gold)
        prefix = "" if source is None else f"{source}_"
        for name in ("precision", "recall", "f1"):
            out[f"{prefix}{name}_before"] = before[name]
            out[f"{prefix}{name}_after"] = after[name]
        if source is None:  # ablation: the evidence rule alone (a premise names both ends), no entailment model
            with_evidence = [c for c in chosen if c.premises_scored]
            alone = prf(sum(c.correct for c in with_evidence), len(with_evidence), gold)
            out.update({f"{name}_evidence_only": alone[name] for name in ("precision", "recall", "f1")})
        out[f"{prefix}predicted_before"], out[f"{prefix}predicted_after"] = before["predicted"], after["predicted"]
    if out["recall_before"]:
        out["recall_kept"] = round(out["recall_after"] / out["recall_before"], 4)
    out["precision_gain_points"] = round(100 * (out["precision_after"] - out["precision_before"]), 2)
    return out


# -- threshold tuning ---------------------------------------------------------------------------------
def best_threshold(scores: np.ndarray, correct: np.ndarray, gold: int, *, min_correct: float = 0.0) -> tuple[float, float]:
    """The threshold with the best F1 among the candidates' own scores (ties: the lower one, which
    keeps more recall), among those keeping at least ``min_correct`` correct candidates."""

    best_f1, best_t = -1.0, float(scores.min()) if len(scores) else 0.0
    for t in sorted(set(np.floor(scores * 1e4) / 1e4)):  # floored: a threshold never exceeds its own score
        keep = scores >= t
        if correct[keep].sum() < min_correct - 1e-9:
            break  # higher thresholds keep even less
        f1 = prf(int(correct[keep].sum()), int(keep.sum()), gold)["f1"]
        if f1 > best_f1 + 1e-9:
            best_f1, best_t = f1, float(t)
    return best_t, best_f1


def fit_calibration(run: Run, *, min_recall_kept: float = 0.9, regularisation: float = 1.0, recall_confidence: float | None = None,
                    bootstrap: int = 500, seed: int = 0, shape_prior: ShapePrior | None = None) -> Calibration:
    """A logistic regression over the candidates' ``run_features`` (those with evidence; the rest are
    rejected anyway) and the highest probability threshold keeping ``min_recall_kept`` of the
    unvalidated recall (all candidates' correct ones) — what ``TripleValidator`` applies. With a
    ``shape_prior`` (``shape_prior_from_split``: fitted on train triples) the object-shape feature is
    used too; without one it is left out.

    With ``recall_confidence`` (e.g. 0.9) the threshold must keep ``min_recall_kept`` not just on
    dev but in that share of ``bootstrap`` resamples of the dev *queries* (a query's candidates stay
    together): the threshold is the (1 - confidence) quantile of the resamples' highest feasible
    thresholds. The point fitted on dev alone keeps exactly the asked recall there and so misses it
    on about half of the unseen sets; this trades a little precision for a recall guarantee that
    holds on new data."""

    from sklearn.linear_model import LogisticRegression

    from qa_system.fallback.validation_calibration import CALIBRATION_FEATURES, Calibration

    if not 0.0 <= min_recall_kept <= 1.0:
        raise InputError(f"min_recall_kept must be within [0, 1]; got {min_recall_kept}")
    evidence = np.array([c.premises_scored > 0 for c in run.candidates], dtype=bool)
    correct = np.array([c.correct for c in run.candidates], dtype=bool)
    if not evidence.any() or len(set(correct[evidence])) < 2:
        raise InputError("calibration needs candidates with evidence, both correct and wrong ones")
    names = [f for f in CALIBRATION_FEATURES if shape_prior is not None or f != "shape_prior"]
    features = run_features(run, shape_prior)
    columns = [CALIBRATION_FEATURES.index(f) for f in names]
    model = LogisticRegression(C=regularisation, max_iter=1000).fit(features[evidence][:, columns], correct[evidence])
    weights, bias = [float(w) for w in model.coef_[0]], float(model.intercept_[0])
    probabilities = Calibration(features=names, weights=weights, bias=bias, threshold=0.0, shape_prior=shape_prior).probabilities(features)
    threshold = highest_threshold_keeping(probabilities, correct, evidence, min_recall_kept)
    if recall_confidence is not None:
        if not 0.0 < recall_confidence < 1.0:
            raise InputError(f"recall_confidence must be within (0, 1); got {recall_confidence}")
        query_of = np.array([c.query for c in run.candidates])
        members = [np.flatnonzero(query_of == q) for q in range(len(run.queries))]
        rng = np.random.default_rng(seed)
        feasible = []
        for _ in range(bootstrap):
            rows = np.concatenate([members[q] for q in rng.integers(0, len(members), len(members))])
            feasible.append(highest_threshold_keeping(probabilities[rows], correct[rows], evidence[rows], min_recall_kept))
        threshold = min(threshold, float(np.floor(np.quantile(feasible, 1.0 - recall_confidence) * 1e4) / 1e4))
    fitted_on = (f"webnlg dev ({len(run.queries)} queries, {int(evidence.sum())} candidates with evidence, "
                 f"{int((correct & evidence).sum())} correct; {run.hypotheses or 'natural'} hypotheses)")  # fmt: skip
    return Calibration(features=names, weights=weights, bias=bias, threshold=threshold, fitted_on=fitted_on, min_recall_kept=min_recall_kept,
                       regularisation=regularisation, recall_confidence=recall_confidence, shape_prior=shape_prior)  # fmt: skip


def query_subset(run: Run, queries: Sequence[int]) -> Run:
    """The run restricted to ``queries`` (indices into ``run.queries``), renumbered in that order."""

    index = {q: i for i, q in enumerate(queries)}
    return Run([run.queries[q] for q in queries], [replace(c, query=index[c.query]) for c in run.candidates if c.query in index],
               run.seconds, run.hypotheses)  # fmt: skip


def split_half_check(run: Run, *, min_recall_kept: float, recall_confidence: float | None, floor: float = 0.9,
                     repeats: int = 40, seed: int = 0, shape_prior: ShapePrior | None = None) -> dict[str, Any]:
    """How often the calibrated decision keeps ``floor`` of the recall on dev queries it was not
    fitted on: ``repeats`` random halvings of the dev queries, fit on one half (as ``tune`` does,
    ``min_recall_kept`` and ``recall_confidence``), measure the other.

    Why: the bootstrap behind ``recall_confidence`` resamples the queries but not the fit, and the
    relations cluster by query, so at ``min_recall_kept=0.9, recall_confidence=0.9`` only ~70% of
    held-out halves kept 90% (dev, stage-9 model). This check picks a dev target that does (a half
    is a harder test than the full dev → test step: half the data to fit on)."""

    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    n = len(run.queries)
    kept, gains = [], []
    for rep in tqdm(range(repeats), desc="split-half check", unit="split", leave=False):
        order = rng.permutation(n)
        fit_half, held_half = query_subset(run, sorted(order[: n // 2])), query_subset(run, sorted(order[n // 2 :]))
        calibration = fit_calibration(fit_half, min_recall_kept=min_recall_kept, recall_confidence=recall_confidence,
                                      bootstrap=300, seed=rep, shape_prior=shape_prior)  # fmt: skip
        held = metrics(held_half, lambda _r: 0.0, calibration=calibration)
        kept.append(held.get("recall_kept", 0.0))
        gains.append(held["precision_gain_points"])
    kept_array = np.array(kept)
    return {"repeats": repeats, "floor": floor, "min_recall_kept": min_recall_kept, "recall_confidence": recall_confidence,
            "share_keeping_floor": round(float((kept_array >= floor).mean()), 4), "mean_recall_kept": round(float(kept_array.mean()), 4),
            "min_recall_kept_seen": round(float(kept_array.min()), 4), "mean_precision_gain_points": round(float(np.mean(gains)), 2)}  # fmt: skip


def highest_threshold_keeping(probabilities: np.ndarray, correct: np.ndarray, evidence: np.ndarray, min_recall_kept: float) -> float:
    """The highest probability threshold (floored to 1e-4) whose kept candidates (with evidence)
    hold ``min_recall_kept`` of all the correct candidates; 0.0 when none does."""

    need = min_recall_kept * correct.sum()
    if need <= 1e-9:  # nothing to keep: the highest threshold any candidate reaches
        return float(np.floor(probabilities[evidence].max() * 1e4) / 1e4) if evidence.any() else 0.0
    kept_correct = probabilities[correct & evidence]
    if len(kept_correct) < need - 1e-9:
        return 0.0
    ordered = np.sort(np.floor(kept_correct * 1e4) / 1e4)[::-1]  # floored: a threshold never exceeds its own score
    return float(ordered[int(np.ceil(need - 1e-9)) - 1])  # the need-th best correct candidate sets the threshold


def tune(run: Run, *, min_support: int = MIN_RELATION_SUPPORT, min_recall_kept: float = 0.0) -> tuple[float, dict[str, float]]:
    """A global threshold for F1, then one per relation where dev has ``min_support`` gold objects.

    Only candidates with evidence are thresholded (the rest are rejected anyway). With
    ``min_recall_kept`` only thresholds keeping that share of the unvalidated recall (all candidates,
    evidence or not) are eligible: the product asks validation to keep 90% of it. The calibrated
    decision is fitted apart (``fit_calibration``).
    """

    scored = [c for c in run.candidates if c.premises_scored]
    scores = np.array([c.score for c in scored])
    correct = np.array([c.correct for c in scored], dtype=bool)
    relations = np.array([run.queries[c.query].relation for c in scored])
    gold_by_relation: Counter[str] = Counter()
    for q in run.queries:
        gold_by_relation[q.relation] += len(q.gold)
    correct_before: Counter[str] = Counter(run.queries[c.query].relation for c in run.candidates if c.correct)
    if not len(scores):
        return DEFAULT_THRESHOLD_IF_EMPTY, {}
    default, _ = best_threshold(scores, correct, sum(gold_by_relation.values()),
                                min_correct=min_recall_kept * sum(correct_before.values()))  # fmt: skip
    per_relation: dict[str, float] = {}
    for relation, gold in gold_by_relation.items():
        mask = relations == relation
        if gold >= min_support and mask.any():
            per_relation[relation], _ = best_threshold(scores[mask], correct[mask], gold, min_correct=min_recall_kept * correct_before[relation])
    return round(default, 4), {r: round(t, 4) for r, t in sorted(per_relation.items())}


def save_candidates(run: Run, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"queries": [asdict(q) | {"gold": sorted(q.gold)} for q in run.queries], "candidates": [asdict(c) for c in run.candidates],
               "seconds": run.seconds, "hypotheses": run.hypotheses}  # fmt: skip
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def load_candidates(path: Path) -> Run:
    data = json.loads(path.read_text(encoding="utf-8"))
    queries = [Query(q["subject"], q["relation"], set(q["gold"])) for q in data["queries"]]
    return Run(queries, [Scored(**c) for c in data["candidates"]], data.get("seconds", {}), data.get("hypotheses", ""))
