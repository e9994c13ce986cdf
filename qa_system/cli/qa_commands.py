"""QA commands: ``train reader`` and ``evaluate qa``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from qa_system.errors import CheckpointError, DatasetNotFoundError, InputError

DATASETS = ("freebaseqa", "webqsp")


def shipped_reader() -> Path:
    from importlib import resources

    return Path(str(resources.files("qa_system") / "checkpoints" / "reader-fb15k237"))


def _hitter_dir(args: argparse.Namespace) -> Path:
    from qa_system.cli.kge_commands import shipped_checkpoint

    folder = args.hitter or shipped_checkpoint()
    if not (folder / "card.json").is_file():
        raise CheckpointError(f"no HittER checkpoint at {folder}; train one with `qa-system train kge` or pass --hitter")
    return folder


def _retriever(store: Any, entities: list[str], relations: list[str], args: argparse.Namespace) -> Any:
    from retrievers.subgraph import SubgraphRetriever

    return SubgraphRetriever(
        store,
        {e: i for i, e in enumerate(entities)},
        {r: i for i, r in enumerate(relations)},
        hops=args.hops,
        limit_per_entity=args.limit_per_entity,
        max_candidates=args.max_candidates,
    )


def training_questions(dataset: str, data_dir: Path | None, *, extra: bool = True) -> list[Any]:
    """The HittER-filtered training questions, plus (``extra``) the other questions of the official
    training split whose topic and at least one answer are in the graph. Dev and test never enter."""

    from evaluation.qa_data import load_qa

    examples = {e.id: e for e in load_qa(dataset, "train", "filtered", data_dir)}
    if extra:
        try:
            full = load_qa(dataset, "train", "full", data_dir)
        except DatasetNotFoundError:  # FreebaseQA's full training file is not distributed here
            full = []
        for e in full:
            if e.topic_ids and e.answer_ids:
                examples.setdefault(e.id, e)
    return list(examples.values())


def _train_reader(args: argparse.Namespace, settings: Any) -> int:
    from evaluation.qa_data import load_qa
    from graph.store import open_store
    from qa_system.cli import emit_json
    from qa_system.explore import ensure_demo_graph
    from qa_system.training.reader import ReaderTrainConfig, build_reader, fit
    from qa_system.training.reader_data import featurize

    datasets = DATASETS if args.dataset == "both" else (args.dataset,)
    hitter_dir = _hitter_dir(args)
    reader, tokenizer, entities, relations = build_reader(hitter_dir, use_graph=not args.no_graph, lora_r=args.lora_r)
    store = open_store(settings)
    try:
        ensure_demo_graph(store)
        retriever = _retriever(store, entities, relations, args)
        train, dev = [], []
        for name in datasets:
            train_examples = training_questions(name, args.data_dir, extra=not args.filtered_only)[: args.limit]
            dev_examples = load_qa(name, "dev", "filtered", args.data_dir)[: args.limit]
            train += featurize(train_examples, retriever, desc=f"{name} train")
            dev += featurize(dev_examples, retriever, desc=f"{name} dev")
    finally:
        store.close()
    if not train or not dev:
        raise InputError(f"no usable training/dev questions (train {len(train)}, dev {len(dev)})")
    run_dir = args.run_dir or settings.workspace / "runs" / f"reader-{args.dataset}{'-nograph' if args.no_graph else ''}"
    cfg = ReaderTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    card = {"datasets": list(datasets), "hitter": str(hitter_dir), "use_graph": not args.no_graph,
            "train_questions": len(train), "dev_questions": len(dev), "command": "qa-system " + " ".join(sys.argv[1:])}
    summary = fit(reader, train, dev, tokenizer, cfg, Path(run_dir), card=card)
    emit_json(summary)
    return 0


def _evaluate_qa(args: argparse.Namespace, settings: Any) -> int:
    from evaluation.qa_data import load_qa
    from evaluation.qa_metrics import summarise
    from graph.store import open_store
    from qa_system.cli import emit_json
    from qa_system.explore import ensure_demo_graph
    from qa_system.training.reader import build_reader, load_reader_weights, rank
    from qa_system.training.reader_data import featurize

    reader_dir = args.checkpoint or shipped_reader()
    if not (reader_dir / "card.json").is_file():
        raise CheckpointError(f"no reader checkpoint at {reader_dir}; train one with `qa-system train reader`")
    reader_card = json.loads((reader_dir / "card.json").read_text())
    use_graph = bool(reader_card.get("use_graph", True)) and not args.no_graph
    reader, tokenizer, entities, relations = build_reader(Path(reader_card.get("hitter") or _hitter_dir(args)), use_graph=use_graph)
    load_reader_weights(reader, reader_dir)
    examples = load_qa(args.dataset, args.split, args.setting, args.data_dir)[: args.limit]
    started = time.time()
    store = open_store(settings)
    try:
        ensure_demo_graph(store)
        retriever = _retriever(store, entities, relations, args)
        if args.linking == "predicted":
            from retrievers.linking import GraphEntityLinker

            linker = GraphEntityLinker(store).load()
            topic_of = lambda e: [c.entity.id for c in linker.link(e.question, top_k=1)]  # noqa: E731
        else:
            topic_of = None
        features = featurize(examples, retriever, topic_of=topic_of, desc=f"{args.dataset} {args.split}")
    finally:
        store.close()
    ranked = rank(reader, features, tokenizer)
    metrics = summarise([[c for c, _ in r] for r in ranked], [f.answers for f in features], total=len(examples))
    record = {
        "task": "qa",
        "dataset": args.dataset,
        "split": args.split,
        "setting": args.setting,
        "linking": args.linking,
        "fusion": use_graph,
        **metrics,
        "answered_questions": len(features),
        "checkpoint": str(reader_dir),
        "command": "qa-system " + " ".join(sys.argv[1:]),
        "seconds": round(time.time() - started, 1),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    emit_json(record)
    return 0


def _ask(args: argparse.Namespace, settings: Any) -> int:
    from graph.store import open_store
    from qa_system.cli import emit_json
    from qa_system.errors import QAError
    from qa_system.explore import ensure_demo_graph
    from qa_system.pipeline import load_pipeline

    if (args.question is None) == (args.file is None):
        raise InputError("give a QUESTION or --file QUESTIONS.txt (one of them)")
    if args.file is not None:
        try:
            questions = args.file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read {args.file}: {e}") from e
    else:
        questions = [args.question]
    store = open_store(settings)
    try:
        ensure_demo_graph(store)
        pipeline = load_pipeline(settings, store, reader_dir=args.checkpoint)
        for line_number, question in enumerate(questions, start=1):
            try:
                answer = pipeline.ask(question).model_dump(mode="json")
            except QAError as e:
                if args.file is None:
                    raise
                answer = {"question": question, "error": str(e), "line": line_number}
            if args.json or args.jsonl or args.file is not None:
                emit_json(answer)
            else:
                best = answer.get("answer")
                sys.stdout.write(
                    (f"{best['name']} ({answer['confidence']:.2f}, {answer['source']})" if best else answer.get("message", "")) + "\n"
                )
    finally:
        store.close()
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hitter", type=Path, help="HittER checkpoint folder (default: the shipped one)")
    p.add_argument("--data-dir", type=Path, help="benchmark data (default $QA_DATA_DIR or ../shared/data)")
    p.add_argument("--hops", type=int, default=1, help="1 hop, uncapped: 90.5%%/88.3%% of WebQSP/FreebaseQA filtered test answers are candidates")
    p.add_argument("--limit-per-entity", type=int, default=0, help="facts read per entity (0 = all)")
    p.add_argument("--max-candidates", type=int, default=10_000)
    p.add_argument("--limit", type=int, help="only the first N questions (smoke runs)")
    p.add_argument("--no-graph", action="store_true", help="MiniLM alone over the same candidates (fusion ablation)")


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = train.add_parser("reader", help="train the QA reader on FreebaseQA/WebQSP")
    p.add_argument("--dataset", choices=[*DATASETS, "both"], default="both")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--run-dir", type=Path)
    p.add_argument("--filtered-only", action="store_true", help="only the HittER-filtered training questions (default: also the "
                   "other official training questions whose topic and an answer are in the graph)")
    _common(p)
    p.set_defaults(func=_train_reader)

    p = commands.add_parser("ask", help="answer a question from the graph (or --file, one question per line)")
    p.add_argument("question", nargs="?")
    p.add_argument("--file", type=Path, help="questions, one per line; one JSON object per line out, in order")
    p.add_argument("--checkpoint", type=Path, help="reader checkpoint folder (default: the shipped one)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--jsonl", action="store_true")
    p.set_defaults(func=_ask)

    p = evaluate.add_parser("qa", help="Hits@1/@5 and F1 of the reader on a QA benchmark")
    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--split", choices=["test", "dev"], default="test")
    p.add_argument("--setting", choices=["filtered", "full"], default="filtered")
    p.add_argument("--linking", choices=["oracle", "predicted"], default="oracle")
    p.add_argument("--checkpoint", type=Path, help="reader checkpoint folder (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="(the record is always JSON)")
    _common(p)
    p.set_defaults(func=_evaluate_qa)
