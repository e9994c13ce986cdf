"""QA commands fitted on dev that write the reader's card: ``calibrate`` (the confidence and
the not-sure threshold) and ``tune constraints`` (the question-constraint weights). They rank the
dev questions exactly as ``evaluate qa`` does (``qa_commands._rank_questions``)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from qa_system.cli.qa_commands import (
    DATASETS,
    _common,
    _load_reader,
    _rank_questions,
    _reranker_options,
)
from qa_system.errors import InputError

log = logging.getLogger(__name__)


def _calibrate(args: argparse.Namespace, settings: Any) -> int:
    """Fit the confidence calibrator and the not-sure threshold on dev; write them into the card."""

    from evaluation.qa_data import load_qa
    from evaluation.qa_metrics import hits_at
    from qa_system.ask.calibration import (
        PlattCalibrator,
        choose_threshold,
        plot_reliability,
        reliability,
        selective_summary,
    )
    from qa_system.cli import emit_json

    reader, tokenizer, entities, relations, reader_dir, card = _load_reader(args)
    rankings, counts, correct, raw = [], [], [], []
    per_dataset: dict[str, tuple[int, int]] = {}
    for name in args.datasets:
        examples = load_qa(name, "dev", "filtered", args.data_dir)[: args.limit]
        features, ranked, used = _rank_questions(args, settings, examples, reader, tokenizer, entities, relations, f"{name} dev", card=card)
        start = len(rankings)
        for f, r in zip(features, ranked):
            rankings.append([p for _, p in r[:2]])
            counts.append(len(f.candidates))
            correct.append(bool(hits_at([c for c, _ in r], f.answers, 1)))
            raw.append(r[0][1] if r else 0.0)
        missing = len(examples) - len(features)  # no topic linked: a wrong answer with no confidence
        rankings += [[0.0]] * missing
        counts += [1] * missing
        correct += [False] * missing
        raw += [0.0] * missing
        per_dataset[name] = (start, len(rankings))
    if len(set(correct)) < 2:
        raise InputError(f"calibration needs right and wrong dev answers; got {sum(correct)} right of {len(correct)}")
    calibrator = PlattCalibrator.fit(rankings, correct, counts)
    confidences = [calibrator(r, n) for r, n in zip(rankings, counts)]
    threshold = choose_threshold(confidences, correct, min_precision=args.min_precision)
    at_threshold = selective_summary(confidences, correct, threshold)
    reached = at_threshold["selective_accuracy"] >= args.min_precision
    if not reached:
        log.warning("no threshold keeps %.0f%% of the answered dev questions right; the not-sure threshold falls back to %.2f",
                    100 * args.min_precision, threshold)
    curves = {"softmax p(top)": reliability(raw, correct), "calibrated": reliability(confidences, correct)}
    plot = plot_reliability(curves, args.plot, threshold=threshold)
    summary = {
        "dev_questions": len(correct),
        "linking": args.linking,
        **used,
        "ece_raw": curves["softmax p(top)"].ece,
        "ece_calibrated": curves["calibrated"].ece,
        "min_precision": args.min_precision,
        "min_precision_reached": reached,
        **at_threshold,
        "per_dataset": {
            name: selective_summary(confidences[a:b], correct[a:b], threshold) | {"hits@1": sum(correct[a:b]) / max(1, b - a)}
            for name, (a, b) in per_dataset.items()
        },
        "bins": curves["calibrated"].bins,
        "plot": str(plot),
    }
    card.update({"calibration": calibrator.to_dict(), "threshold": threshold, "calibration_dev": {k: v for k, v in summary.items() if k != "bins"}})
    (reader_dir / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    emit_json(summary)
    return 0


def _tune_constraints(args: argparse.Namespace, settings: Any) -> int:
    """Choose the question-constraint weights on dev (``training.constraints_tuning``): both dev
    sets, with the gold topic and with predicted linking, ranked as the app ranks without
    constraints; writes them into the reader card (``constraints``, ``constraints_dev``). Run
    ``qa-system calibrate`` after it: the re-ordered rankings change the probabilities."""

    from evaluation.qa_data import load_qa
    from graph.open import open_store
    from graph.store import ANSWERABLE_STATUSES
    from qa_system.ask.constraints import CARD_KEY
    from qa_system.cli import emit_json
    from qa_system.training.constraints_tuning import HEAD, DevQuestion, choose_weights

    reader, tokenizer, entities, relations, reader_dir, card = _load_reader(args)
    args.no_constraints, args.read_topics = True, 1
    groups: dict[str, list[DevQuestion]] = {}
    for linking in ("oracle", "predicted"):
        args.linking = linking
        for name in args.datasets:
            examples = load_qa(name, "dev", "filtered", args.data_dir)[: args.limit]
            links: dict[str, list[Any]] = {}
            features, ranked, _ = _rank_questions(args, settings, examples, reader, tokenizer, entities, relations,
                                                  f"{name} dev ({linking})", card=card, links_out=links)
            store = open_store(settings)
            try:
                questions = []
                for f, r in zip(features, ranked):
                    linked = links.get(f.example_id, [])
                    others = [e.entity.id for e in linked if e.entity.id != f.topic]
                    facts = store.facts_linking(others, [c for c, _ in r[:HEAD]], statuses=ANSWERABLE_STATUSES)
                    questions.append(DevQuestion(f.answers, r[:10], f.topic, linked, facts))
            finally:
                store.close()
            groups[f"{name}/{linking}"] = questions
    weights, report = choose_weights(groups, split_half_repeats=args.split_half_check)
    report["chosen"] = weights.to_dict() if weights.active else None
    if not args.dry_run:
        card[CARD_KEY] = weights.to_dict() if weights.active else None
        card["constraints_dev"] = report
        (reader_dir / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    emit_json(report)
    return 0


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = commands.add_parser("calibrate", help="fit the reader's confidence and not-sure threshold on dev (writes the card)")
    p.add_argument("--checkpoint", type=Path, help="reader checkpoint folder (default: the shipped one)")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS), help="QA benchmarks whose dev questions are used")
    p.add_argument("--linking", choices=("oracle", "predicted"), default="predicted", help="as the app links (default)")
    p.add_argument("--min-precision", type=float, default=0.8, help="answered dev questions must be right this often")
    p.add_argument("--plot", type=Path, default=Path("evaluation/results/reader-reliability.png"), help="where the reliability plot goes")
    p.add_argument("--no-text-match", action="store_true", help="calibrate the reader's scores alone (no question/answer text match)")
    _reranker_options(p)
    _common(p)
    p.set_defaults(func=_calibrate)


def register_tune(tune: Any) -> None:
    p = tune.add_parser("constraints", help="weights of the re-ordering by the question's other named entities, on QA dev "
                        "(writes the reader card; run `qa-system calibrate` after)")
    p.add_argument("--checkpoint", type=Path, help="reader checkpoint folder (default: the shipped one)")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS), help="QA benchmarks whose dev questions are used")
    p.add_argument("--split-half-check", type=int, default=20, metavar="REPEATS",
                   help="choose on a random half of dev, count on the other half, this many times (0 = off)")
    p.add_argument("--dry-run", action="store_true", help="report only; leave the card as it is")
    p.add_argument("--no-text-match", action="store_true", help="rank with the reader's scores alone (no question/answer text match)")
    _reranker_options(p)
    _common(p)
    p.set_defaults(func=_tune_constraints)
