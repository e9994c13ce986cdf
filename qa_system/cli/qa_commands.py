"""QA commands: ``train reader``, ``train reranker`` and ``evaluate qa`` (``calibrate`` and ``tune
constraints``, which write the reader card from dev, are in ``qa_tuning_commands``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluation.qa_data import training_questions
from qa_system.errors import CheckpointError, InputError
from qa_system.models.precision import PRECISIONS

log = logging.getLogger(__name__)


DATASETS = ("freebaseqa", "webqsp")
LINKS_KEPT = 8  # linked entities per question kept for `tune constraints` (its link_top_k grid goes up to this)


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


def _train_reader(args: argparse.Namespace, settings: Any) -> int:
    from evaluation.qa_data import load_qa
    from graph.open import open_store
    from qa_system.ask.reader_features import featurize
    from qa_system.ask.reader_loading import build_reader
    from qa_system.cli import emit_json
    from qa_system.explore import ensure_demo_graph
    from qa_system.training.reader import ReaderTrainConfig, fit

    datasets = DATASETS if args.dataset == "both" else (args.dataset,)
    hitter_dir = _hitter_dir(args)
    reader, tokenizer, entities, relations = build_reader(hitter_dir, use_graph=not args.no_graph, graph_scores=not args.minilm_alone,
                                                          lora_r=args.lora_r)
    use_graph = reader.config.use_graph  # build_reader says whether cross-attention is on (needs graph scores and HittER context)
    if args.init is not None:  # warm start: its adapters and heads; cross-attention the checkpoint lacks starts closed
        from qa_system.ask.reader_loading import load_reader_weights

        load_reader_weights(reader, args.init, may_lack=("cross.",))
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
    suffix = "-minilm-alone" if not reader.config.graph_scores else "" if use_graph else "-nograph"
    run_dir = args.run_dir or settings.workspace / "runs" / f"reader-{args.dataset}{suffix}"
    cfg = ReaderTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    card = {"datasets": list(datasets), "hitter": str(hitter_dir), "use_graph": use_graph, "init": str(args.init) if args.init else None,
            "train_questions": len(train), "dev_questions": len(dev), "command": "qa-system " + " ".join(sys.argv[1:])}
    summary = fit(reader, train, dev, tokenizer, cfg, Path(run_dir), card=card)
    emit_json(summary)
    return 0


def _reranker_groups(args: argparse.Namespace, settings: Any, reader: Any, tokenizer: Any, entities: list[str], relations: list[str], *,
                     train: bool, text_weight: float, top_k: int) -> tuple[list[Any], list[Any]]:
    """Rank questions with the reader (gold topic) and turn its top candidates into reranker groups.

    Training groups (when ``train``) come from the reader alone, over its top ``--train-top-k``: its
    own confusions are the negatives. Dev groups come from the ranking the reranker will rerank in
    the app (the reader plus the text match at ``text_weight``), over the top ``top_k``."""

    from evaluation.qa_data import load_qa
    from graph.open import open_store
    from qa_system.ask.reader_features import featurize
    from qa_system.ask.reader_loading import rank, relation_texts
    from qa_system.explore import ensure_demo_graph
    from qa_system.training.answer_reranker import rerank_groups
    from retrievers.answer_text import CARD_KEY, matcher_from_card, store_texts

    train_groups, dev_groups = [], []
    store = open_store(settings)
    try:
        ensure_demo_graph(store)
        retriever = _retriever(store, entities, relations, args)
        texts, names = store_texts(store), relation_texts(relations)
        for name in DATASETS:
            if name == "webqsp":  # every answerable question of the dev carve (99; the filtered file keeps 85, one answer each)
                dev_examples = [e for e in load_qa(name, "dev", "full", args.data_dir) if e.topic_ids and e.answer_ids]
            else:
                dev_examples = load_qa(name, "dev", "filtered", args.data_dir)
            jobs = [("dev", dev_examples, top_k, text_weight, dev_groups)]
            if train:
                jobs.insert(0, ("train", training_questions(name, args.data_dir), args.train_top_k, 0.0, train_groups))
            for split, examples, k, weight, out in jobs:
                features = featurize(examples[: args.limit], retriever, desc=f"{name} {split}")
                ranked = rank(reader, features, tokenizer, answer_bias=matcher_from_card({CARD_KEY: weight}, store))
                out += rerank_groups(features, ranked, texts, names, top_k=k, dataset=name)
    finally:
        store.close()
    return train_groups, dev_groups


def _train_reranker(args: argparse.Namespace, settings: Any) -> int:
    """Train the answer reranker on the reader's top candidates of the training questions
    (``training.answer_reranker``); with ``--tune-only CHECKPOINT``, only choose its weight on dev
    again (for another text-match weight) and write it into that checkpoint's card."""

    import math

    import torch

    from qa_system.cli import emit_json
    from qa_system.models.answer_reranker import CARD, RerankerConfig, build_network, load_reranker
    from qa_system.models.entailment import load_tokenizer
    from qa_system.training.answer_reranker import RerankerTrainConfig, dev_report, fit
    from retrievers.answer_text import CARD_KEY

    if args.text_weight is not None and (not math.isfinite(args.text_weight) or args.text_weight < 0):
        raise InputError(f"--text-weight must be >= 0; got {args.text_weight}")
    if args.weight is not None and (args.tune_only is None or not math.isfinite(args.weight) or args.weight < 0):
        raise InputError(f"--weight needs --tune-only and must be >= 0; got {args.weight}")
    torch.set_num_threads(args.threads)
    reader, tokenizer, entities, relations, reader_dir, reader_card = _load_reader(args)
    text_weight = float(args.text_weight) if args.text_weight is not None else _text_weight(args, reader_card)
    if args.tune_only is not None:
        reranker = load_reranker(args.tune_only)
        top_k = reranker.top_k if args.top_k is None else args.top_k
        _, dev = _reranker_groups(args, settings, reader, tokenizer, entities, relations, train=False, text_weight=text_weight, top_k=top_k)
        report = dev_report(reranker, dev, allow_skip=args.skip, narrow=not args.read_all, weight=args.weight)
        card = {**reranker.card, "weight": report["weight"], "top_k": top_k, "skip_above": report["skip_above"],
                "read_within": report["read_within"], CARD_KEY: text_weight, "dev": report,
                "tuned": {"command": "qa-system " + " ".join(sys.argv[1:]), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
        (Path(args.tune_only) / CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n")
        emit_json(report)
        return 0
    top_k = args.top_k or 10
    train, dev = _reranker_groups(args, settings, reader, tokenizer, entities, relations, train=True, text_weight=text_weight, top_k=top_k)
    if not train or not dev:
        raise InputError(f"no usable training/dev questions (train {len(train)}, dev {len(dev)})")
    network = build_network(RerankerConfig(max_length=args.max_length, lora_r=args.lora_r))
    cfg = RerankerTrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed)
    run_dir = args.out or settings.workspace / "runs" / "answer-reranker"
    card = {"reader": str(reader_dir), CARD_KEY: text_weight, "train_questions": len(train), "dev_questions": len(dev),
            "train_with_gold_in_top": sum(any(g.gold) for g in train), "train_top_k": args.train_top_k,
            "command": "qa-system " + " ".join(sys.argv[1:])}
    emit_json(fit(network, load_tokenizer(), train, dev, cfg, Path(run_dir), top_k=top_k, card=card, resume=args.resume, allow_skip=args.skip,
                   narrow=not args.read_all))
    return 0


def _load_reader(args: argparse.Namespace) -> tuple[Any, Any, list[str], list[str], Path, dict[str, Any]]:
    """The reader of ``--checkpoint`` (default: the shipped one), with its card."""

    from qa_system.ask.reader_loading import load_reader_checkpoint, shipped_reader
    from qa_system.cli.kge_commands import shipped_checkpoint

    reader_dir = args.checkpoint or shipped_reader()
    reader, tokenizer, entities, relations, card = load_reader_checkpoint(  # --hitter only for a card that names none
        reader_dir, use_graph=not getattr(args, "no_graph", False), default_hitter=args.hitter or shipped_checkpoint()
    )
    return reader, tokenizer, entities, relations, reader_dir, card


def _text_weight(args: argparse.Namespace, card: dict[str, Any]) -> float:
    """The answer-text weight of ``card`` (``retrievers.answer_text``); 0 with ``--no-text-match``."""

    from retrievers.answer_text import CARD_KEY

    return 0.0 if getattr(args, "no_text_match", False) else float(card.get(CARD_KEY) or 0.0)


def _rank_questions(args: argparse.Namespace, settings: Any, examples: list[Any], reader: Any, tokenizer: Any,
                    entities: list[str], relations: list[str], desc: str, *, card: dict[str, Any],
                    links_out: dict[str, list[Any]] | None = None,
                    ) -> tuple[list[Any], list[list[tuple[str, float]]], dict[str, Any]]:
    """Retrieve (oracle or predicted topic) and rank every question as the app does: the reader, the
    question/answer text match at the weight the reader ``card`` gives, and the answer
    reranker when one ships (or ``--reranker``) unless ``--no-reranker``, then the question
    constraints of the card (``constraints``) unless ``--no-constraints``: the other entities the
    linker finds in the question, with either linking (oracle gives only the topic). Returns
    features and rankings in order, and what ranked them (text weight, reranker, constraints);
    ``links_out`` receives every question's linked entities when given."""

    from graph.open import open_store
    from qa_system.ask.reader_features import featurize
    from qa_system.ask.stages import ranking_stages
    from qa_system.ask.topic_choice import choose_per_question
    from qa_system.explore import ensure_demo_graph

    store = open_store(settings)
    try:
        ensure_demo_graph(store)
        retriever = _retriever(store, entities, relations, args)
        read_topics = int(getattr(args, "read_topics", 1)) if args.linking == "predicted" else 1
        stages = ranking_stages(card, store, reader, tokenizer, entities, relations, rerank=not args.no_reranker,
                                reranker_dir=args.reranker, rerank_top_k=getattr(args, "reranker_top_k", None),
                                rerank_precision=getattr(args, "reranker_precision", None),
                                text_match=not getattr(args, "no_text_match", False), constraints=not getattr(args, "no_constraints", False))
        weights = stages.constraints.weights if stages.constraints is not None else None
        links: dict[str, list[Any]] = {}
        if args.linking == "predicted" or weights is not None or links_out is not None:
            from retrievers.linking import GraphEntityLinker

            linker = GraphEntityLinker(store).load()
            top_k = max(read_topics, weights.link_top_k if weights else 1, LINKS_KEPT if links_out is not None else 1)
            links = {e.id: linker.link(e.question, top_k=top_k) for e in tqdm(examples, desc=f"{desc} link", unit="q", leave=False, mininterval=5)}
            if links_out is not None:
                links_out.update(links)
        topic_links = links if args.linking == "predicted" else {}
        features, link_scores = [], []
        for k in range(read_topics):  # the k-th linked entity of every question that has one, read on its own
            topic_of = (lambda e, k=k: [topic_links[e.id][k].entity.id] if len(topic_links[e.id]) > k else []) if topic_links else None
            found = featurize(examples, retriever, topic_of=topic_of, desc=desc if read_topics == 1 else f"{desc} topic {k + 1}")
            scores = {e.id: topic_links[e.id][k].score for e in examples if len(topic_links.get(e.id, [])) > k}
            features += found
            link_scores += [scores.get(f.example_id, 1.0) for f in found]
        ranked, _ = stages.ranker.rank_features(features)  # the reader, the text match, the reranker: as ``ask`` ranks
        if stages.constraints is not None:
            ranked = [stages.constraints.apply(r, links.get(f.example_id, []), f.topic)[0] for f, r in zip(features, ranked)]
        used = stages.described(str(args.reranker or "shipped"))
        if read_topics > 1:
            features, ranked = choose_per_question(examples, features, ranked, link_scores, _confidences(card, features, ranked))
            used["read_topics"] = read_topics
        return features, ranked, used
    finally:
        store.close()


def _confidences(card: dict[str, Any], features: list[Any], ranked: list[list[tuple[str, float]]]) -> list[float]:
    """Each answer's confidence as the app computes it (``calibration.answer_confidence`` with the
    card's calibrator; the raw top probability before ``qa-system calibrate`` ran)."""

    from qa_system.ask.calibration import answer_confidence, calibrator_from_card

    calibrator = calibrator_from_card(card)
    return [answer_confidence(calibrator, r, len(f.candidates)) for f, r in zip(features, ranked)]


def _evaluate_qa(args: argparse.Namespace, settings: Any) -> int:
    from evaluation.qa_data import load_qa
    from evaluation.qa_metrics import hits_at, summarise
    from qa_system.ask.calibration import reliability, selective_summary
    from qa_system.ask.pipeline import check_read_topics
    from qa_system.cli import emit_json

    check_read_topics(args.read_topics)  # before any model or graph is opened
    reader, tokenizer, entities, relations, reader_dir, card = _load_reader(args)
    examples = load_qa(args.dataset, args.split, args.setting, args.data_dir)[: args.limit]
    started = time.time()
    features, ranked, used = _rank_questions(args, settings, examples, reader, tokenizer, entities, relations,
                                             f"{args.dataset} {args.split}", card=card)
    metrics = summarise([[c for c, _ in r] for r in ranked], [f.answers for f in features], total=len(examples))
    correct = [bool(hits_at([c for c, _ in r], f.answers, 1)) for r, f in zip(ranked, features)]
    confidences = _confidences(card, features, ranked)
    threshold = float(card.get("threshold", 0.5))
    record = {
        "task": "qa",
        "dataset": args.dataset,
        "split": args.split,
        "setting": args.setting,
        "linking": args.linking,
        "fusion": reader.config.use_graph,
        "graph_scores": reader.config.graph_scores,
        **used,
        **metrics,
        "answered_questions": len(features),
        "calibration": {"ece": reliability(confidences, correct).ece, **selective_summary(confidences, correct, threshold)} if features else {},
        "checkpoint": str(reader_dir),
        "command": "qa-system " + " ".join(sys.argv[1:]),
        "seconds": round(time.time() - started, 1),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    emit_json(record)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hitter", type=Path, help="HittER checkpoint folder (default: the shipped one)")
    p.add_argument("--data-dir", type=Path, help="benchmark data (default $QA_DATA_DIR or ../shared/data)")
    p.add_argument("--hops", type=int, default=1, help="1 hop, uncapped: 90.5%%/88.3%% of WebQSP/FreebaseQA filtered test answers are candidates")
    p.add_argument("--limit-per-entity", type=int, default=0, help="facts read per entity (0 = all)")
    p.add_argument("--max-candidates", type=int, default=10_000, help="at most this many candidate answers per question")
    p.add_argument("--limit", type=int, help="only the first N questions (smoke runs)")
    p.add_argument("--no-graph", action="store_true", help="the reader without its cross-attention (the fusion ablation's twin)")


def _reranker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reranker", type=Path, help="answer-reranker checkpoint folder (default: the shipped one, when there is one)")
    p.add_argument("--no-reranker", action="store_true", help="the reader's order (no answer reranker)")
    p.add_argument("--reranker-top-k", type=int, help="how many of the reader's candidates the reranker reads (default: its card's)")
    p.add_argument("--reranker-precision", choices=PRECISIONS, help=f"run the reranker in {', '.join(PRECISIONS)} (default: its card's)")
    p.add_argument("--no-constraints", action="store_true", help="leave out the re-ordering by the other entities the question "
                   "names (the reader card's constraints)")


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = train.add_parser("reader", help="train the QA reader on FreebaseQA/WebQSP")
    p.add_argument("--dataset", choices=[*DATASETS, "both"], default="both", help="training questions from this benchmark (or both)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs")
    p.add_argument("--batch-size", type=int, default=16, help="questions per step")
    p.add_argument("--lr", type=float, default=3e-4, help="adapter learning rate")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank")
    p.add_argument("--run-dir", type=Path, help="run folder (default <workspace>/runs/reader-<dataset>...)")
    p.add_argument("--init", type=Path, metavar="CHECKPOINT", help="start from this reader checkpoint's weights (same --lora-r); "
                   "cross-attention blocks it lacks start with closed gates, so a fused reader starts as the no-fusion twin it came from")
    p.add_argument("--minilm-alone", action="store_true", help="the fusion ablation's second twin: no cross-attention and no HittER "
                   "terms in the answer score (only the relation-path term; the graph still gives the candidates and their relations)")
    p.add_argument("--filtered-only", action="store_true", help="only the HittER-filtered training questions (default: also the "
                   "other official training questions whose topic and an answer are in the graph)")
    _common(p)
    p.set_defaults(func=_train_reader)

    p = train.add_parser("reranker", help="train the answer reranker on the reader's top candidates of the training questions")
    p.add_argument("--checkpoint", type=Path, help="reader checkpoint folder (default: the shipped one)")
    p.add_argument("--out", type=Path, help="run folder (default: <workspace>/runs/answer-reranker); best/ is the checkpoint")
    p.add_argument("--epochs", type=int, default=2, help="training epochs")
    p.add_argument("--lr", type=float, default=3e-4, help="adapter learning rate")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank")
    p.add_argument("--max-length", type=int, default=128, help="word pieces per question/candidate pair")
    p.add_argument("--top-k", type=int, help="candidates the reranker reads at inference and on dev (default 10; "
                   "with --tune-only, the checkpoint's)")
    p.add_argument("--train-top-k", type=int, default=20, help="reader candidates a training question's negatives come from")
    p.add_argument("--text-weight", type=float, help="question/answer text match in the ranking it reranks in the app and on dev "
                   "(default: the reader card's; 0 = off); training negatives come from the reader alone")
    p.add_argument("--tune-only", type=Path, metavar="CHECKPOINT", help="no training: choose this checkpoint's weight on dev "
                   "(for --text-weight and --top-k) and write it into its card")
    p.add_argument("--skip", action="store_true", help="let the app skip the reranker when the reader's p(top) reaches the "
                   "lowest value that loses no dev Hits@1 (faster; costs calibrated coverage, see the card's dev report)")
    p.add_argument("--weight", type=float, help="with --tune-only: keep this reranker weight instead of choosing it on dev "
                   "(the weight grid is still reported); what --skip and read_within are chosen at")
    p.add_argument("--read-all", action="store_true", help="always read the top --top-k candidates (default: only those within "
                   "the narrowest log-probability gap of the reader's top that loses no dev Hits@1, card read_within)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last.pt")
    _common(p)
    p.set_defaults(func=_train_reranker)

    p = evaluate.add_parser("qa", help="Hits@1/@5 and F1 of the reader on a QA benchmark")
    p.add_argument("--dataset", choices=DATASETS, required=True, help="QA benchmark")
    p.add_argument("--split", choices=["test", "dev"], default="test", help="split to evaluate")
    p.add_argument("--setting", choices=["filtered", "full"], default="filtered", help="filtered: questions whose topic and answer are in the graph; full: all")
    p.add_argument("--linking", choices=["oracle", "predicted"], default="oracle", help="oracle: the gold topic entity; predicted: the app's entity linking")
    p.add_argument("--read-topics", type=int, default=1, metavar="K",
                   help="with --linking predicted: read each of the first K linked entities and answer from the best "
                        "(link score and confidence; `ask`'s PipelineConfig.read_topics); default 1")
    p.add_argument("--checkpoint", type=Path, help="reader checkpoint folder (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="(the record is always JSON)")
    p.add_argument("--no-text-match", action="store_true", help="the reader's scores alone (no question/answer text match)")
    _reranker_options(p)
    _common(p)
    p.set_defaults(func=_evaluate_qa)
