"""Grow then ask: ingest texts into the demo graph with the shipped extractor, then ask questions
about what was read, through the product's own ``ask`` pipeline. No model is trained on them.

    python -m evaluation.grow_then_ask [--split val] [--texts 500] [--extractor qidn|gold] \
        [--index-cache DIR] [--out evaluation/results/grow-then-ask-webnlg-val-qidn.json]

Texts: WebNLG (exact entities) ``val_triples.json`` (or ``train``); the WebNLG test texts are left
alone, as a test set should be. Questions are generated from each text's gold triples (subject,
relation, object), one per (subject, relation), from templates over the relation's readable words that vary by
the object's shape ("When ..." for dates, "How many ..." for counts, "What is the ... of ...");
the answer counts when its name equals (case, punctuation and spacing aside) one of the objects the
texts give for that subject and relation (a player's clubs are all right answers to "What is the
club of ...?").

The record splits the misses by where they are lost: the gold object is not in the grown graph as
a neighbour of the subject's entity (extraction/resolution), the subject is not linked (linking),
or it is there and another answer was chosen (relation scoring). ``--extractor gold`` writes each
sentence's gold triples instead of the model's (an oracle for extraction).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from qa_system.relations import relation_words

_DATE = re.compile(r"^\d{4}(-\d{2}-\d{2})?$|^\d{1,2} \w+ \d{4}$|^\w+ \d{1,2}, \d{4}$")
_NUMBER = re.compile(r"^[\d.,]+( \w+)?$")


def question_for(subject: str, relation: str, obj: str) -> str:
    """A plain question whose answer is ``obj``, from the relation's words."""

    words = relation_words(relation)
    if _DATE.match(obj) and ("date" in words or "year" in words):
        return f"When is the {words} of {subject}?"
    if _NUMBER.match(obj) and ("number" in words or "count" in words):
        return f"How many {words.replace('number of ', '')} does {subject} have?"
    return f"What is the {words} of {subject}?"


def normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower().replace("_", " ")))


def load_examples(data_dir: Path, split: str, texts: int) -> list[dict[str, Any]]:
    path = data_dir / "webnlg-casrel" / "WebNLG" / f"{split}_triples.json"
    return json.loads(path.read_text(encoding="utf-8"))[:texts]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 1)


def _record_partitions(pipeline: Any) -> list[float]:
    """Instrument the pipeline's words reader: each reading's log partition (how well the topic's
    best relations fit the question) is appended to the returned list; the confidence under any null
    logit follows from it without asking again (``null_grid``)."""

    seen: list[float] = []
    reader = pipeline.words_reader
    read = reader.read

    def recording(*args: Any, **kwargs: Any) -> Any:
        reading = read(*args, **kwargs)
        if reading is not None:
            seen.append(reading.log_partition)
        return reading

    reader.read = recording
    return seen


# the scorers' logits are cosine x ~20 (plus the link and answer-type terms): log partitions run ~8-21
NULL_GRID = (None, 0.0, 4.0, 8.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0)


def null_grid(rows: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """For each null logit: questions answered sure, their precision, and the net (right minus wrong
    sure answers). A words answer's confidence p becomes p / (1 + exp(null - log partition)); answers
    from the trained reader (no partition recorded) keep theirs. ``rows`` must have been asked with no
    null logit."""

    table = []
    for null in NULL_GRID:
        sure = right = 0
        for row in rows:
            confidence, partition = row["confidence"], row["log_partition"]
            if null is not None and partition is not None and row["source"] != "none":
                confidence = confidence / (1.0 + math.exp(min(null - partition, 700.0)))
            if confidence >= threshold and row["answer"]:
                sure += 1
                right += bool(row["hit"])
        table.append({"null_logit": null, "answered_sure": round(sure / max(len(rows), 1), 4),
                      "precision_when_sure": round(right / max(sure, 1), 4), "net_sure": right - (sure - right)})
    return table


def write_calibration(record: dict[str, Any], path: Path) -> None:
    """The null logit with the most right-minus-wrong sure answers (ties: the smaller), fitted here."""

    best = max(record["null_logit_grid"], key=lambda r: (r["net_sure"], -(r["null_logit"] if r["null_logit"] is not None else -99)))
    calibration = {"scorer": record["relation_scorer"], "null_logit": best["null_logit"], "rule": "most right-minus-wrong sure answers over NULL_GRID, ties to the smaller",
                   "fitted_on": f"grow-then-ask webnlg {record['split']} ({record['texts']} texts, {record['questions']} questions)",
                   "at_fit": best, "command": record["command"] + f" --fit-null {path}"}
    path.write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--split", choices=("val", "train"), default="val", help="WebNLG split whose texts are ingested")
    parser.add_argument("--texts", type=int, default=500, help="how many texts (in file order)")
    parser.add_argument("--extractor", choices=("qidn", "gold"), default="qidn", help="the shipped QIDN model, or the gold triples (oracle)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("QA_DATA_DIR", "../shared/data")), help="benchmark data")
    parser.add_argument("--index-cache", type=Path, help="saved name index of the pristine demo graph (copied in; saved when absent)")
    parser.add_argument("--relation-scorer", choices=("shipped", "zero-shot", "trained", "mean"), default="shipped",
                        help="the scorer qa_system/data/words-calibration.json names, plain MiniLM cosine, or the trained checkpoint")
    parser.add_argument("--fit-null", type=Path, metavar="FILE", help="fit the words reader's null logit on these questions (a dev "
                        "split) and write it to FILE (the shipped one: qa_system/data/words-calibration.json)")
    parser.add_argument("--out", type=Path, help="record path (default evaluation/results/grow-then-ask-webnlg-SPLIT-EXTRACTOR.json)")
    args = parser.parse_args()

    from evaluation.bench_ingest import GoldExtractor
    from evaluation.demo_workspace import demo_store_with_names
    from qa_system.ask.pipeline import load_pipeline
    from qa_system.config import Settings
    from qa_system.ingest.documents import Document, split_sentences
    from qa_system.ingest.entity_resolution import EntityResolver, clean_mention
    from qa_system.ingest.extractors import load_extractor
    from qa_system.ingest.ingester import Ingester

    examples = load_examples(args.data_dir, args.split, args.texts)
    documents, gold_by_sentence = [], {}
    for i, example in enumerate(examples):
        doc = Document(id=f"webnlg-{args.split}-{i}", text=example["text"], source=f"webnlg/{args.split}")
        documents.append(doc)
        for s in split_sentences(doc):
            gold_by_sentence.setdefault(s.text, []).extend(tuple(t) for t in example["triple_list"])
    extractor: Any = GoldExtractor(gold_by_sentence) if args.extractor == "gold" else load_extractor("qidn", None)
    workspace = Path(tempfile.mkdtemp(prefix="grow-then-ask-"))
    store, index = demo_store_with_names(workspace, args.index_cache)
    try:
        t0 = time.perf_counter()
        resolver = EntityResolver(store, workspace=workspace, name_index=index)
        summary = Ingester(store, extractor, workspace=workspace, resolver=resolver).ingest(documents)
        resolver.close()
        ingest_s = time.perf_counter() - t0
        # the entity each gold object mention denotes in the grown graph, as ingest resolves it ("English"
        # is the demo graph's "English Language"): an answer that is that entity is right
        resolver = EntityResolver(store, workspace=workspace, name_index=index)
        objects = {o for example in examples for _, _, o in example["triple_list"]}
        resolutions = resolver.resolve_many(objects)
        resolved = {o: resolutions[clean_mention(o)].entity_id for o in objects if clean_mention(o) in resolutions}
        resolver.close()
        settings = Settings(workspace=workspace)
        pipeline = load_pipeline(settings, store)
        if args.relation_scorer != "shipped":  # MiniLM cosine, the scorer trained on FB15k-237 relations, or their mean
            from qa_system.ask.words_loading import relation_scorer_factory

            pipeline.words_reader.scorer = relation_scorer_factory(args.relation_scorer)()
        shipped_null = pipeline.words_reader.null_logit
        pipeline.words_reader.null_logit = None  # asked without it; every null logit's effect follows (``null_grid``)
        partitions = _record_partitions(pipeline)
        rows = []
        questions = [(s, r, o) for example in examples for s, r, o in example["triple_list"]]
        questions = list(dict.fromkeys(questions))
        # every object the texts give for (subject, relation) answers its question ("club of X": each club),
        # by its name or by the entity it resolves to
        answers: dict[tuple[str, str], set[str]] = {}
        for s, r, o in questions:
            answers.setdefault((s, r), set()).update({normalise(o), "id:" + resolved.get(o, "")})
        t0 = time.perf_counter()
        first_object = {}
        for s, r, o in questions:  # one question per (subject, relation); its shape from the first object
            first_object.setdefault((s, r), o)
        for (subject, relation), obj in tqdm(first_object.items(), desc="ask", unit="q"):
            question = question_for(subject, relation, obj)
            started = time.perf_counter()
            answer = pipeline.ask(question, fallback=False)
            took_ms = 1000 * (time.perf_counter() - started)
            got = answer.answer.name if answer.answer else ""
            right = answers[(subject, relation)]
            topic = answer.topic_entities[0].id if answer.topic_entities else ""
            reachable = False
            if topic:
                neighbours = store.neighbors([topic], hops=1).facts
                reachable = any(normalise(f.object_name if f.subject == topic else f.subject_name) in right
                                or "id:" + (f.object if f.subject == topic else f.subject) in right for f in neighbours)
            partition = partitions.pop() if partitions else None
            partitions.clear()
            rows.append({"ms": round(took_ms, 1), "log_partition": partition, "question": question, "gold": sorted(a for a in right if not a.startswith("id:")), "answer": got, "kind": answer.answer.kind if answer.answer else "",
                         "source": answer.source, "confidence": round(answer.confidence, 4), "hit": bool(got) and (normalise(got) in right or "id:" + answer.answer.id in right),
                         "topic": answer.topic_entities[0].name if answer.topic_entities else "", "subject": subject, "relation": relation,
                         "gold_neighbour_of_topic": reachable})
        ask_s = time.perf_counter() - t0
    finally:
        store.close()
        shutil.rmtree(workspace, ignore_errors=True)
    n = len(rows)
    hits = sum(r["hit"] for r in rows)
    reachable = sum(r["gold_neighbour_of_topic"] for r in rows)
    sure = [r for r in rows if r["source"] == "graph"]
    topic_named = sum(1 for r in rows if normalise(r["topic"]) == normalise(r["subject"]))
    record = {
        "benchmark": "grow-then-ask", "dataset": "webnlg", "split": args.split, "texts": len(documents), "extractor": args.extractor,
        "ingest": summary.as_dict(), "ingest_s": round(ingest_s, 1), "questions": n, "hits_at_1": round(hits / max(n, 1), 4),
        "gold_is_neighbour_of_linked_topic": round(reachable / max(n, 1), 4),
        "hits_at_1_where_reachable": round(sum(r["hit"] for r in rows if r["gold_neighbour_of_topic"]) / max(reachable, 1), 4),
        "linked_topic_is_the_subject": round(topic_named / max(n, 1), 4),
        "answered_sure": round(len(sure) / max(n, 1), 4), "precision_when_sure": round(sum(r["hit"] for r in sure) / max(len(sure), 1), 4),
        "ask_ms_mean": round(1000 * ask_s / max(n, 1), 1), "ask_ms_p50": _percentile([r["ms"] for r in rows], 50),
        "ask_ms_p95": _percentile([r["ms"] for r in rows], 95), "load_average_1min": round(os.getloadavg()[0], 2), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "relation_scorer": args.relation_scorer,
        "command": f"python -m evaluation.grow_then_ask --split {args.split} --texts {args.texts} --extractor {args.extractor}"
        + (f" --relation-scorer {args.relation_scorer}" if args.relation_scorer != "shipped" else ""),
        "rows": rows,
    }
    record["null_logit_grid"] = null_grid(rows, pipeline.config.words_threshold)
    record["shipped_null_logit"] = shipped_null
    shipped = [r for r in record["null_logit_grid"] if r["null_logit"] == shipped_null]
    if shipped:  # the headline: what a user of the shipped calibration sees
        record["answered_sure"], record["precision_when_sure"] = shipped[0]["answered_sure"], shipped[0]["precision_when_sure"]
    if args.fit_null:
        write_calibration(record, args.fit_null)
    out = args.out or Path(f"evaluation/results/grow-then-ask-webnlg-{args.split}-{args.extractor}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in record.items() if k != "rows"}))


if __name__ == "__main__":
    main()
