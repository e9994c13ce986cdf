"""Extraction metrics the way the seeds report them: micro P/R/F1, by overlap pattern, by triple count.

A predicted triple is correct when its subject, relation and object strings equal a gold triple's
exactly (CasRel's comparison). Predicted strings are the sentence text under the predicted
word-piece spans (character offsets), so casing and accents are the sentence's own.

Overlap patterns are classified per sentence from its gold triples, like CasRel/CopyRE:
*Normal* (no entity shared between triples), *EPO* (two triples share the same entity pair, in
either order), *SEO* (two triples share one entity but not the pair). A sentence can be both EPO
and SEO. Counts are 1, 2, 3, 4 and >=5 triples per sentence.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from qa_system.models.extraction_data import (
    ExtractionCollator,
    ExtractionExample,
    SpanExtractionModel,
    span_text,
)
from qa_system.models.span_lexicon import EntityLexicon

log = logging.getLogger(__name__)

Triple = tuple[str, str, str]
PATTERNS = ("normal", "seo", "epo")
COUNT_BUCKETS = ("1", "2", "3", "4", ">=5")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def overlap_patterns(triples: Sequence[Triple]) -> set[str]:
    """The overlap classes of one sentence's gold triples: {"normal"} or a non-empty subset of {"seo", "epo"}."""

    unique = list(dict.fromkeys(triples))
    entities = {e for s, _, o in unique for e in (s, o)}
    if len(entities) == 2 * len(unique):
        return {"normal"}
    patterns = set()
    pairs = [frozenset((s, o)) for s, _, o in unique]
    if len(pairs) != len(set(pairs)):
        patterns.add("epo")
    distinct_pairs = set(pairs)
    pair_entities = {e for p in distinct_pairs for e in p}
    if len(pair_entities) != 2 * len(distinct_pairs) or any(len(p) == 1 for p in distinct_pairs):
        patterns.add("seo")
    return patterns or {"normal"}


def count_bucket(n: int) -> str:
    return str(n) if n < 5 else ">=5"


def prf(correct: int, predicted: int, gold: int) -> dict[str, float | int]:
    """Micro precision, recall, F1 (0 when undefined) with the counts behind them."""

    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "correct": correct, "predicted": predicted, "gold": gold}


def score(gold: Sequence[Sequence[Triple]], predicted: Sequence[Sequence[Triple]]) -> dict[str, Any]:
    """Overall, by-pattern and by-count P/R/F1 of predicted vs gold triple lists (one list per sentence)."""

    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predictions")
    totals = {"all": [0, 0, 0], **{p: [0, 0, 0] for p in PATTERNS}, **{c: [0, 0, 0] for c in COUNT_BUCKETS}}
    sentences = {p: 0 for p in PATTERNS} | {c: 0 for c in COUNT_BUCKETS}
    for g, p in zip(gold, predicted):
        gs, ps = set(g), set(p)
        counts = (len(gs & ps), len(ps), len(gs))
        keys = ["all"]
        if gs:
            keys += sorted(overlap_patterns(list(g))) + [count_bucket(len(gs))]
        for k in keys:
            totals[k] = [a + b for a, b in zip(totals[k], counts)]
            if k != "all":
                sentences[k] += 1
    result: dict[str, Any] = dict(prf(*totals["all"]))
    result["sentences"] = len(gold)
    result["by_pattern"] = {k: {**prf(*totals[k]), "sentences": sentences[k]} for k in PATTERNS}
    result["by_count"] = {k: {**prf(*totals[k]), "sentences": sentences[k]} for k in COUNT_BUCKETS}
    return result


Span = tuple[int, int]  # character offsets [a, b) in the sentence
SpanTriple = tuple[Span, str, Span]  # subject span, relation name, object span


def predict_spans(model: SpanExtractionModel, collator: ExtractionCollator, examples: Sequence[ExtractionExample],
                  relation_names: Sequence[str], *, batch_size: int = 32, device: str | torch.device = "cpu",
                  progress: Callable[[int, int], None] | None = None,
                  desc: str = "extract") -> list[tuple[str, list[tuple[SpanTriple, float]]]]:
    """Each example's text and its decoded triples as character spans with scores, without
    gradients, in eval mode (spans on special tokens or padding left out)."""

    module = model if isinstance(model, torch.nn.Module) else None
    was_training = bool(module is not None and module.training)
    if module is not None:
        module.eval()
    out: list[tuple[str, list[tuple[SpanTriple, float]]]] = []
    try:
        with torch.no_grad():
            starts = range(0, len(examples), batch_size)
            for k in tqdm(starts, desc=desc, unit="batch", leave=False, disable=progress is not None):
                chunk = [ExtractionExample(e.text) for e in examples[k:k + batch_size]]
                batch = collator(chunk).to(device)
                for text, offsets, triples in zip(batch.texts, batch.offsets, model.decode(batch)):
                    items = []
                    for t, triple_score in triples:
                        s, s_a, s_b = span_text(text, offsets, t.sub_start, t.sub_end)
                        o, o_a, o_b = span_text(text, offsets, t.obj_start, t.obj_end)
                        if s and o:
                            items.append((((s_a, s_b), relation_names[t.relation], (o_a, o_b)), float(triple_score)))
                    out.append((text, items))
                if progress is not None:
                    progress(min(k + batch_size, len(examples)), len(examples))
    finally:
        if module is not None and was_training:
            module.train()
    return out


def triple_strings(text: str, items: Sequence[tuple[SpanTriple, float]], *, with_scores: bool = False,
                   lexicon: EntityLexicon | None = None) -> list[Any]:
    """(subject, relation, object) strings of one sentence's decoded spans, each once (a repeated
    triple keeps its best score); ``lexicon`` snaps the spans first (``models.span_lexicon``)."""

    known = lexicon.occurrences(text) if lexicon is not None and items else None
    found: dict[Triple, float] = {}
    for ((s_a, s_b), relation, (o_a, o_b)), triple_score in items:
        if lexicon is not None:
            (s_a, s_b), (o_a, o_b) = lexicon.snap(text, s_a, s_b, known), lexicon.snap(text, o_a, o_b, known)
        triple = (text[s_a:s_b], relation, text[o_a:o_b])
        found[triple] = max(found.get(triple, 0.0), triple_score)
    return list(found.items()) if with_scores else list(found)


def predict(model: SpanExtractionModel, collator: ExtractionCollator, examples: Sequence[ExtractionExample],
            relation_names: Sequence[str], *, batch_size: int = 32, device: str | torch.device = "cpu",
            progress: Callable[[int, int], None] | None = None, desc: str = "extract",
            with_scores: bool = False, lexicon: EntityLexicon | None = None) -> list[list[Any]]:
    """Decoded (subject, relation, object) strings per example (:func:`predict_spans`, then
    :func:`triple_strings`). With ``with_scores`` each item is ``(triple, score)``."""

    decoded = predict_spans(model, collator, examples, relation_names, batch_size=batch_size, device=device,
                            progress=progress, desc=desc)
    return [triple_strings(text, items, with_scores=with_scores, lexicon=lexicon) for text, items in decoded]


def evaluate(model: SpanExtractionModel, collator: ExtractionCollator, examples: Sequence[ExtractionExample],
             relation_names: Sequence[str], *, batch_size: int = 32, device: str | torch.device = "cpu",
             desc: str = "evaluate", lexicon: EntityLexicon | None = None) -> dict[str, Any]:
    """Score ``model`` on ``examples`` (gold from ``examples``); adds throughput."""

    start = time.perf_counter()
    predicted = predict(model, collator, examples, relation_names, batch_size=batch_size, device=device, desc=desc,
                        lexicon=lexicon)
    seconds = time.perf_counter() - start
    result = score([e.triples for e in examples], predicted)
    result["seconds"] = seconds
    result["sentences_per_second"] = len(examples) / seconds if seconds > 0 else None
    return result


def threshold_sweep(gold: Sequence[Sequence[Triple]], scored: Sequence[Sequence[tuple[Triple, float]]],
                    thresholds: Sequence[float]) -> list[dict[str, float]]:
    """Micro P/R/F1 when triples scoring below each threshold are dropped (for tuning on dev)."""

    rows = []
    for th in thresholds:
        kept = [[t for t, s in preds if s >= th] for preds in scored]
        m = score(gold, kept)
        rows.append({"threshold": float(th), "precision": m["precision"], "recall": m["recall"], "f1": m["f1"]})
    return rows


def write_record(record: dict[str, Any], model: str, dataset: str, split: str, results_dir: Path | None = None) -> Path:
    """Write ``extractor-<model>-<dataset>-<split>.json`` (one JSON record) and return its path."""

    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"extractor-{model}-{dataset}-{split}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path
