"""Maintainer commands: ``forget`` an ingested document, ``merge`` duplicate entities (``qa_system.maintain.actions``),
``curate retract|edit|add|rename`` (``qa_system.maintain.curate``)."""

from __future__ import annotations

import argparse
from typing import Any

from qa_system.cli.graph_commands import opened_store
from qa_system.cli.review_commands import _default_reviewer, _emit

SHOWN = 20  # facts listed in the human-readable output


def _forget(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.actions import forget_document

    with opened_store(settings) as store:
        report = forget_document(
            store, settings.workspace, args.document, dry_run=args.dry_run, reason=args.reason or "", reviewer=args.reviewer
        )
    counts = report.counts()
    verb = "would remove" if report.dry_run else "removed"
    lines = [
        f"{'dry run: ' if report.dry_run else ''}forget {', '.join(report.document_ids)}: {verb} {counts['facts']} fact(s), "
        f"{counts['entities']} entit{'y' if counts['entities'] == 1 else 'ies'}, {counts['passages']} passage(s)",
        *[f"  fact {f.id}  {f.subject_name} | {f.relation} | {f.object_name}  ({f.status.value})" for f in report.facts[:SHOWN]],
        *([f"  ... and {len(report.facts) - SHOWN} more"] if len(report.facts) > SHOWN else []),
        *[f"  entity {e.id}  {e.name}" for e in report.entities[:SHOWN]],
    ]
    payload = {
        "dry_run": report.dry_run, "document_ids": report.document_ids, "counts": counts,
        "facts": [{"id": f.id, "subject": f.subject, "relation": f.relation, "object": f.object, "status": f.status.value}
                  for f in report.facts],
        "entities": [{"id": e.id, "name": e.name} for e in report.entities],
        "reason": report.reason, "reviewer": report.reviewer, "event_id": report.event_id or None,
    }  # fmt: skip
    if report.event_id:
        lines.append(f"(event {report.event_id}; undo: qa-system review undo {report.event_id})")
    _emit(args, payload, "\n".join(lines))
    return 0


def _merge(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.actions import merge_entities

    with opened_store(settings) as store:
        report = merge_entities(store, settings.workspace, args.keep, args.duplicates, reason=args.reason or "", reviewer=args.reviewer)
    text = (
        f"merged {', '.join(report.duplicates)} into {report.keep}: {len(report.moved)} fact(s) moved "
        f"({len(report.already_present)} already on it, {len(report.dropped_self_loops)} self-loop(s) dropped); "
        f"aliases added: {', '.join(report.aliases_added) or '-'}\n(event {report.event_id}; undo: qa-system review undo {report.event_id})"
    )
    payload = report.model_dump(mode="json")
    _emit(args, payload, text)
    return 0


def _curate(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain import curate
    from qa_system.maintain.events import describe, summary

    with opened_store(settings) as store:
        who = {"actor": args.reviewer, "reason": args.reason or ""}
        if args.curate_action == "retract":
            event = curate.retract(store, args.fact_id, **who)
        elif args.curate_action == "edit":
            event = curate.correct(store, args.fact_id, subject=args.subject, relation=args.relation, obj=args.object, **who)
        elif args.curate_action == "add":
            event = curate.add_fact(store, args.subject, args.relation, args.object, source=args.source or "", **who)
        else:
            event = curate.rename(store, args.entity_id, args.new_name, keep_old_name=not args.drop_old_name, **who)
    _emit(args, summary(event), f"{describe(event)}\n(undo: qa-system review undo {event.id})")
    return 0


def register(commands: argparse._SubParsersAction, train: Any, evaluate: Any) -> None:
    p = commands.add_parser("forget", help="take back an ingested document: its facts, the entities only it created, its passages")
    p.add_argument("document", help="document id (as ingest named it) or the path of the ingested file")
    p.add_argument("--dry-run", action="store_true", help="show what would be removed; change nothing")
    p.add_argument("--reason", help="why (kept in the audit log)")
    p.add_argument("--reviewer", default=_default_reviewer(), help="your name (default $QA_REVIEWER or the login name)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_forget)

    p = commands.add_parser("merge", help="merge duplicate entities into one (their ids keep resolving to it)")
    p.add_argument("keep", metavar="KEEP_ID", help="id of the entity to keep")
    p.add_argument("duplicates", metavar="DUPLICATE_ID", nargs="+", help="id(s) of the duplicates to fold into it")
    p.add_argument("--reason", help="why (kept in the audit log)")
    p.add_argument("--reviewer", default=_default_reviewer(), help="your name (default $QA_REVIEWER or the login name)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_merge)

    curate = commands.add_parser("curate", help="fix the graph by hand: retract, correct or add a fact, rename an entity (undoable)")
    actions = curate.add_subparsers(dest="curate_action", metavar="ACTION", required=True)
    p = actions.add_parser("retract", help="take a fact (any status) out of the answers: it becomes rejected")
    p.add_argument("fact_id", help="id of the fact")
    p = actions.add_parser("edit", help="correct a fact (any status): the corrected fact is verified, the original rejected")
    p.add_argument("fact_id", help="id of the fact")
    p.add_argument("--subject", help="corrected subject (entity id or exact name)")
    p.add_argument("--relation", help="corrected relation")
    p.add_argument("--object", help="corrected object (entity id or exact name)")
    p = actions.add_parser("add", help="add a verified fact between two existing entities, with its source")
    p.add_argument("subject", help="subject (entity id or exact name)")
    p.add_argument("relation", help="relation id")
    p.add_argument("object", help="object (entity id or exact name)")
    p.add_argument("--source", required=True, help="where it comes from (a URL, a document, a reference)")
    p = actions.add_parser("rename", help="rename an entity (its old name becomes an alias)")
    p.add_argument("entity_id", help="id of the entity")
    p.add_argument("new_name", help="its new name")
    p.add_argument("--drop-old-name", action="store_true", help="do not keep the old name as an alias")
    for p in actions.choices.values():
        p.add_argument("--reason", required=True, help="why (kept in the event)")
        p.add_argument("--reviewer", default=_default_reviewer(), help="your name (default $QA_REVIEWER or the login name)")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        p.set_defaults(func=_curate)
