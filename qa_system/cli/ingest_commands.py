"""``qa-system ingest PATH...``: grow the graph from text files with an extractor.

Input problems (unsupported or unreadable files, bad ``.jsonl`` lines) are reported on stderr and
in the JSON ``problems`` list; everything else is ingested and the exit code is 2 so scripts notice.
``--dry-run`` previews (extract and resolve) without writing anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qa_system.errors import CheckpointError, InputError

DRY_RUN_SHOWN = 50  # triples listed in the human-readable dry run
DRY_RUN_JSON_MAX = 10_000  # triples in the JSON dry run (the rest counted only)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; a folder stands for its ``.txt``/``.md``/``.jsonl`` files (recursively, sorted)."""

    from qa_system.ingest.documents import SUFFIXES

    out: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise InputError(f"{path}: folder holds no {', '.join(SUFFIXES)} files")
            out.extend(found)
        else:
            out.append(path)
    return out


def run_ingest(args: argparse.Namespace, settings: Any, *, extractor: Any = None) -> int:
    """The command handler; ``extractor`` is injectable so tests run it without a trained model."""

    from tqdm import tqdm

    from qa_system.cli.graph_commands import opened_store
    from qa_system.ingest.extractors import load_extractor
    from qa_system.ingest.ingester import EntityResolver, Ingester, iter_documents

    if not 0.0 <= args.min_score <= 1.0:
        raise InputError(f"--min-score must be between 0 and 1; got {args.min_score}")
    if not 0.0 < args.similarity_threshold <= 1.0:
        raise InputError(f"--similarity-threshold must be in (0, 1]; got {args.similarity_threshold}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {args.batch_size}")
    paths = expand_paths(args.paths)
    problems: list[str] = []
    if extractor is None:
        try:
            extractor = load_extractor(args.extractor, Path(args.checkpoint) if args.checkpoint else None)
        except ImportError as e:
            raise CheckpointError(f"the {args.extractor} extractor is not available in this install ({e})") from e
    bar = tqdm(total=0, desc="ingest", unit="sentence", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        with opened_store(settings) as store:
            resolver = EntityResolver(store, workspace=settings.workspace, threshold=args.similarity_threshold,
                                      use_embeddings=not args.exact_only)  # fmt: skip
            ingester = Ingester(store, extractor, workspace=settings.workspace, resolver=resolver,
                                min_score=args.min_score, batch_size=args.batch_size)  # fmt: skip
            documents = iter_documents(paths, errors=problems)
            if args.dry_run:
                preview = ingester.preview(list(documents), progress=progress)
                payload, text = _dry_run_report(preview)
            else:
                summary = ingester.ingest(documents, progress=progress)
                payload = summary.as_dict() | {"extractor": extractor.name, "checkpoint": extractor.checkpoint}
                text = _summary_text(summary)
    finally:
        bar.close()
    payload["problems"] = problems
    for problem in problems:
        sys.stderr.write(f"skipped: {problem}\n")
    if args.json:
        from qa_system.cli import emit_json

        emit_json(payload)
    else:
        sys.stdout.write(text + "\n")
    if problems and not payload.get("documents"):
        raise InputError(f"nothing to ingest: {len(problems)} input problem(s), first: {problems[0]}")
    return 2 if problems else 0


def _summary_text(summary: Any) -> str:
    return (
        f"ingested {summary.documents} document(s), {summary.sentences} sentence(s): "
        f"triples +{summary.triples_added} added, {summary.triples_merged} merged, {summary.triples_skipped} skipped; "
        f"{summary.new_entities} new entities; {summary.passages_added} passages added"
    )


def _dry_run_row(t: Any) -> dict[str, Any]:
    s = t.sentence
    return {
        "document_id": s.document_id, "sentence": s.text, "start": s.start, "end": s.end,
        "subject_text": t.subject_text, "relation": t.relation, "object_text": t.object_text,
        "subject_id": t.subject_id, "subject_name": t.subject_name, "subject_new": t.subject_new,
        "object_id": t.object_id, "object_name": t.object_name, "object_new": t.object_new,
        "score": t.score, "action": t.action, "reason": t.reason, "fact_id": t.fact_id,
    }  # fmt: skip


def _dry_run_line(t: Any) -> str:
    subject = ("+" if t.subject_new else "") + t.subject_name  # a new entity is marked with +
    obj = ("+" if t.object_new else "") + t.object_name
    return f"  {t.action:5}  {t.score:.2f}  {subject} | {t.relation} | {obj}  ({t.reason})"


def _dry_run_report(preview: Any) -> tuple[dict[str, Any], str]:
    counts = preview.counts()
    new_entities = {
        entity_id
        for t in preview.triples
        if t.action == "add"
        for entity_id, new in ((t.subject_id, t.subject_new), (t.object_id, t.object_new))
        if new
    }
    payload = {
        "dry_run": True, "documents": len(preview.documents), "sentences": len(preview.sentences),
        "triples_to_add": counts["add"], "triples_to_merge": counts["merge"], "triples_to_skip": counts["skip"],
        "new_entities": len(new_entities), "extractor": preview.extractor, "checkpoint": preview.checkpoint,
        "triples": [_dry_run_row(t) for t in preview.triples[:DRY_RUN_JSON_MAX]],
        "triples_truncated": len(preview.triples) > DRY_RUN_JSON_MAX,
    }  # fmt: skip
    head = (
        f"dry run (nothing written): {len(preview.documents)} document(s), {len(preview.sentences)} sentence(s); "
        f"would add {counts['add']}, merge {counts['merge']}, skip {counts['skip']} triple(s); {len(new_entities)} new entities"
    )
    lines = [head, *(_dry_run_line(t) for t in preview.triples[:DRY_RUN_SHOWN])]
    if len(preview.triples) > DRY_RUN_SHOWN:
        lines.append(f"  ... and {len(preview.triples) - DRY_RUN_SHOWN} more (use --json for all)")
    return payload, "\n".join(lines)


def register(commands: argparse._SubParsersAction, train: Any, evaluate: Any) -> None:
    from qa_system.ingest.entity_resolution import DEFAULT_THRESHOLD
    from qa_system.ingest.extractors import EXTRACTOR_KINDS

    p = commands.add_parser("ingest", help="extract facts from .txt/.md/.jsonl files into the graph")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders of .txt/.md/.jsonl files")
    p.add_argument("--extractor", choices=EXTRACTOR_KINDS, default="qidn", help="extraction model (default qidn)")
    p.add_argument("--checkpoint", help="checkpoint folder (default: the shipped one of --extractor)")
    p.add_argument("--dry-run", action="store_true", help="show what would be added; write nothing")
    p.add_argument("--min-score", type=float, default=0.5, help="skip triples the extractor scores below this (default 0.5)")
    p.add_argument("--similarity-threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"cosine a mention needs to match an entity name by similarity (default {DEFAULT_THRESHOLD})")
    p.add_argument("--exact-only", action="store_true", help="match mentions by exact name or alias only (no MiniLM)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per extractor batch (default 32)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run_ingest)
