"""Review commands: ``review list | show | accept | edit | reject`` over proposed (LLM) facts, and
``review log | undo`` over the maintainers' audit trail (``qa_system.maintain.events``)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from qa_system.cli.graph_commands import opened_store
from qa_system.types import parse_duration


def _default_reviewer() -> str:
    try:
        return os.environ.get("QA_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):
        return ""


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if args.json:
        from qa_system.cli import emit_json

        emit_json(payload)
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _list(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.review import ReviewQueue, fact_score

    with opened_store(settings) as store:
        items = ReviewQueue(store, settings.workspace).list(
            relation=args.relation,
            min_score=args.min_score,
            max_score=args.max_score,
            older_than=parse_duration(args.older_than) if args.older_than else None,
            newer_than=parse_duration(args.newer_than) if args.newer_than else None,
            limit=args.limit,
        )
    payload = {"count": len(items), "facts": [v.model_dump(mode="json") | {"score": fact_score(v)} for v in items]}
    lines = [f"{len(items)} proposed fact(s)"] + [
        f"{v.id}  {fact_score(v):.3f}  {v.subject_name} | {v.relation} | {v.object_name}"
        f"  ({v.provenance.created_at:%Y-%m-%d %H:%M}, {v.provenance.model or '?'})"
        for v in items
    ]
    _emit(args, payload, "\n".join(lines))
    return 0


def _show(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.review import ReviewQueue

    with opened_store(settings) as store:
        item = ReviewQueue(store, settings.workspace).show(args.fact_id)
    f, p = item.fact, item.fact.provenance
    lines = [
        f"fact {f.id}: {f.subject_name} | {f.relation} | {f.object_name}",
        f"status: {f.status.value}   score: {item.score if item.score is not None else '-'}   age: {item.age_hours:.1f} h",
        f"source: {p.source_kind.value}  model: {p.model or '-'}  endpoint: {p.endpoint or '-'}  validator: {p.checkpoint or '-'}",
        f"question: {p.question or '-'}",
        f"LLM answer: {p.raw_answer or '-'}",
        "premises:",
        *[f"  [{e['score'] if e['score'] is not None else '-'}] {e['premise']}" for e in item.evidence],
        "history:",
        *[f"  {h.get('at')} {h.get('action')} by {h.get('reviewer')}: {h.get('outcome')} {h.get('reason', '')}" for h in item.history],
    ]
    _emit(args, item.model_dump(mode="json"), "\n".join(lines))
    return 0


def _decision(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.review import ReviewQueue

    with opened_store(settings) as store:
        queue = ReviewQueue(store, settings.workspace)
        if args.review_action == "accept":
            outcome = queue.accept(args.fact_id, reviewer=args.reviewer, reason=args.reason or "")
        elif args.review_action == "reject":
            outcome = queue.reject(args.fact_id, reviewer=args.reviewer, reason=args.reason or "")
        else:
            outcome = queue.edit(
                args.fact_id, reviewer=args.reviewer, subject=args.subject, relation=args.relation, obj=args.object,
                reason=args.reason or "",
            )  # fmt: skip
    extra = f" (new fact {outcome.new_fact_id})" if outcome.new_fact_id and outcome.new_fact_id != outcome.fact_id else ""
    _emit(args, outcome.model_dump(mode="json"), f"{outcome.action}: fact {outcome.fact_id} is now {outcome.status.value}{extra}")
    return 0


def _log(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.events import describe, list_events, summary

    with opened_store(settings) as store:
        events = list_events(store, args.limit, args.offset, about=args.about)
    payload = {"count": len(events), "events": [summary(e, with_data=args.data) for e in events]}
    _emit(args, payload, "\n".join([f"{len(events)} event(s), newest first"] + [describe(e) for e in events]))
    return 0


def _undo(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.actions import undo
    from qa_system.maintain.events import summary

    with opened_store(settings) as store:
        event = undo(store, settings.workspace, args.event_id, args.reviewer, reason=args.reason or "")
        undone = store.get_event(event.undoes)
    payload = {"undo": summary(event), "undone": summary(undone) if undone else None}
    what = f"{undone.action} by {undone.actor or '?'} at {undone.at[:19]}" if undone else "?"
    _emit(args, payload, f"undone: event {event.undoes} ({what}); recorded as event {event.id}")
    return 0


def register(commands: argparse._SubParsersAction, train: Any, evaluate: Any) -> None:
    review = commands.add_parser("review", help="review the facts the LLM fallback proposed")
    actions = review.add_subparsers(dest="review_action", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="proposed facts, newest first")
    p.add_argument("--relation", help="only this relation id")
    p.add_argument("--min-score", type=float, help="entailment score at least this")
    p.add_argument("--max-score", type=float, help="entailment score at most this")
    p.add_argument("--older-than", help="proposed more than this long ago (30m, 12h, 2d, 1w)")
    p.add_argument("--newer-than", help="proposed less than this long ago")
    p.add_argument("--limit", type=int, default=50, help="at most this many facts")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_list)

    p = actions.add_parser("show", help="a proposed fact with its evidence and review history")
    p.add_argument("fact_id", help="id of the proposed fact")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_show)

    for name, help_text in (("accept", "mark verified"), ("reject", "mark rejected (kept out of answers)"), ("edit", "correct, then accept")):
        p = actions.add_parser(name, help=help_text)
        p.add_argument("fact_id", help="id of the proposed fact")
        p.add_argument("--reviewer", default=_default_reviewer(), help="your name (default $QA_REVIEWER or the login name)")
        p.add_argument("--reason", required=name == "reject", help="why (required for reject)")
        if name == "edit":
            p.add_argument("--subject", help="corrected subject (entity id or exact name)")
            p.add_argument("--relation", help="corrected relation")
            p.add_argument("--object", help="corrected object (entity id or exact name)")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        p.set_defaults(func=_decision)

    p = actions.add_parser("log", help="the maintainers' audit trail (kept in the graph store), newest first")
    p.add_argument("--limit", type=int, default=50, help="at most this many events (1-1000)")
    p.add_argument("--offset", type=int, default=0, help="skip this many of the newest first")
    p.add_argument("--about", metavar="ID", help="only the events that touched this fact or entity id")
    p.add_argument("--data", action="store_true", help="with --json: each event's full data (what undo writes back)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_log)

    p = actions.add_parser("undo", help="revert an event of the log (when no later event depends on it)")
    p.add_argument("event_id", metavar="EVENT_ID", help="id of the event (see `review log`)")
    p.add_argument("--reviewer", default=_default_reviewer(), help="your name (default $QA_REVIEWER or the login name)")
    p.add_argument("--reason", help="why (kept in the undo event)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_undo)
