"""The tables of docs/RESULTS.md: reading records and turning each record family into rows.

Why apart from ``evaluation.report``: that module decides which families exist and lays the page
out; this one only formats numbers and builds one family's rows, so a new benchmark adds a builder
here and a line in ``report.FAMILIES``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASH = "—"
Record = tuple[str, dict[str, Any]]  # (file name, parsed JSON)


# ---------------------------------------------------------------- reading and formatting


def load_records(folder: Path) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` in ``folder`` that parses to an object, by file name (unreadable files are skipped)."""

    records: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            records[path.name] = data
    return records


def get(record: Any, dotted: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; None when any step is missing. Keys may contain '@' but not '.'."""

    value = record
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def num(value: Any, digits: int = 1, scale: float = 1.0, suffix: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return DASH if value in (None, "") else str(value)
    return f"{value * scale:,.{digits}f}{suffix}"


def pct(value: Any, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage number (0.5475 -> 54.8)."""

    return num(value, digits, 100.0)


def text(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return "set" if value else DASH
    return str(value)


def clean_command(command: Any) -> str:
    """The record's command without machine-specific paths (the default data dir, the checkout's absolute path)."""

    if not isinstance(command, str) or not command.strip():
        return ""
    command = re.sub(r"\s--data-dir\s+\S*shared/data\S*", "", command)
    command = re.sub(r"\s--note\s+('[^']*'|\"[^\"]*\"|\S+)", "", command)
    # older records name the machine they ran on: <root>/main/ (the checkout) and <root>/runs/ (run folders)
    command = re.sub(r"(?<![\w.])/[\w.-]+/main/", "", command)
    command = re.sub(r"(?<![\w.])/[\w.-]+/runs/", "RUNS/", command)
    return " ".join(command.split())


def cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def rec(name: str) -> str:
    return f"`{name}`"


# ---------------------------------------------------------------- families


def qa_row(name: str, r: dict[str, Any]) -> list[str]:
    return [rec(name), text(r.get("dataset")), text(r.get("split")), text(r.get("setting")), text(r.get("linking")),
            num(r.get("questions"), 0), pct(r.get("hits@1")), pct(r.get("hits@5")),
            pct(get(r, "calibration.coverage")), pct(get(r, "calibration.selective_accuracy"))]


QA_HEADERS = ["record", "dataset", "split", "setting", "linking", "questions", "Hits@1", "Hits@5",
              "answered sure (%)", "accuracy when sure (%)"]


def qa_shipped(records: list[Record]) -> list[list[str]]:
    return [qa_row(n, r) for n, r in records]


def qa_variants(records: list[Record]) -> list[list[str]]:
    rows = []
    for n, r in records:
        reranker = r.get("reranker")
        rr = (f"top {get(reranker, 'top_k')}, {text(get(reranker, 'precision'))}" if isinstance(reranker, dict)
              else text(reranker))
        rows.append([rec(n), text(r.get("dataset")), text(r.get("split")), text(r.get("setting")), text(r.get("linking")),
                     text(r.get("fusion")), rr, text(r.get("read_topics")), num(r.get("questions"), 0),
                     pct(r.get("hits@1")), pct(r.get("hits@5"))])
    return rows


def reachability(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("dataset")), text(r.get("split")), text(r.get("setting")), num(r.get("questions"), 0),
             num(get(r, "counts.no_topic"), 0), num(get(r, "counts.no_answer"), 0), num(get(r, "counts.one_hop"), 0),
             num(get(r, "counts.two_hops"), 0), num(get(r, "counts.beyond_two_hops"), 0),
             pct(get(r, "ceilings.one_hop")), pct(get(r, "ceilings.within_two_hops")), pct(get(r, "ceilings.answer_in_graph"))]
            for n, r in records]


def link_prediction(records: list[Record]) -> list[list[str]]:
    rows = []
    for n, r in records:
        m = r.get("metrics") or {}
        if "mrr" not in m:  # the context ablation: dev MRR with / without context at equal epochs
            rows.append([rec(n), text(r.get("dataset")), text(r.get("split")),
                         f"context {num(m.get('valid_mrr_context'), 4)} / none {num(m.get('valid_mrr_no_context'), 4)}",
                         DASH, DASH, DASH, DASH])
            continue
        rows.append([rec(n), text(r.get("dataset")), text(r.get("split")), num(m.get("mrr"), 4), num(m.get("hits@1"), 4),
                     num(m.get("hits@3"), 4), num(m.get("hits@10"), 4), num(r.get("num_queries"), 0)])
    return rows


def linking(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("dataset")), text(r.get("split")), text(r.get("setting")), num(get(r, "metrics.questions"), 0),
             num(get(r, "metrics.recall@1"), 3), num(get(r, "metrics.recall@5"), 3), num(get(r, "metrics.answerable"), 0),
             num(get(r, "metrics.answerable_recall@1"), 3), num(get(r, "metrics.answerable_recall@5"), 3)]
            for n, r in records]


def relation_scorer(records: list[Record]) -> list[list[str]]:
    # relation_scorer_eval writes Hits@1 already in percent
    return [[rec(n), text(r.get("name")), text(r.get("model")), text(r.get("split")), num(get(r, "all.hits@1"), 1),
             num(get(r, "all.questions"), 0), num(get(r, "held_out_third.hits@1"), 1), num(get(r, "seen_two_thirds.hits@1"), 1),
             num(get(r, "latency.p50_ms"), 1), num(get(r, "latency.p95_ms"), 1)]
            for n, r in records]


def extraction(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("model")), text(r.get("dataset")), text(r.get("split")), pct(r.get("precision")),
             pct(r.get("recall")), pct(r.get("f1")), pct(get(r, "by_pattern.normal.f1")), pct(get(r, "by_pattern.seo.f1")),
             pct(get(r, "by_pattern.epo.f1"))]
            for n, r in records if "f1" in r]


def extraction_speed(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("model")), text(r.get("threads")), text(r.get("batch_size")), num(r.get("sentences"), 0),
             num(r.get("sentences_per_s"), 1), num(get(r, "single_sentence.p50_ms"), 1), num(get(r, "single_sentence.p99_ms"), 1)]
            for n, r in records]


def entailment(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("dataset")), text(r.get("split")), text(r.get("mode")), num(r.get("n"), 0),
             pct(r.get("accuracy")), pct(r.get("f1"))]
            for n, r in records]


def validation(records: list[Record]) -> list[list[str]]:
    rows = []
    for n, r in records:
        p0, p1, r0, r1 = (r.get(k) for k in ("precision_before", "precision_after", "recall_before", "recall_after"))
        gain = (p1 - p0) if all(isinstance(v, (int, float)) for v in (p0, p1)) else None
        kept = (r1 / r0) if all(isinstance(v, (int, float)) for v in (r0, r1)) and r0 else None
        rows.append([rec(n), text(r.get("split")), text(r.get("limit")), num(r.get("queries"), 0), num(r.get("gold_objects"), 0),
                     num(p0, 3), num(p1, 3), num(r0, 3), num(r1, 3), num(r.get("f1_before"), 3), num(r.get("f1_after"), 3),
                     pct(gain, 1), pct(kept, 1)])
    return rows


def grow_then_ask(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("dataset")), text(r.get("split")), text(r.get("extractor")), num(r.get("texts"), 0),
             num(r.get("questions"), 0), pct(r.get("hits_at_1")), pct(r.get("gold_is_neighbour_of_linked_topic")),
             pct(r.get("hits_at_1_where_reachable")), pct(r.get("answered_sure")), pct(r.get("precision_when_sure")),
             num(r.get("ask_ms_mean"), 1)]
            for n, r in records]


def unseen_entities(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("dataset")), text(r.get("split")), text(r.get("linking")),
             num(r.get("questions_about_hidden_topics"), 0), pct(r.get("hits_at_1_all_seen")), pct(r.get("hits_at_1_topics_hidden")),
             pct(r.get("answered_sure_hidden")), pct(r.get("precision_when_sure_hidden"))]
            for n, r in records]


def _latency_row(label: str, r: dict[str, Any]) -> list[str]:
    load = r.get("load_average")
    return [label, text(r.get("backend") or "embedded"), text(r.get("reranker")), text(r.get("reranker_top_k")),
            text(r.get("reranker_precision")), text(r.get("read_topics")), num(r.get("questions"), 0), num(get(r, "ask.p50_ms"), 1),
            num(get(r, "ask.p95_ms"), 1), num(get(r, "ask.p99_ms"), 1), num(get(r, "stages.link.p50_ms"), 1),
            num(r.get("batched_questions_per_s"), 1),
            num(load[0] if isinstance(load, list) and load else load, 2)]


def ask_latency(records: list[Record]) -> list[list[str]]:
    rows = []
    for n, r in records:
        if isinstance(r.get("runs"), list):  # an A/B record: one row per run
            for i, run in enumerate(r["runs"], 1):
                if not isinstance(run, dict):
                    continue
                role = run.get("role") or ({True: "on", False: "off"}.get(run.get("constraints_on")) if "constraints_on" in run else None)
                rows.append(_latency_row(f"{rec(n)} run {i}" + (f" ({role})" if role else ""), run))
        else:
            rows.append(_latency_row(rec(n), r))
    return rows


def calibration(records: list[Record]) -> list[list[str]]:
    return [[rec(n), num(r.get("dev_questions"), 0), text(r.get("linking")), num(r.get("ece_raw"), 3), num(r.get("ece_calibrated"), 3),
             num(r.get("threshold"), 3), pct(r.get("coverage")), pct(r.get("selective_accuracy"))]
            for n, r in records]


def fallback(records: list[Record]) -> list[list[str]]:
    return [[rec(n), num(r.get("questions"), 0), num(get(r, "total.p50_s"), 2), num(get(r, "total.p95_s"), 2),
             num(get(r, "llm_call.p50_s"), 2), num(get(r, "validation_and_insert.p50_s"), 2),
             num(r.get("triples_proposed_by_llm"), 0), num(r.get("triples_inserted_as_proposed"), 0), num(r.get("answers_validated"), 0)]
            for n, r in records]


def graph_store(records: list[Record]) -> list[list[str]]:
    return [[rec(n), text(r.get("backend")), num(r.get("entities"), 0), num(r.get("facts"), 0), num(r.get("import_s"), 1),
             num(get(r, "one_hop.p50_ms"), 2), num(get(r, "one_hop.p95_ms"), 2), num(get(r, "two_hop.p50_ms"), 2),
             num(get(r, "two_hop.p95_ms"), 2), num(r.get("load_average_1m"), 2)]
            for n, r in records]


def ingest(records: list[Record]) -> list[list[str]]:
    rows = []
    for n, r in records:
        first, second = get(r, "runs.0") or {}, get(r, "runs.1") or {}
        rows.append([rec(n), text(r.get("extractor")), num(r.get("sentences"), 0), num(first.get("seconds"), 1),
                     num(r.get("sentences_per_s_first_run"), 1), num(first.get("triples_added"), 0), num(first.get("triples_merged"), 0),
                     num(first.get("new_entities"), 0), num(second.get("seconds"), 1), num(second.get("triples_added"), 0)])
    return rows


def import_throughput(records: list[Record]) -> list[list[str]]:
    rows = []
    for n, r in records:
        results = r.get("results") if isinstance(r.get("results"), dict) else {}
        for fmt in sorted(results):
            x = results[fmt] if isinstance(results[fmt], dict) else {}
            rows.append([rec(n), fmt, text(x.get("dataset")), num(x.get("facts"), 0), num(x.get("entities"), 0),
                         num(x.get("literals"), 0), num(x.get("import_s"), 1), num(x.get("facts_per_s"), 0),
                         num(x.get("reimport_s"), 1), num(x.get("reimport_added"), 0), num(get(r, "machine.load_avg_1m"), 2)])
    return rows


def load_test(records: list[Record]) -> list[list[str]]:
    return [[rec(n), num(r.get("askers"), 0), num(r.get("duration_s"), 0), num(r.get("requests"), 0), num(r.get("errors"), 0),
             num(r.get("requests_per_s"), 2), num(get(r, "latency.p50_ms"), 0), num(get(r, "latency.p95_ms"), 0),
             num(get(r, "review.accepted"), 0), num(get(r, "review.lost_decisions"), 0)]
            for n, r in records]


def fusion(records: list[Record]) -> list[list[str]]:
    rows = []
    for n, r in records:
        hits = r.get("test_hits@1") if isinstance(r.get("test_hits@1"), dict) else {}
        readers: dict[str, dict[str, Any]] = {}
        for key, value in hits.items():  # {reader: {dataset: h}} or {"dataset-reader": h}
            if isinstance(value, dict):
                readers.setdefault(key, {}).update(value)
            else:
                dataset, _, name = key.partition("-")
                readers.setdefault(name or key, {})[dataset] = value
        rows += [[rec(n), reader, pct(v.get("webqsp")), pct(v.get("freebaseqa"))] for reader, v in readers.items()]
    return rows
