"""``qa-system train extractor`` and ``qa-system evaluate extractor``: QIDN and the cascade on WebNLG."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from qa_system.errors import DatasetNotFoundError, InputError

log = logging.getLogger(__name__)

MODELS = ("qidn", "cascade")
DATASETS = ("webnlg", "webnlg-star")


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = train.add_parser("extractor", help="train a joint entity-relation extractor on WebNLG")
    p.add_argument("--model", choices=MODELS, default="qidn", help="extractor architecture")
    p.add_argument("--dataset", choices=DATASETS, default="webnlg-star", help="WebNLG variant to train on")
    p.add_argument("--epochs", type=int, help="epochs (default 20); the LR schedule spans them")
    p.add_argument("--batch-size", type=int, help="sentences per step (default 16)")
    p.add_argument("--lr", type=float, help="adapter learning rate (default 5e-4; new parts x2)")
    p.add_argument("--out", type=Path, help="run folder (default <workspace>/runs/extractor-<model>-<dataset>)")
    p.add_argument("--data-dir", type=Path, help="folder holding webnlg-casrel/ (default $QA_DATA_DIR)")
    p.add_argument("--no-contrastive", action="store_true", help="QIDN without its two InfoNCE losses (ablation)")
    p.add_argument("--model-config", metavar="JSON", help="model config overrides: a JSON object or a .json file")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last.pt (a run of the same config, more epochs aside); "
                   "without it a folder holding a training is refused")
    p.add_argument("--init", type=Path, metavar="DIR",
                   help="start from this checkpoint's weights (its card's model config, then --model-config on top; "
                        "new inputs such as case_dim start at zero)")
    p.add_argument("--limit", type=int, help="train on the first N sentences only (smoke runs)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run_train)

    e = evaluate.add_parser("extractor", help="P/R/F1 of an extractor (overall, by overlap pattern, by triple count)")
    e.add_argument("--model", choices=MODELS, default="qidn", help="extractor architecture")
    e.add_argument("--dataset", choices=DATASETS, default="webnlg-star", help="WebNLG variant to evaluate on")
    e.add_argument("--split", choices=("dev", "test"), default="test", help="split to evaluate")
    e.add_argument("--data-dir", type=Path, help="folder holding webnlg-casrel/ (default $QA_DATA_DIR)")
    e.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped one of --model trained on --dataset)")
    e.add_argument("--limit", type=int, help="evaluate the first N sentences only")
    e.add_argument("--batch-size", type=int, default=32, help="sentences per batch")
    e.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    e.add_argument("--results-dir", type=Path, help="where the JSON record goes (default evaluation/results)")
    e.add_argument("--tune-threshold", action="store_true",
                   help="(dev only) pick the decoding score threshold with the best F1 and use it (and export it)")
    e.add_argument("--lexicon", choices=("checkpoint", "none", "train"), default="checkpoint",
                   help="entity-boundary snapping (models.span_lexicon): the checkpoint's entities.json if it ships one "
                        "(default), none, or one built from the dataset's training split (its min_overlap tuned with "
                        "--tune-threshold on dev, else 0.3)")
    e.add_argument("--export", type=Path, metavar="DIR",
                   help="also write the checkpoint (fp16) to DIR with these metrics added to its card")
    e.add_argument("--note", help="free text stored in the exported card (e.g. hardware, epochs budget)")
    e.add_argument("--json", action="store_true", help="print the record as one JSON object")
    e.set_defaults(func=run_evaluate)


def _data_dir(args: argparse.Namespace, settings: Any) -> Path:
    data_dir = args.data_dir or getattr(settings, "data_dir", None)
    if data_dir is None:
        raise DatasetNotFoundError("no data folder: pass --data-dir or set QA_DATA_DIR (it must hold webnlg-casrel/)")
    if not Path(data_dir).is_dir():
        raise DatasetNotFoundError(f"data folder not found: {data_dir}")
    return Path(data_dir)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise InputError(f"--{name} must be at least 1. Currently, it is {value}")


def _command(args: argparse.Namespace, words: str) -> str:
    """The command line that reproduces this run, rebuilt from the parsed arguments."""

    parts = ["qa-system", *words.split()]
    for key, value in sorted(vars(args).items()):
        if key in ("func", "command", "what", "verbose", "workspace", "json") or value in (None, False):
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def run_train(args: argparse.Namespace, settings: Any) -> int:
    import torch

    from qa_system.cli import emit_json
    from qa_system.training.extractor import ExtractorTrainConfig, fit

    for name in ("epochs", "batch_size", "limit"):
        _positive(name.replace("_", "-"), getattr(args, name))
    if args.no_contrastive and args.model != "qidn":
        raise InputError("--no-contrastive applies to --model qidn only")
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = _data_dir(args, settings)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
                                   ("train_limit", args.limit)) if v is not None}
    cfg = ExtractorTrainConfig(**overrides)
    model_config = _model_config(args)
    out = args.out or settings.workspace / "runs" / f"extractor-{args.model}-{args.dataset}"
    summary = fit(out, model_name=args.model, dataset=args.dataset, data_dir=data_dir, model_config=model_config,
                  train_config=cfg, resume=args.resume, command=_command(args, "train extractor"), init=args.init)
    summary.pop("history", None) if not args.json else None
    if args.json:
        emit_json(summary)
    else:
        sys.stderr.write(f"best dev F1 {summary['best_dev_f1']:.4f} at epoch {summary['best_epoch']}; "
                         f"checkpoint {summary['best']}\n")
    return 0


def _model_config(args: argparse.Namespace) -> Any:
    """The model family's config dataclass from ``--model-config`` and ``--no-contrastive`` (None = defaults)."""

    import json

    overrides: dict[str, Any] = {}
    if getattr(args, "init", None) is not None:  # the checkpoint's own config first (its relation names included)
        card_path = Path(args.init) / "card.json"
        try:
            overrides = dict(json.loads(card_path.read_text(encoding="utf-8"))["config"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise InputError(f"--init {args.init}: cannot read the checkpoint's card {card_path} ({e})") from e
    if args.model_config:
        raw = args.model_config
        try:
            source = Path(raw).read_text(encoding="utf-8") if raw.strip().endswith(".json") else raw
            extra = json.loads(source)
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"--model-config must be a JSON object or a readable .json file ({e})") from e
        if not isinstance(extra, dict):
            raise InputError("--model-config must be a JSON object")
        overrides |= extra
    if args.no_contrastive:
        overrides |= {"instance_contrast": False, "relation_contrast": False}
    if not overrides:
        return None
    if args.model == "qidn":
        from qa_system.models.qidn import QIDNConfig as config_class
    else:
        from qa_system.models.cascade import CascadeConfig as config_class
    try:
        return config_class.from_dict(overrides)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad --model-config for {args.model}: {e}") from e


def run_evaluate(args: argparse.Namespace, settings: Any) -> int:
    import torch

    from evaluation.extraction import evaluate, write_record
    from qa_system.cli import emit_json
    from qa_system.models.extraction_data import ExtractionCollator, load_webnlg
    from qa_system.models.span_extractor import minilm_tokenizer
    from qa_system.training.extractor import load_model

    _positive("limit", args.limit)
    _positive("batch-size", args.batch_size)
    if args.tune_threshold and args.split != "dev":
        raise InputError("--tune-threshold tunes on the dev split only (tuning on test would inflate the test score)")
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = _data_dir(args, settings)
    examples, relations = load_webnlg(data_dir, args.dataset, args.split)
    examples = examples[:args.limit] if args.limit else examples
    folder = args.checkpoint or _shipped(args.model, args.dataset)
    model, card = load_model(args.model, folder)
    if list(model.relation_names) != list(relations):
        raise InputError(f"checkpoint {folder} was trained on {card.get('dataset', '?')!r} relations "
                         f"({len(model.relation_names)}), not those of {args.dataset} ({len(relations)})")
    collator = ExtractionCollator(minilm_tokenizer(), {r: i for i, r in enumerate(relations)},
                                  int(card.get("max_length", 128)))
    lexicon = _lexicon(args, folder, data_dir)
    if args.tune_threshold:
        metrics, lexicon = _tune_threshold(args, model, collator, examples, relations, lexicon)
    else:
        metrics = evaluate(model, collator, examples, relations, batch_size=args.batch_size,
                           desc=f"{args.model} {args.dataset} {args.split}", lexicon=lexicon)
    metrics["lexicon"] = None if lexicon is None else {"source": lexicon.source, "entities": len(lexicon.counts),
                                                       "min_overlap": lexicon.min_overlap}
    if hasattr(model.config, "score_threshold"):
        metrics["score_threshold"] = model.config.score_threshold
    record = {"task": "extraction", "model": args.model, "dataset": args.dataset, "split": args.split,
              "sentences": len(examples), "limit": args.limit, "checkpoint": str(folder),
              "checkpoint_epoch": card.get("epoch"), "trained_on": card.get("dataset"),
              "command": _command(args, "evaluate extractor"), "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "threads": torch.get_num_threads(), **metrics}
    path = write_record(record, args.model, args.dataset, args.split, args.results_dir)
    record["record"] = str(path)
    if args.export:
        record["exported"] = str(_export(args, model, card, record))
        if lexicon is not None:
            lexicon.save(Path(args.export))
    if args.json:
        emit_json(record)
    else:
        sys.stderr.write(f"{args.model} {args.dataset} {args.split}: P {metrics['precision']:.4f} "
                         f"R {metrics['recall']:.4f} F1 {metrics['f1']:.4f} ({len(examples)} sentences) -> {path}\n")
    return 0


def _lexicon(args: argparse.Namespace, folder: Path, data_dir: Path) -> Any:
    """The entity lexicon ``--lexicon`` asks for (None = no snapping)."""

    from qa_system.models.extraction_data import load_webnlg
    from qa_system.models.span_lexicon import EntityLexicon, load_lexicon

    if args.lexicon == "none":
        return None
    if args.lexicon == "checkpoint":
        return load_lexicon(folder)
    train, _ = load_webnlg(data_dir, args.dataset, "train")
    return EntityLexicon.from_triples([t for e in train for t in e.triples], source=f"{args.dataset} train gold entities")


def _tune_threshold(args: argparse.Namespace, model: Any, collator: Any, examples: list, relations: list[str],
                    lexicon: Any = None) -> tuple[dict, Any]:
    """Decode once with every score kept, sweep thresholds (and, with a lexicon, its ``min_overlap``),
    keep the best-F1 setting in ``model.config`` (and the lexicon)."""

    import dataclasses
    import time

    from evaluation.extraction import predict_spans, score, threshold_sweep, triple_strings

    if not hasattr(model.config, "score_threshold"):
        raise InputError(f"--tune-threshold is not supported for --model {args.model}")
    model.config.score_threshold = 0.0
    began = time.perf_counter()
    decoded = predict_spans(model, collator, examples, relations, batch_size=args.batch_size,
                            desc=f"{args.model} {args.dataset} {args.split}")  # once: the lexicon only changes strings
    seconds = time.perf_counter() - began
    gold = [e.triples for e in examples]
    overlaps = [None] if lexicon is None else [0.2, 0.3, 0.4, 0.5, 0.7, 1.0]
    best, best_scored, sweeps = None, None, {}
    for overlap in overlaps:
        candidate = None if overlap is None else dataclasses.replace(lexicon, min_overlap=overlap)
        scored = [triple_strings(text, items, with_scores=True, lexicon=candidate) for text, items in decoded]
        sweep = threshold_sweep(gold, scored, [round(0.05 * i, 2) for i in range(19)])
        sweeps[str(overlap)] = sweep
        top = max(sweep, key=lambda row: (row["f1"], -row["threshold"]))
        if best is None or top["f1"] > best[0]["f1"]:
            best, best_scored = (top, candidate), scored
    (row, lexicon) = best
    model.config.score_threshold = row["threshold"]
    metrics = score(gold, [[t for t, s in preds if s >= row["threshold"]] for preds in best_scored])
    extra = {"threshold_sweep": sweeps["None"]} if lexicon is None else {"threshold_sweep_by_min_overlap": sweeps}
    return {**metrics, "seconds": seconds, "sentences_per_second": len(examples) / seconds if seconds > 0 else None,
            **extra}, lexicon


def _export(args: argparse.Namespace, model: Any, card: dict[str, Any], record: dict[str, Any]) -> Path:
    """Ship ``model`` in fp16 with its training card plus this evaluation's metrics (a card is never typed)."""

    from qa_system.training.extractor import save_model

    keep = {k: v for k, v in card.items() if k not in ("model", "config", "weights", "weights_dtype")}
    metrics = {k: v for k, v in record.items() if k in ("precision", "recall", "f1", "correct", "predicted", "gold",
                                                          "by_pattern", "by_count", "sentences",
                                                          "score_threshold")}
    keep[args.split] = metrics
    keep.setdefault("evaluations", {})[f"{args.dataset}/{args.split}"] = {
        "command": record["command"], "time": record["time"], "sentences_per_second": record["sentences_per_second"],
        "threads": record["threads"]}
    keep["exported"] = record["time"]
    if args.note:
        keep["note"] = args.note
    return save_model(args.model, args.export, model, keep, fp16=True)


def _shipped(model: str, dataset: str | None = None) -> Path:
    """The shipped checkpoint of ``model``; with ``dataset``, the shipped one trained on it when
    there is one (``webnlg-star`` has its own QIDN: ingest's default is trained on exact entities)."""

    if model == "qidn":
        from qa_system.models.qidn import SHIPPED
    else:
        from qa_system.models.cascade import SHIPPED
    if dataset is None or _trained_on(SHIPPED) == dataset:
        return SHIPPED
    for folder in sorted(SHIPPED.parent.glob(f"extractor-{model}-*")):
        if _trained_on(folder) == dataset:
            return folder
    return SHIPPED


def _trained_on(folder: Path) -> str | None:
    """The dataset a checkpoint's card names (None when there is no readable card)."""

    import json

    try:
        return json.loads((folder / "card.json").read_text(encoding="utf-8")).get("dataset")
    except (OSError, ValueError, AttributeError):
        return None
