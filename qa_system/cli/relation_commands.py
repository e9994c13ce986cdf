"""``qa-system train relations`` and ``qa-system evaluate relations``: the relation scorer that reads
relation names (:mod:`qa_system.models.relation_scorer`)."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(commands: Any, train: Any, evaluate: Any) -> None:
    t = train.add_parser("relations", help="train the relation scorer (question vs relation words + direction)")
    t.add_argument("--holdout-third", action="store_true",
                   help="hold out a deterministic third of FB15k-237's relations (zero-shot benchmark)")
    t.add_argument("--epochs", type=int, help="epochs (default 10 on a frozen encoder, 3 with LoRA)")
    t.add_argument("--batch-size", type=int, default=64, help="questions per optimizer step")
    t.add_argument("--lr", type=float, help="learning rate (default 1e-2 on a frozen encoder, 1e-3 with LoRA)")
    t.add_argument("--template", default="arrow", help="relation text template: arrow, of, brackets, words")
    t.add_argument("--no-mask", action="store_true", help="keep the topic mention in the question")
    t.add_argument("--no-lexical", action="store_true", help="no word-overlap feature")
    t.add_argument("--lora-r", type=int, default=0,
                   help="LoRA rank on the encoder (0 = frozen MiniLM: its vectors are computed once, fast on CPU)")
    t.add_argument("--projection-rank", type=int, default=32, help="rank of the residual projection (0 = none)")
    t.add_argument("--projection-sides", default="shared", choices=("shared", "both", "question"),
                   help="one map for question and relation vectors, one per side, or the question side only")
    t.add_argument("--projection-dropout", type=float, default=0.5, help="dropout inside the projection while training")
    t.add_argument("--direction-rank", type=int, default=16,
                   help="rank of the learned direction term (question x relation words, signed by direction; 0 = none)")
    t.add_argument("--vector-cache", type=Path, help="file keeping the frozen encoder's vectors between runs")
    t.add_argument("--max-steps", type=int, help="stop after N optimizer steps (smoke runs)")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    t.add_argument("--out", type=Path, help="training folder (default <workspace>/training/relation-scorer[-holdout])")
    t.add_argument("--export", type=Path, metavar="DIR", help="copy the best checkpoint (by dev) to DIR")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")
    t.set_defaults(func=run_train)

    e = evaluate.add_parser("relations", help="relation Hits@1 of the relation scorer (all / held-out third)")
    e.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped one)")
    e.add_argument("--zero-shot", action="store_true", help="plain MiniLM cosine baseline")
    e.add_argument("--split", default="test", choices=("dev", "test"), help="which split to score")
    e.add_argument("--output", type=Path, help="also write the JSON record to this file")
    e.add_argument("--json", action="store_true", help="print the JSON record")
    e.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.models.relation_scorer import RelationScorerConfig
    from qa_system.training.relation_scorer import train_relation_scorer

    default = "relation-scorer-holdout" if args.holdout_third else "relation-scorer"
    out = Path(args.out) if args.out else settings.workspace / "training" / default
    config = RelationScorerConfig(template=args.template, mask=not args.no_mask, lexical=not args.no_lexical,
                                  lora_r=args.lora_r, projection_rank=args.projection_rank,
                                  projection_sides=args.projection_sides, projection_dropout=args.projection_dropout,
                                  direction_rank=args.direction_rank)
    epochs = args.epochs or (3 if args.lora_r else 10)
    lr = args.lr or (1e-3 if args.lora_r else 1e-2)
    command = "qa-system " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = train_relation_scorer(out, holdout_third=args.holdout_third, epochs=epochs, batch_size=args.batch_size,
                                    lr=lr, config=config, vector_cache=args.vector_cache, max_steps=args.max_steps, threads=args.threads,
                                    command=command)
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        for name in ("adapters.safetensors", "card.json"):
            shutil.copy2(out / "best" / name, export / name)
        summary["exported"] = str(export)
    if args.json:
        from qa_system.cli import emit_json

        emit_json(summary)
    else:
        log.info("best epoch %s, dev Hits@1 %s; checkpoint %s", summary["best_epoch"],
                 (summary["dev"] or {}).get("hits@1"), summary["best"])
    return 0


def run_evaluate(args: argparse.Namespace, settings: Any) -> int:
    from evaluation.relation_scorer_eval import run

    record = run(args.checkpoint, zero_shot=args.zero_shot, split=args.split)
    record["command"] = "qa-system " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        from qa_system.cli import emit_json

        emit_json(record)
    else:
        sys.stderr.write(f"relation Hits@1 {record['all']['hits@1']} ({record['all']['questions']} questions); "
                         f"held-out third {record['held_out_third']['hits@1']}\n")
    return 0
