"""Generate docs/RESULTS.md from the JSON records in evaluation/results/.

    python -m evaluation.report [--results DIR] [--out docs/RESULTS.md] [--readme README.md] [--headline]

Every number in the output is read from a record, never typed: the tables say which record file
each row comes from and the command that reproduces it (the record's ``command`` field, or the
family's benchmark command when the record has none). A record family without files is skipped; a
record missing a key shows "—"; a record no family claims is listed at the end. The output is
deterministic (files in name order, no timestamps), so a test can check that the committed
docs/RESULTS.md equals a fresh generation. ``--headline`` prints the short table the README
carries between its ``<!-- results:start -->`` / ``<!-- results:end -->`` markers.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from evaluation.report_tables import (
    QA_HEADERS,
    Record,
    ask_latency,
    calibration,
    clean_command,
    entailment,
    extraction,
    extraction_speed,
    fallback,
    fusion,
    get,
    graph_store,
    grow_then_ask,
    import_throughput,
    ingest,
    link_prediction,
    linking,
    load_records,
    load_test,
    num,
    pct,
    qa_shipped,
    qa_variants,
    reachability,
    relation_scorer,
    table,
    unseen_entities,
    validation,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"


Builder = Callable[[list[Record]], list[list[str]]]
# (title, file patterns, headers, builder, the command when a record has none, a one-line note)
FAMILIES: list[tuple[str, tuple[str, ...], list[str], Builder, str, str]] = [
    ("Question answering: the shipped chain", ("qa-shipped-*.json",), QA_HEADERS, qa_shipped,
     "qa-system evaluate qa --dataset D --split test --setting S --linking L --json",
     "Hits@1 / Hits@5 in %, test split. Oracle linking gives the gold topic; predicted linking uses the app's linker. "
     "'Answered sure' is the share above the calibrated threshold and the accuracy there."),
    ("Question answering: variants and ablations", ("qa-*.json",),
     ["record", "dataset", "split", "setting", "linking", "fusion", "reranker", "read topics", "questions", "Hits@1", "Hits@5"],
     qa_variants, "qa-system evaluate qa ... --json",
     "Earlier or alternative configurations of the same evaluation (see docs/HISTORY.md for what each was)."),
    ("Answer reachability: the ceiling any reader over this graph has", ("reachability-*.json",),
     ["record", "dataset", "split", "setting", "questions", "topic not in graph", "no answer in graph", "answer 1 hop",
      "2 hops", "farther", "ceiling 1 hop (%)", "ceiling ≤ 2 hops (%)", "ceiling any (%)"], reachability,
     "python -m evaluation.answer_reachability --dataset D --setting S --json",
     "Counts of test questions by where the gold answer lies from the gold topic on the demo graph."),
    ("Link prediction (HittER)", ("kge-*.json",),
     ["record", "dataset", "split", "MRR", "Hits@1", "Hits@3", "Hits@10", "queries"], link_prediction,
     "qa-system evaluate kge --dataset fb15k-237 --split test --json",
     "Filtered ranking over all entities, both directions, ties count as the mean rank."),
    ("Entity linking", ("linking-*.json",),
     ["record", "dataset", "split", "setting", "questions", "recall@1", "recall@5", "answerable", "answerable recall@1",
      "answerable recall@5"], linking, "python -m evaluation.linking_eval --dataset D --split test --setting S --json",
     "Gold topic among the linker's top 1 / top 5; 'answerable' = questions whose gold topic is in the graph."),
    ("Relation scorer", ("relation-scorer-*.json",),
     ["record", "name", "model", "split", "relation Hits@1", "questions", "held-out third Hits@1", "seen two thirds Hits@1",
      "p50 ms", "p95 ms"], relation_scorer, "python -m evaluation.relation_scorer_eval --name NAME",
     "Relation Hits@1 (%): the top-scored relation and direction links the topic to a gold answer."),
    ("Calibration of the answer confidence", ("reader-calibration*.json",),
     ["record", "dev questions", "linking", "ECE raw", "ECE calibrated", "threshold", "answered (%)", "accuracy answered (%)"],
     calibration, "qa-system calibrate", "Fitted on dev; the threshold answers with ≥ 80% accuracy on dev."),
    ("Fusion ablation (graph encodings and cross-attention)", ("fusion-*.json",),
     ["record", "reader", "WebQSP Hits@1", "FreebaseQA Hits@1"], fusion,
     "qa-system evaluate qa --dataset D --split test --setting filtered --linking oracle --checkpoint RUN/best "
     "--no-text-match --no-reranker --no-constraints --json",
     "Test, filtered, oracle topic, reader alone."),
    ("Grow the graph, then ask", ("grow-then-ask-*.json",),
     ["record", "dataset", "split", "extractor", "texts", "questions", "Hits@1", "gold next to linked topic (%)",
      "Hits@1 where reachable", "answered sure (%)", "precision when sure (%)", "ask ms (mean)"], grow_then_ask,
     "python -m evaluation.grow_then_ask", "Ingest texts into a fresh demo graph, then ask about the facts they hold."),
    ("Entities the models never saw", ("unseen-entities-*.json",),
     ["record", "dataset", "split", "linking", "questions", "Hits@1 all seen", "Hits@1 topics hidden", "answered sure hidden (%)",
      "precision when sure hidden (%)"], unseen_entities, "python -m evaluation.unseen_entities --dataset D --split test",
     "The same questions with their topics removed from the models' entity vocabulary."),
    ("Extraction (WebNLG)", ("extractor-*.json",),
     ["record", "model", "dataset", "split", "P", "R", "F1", "Normal F1", "SEO F1", "EPO F1"], extraction,
     "qa-system evaluate extractor --model M --dataset D --split test --json",
     "Exact match of subject, relation and object strings; in %."),
    ("Extraction speed", ("extractor-*speed*.json",),
     ["record", "model", "threads", "batch", "sentences", "sentences/s", "single p50 ms", "single p99 ms"], extraction_speed,
     "python -m evaluation.bench_extraction --batch-size 32 --threads 2", ""),
    ("Entailment", ("entailment-*.json",),
     ["record", "dataset", "split", "mode", "pairs", "accuracy (%)", "macro F1 (%)"], entailment,
     "qa-system evaluate entailment --dataset D --split test --json", ""),
    ("Validation (SATORI-style, WebNLG)", ("validation-webnlg-*.json",),
     ["record", "split", "limit", "queries", "gold objects", "P before", "P after", "R before", "R after", "F1 before",
      "F1 after", "precision gain (points)", "recall kept (%)"], validation,
     "qa-system evaluate validation --dataset webnlg --split test --json", ""),
    ("ask latency", ("ask-latency*.json",),
     ["record", "backend", "reranker", "top k", "precision", "read topics", "questions", "p50 ms", "p95 ms", "p99 ms",
      "link p50 ms", "batched q/s", "load avg 1m"], ask_latency, "python -m evaluation.bench_ask --threads 2 [--bolt]",
     "Warm, in-process, WebQSP test questions. A/B records list each alternating run; compare runs within one record only. "
     "A load average far above the 2 cores means other jobs shared them: compare such runs only with runs under the same load."),
    ("LLM fallback latency", ("fallback-latency*.json",),
     ["record", "questions", "total p50 s", "total p95 s", "LLM p50 s", "validation p50 s", "triples proposed",
      "inserted as proposed", "answers validated"], fallback, "python -m evaluation.bench_fallback --questions 30", ""),
    ("Graph store", ("graph-*.json",),
     ["record", "backend", "entities", "facts", "import s", "1-hop p50 ms", "1-hop p95 ms", "2-hop p50 ms", "2-hop p95 ms",
      "load avg 1m"], graph_store, "python -m evaluation.bench_graph --backend embedded|bolt", ""),
    ("Ingest (text → graph)", ("ingest-*.json",),
     ["record", "extractor", "sentences", "first run s", "sentences/s", "facts added", "merged", "new entities", "second run s",
      "second run added"], ingest, "python -m evaluation.bench_ingest --sentences 1000 --extractor gold|qidn",
     "The second run re-ingests the same files: it must add nothing."),
    ("Import throughput (import-kg)", ("import-throughput*.json",),
     ["record", "format", "dataset", "facts", "entities", "literals", "import s", "facts/s", "re-import s", "re-import added",
      "load avg 1m"], import_throughput, "python -m evaluation.bench_import --facts 100000",
     "A generated Movies-style graph into a fresh embedded store; re-importing must add nothing."),
    ("Load test", ("load-test*.json",),
     ["record", "askers", "duration s", "questions", "errors", "questions/s", "p50 ms", "p95 ms", "review accepts", "lost accepts"],
     load_test, "python -m evaluation.load_test --askers 8 --duration 120 --json", ""),
]


def claim(records: dict[str, dict[str, Any]]) -> list[tuple[tuple[str, ...], list[Record]]]:
    """Each family's records; a file goes to the first family whose pattern matches it (so 'shipped' beats 'qa-*')."""

    taken: set[str] = set()
    out = []
    for family in FAMILIES:
        patterns = family[1]
        names = [n for n in records if n not in taken and any(fnmatch.fnmatch(n, p) for p in patterns)]
        if family[3] is extraction:  # speed records belong to the speed table
            names = [n for n in names if "speed" not in n]
        taken.update(names)
        out.append((patterns, [(n, records[n]) for n in names]))
    return out


def commands(records: Iterable[Record], default: str) -> list[str]:
    seen: dict[str, None] = {}
    for _, r in records:
        c = clean_command(r.get("command") or r.get("eval_command"))
        if not c and isinstance(r.get("commands"), list):
            c = "; ".join(clean_command(x) for x in r["commands"] if isinstance(x, str))
        seen.setdefault(c or default, None)
    return list(seen)


def render(folder: Path = RESULTS_DIR) -> str:
    records = load_records(folder)
    lines = ["# Results", "",
             "Generated by `python -m evaluation.report` from the JSON records in `evaluation/results/` — do not edit by hand;",
             "`tests/evaluation/test_report.py` fails when this file and the records disagree. Numbers are as recorded",
             "(machine, load and date are in each record); 2-core CPU machine unless a record says otherwise. The story",
             "behind them is in `docs/HISTORY.md`.", ""]
    claimed: set[str] = set()
    skipped = []
    for (title, _patterns, headers, builder, default, note), (_, members) in zip(FAMILIES, claim(records)):
        claimed.update(n for n, _ in members)
        rows = builder(members) if members else []
        if not rows:
            skipped.append(title)
            continue
        lines += [f"## {title}", ""]
        if note:
            lines += [note, ""]
        lines += table(headers, rows) + [""]
        cmds = commands(members, default)
        if len(cmds) <= 3:
            lines += ["Reproduce: " + "; ".join(f"`{c}`" for c in cmds), ""]
        else:
            lines += ["<details><summary>Reproduce (each record's command)</summary>", ""]
            lines += [f"- `{c}`" for c in cmds] + ["", "</details>", ""]
    other = [n for n in records if n not in claimed]
    if other:
        lines += ["## Other records", "", "Kept in `evaluation/results/` but not tabulated here (tuning grids, dev-only studies):", ""]
        lines += [f"- `{n}`" + (f": {clean_command(records[n].get('command'))}" if clean_command(records[n].get("command")) else "")
                  for n in other] + [""]
    if skipped:
        lines += ["Sections without records (skipped): " + "; ".join(skipped) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- the README's headline table


def headline(folder: Path = RESULTS_DIR) -> str:
    """A short table (one line per headline number) for the README; rows whose records are absent are left out."""

    r = load_records(folder)

    def qa(dataset: str) -> tuple[str, list[str]] | None:
        o, p = f"qa-shipped-{dataset}-filtered-oracle.json", f"qa-shipped-{dataset}-filtered-predicted.json"
        if o not in r and p not in r:
            return None
        return (f"{pct(get(r.get(o), 'hits@1'))} / {pct(get(r.get(p), 'hits@1'))}", [o, p])

    rows: list[tuple[str, tuple[str, list[str]] | None]] = [
        ("QA Hits@1, WebQSP filtered test (gold topic / linked topic), %", qa("webqsp")),
        ("QA Hits@1, FreebaseQA filtered test (gold topic / linked topic), %", qa("freebaseqa")),
    ]
    n = "linking-webqsp-filtered.json"
    rows.append(("Entity linking recall@1 / @5, WebQSP filtered test",
                 (f"{num(get(r.get(n), 'metrics.recall@1'), 3)} / {num(get(r.get(n), 'metrics.recall@5'), 3)}", [n]) if n in r else None))
    n = "kge-fb15k237-small-test.json"
    rows.append(("Link prediction MRR, FB15k-237 test (HittER, small)", (num(get(r.get(n), "metrics.mrr"), 3), [n]) if n in r else None))
    n = "extractor-qidn-webnlg-test.json"
    rows.append(("Extraction F1, WebNLG test (QIDN, exact entities), %", (pct(get(r.get(n), "f1")), [n]) if n in r else None))
    n = "validation-webnlg-test.json"
    if n in r:
        v = validation([(n, r[n])])[0]
        rows.append(("Validation: precision gain (points) at recall kept (%), WebNLG test", (f"+{v[11]} at {v[12]}", [n])))
    n = "grow-then-ask-webnlg-val-qidn.json"
    rows.append(("Grow then ask: WebNLG val texts ingested, generated questions, Hits@1 % (answered sure: share / precision)",
                 (f"{pct(get(r.get(n), 'hits_at_1'))} ({pct(get(r.get(n), 'answered_sure'))} / {pct(get(r.get(n), 'precision_when_sure'))})", [n])
                 if n in r else None))
    n = "unseen-entities-webqsp.json"
    rows.append(("Topics the graph models never saw, WebQSP filtered test, Hits@1 % (all seen)",
                 (f"{pct(get(r.get(n), 'hits_at_1_topics_hidden'))} ({pct(get(r.get(n), 'hits_at_1_all_seen'))})", [n]) if n in r else None))
    n = "ask-latency.json"
    rows.append(("`ask` latency p50 / p95, ms (2 CPU cores, warm)",
                 (f"{num(get(r.get(n), 'ask.p50_ms'), 0)} / {num(get(r.get(n), 'ask.p95_ms'), 0)}", [n]) if n in r else None))
    n = "import-throughput.json"
    rows.append(("Import throughput, CSV / N-Triples, facts/s",
                 (f"{num(get(r.get(n), 'results.csv.facts_per_s'), 0)} / {num(get(r.get(n), 'results.nt.facts_per_s'), 0)}", [n])
                 if n in r else None))
    body = [[label, value, ", ".join(f"`{f}`" for f in files)] for label, got in rows if got for value, files in [got]]
    return "\n".join(table(["measure", "value", "record"], body)) + "\n"


START, END = "<!-- results:start -->", "<!-- results:end -->"


def readme_block(readme: str) -> str | None:
    """The text between the README's results markers (None without them)."""

    if START not in readme or END not in readme:
        return None
    return readme.split(START, 1)[1].split(END, 1)[0]


def with_headline(readme: str, folder: Path = RESULTS_DIR) -> str:
    """The README with a fresh headline table between its markers."""

    if readme_block(readme) is None:
        raise ValueError(f"no {START} / {END} markers")
    head, rest = readme.split(START, 1)
    return head + START + "\n" + headline(folder) + END + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.report", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of JSON records")
    parser.add_argument("--out", type=Path, default=Path("docs/RESULTS.md"), help="where to write the report ('-': stdout)")
    parser.add_argument("--headline", action="store_true", help="print only the README's headline table")
    parser.add_argument("--readme", type=Path, help="also rewrite the headline table between this file's results markers")
    args = parser.parse_args(argv)
    if args.headline:
        sys.stdout.write(headline(args.results))
        return 0
    if args.readme:
        args.readme.write_text(with_headline(args.readme.read_text(encoding="utf-8"), args.results), encoding="utf-8")
    out = render(args.results)
    if str(args.out) == "-":
        sys.stdout.write(out)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(out, encoding="utf-8")
        print(f"wrote {args.out} ({len(out.splitlines())} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
