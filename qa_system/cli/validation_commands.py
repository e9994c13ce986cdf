"""Validation commands: ``evaluate validation`` (SATORI object prediction, P/R/F1 before and after
entailment) and ``tune validation`` (per-relation thresholds for F1 on the dev split; with
``--calibrate`` also the calibrated decision, see ``qa_system.fallback.validation``)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qa_system.errors import InputError

log = logging.getLogger(__name__)

LLM_CLOZE_TEMPLATE = "validation_cloze.txt"


def _scorer(args: argparse.Namespace) -> Any:
    from qa_system.models.entailment import load_entailment_model

    return load_entailment_model(args.checkpoint)


def _llm_source(settings: Any, limit: int | None) -> Any:
    """The LLM candidate source: one short completion of the relation's prompt template per query."""

    from prompts import load_template
    from qa_system.errors import LLMError
    from qa_system.fallback.llm import LLMClient

    if limit is None or limit > 500:
        raise InputError("--llm costs one LLM call per query (1-2 s each on CPU): pass --limit N (at most 500)")
    client, template = LLMClient(settings), load_template(LLM_CLOZE_TEMPLATE, {"prompt"})
    from qa_system.fallback.validation import load_templates

    book = load_templates()

    def complete(subject: str, relation: str) -> list[str]:
        prompt = book.get(relation).prompt_text(subject)
        text = template.format(prompt=prompt)
        try:
            reply = client.complete([("user", text)], max_tokens=24)
        except LLMError as e:
            log.warning("LLM candidate source failed (%s); no LLM candidate for %s / %s", e, subject, relation)
            return []
        return [answer] if (answer := completion(reply.text, prompt)) else []

    return complete


def completion(reply: str, prompt: str, max_words: int = 6) -> str:
    """The object in a small LM's completion: the prompt it often repeats is cut off, then the first
    clause, at most ``max_words`` words (``"The capital of Italy is Rome."`` → ``"Rome"``)."""

    text = reply.strip().splitlines()[0].strip() if reply.strip() else ""
    if text.lower().startswith(prompt.lower()):
        text = text[len(prompt) :]
    text = re.split(r"[,;:(]| who | which | that ", text, maxsplit=1)[0]
    return " ".join(text.strip(" .\"'").split()[:max_words])


def _run(args: argparse.Namespace, settings: Any, split: str) -> tuple[Any, Any, Any]:
    from evaluation.validation import (
        index_sentences,
        load_candidates,
        load_webnlg_split,
        run_split,
        save_candidates,
        webnlg_file,
    )
    from qa_system.fallback.validation import TripleValidator, load_templates, load_thresholds

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1; got {args.limit}")
    scorer = _scorer(args)
    thresholds = load_thresholds(args.thresholds)
    style = args.hypotheses or (thresholds.hypotheses if args.func is _evaluate else "natural")
    cache = args.candidates_cache
    if cache is not None and cache.is_file():
        log.info("reusing scored candidates from %s", cache)
        return load_candidates(cache), scorer, thresholds
    records = load_webnlg_split(webnlg_file(args.data_dir, split))
    with tempfile.TemporaryDirectory(prefix="qa-validation-") as workspace:
        retriever = index_sentences(records, Path(workspace), split)
        validator = TripleValidator(scorer, retriever, thresholds=thresholds, k=args.k, batch_size=args.batch_size,
                                    templates=load_templates(hypotheses=style))  # fmt: skip
        llm = _llm_source(settings, args.limit) if args.llm else None
        run = run_split(validator, records, limit=args.limit, graph_cap=args.graph_cap, llm_objects=llm)
    if cache is not None:
        save_candidates(run, cache)
    return run, scorer, thresholds


def _record(args: argparse.Namespace, run: Any, scorer: Any, split: str, started: float, **extra: Any) -> dict[str, Any]:
    return {
        "task": "validation",
        "dataset": args.dataset,
        "split": split,
        "setting": f"k={args.k} premises, graph cap {args.graph_cap}, sources ner+graph" + ("+llm" if args.llm else "")
        + f", {run.hypotheses or 'natural'} hypotheses",
        "model": scorer.name,
        "version": scorer.version,
        "limit": args.limit,
        "seconds": {**run.seconds, "total": round(time.time() - started, 1)},
        "command": "qa-system " + " ".join(sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # with a cache the scores come from an earlier run of the same command (its seconds are above)
        "candidates_cache": str(args.candidates_cache) if args.candidates_cache else None,
        **extra,
    }


def _evaluate(args: argparse.Namespace, settings: Any) -> int:
    from evaluation.validation import RESULTS_DIR, metrics
    from qa_system.cli import emit_json

    started = time.time()
    run, scorer, thresholds = _run(args, settings, args.split)
    calibration = thresholds.calibration
    record = _record(args, run, scorer, args.split, started, **metrics(run, thresholds.for_relation, calibration=calibration))
    record["thresholds"] = {"default": thresholds.default, "per_relation": len(thresholds.relations), "tuned_on": thresholds.tuned_on,
                            "tuned_for": f"{thresholds.model}@{thresholds.version}" if thresholds.model else ""}  # fmt: skip
    if calibration is not None:  # what decided, and the same file's thresholds alone for comparison
        record["calibration"] = calibration.model_dump()
        record["thresholds_only"] = _headline(metrics(run, thresholds.for_relation))
    if args.split == "dev" and thresholds.tuned_on.startswith("webnlg dev"):
        record["note"] = "thresholds were tuned on this split: not a held-out score"
    out = args.out or (RESULTS_DIR / f"validation-{args.dataset}-{args.split}{'-llm' if args.llm else ''}.json")
    if args.limit is None or args.out:
        _write(out, record)
    if args.json:
        emit_json(record)
    else:
        sys.stdout.write(_summary(record))
    return 0


def _tune(args: argparse.Namespace, settings: Any) -> int:
    from evaluation.validation import fit_calibration, metrics, shape_prior_from_split, split_half_check, tune
    from qa_system.cli import emit_json
    from qa_system.fallback.validation import Thresholds, thresholds_path, write_thresholds

    started = time.time()
    run, scorer, _ = _run(args, settings, "dev")
    default, per_relation = tune(run, min_support=args.min_support, min_recall_kept=args.min_recall_kept)
    calibration, held_out = None, None
    if args.split_half_check and not args.calibrate:
        raise InputError("--split-half-check checks the calibrated decision: add --calibrate")
    if args.calibrate:
        shape_prior = shape_prior_from_split(args.data_dir, "train") if args.shape_prior else None
        calibration = fit_calibration(run, min_recall_kept=args.min_recall_kept, recall_confidence=args.recall_confidence, shape_prior=shape_prior)
        if args.split_half_check:
            held_out = split_half_check(run, min_recall_kept=args.min_recall_kept, recall_confidence=args.recall_confidence,
                                        floor=args.recall_floor, repeats=args.split_half_check, shape_prior=shape_prior)  # fmt: skip
    tuned = Thresholds(default=default, relations=per_relation, model=scorer.name, version=scorer.version, hypotheses=args.hypotheses or "natural",
                       tuned_on=f"webnlg dev ({len(run.queries)} queries, {len(run.candidates)} candidates; "
                                f"best F1 keeping >= {args.min_recall_kept:.0%} of the candidates' recall)",
                       command="qa-system " + " ".join(sys.argv[1:]), calibration=calibration)  # fmt: skip
    tuned.metrics = {"dev": metrics(run, tuned.for_relation, calibration=calibration), "dev_global_only": metrics(run, lambda _r: default)}
    if calibration is not None:
        tuned.metrics["dev_thresholds_only"] = metrics(run, tuned.for_relation)
    path = write_thresholds(tuned, args.out or thresholds_path())
    record = _record(args, run, scorer, "dev", started, thresholds_file=str(path), default=default, per_relation=per_relation,
                     dev=tuned.metrics["dev"])  # fmt: skip
    if calibration is not None:
        record["calibration"] = calibration.model_dump()
        record["dev_thresholds_only"] = _headline(tuned.metrics["dev_thresholds_only"])
    if held_out is not None:
        record["split_half_check"] = held_out
    if args.json:
        emit_json(record)
    else:
        sys.stdout.write(_summary(record["dev"] | {"split": "dev (tuned)"}))
    return 0


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("precision_before", "precision_after", "recall_before", "recall_after", "f1_after", "recall_kept", "precision_gain_points")
    return {k: m[k] for k in keys if k in m}


def _summary(record: dict[str, Any]) -> str:
    lines = [f"validation on {record.get('dataset', 'webnlg')} {record.get('split')}: {record['queries']} queries, {record['candidates']} candidates"]
    for prefix in ("", "ner_", "graph_", "llm_"):
        if f"{prefix}precision_before" in record:
            lines.append(
                f"  {prefix.rstrip('_') or 'all':5s} before P {record[f'{prefix}precision_before']:.3f} R {record[f'{prefix}recall_before']:.3f} "
                f"F1 {record[f'{prefix}f1_before']:.3f}  after P {record[f'{prefix}precision_after']:.3f} "
                f"R {record[f'{prefix}recall_after']:.3f} F1 {record[f'{prefix}f1_after']:.3f}"
            )
    return "\n".join(lines) + "\n"


def _write(path: Path, record: dict[str, Any]) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=["webnlg"], default="webnlg", help="benchmark")
    p.add_argument("--limit", type=int, help="only the first N (subject, relation) queries")
    p.add_argument("--data-dir", type=Path, help="data folder holding webnlg-casrel/ (default $QA_DATA_DIR or ../shared/data)")
    p.add_argument("--checkpoint", type=Path, help="entailment checkpoint folder (default: the shipped one)")
    p.add_argument("--thresholds", type=Path, help="thresholds file (default: prompts/validation_thresholds.json)")
    p.add_argument("--k", type=int, default=5, help="premises retrieved per query")
    p.add_argument("--graph-cap", type=int, default=100, help="most frequent objects of the relation offered by the graph source")
    p.add_argument("--batch-size", type=int, default=64, help="pairs per entailment batch")
    p.add_argument("--hypotheses", choices=["natural", "plain"],
                   help="hypothesis style: the templates' sentences, or 'subject relation-words object' (default: as tuned)")
    p.add_argument("--llm", action="store_true", help="add the LLM source (one call per query; needs --limit)")
    p.add_argument("--candidates-cache", type=Path, help="save scored candidates here, or reuse them when the file exists")
    p.add_argument("--out", type=Path, help="where to write the record / thresholds")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def register(commands: argparse._SubParsersAction, train: Any, evaluate: Any) -> None:
    p = evaluate.add_parser("validation", help="SATORI object prediction on WebNLG: P/R/F1 before and after entailment")
    p.add_argument("--split", choices=["dev", "test"], default="test", help="split to evaluate")
    _common(p)
    p.set_defaults(func=_evaluate)


def register_tune(tune: Any) -> None:
    p = tune.add_parser("validation", help="per-relation entailment thresholds for F1 on WebNLG dev")
    p.add_argument("--min-support", type=int, default=8, help="gold objects a relation needs on dev for its own threshold")
    p.add_argument("--min-recall-kept", type=float, default=0.9,
                   help="only thresholds keeping this share of the unvalidated recall (per relation and overall); 0 = best F1 alone")
    p.add_argument("--calibrate", action="store_true",
                   help="also fit the calibrated decision (a logistic regression over each candidate's features within its query, "
                        "threshold keeping --min-recall-kept of the dev recall); the validator then decides by it")
    p.add_argument("--recall-confidence", type=float, default=None,
                   help="with --calibrate: keep --min-recall-kept in this share of bootstrap resamples of the dev queries "
                        "(e.g. 0.9), not just on dev itself, so the recall holds on unseen data")
    p.add_argument("--split-half-check", type=int, default=0, metavar="REPEATS",
                   help="with --calibrate: fit on random halves of dev, measure the other half, REPEATS times; reports how often "
                        "the recall kept reaches --recall-floor (is --min-recall-kept high enough for unseen data?)")
    p.add_argument("--recall-floor", type=float, default=0.9, help="the recall share the split-half check asks for (the issue's 90%%)")
    p.add_argument("--shape-prior", action=argparse.BooleanOptionalAction, default=True,
                   help="with --calibrate: add the object-shape feature (number/date/proper/lower per relation, counted on WebNLG train)")
    _common(p)
    p.set_defaults(func=_tune)
