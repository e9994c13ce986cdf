"""``qa-system ask``: questions in, answers out (one question, or a file of them, through one loaded pipeline)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qa_system.errors import InputError, QAError

SOURCES = {"graph": "from the graph", "graph-unsure": "from the graph, unsure", "llm": "from the LLM", "none": "no answer"}
MAX_EVIDENCE = 5  # evidence lines printed under a plain-text answer (--json has them all)


def _provenance(provenance: Any) -> str:
    kind = getattr(provenance.source_kind, "value", str(provenance.source_kind))
    if kind == "dataset":
        return " ".join(part for part in (provenance.dataset or "dataset", provenance.split) if part)
    if kind == "extractor":
        return f"extracted from {provenance.document_id or 'a document'}"
    if kind == "llm":
        return f"proposed by LLM {provenance.model}".strip()
    return f"entered by {provenance.reviewer or 'a maintainer'}"


def answer_text(answer: Any, max_evidence: int = MAX_EVIDENCE) -> str:
    """An ``Answer`` as people read it (``ask`` without ``--json``): the answer, its confidence and
    source, then one line per evidence fact, relations in words::

        Christopher Nolan  (confidence 0.91, from the graph)
          Christopher Nolan —film→ Inception   [verified, fb15k-237 train]

    A literal answer (``kind == "value"``) prints its value; no answer prints the message."""

    from qa_system.relations import readable_relation

    if answer.answer is None:
        return answer.message or "No answer."
    source = SOURCES.get(answer.source, answer.source)
    if answer.source == "llm" and answer.validated is not None:
        source += ", validated" if answer.validated else ", not validated"
    lines = [f"{answer.answer.name}  (confidence {answer.confidence:.2f}, {source})"]
    if answer.message:
        lines.append(f"  {answer.message}")
    for fact in answer.evidence[:max_evidence]:
        status = getattr(fact.status, "value", str(fact.status))
        lines.append(f"  {fact.subject_name} —{readable_relation(fact.relation)}→ {fact.object_name}   "
                     f"[{status}, {_provenance(fact.provenance)}]")
    if len(answer.evidence) > max_evidence:
        lines.append(f"  … {len(answer.evidence) - max_evidence} more (--json)")
    return "\n".join(lines)


def _ask(args: argparse.Namespace, settings: Any) -> int:
    from graph.open import open_store
    from qa_system.ask.pipeline import check_read_topics, freeze_loaded_heap, load_pipeline
    from qa_system.cli import emit_json
    from qa_system.explore import ensure_demo_graph

    if (args.question is None) == (args.file is None):
        raise InputError("give a QUESTION or --file QUESTIONS.txt (one of them)")
    if args.read_topics is not None:
        check_read_topics(args.read_topics)
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
        pipeline = load_pipeline(settings, store, reader_dir=args.checkpoint, read_topics=settings.read_topics if args.read_topics is None else args.read_topics,
                                 constraints=not args.no_constraints, use_faiss=settings.fuzzy_linking)
        if args.fallback:
            from qa_system.fallback.step import build_fallback_step

            pipeline.fallback = build_fallback_step(settings, store)
        if len(questions) > 1:  # many answers from one load: keep the collector off the loaded models
            freeze_loaded_heap()
        for line_number, question in enumerate(questions, start=1):
            try:
                answer = pipeline.ask(question)
            except QAError as e:
                if args.file is None:
                    raise
                emit_json({"question": question, "error": str(e), "line": line_number})
                continue
            if args.json or args.jsonl or args.file is not None:
                emit_json(answer.model_dump(mode="json"))
            else:
                sys.stdout.write(answer_text(answer) + "\n")
    finally:
        store.close()
    return 0


def register(commands: Any, train: Any, evaluate: Any) -> None:
    p = commands.add_parser("ask", help="answer a question from the graph (or --file, one question per line)")
    p.add_argument("question", nargs="?", help="the question (or give --file)")
    p.add_argument("--file", type=Path, help="questions, one per line; one JSON object per line out, in order")
    p.add_argument("--checkpoint", type=Path, help="reader checkpoint folder (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    p.add_argument("--jsonl", action="store_true", help="print one JSON object per answer (what --file always does)")
    p.add_argument("--fallback", action="store_true", help="when the graph is not sure, ask the LLM and validate its triples "
                   "(entailed ones are inserted as proposed, for review)")
    p.add_argument("--read-topics", type=int, metavar="K",
                   help="read each of the first K linked entities and answer from the best (slower; default $QA_READ_TOPICS or 1)")
    p.add_argument("--no-constraints", action="store_true", help="leave out the re-ordering by the other entities the question names")
    p.set_defaults(func=_ask)
