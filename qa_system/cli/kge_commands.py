"""``qa-system train kge`` and ``qa-system evaluate kge``: HittER link prediction."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATASET_HELP = "fb15k-237 (or demo), wn18rr, workspace (facts of the graph store), or a dataset folder"


def shipped_checkpoint() -> Path:
    from importlib import resources

    return Path(str(resources.files("qa_system") / "checkpoints" / "hitter-fb15k237-small"))


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = train.add_parser("kge", help="train HittER on a knowledge graph (link prediction)")
    p.add_argument("--dataset", required=True, help=DATASET_HELP)
    p.add_argument("--config", default="small", help="named config: small (2 CPU cores) or paper")
    p.add_argument("--run-dir", type=Path, help="output folder (default <workspace>/runs/kge-<dataset>-<config>)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default from the config)")
    p.add_argument("--stop-after-epoch", type=int, metavar="N",
                   help="end this call after epoch N (checkpointed; the LR schedule still spans --epochs)")
    p.add_argument("--resume", action="store_true",
                   help="resume from the run dir's checkpoint (also automatic; refused when it was made with another config)")
    p.add_argument("--fresh", action="store_true", help="forget the run dir's training (checkpoint, trace) and start over")
    p.add_argument("--no-context", action="store_true", help="context-free baseline (no neighbours)")
    p.add_argument("--data-dir", type=Path, help="folder holding wn18rr etc. (default $QA_DATA_DIR)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--export", type=Path, metavar="DIR",
                   help="after training, write the best model as fp16 + card (dev/test metrics) to DIR")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_train)

    e = evaluate.add_parser("kge", help="filtered link-prediction evaluation (MRR, Hits@k)")
    e.add_argument("--dataset", default="fb15k-237", help=DATASET_HELP)
    e.add_argument("--split", default="test", choices=("test", "dev"), help="split to evaluate")
    e.add_argument("--limit", type=int, help="evaluate only the first N facts of the split")
    e.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped FB15k-237 one)")
    e.add_argument("--data-dir", type=Path, help="folder holding wn18rr etc. (default $QA_DATA_DIR)")
    e.add_argument("--batch-size", type=int, default=1024, help="queries scored per batch")
    e.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    e.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    e.add_argument("--output", type=Path, help="also write the JSON record to this file")
    e.add_argument("--json", action="store_true", help="print the JSON record")
    e.set_defaults(func=run_evaluate)


def _load_data(args: argparse.Namespace, settings: Any):
    from qa_system.training.kge_data import load_kge_dataset

    if args.dataset != "workspace":
        return load_kge_dataset(args.dataset, args.data_dir or settings.data_dir, store=None)
    from graph.open import open_store

    store = open_store(settings)
    try:
        return load_kge_dataset(args.dataset, args.data_dir or settings.data_dir, store=store)
    finally:
        store.close()


def run_train(args: argparse.Namespace, settings: Any) -> int:
    import torch

    from qa_system.cli import emit_json
    from qa_system.training.kge import train_kge

    if args.threads:
        torch.set_num_threads(args.threads)
    data = _load_data(args, settings)
    name = Path(args.dataset).name if args.dataset not in ("workspace",) else "workspace"
    run_dir = args.run_dir or settings.workspace / "runs" / f"kge-{name}-{args.config}{'-nocontext' if args.no_context else ''}"
    command = "qa-system " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = train_kge(data, args.config, run_dir, epochs=args.epochs, resume=not args.fresh,
                        use_context=not args.no_context, device=args.device, command=command,
                        stop_after_epoch=args.stop_after_epoch)
    if args.export:
        from qa_system.training.kge import export_release

        summary["export"] = export_release(run_dir, args.export, data, command=command, device=args.device)
    if args.json:
        emit_json(summary)
    else:
        log.info("done: %s", summary)
    return 0


def evaluate_checkpoint(checkpoint: Path, data: Any, split: str, *, limit: int | None = None, batch_size: int = 1024,
                        device: str | None = None, command: str = "") -> dict:
    """Load ``checkpoint`` (vocabulary checked against ``data``) and evaluate it; returns the JSON record."""

    from evaluation.link_prediction import evaluate
    from qa_system.errors import DatasetNotFoundError
    from qa_system.models.checkpoint import load_checkpoint
    from qa_system.models.hitter import Neighbourhoods
    from qa_system.training.kge import make_score_fn, pick_device

    model, card = load_checkpoint(checkpoint, entities=data.entities, relations=data.relations,
                                  device=pick_device(device))
    triples = data.splits.get(split)
    if triples is None or not len(triples):
        raise DatasetNotFoundError(f"dataset {data.name!r} has no {split} facts")
    if limit:
        triples = triples[:limit]
    neighbourhoods = Neighbourhoods.from_triples(data.splits["train"], data.num_entities, data.num_relations)
    started = time.perf_counter()
    result = evaluate(make_score_fn(model, neighbourhoods, seed=0), triples, data.all_triples(), data.relations,
                      batch_size=batch_size, progress=True)
    return {
        "task": "link_prediction",
        "dataset": data.name,
        "split": split,
        "setting": result.pop("setting"),
        "metrics": result.pop("metrics"),
        "num_queries": result.pop("num_queries"),
        "checkpoint": str(checkpoint),
        "model": {"name": "hitter", "config_name": card.get("config_name"), "use_context": card["config"]["use_context"]},
        "command": command,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "eval_seconds": round(time.perf_counter() - started, 2),
        **result,
    }


def run_evaluate(args: argparse.Namespace, settings: Any) -> int:
    import torch

    from qa_system.cli import emit_json

    if args.threads:
        torch.set_num_threads(args.threads)
    data = _load_data(args, settings)
    command = "qa-system " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    record = evaluate_checkpoint(args.checkpoint or shipped_checkpoint(), data, args.split, limit=args.limit,
                                 batch_size=args.batch_size, device=args.device, command=command)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=2) + "\n")
    if args.json:
        emit_json(record)
    else:
        m = record["metrics"]
        sys.stderr.write(f"{record['dataset']} {record['split']}: MRR {m['mrr']:.4f} H@1 {m['hits@1']:.4f} "
                         f"H@3 {m['hits@3']:.4f} H@10 {m['hits@10']:.4f} ({record['num_queries']} queries, "
                         f"{record['eval_seconds']} s)\n")
    return 0
