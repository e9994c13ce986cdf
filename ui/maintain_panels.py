"""Curators' panels in the app: *merge into…* (Explore) and *forget a document* (Ingest).

Each panel previews first and then calls the same function the CLI does
(``qa_system.maintain.actions.merge_entities`` / ``forget_document``), under the logged-in
maintainer's name. The handlers are wrapped in ``ui.auth.requires("merge"|"forget")``: a reviewer
(or a session whose account was removed) is refused with one line and nothing runs. Bad input (an
unknown entity or document, an entity merged into itself, a changed preview) is one line too, and
changes nothing. The panels are hidden until a curator logs in (``MaintainerGate.reveal``).

``MaintainPanels`` holds the handlers, callable without a browser (``tests/ui/test_maintain_panels.py``).
"""

from __future__ import annotations

import html
import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import gradio as gr

from qa_system.errors import EntityNotFoundError, InputError, QAError
from qa_system.relations import readable_relation
from qa_system.types import FactStatus, FactView, is_literal
from ui.auth import MaintainerGate, Session, requires
from ui.messages import message_html

PREVIEW_ROWS = 200
DOCUMENT_CHOICES = 300
MOVE_COLUMNS = ["subject", "relation", "object", "status", "after the merge", "fact id"]
FORGET_COLUMNS = ["subject", "relation", "object", "status", "fact id"]


def by(function: Any, name: str) -> dict[str, str]:
    """The keyword naming who acts, as ``function`` spells it (``actor`` in the audit trail's
    version of the maintainer functions, ``reviewer`` before it)."""

    parameters = inspect.signature(function).parameters
    return {"actor": name} if "actor" in parameters else {"reviewer": name}


def _fact_cells(f: FactView) -> list[Any]:
    return [f.subject_name, readable_relation(f.relation), f.object_name, f.status.value]


# -- merge preview (read-only; the merge itself is merge_entities) ---------------------------------------
def merge_preview(store: Any, keep: str, duplicate: str) -> dict[str, Any]:
    """What merging ``duplicate`` into ``keep`` would do, read without writing: the duplicate's facts
    with what becomes of each (moves / already on the kept entity / dropped: a self-loop), and the
    names that become aliases. Refuses what ``merge_entities`` refuses, with the same words."""

    from graph.store import entities_by_id

    keep, duplicate = (keep or "").strip(), (duplicate or "").strip()
    if not keep or not duplicate:
        raise InputError("merge needs the entity to keep and the duplicate")
    if keep == duplicate:
        raise InputError(f"cannot merge {keep!r} into itself")
    for entity_id in (keep, duplicate):
        if is_literal(entity_id):
            raise InputError(f"{entity_id!r} is a literal value, not an entity; only entities can be merged")
    found = entities_by_id(store, [keep, duplicate])
    missing = [i for i in (keep, duplicate) if i not in found]
    if missing:
        raise EntityNotFoundError(f"unknown entity id(s): {', '.join(repr(m) for m in missing)} (nothing changed)")
    statuses = list(FactStatus)
    facts = store.neighbors([duplicate], hops=1, statuses=statuses, direction="both").facts
    on_kept = {(f.subject, f.relation, f.object) for f in store.neighbors([keep], hops=1, statuses=statuses, direction="both").facts}
    rows, fate = [], Counter()
    for f in sorted(facts, key=lambda f: (f.relation, f.subject_name, f.object_name)):
        subject, obj = (keep if f.subject == duplicate else f.subject), (keep if f.object == duplicate else f.object)
        what = "dropped (self-loop)" if subject == obj else "already on it" if (subject, f.relation, obj) in on_kept else "moves"
        fate[what] += 1
        rows.append([*_fact_cells(f), what, f.id])
    kept, dup = found[keep], found[duplicate]
    known = {n.casefold() for n in (kept.name, *kept.aliases)}
    aliases = [n for n in dict.fromkeys((dup.name, *dup.aliases)) if n.strip() and n.casefold() not in known]
    return {"keep": kept, "duplicate": dup, "rows": rows, "fate": dict(fate), "aliases": aliases}


def merge_summary_html(preview: dict[str, Any]) -> str:
    esc, kept, dup, fate = html.escape, preview["keep"], preview["duplicate"], preview["fate"]
    parts = [f"{fate.get('moves', 0)} fact(s) move", f"{fate.get('already on it', 0)} already on it",
             f"{fate.get('dropped (self-loop)', 0)} self-loop(s) dropped"]  # fmt: skip
    aliases = ", ".join(preview["aliases"]) or "none"
    return (
        f"<div id='merge-summary'><b>Merge preview:</b> <b>{esc(dup.name)}</b> (<code>{esc(dup.id)}</code>) goes into "
        f"<b>{esc(kept.name)}</b> (<code>{esc(kept.id)}</code>): {esc('; '.join(parts))}. New aliases: {esc(aliases)}. "
        f"<code>{esc(dup.id)}</code> will keep resolving to the kept entity. Press <b>Confirm merge</b> to apply.</div>"
    )


# -- forget -------------------------------------------------------------------------------------------------
def ingested_documents(workspace: Path, limit: int = DOCUMENT_CHOICES) -> list[tuple[str, str]]:
    """(label, document id) of the ingested documents, newest first (the passage file's order)."""

    from retrievers.passages import PassageStore

    counts: Counter[str] = Counter(p.document_id for p in PassageStore(workspace) if p.kind == "sentence" and p.document_id)
    newest = list(reversed(list(counts)))[:limit]
    return [(f"{d} ({counts[d]} sentence{'s' if counts[d] != 1 else ''})", d) for d in newest]


def forget_summary_html(report: Any) -> str:
    esc, counts = html.escape, report.counts()
    what = (f"{counts['facts']} fact(s), {counts['entities']} entit{'y' if counts['entities'] == 1 else 'ies'} "
            f"and {counts['passages']} passage(s)")  # fmt: skip
    docs = ", ".join(report.document_ids)
    if report.dry_run:
        return (f"<div id='forget-summary'><b>Dry run:</b> forgetting <code>{esc(docs)}</code> would remove {esc(what)}. "
                "Press <b>Forget this document</b> to apply.</div>")  # fmt: skip
    return f"<div id='forget-summary'>Forgot <code>{esc(docs)}</code>: removed {esc(what)}.</div>"


class MaintainPanels:
    """The panels' handlers; each takes the session first (``requires`` checks it)."""

    def __init__(self, store: Any, workspace: Path) -> None:
        self.store = store
        self.workspace = Path(workspace)

    # merge ----------------------------------------------------------------------------------------
    def preview_merge(self, session: Session, view: dict[str, Any] | None, keep_ref: str | None, keep_typed: str) -> tuple[Any, ...]:
        """(message, rows, pending {keep, duplicate}, confirm button update)."""

        duplicate = (view or {}).get("entity")
        if not duplicate:
            return message_html("Show an entity first: it is the duplicate that goes into the one you pick.", "info"), [], {}, gr.update(interactive=False)
        try:
            keep = self._entity_id(keep_ref, keep_typed)
            preview = merge_preview(self.store, keep, duplicate)
        except QAError as e:
            return message_html(str(e)), [], {}, gr.update(interactive=False)
        pending = {"keep": preview["keep"].id, "duplicate": duplicate}
        return merge_summary_html(preview), preview["rows"][:PREVIEW_ROWS], pending, gr.update(interactive=True)

    def _entity_id(self, ref: str | None, typed: str) -> str:
        from qa_system.explore import resolve_entity

        ref = (ref or "").strip()
        if ref:
            return ref
        if not (typed or "").strip():
            raise InputError("pick the entity to keep (type its name or id)")
        return resolve_entity(self.store, typed).id

    def confirm_merge(self, session: Session, pending: dict[str, Any] | None, reason: str) -> tuple[Any, ...]:
        """(message, pending cleared, confirm button, the Explore matches update to show the kept entity)."""

        from qa_system.maintain.actions import merge_entities

        if not pending or not pending.get("keep"):
            return message_html("Preview the merge first.", "info"), {}, gr.update(interactive=False), gr.update()
        try:
            report = merge_entities(self.store, self.workspace, pending["keep"], [pending["duplicate"]], reason=reason or "",
                                    **by(merge_entities, session.user))  # fmt: skip
        except QAError as e:
            return message_html(str(e)), {}, gr.update(interactive=False), gr.update()
        kept = self.store.get_entity(report.keep)
        name = kept.name if kept is not None else report.keep
        text = (f"Merged {', '.join(report.duplicates)} into {name} ({report.keep}) by {session.user}: {len(report.moved)} fact(s) "
                f"moved ({len(report.already_present)} already there, {len(report.dropped_self_loops)} self-loop(s) dropped); "
                f"aliases added: {', '.join(report.aliases_added) or 'none'}.")  # fmt: skip
        return message_html(text, "ok"), {}, gr.update(interactive=False), gr.update(choices=[(name, report.keep)], value=report.keep)

    # forget ---------------------------------------------------------------------------------------
    def documents(self, session: Session) -> Any:
        return gr.update(choices=ingested_documents(self.workspace))

    def preview_forget(self, session: Session, target: str | None) -> tuple[Any, ...]:
        """(message, rows, pending target, forget button update): the dry run."""

        from qa_system.maintain.actions import forget_document

        try:
            report = forget_document(self.store, self.workspace, target or "", dry_run=True)
        except QAError as e:
            return message_html(str(e)), [], "", gr.update(interactive=False)
        rows = [[*_fact_cells(f), f.id] for f in report.facts[:PREVIEW_ROWS]]
        return forget_summary_html(report), rows, (target or "").strip(), gr.update(interactive=True)

    def confirm_forget(self, session: Session, pending: str | None, target: str | None, reason: str) -> tuple[Any, ...]:
        """(message, rows, pending cleared, forget button, document choices)."""

        from qa_system.maintain.actions import forget_document

        keep = (gr.update(),) * 2
        if not pending:
            return message_html("Preview (dry run) first.", "info"), [], "", gr.update(interactive=False), gr.update()
        if (target or "").strip() != pending:
            return (message_html("The document changed since the preview: preview it again.", "info"), [], "",
                    gr.update(interactive=False), gr.update())  # fmt: skip
        try:
            report = forget_document(self.store, self.workspace, pending, reason=reason or "", **by(forget_document, session.user))
        except QAError as e:
            return message_html(str(e)), *keep, gr.update(interactive=False), gr.update()
        text = forget_summary_html(report).replace("<div id='forget-summary'>", "").replace("</div>", "") + f" By {html.escape(session.user)}."
        return (message_html(text, "ok"), [], "", gr.update(interactive=False),
                gr.update(choices=ingested_documents(self.workspace), value=None))  # fmt: skip


def build_merge_panel(store: Any, workspace: Path | None, gate: MaintainerGate | None, view: gr.State,
                      matches: gr.Dropdown) -> gr.EventListener | None:  # fmt: skip
    """Inside the Explore tab, under the entity card: "Merge into…". Returns the confirm event (the
    caller chains a re-show of the kept entity on it); None when there is no gate or workspace."""

    if gate is None or workspace is None:
        return None
    panels = MaintainPanels(store, workspace)
    with gr.Accordion("Merge into… (curators)", open=False, visible=False, elem_id="merge-panel") as panel:
        gr.Markdown("The entity shown above is the **duplicate**: its facts move to the entity you keep, its names become "
                    "aliases, and its id keeps resolving to the kept one. Preview first; the merge is recorded under your login.")
        with gr.Row():
            keep_query = gr.Textbox(label="Entity to keep (name or id)", max_lines=1, scale=3, elem_id="merge-keep-query")
            keep_matches = gr.Dropdown(label="Matches", choices=[], scale=3, elem_id="merge-keep", allow_custom_value=True)
        reason = gr.Textbox(label="Reason (kept in the audit log)", max_lines=2, elem_id="merge-reason")
        with gr.Row():
            preview = gr.Button("Preview merge", elem_id="merge-preview")
            confirm = gr.Button("Confirm merge", variant="stop", interactive=False, elem_id="merge-confirm")
        message = gr.HTML(elem_id="merge-message")
        table = gr.Dataframe(headers=MOVE_COLUMNS, interactive=False, wrap=True, max_height=300, elem_id="merge-facts")
    gate.reveal(panel, "merge")
    pending = gr.State({})

    def suggest(_session: Session, text: str) -> Any:
        text = (text or "").strip()
        if len(text) < 2:
            return gr.update(choices=[], value=None)
        choices = [(f"{e.name} ({e.id})", e.id) for e in store.search_entities(text, limit=12)]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    private = {"api_visibility": "private"}
    keep_query.change(requires("merge")(suggest), inputs=[gate.session, keep_query], outputs=keep_matches, **private)
    preview.click(requires("merge")(panels.preview_merge), inputs=[gate.session, view, keep_matches, keep_query],
                  outputs=[message, table, pending, confirm], **private)  # fmt: skip
    return confirm.click(requires("merge")(panels.confirm_merge), inputs=[gate.session, pending, reason],
                         outputs=[message, pending, confirm, matches], **private)  # fmt: skip


def build_forget_panel(store: Any, workspace: Path, gate: MaintainerGate) -> None:
    """Inside the Ingest tab: "Forget a document", dry run first."""

    panels = MaintainPanels(store, workspace)
    with gr.Accordion("Forget a document", open=False, elem_id="forget-panel"):
        gr.Markdown("Takes back an ingested document: the facts only it supports, the entities only it created, its "
                    "passages. **Preview (dry run)** shows what would go; nothing changes until you press **Forget this document**.")
        with gr.Row():
            document = gr.Dropdown(label="Document (id, or pick one)", choices=[], allow_custom_value=True, scale=4,
                                   elem_id="forget-document")
            reload = gr.Button("List documents", scale=1, size="sm", elem_id="forget-list")
        reason = gr.Textbox(label="Reason (kept in the audit log)", max_lines=2, elem_id="forget-reason")
        with gr.Row():
            preview = gr.Button("Preview (dry run)", elem_id="forget-preview")
            confirm = gr.Button("Forget this document", variant="stop", interactive=False, elem_id="forget-confirm")
        message = gr.HTML(elem_id="forget-message")
        table = gr.Dataframe(headers=FORGET_COLUMNS, interactive=False, wrap=True, max_height=300, elem_id="forget-facts")
    pending = gr.State("")
    private = {"api_visibility": "private"}
    reload.click(requires("forget")(panels.documents), inputs=[gate.session], outputs=document, **private)
    preview.click(requires("forget")(panels.preview_forget), inputs=[gate.session, document],
                  outputs=[message, table, pending, confirm], **private)  # fmt: skip
    confirm.click(requires("forget")(panels.confirm_forget), inputs=[gate.session, pending, document, reason],
                  outputs=[message, table, pending, confirm, document], **private)  # fmt: skip
