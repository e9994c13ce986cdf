"""Ingest tab (maintainers only): upload documents, preview the extracted triples, commit them.

Thin layer over ``qa_system.ingest.ingester`` (the same ``read_documents`` and ``Ingester`` that
``qa-system ingest`` runs): *Preview* reads the uploads and runs the extractor and entity
resolution without writing anything; *Commit* writes exactly the previewed triples and passages
and shows the summary. A preview is kept per browser session and committed at most once.

Nothing half-done: reading, decoding and extraction all happen in the preview, so a bad upload
(not text, wrong type, unreadable JSONL, over ``MAX_UPLOAD_BYTES``) is refused with a message
before anything is written. A commit writes whole documents in order and every write is
idempotent (``qa_system.ingest.ingester``): when one document's write fails, the message names it and
pressing Commit again writes only what is still missing.
Uploaded text, HTML or script included, is only ever shown through escaped HTML or table cells.

The extractor (``load_extractor("qidn")`` unless one is injected) is loaded lazily, once, and
shared by every session; when loading fails the tab says "extractor not available: ..." and tries
again at most once a minute, so a checkpoint installed later is picked up without a restart.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from qa_system.errors import IngestError, QAError
from ui.auth import MaintainerGate, Session, requires
from ui.format import relation_label
from ui.messages import message_html

log = logging.getLogger(__name__)

ACCEPTED_SUFFIXES = (".txt", ".md", ".jsonl")
MAX_FILES = 20
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a preview lives in the session's memory; larger corpora: `qa-system ingest`
PREVIEW_ROWS = 500
PREVIEW_COLUMNS = ["sentence", "subject", "relation", "object", "score", "action", "reason"]
RETRY_AFTER_S = 60.0


class SharedExtractor:
    """One extractor for the whole app, loaded on first use under a lock.

    A failure is remembered (its message shown to every session) and retried after
    ``retry_after_s``, so a broken or missing checkpoint costs one load attempt a minute, not one
    per click.
    """

    def __init__(self, loader: Callable[[], Any], *, retry_after_s: float = RETRY_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._extractor: Any | None = None
        self._error: str = ""
        self._failed_at: float | None = None
        self.attempts = 0

    @classmethod
    def of(cls, extractor: Any) -> SharedExtractor:
        shared = cls(lambda: extractor)
        shared._extractor = extractor
        return shared

    def get(self) -> tuple[Any | None, str]:
        """(extractor, "") or (None, why it is not available)."""

        with self._lock:
            if self._extractor is not None:
                return self._extractor, ""
            if self._failed_at is not None and self._clock() - self._failed_at < self._retry_after_s:
                return None, self._error
            self.attempts += 1
            try:
                self._extractor = self._loader()
            except (QAError, OSError, ImportError, ValueError) as e:  # a missing/unreadable checkpoint
                self._error, self._failed_at = f"{type(e).__name__}: {e}", self._clock()
                log.warning("extractor not available: %s", self._error)
                return None, self._error
            log.info("extractor loaded: %s", getattr(self._extractor, "checkpoint", "?"))
            return self._extractor, ""


def default_loader() -> Any:
    from qa_system.ingest.extractors import load_extractor

    return load_extractor("qidn")


def upload_paths(files: Any) -> list[Path]:
    """Paths of a ``gr.File`` value (one or many; str paths or objects with ``.name``)."""

    if not files:
        return []
    items = files if isinstance(files, (list, tuple)) else [files]
    return [Path(getattr(f, "name", f)) for f in items]


def check_uploads(paths: list[Path]) -> str:
    """An error message for uploads the tab refuses before reading them, or ""."""

    if not paths:
        return "Upload at least one .txt, .md or .jsonl file first."
    if len(paths) > MAX_FILES:
        return f"{len(paths)} files uploaded; at most {MAX_FILES} at a time."
    wrong = [p.name for p in paths if p.suffix.lower() not in ACCEPTED_SUFFIXES]
    if wrong:
        return f"Not a text document: {', '.join(wrong)}. Upload .txt, .md or .jsonl files. Nothing was read."
    size = sum(p.stat().st_size for p in paths if p.is_file())
    if size > MAX_UPLOAD_BYTES:
        return (f"The uploads hold {size / 2**20:.1f} MiB; the app previews at most {MAX_UPLOAD_BYTES // 2**20} MiB at a time. "
                "Upload fewer files, or use `qa-system ingest` for a large corpus. Nothing was read.")
    return ""


def short_paths(message: str, paths: list[Path]) -> str:
    """Upload names instead of the server's temporary paths in a message."""

    for p in paths:
        message = message.replace(str(p), p.name)
    return message


def _entity(text: str, name: str, new: bool) -> str:
    shown = text if not name or name == text else f"{text} → {name}"
    return shown + (" (new)" if new else "")


def sentence_text(sentence: Any) -> str:
    """A preview triple's sentence: a ``qa_system.ingest.documents.Sentence`` (its ``.text``) or plain text."""

    return str(getattr(sentence, "text", sentence))


def preview_rows(preview: Any, limit: int = PREVIEW_ROWS) -> list[list[Any]]:
    return [
        [sentence_text(t.sentence), _entity(t.subject_text, t.subject_name, t.subject_new), relation_label(t.relation),
         _entity(t.object_text, t.object_name, t.object_new), round(float(t.score), 3), t.action, t.reason or ""]
        for t in list(preview.triples)[:limit]
    ]  # fmt: skip


def preview_html(preview: Any, extractor: Any) -> str:
    triples = list(preview.triples)
    actions = Counter(t.action for t in triples)
    new_entities = len({t.subject_name for t in triples if t.subject_new} | {t.object_name for t in triples if t.object_new})
    by_action = ", ".join(f"{n} {html.escape(str(a))}" for a, n in sorted(actions.items())) or "nothing to write"
    more = f" (the table shows the first {PREVIEW_ROWS})" if len(triples) > PREVIEW_ROWS else ""
    text = (
        f"<b>Preview</b> (nothing written yet): {_n(len(preview.documents), 'document')}, {_n(preview.sentences, 'sentence')}, "
        f"{_n(len(triples), 'triple')}{more} — {by_action}; {_n(new_entities, 'new entity', 'new entities')}. "
        f"Extractor: {html.escape(str(getattr(extractor, 'name', '?')))} "
        f"<code>{html.escape(str(getattr(extractor, 'checkpoint', '')))}</code>. Press <b>Commit</b> to write it."
    )
    return message_html(text, "info", markup=True)


def summary_html(summary: Any) -> str:
    text = (
        f"<b>Committed</b>: {_n(summary.documents, 'document')}, {_n(summary.sentences, 'sentence')}; "
        f"{_n(summary.triples_added, 'triple')} added, {summary.triples_merged:,} merged, {summary.triples_skipped:,} skipped; "
        f"{_n(summary.new_entities, 'new entity', 'new entities')}; {_n(summary.passages_added, 'passage')} indexed for evidence."
    )
    return message_html(text, "ok", markup=True)


def _n(count: Any, one: str, many: str | None = None) -> str:
    count = len(count) if isinstance(count, (list, tuple)) else int(count)  # IngestPreview holds lists
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _ingest_api() -> Any:
    from qa_system.ingest import ingester as ingest

    return ingest


def build_ingest_tab(store: Any, workspace: Path | None, gate: MaintainerGate, extractor: SharedExtractor) -> None:
    """Build inside ``with gate.tab("Ingest", action="ingest"):`` (curators; the handlers check it too).
    Below the upload: "Forget a document" (``ui.maintain_panels``)."""

    from ui.maintain_panels import build_forget_panel

    if workspace is None:
        gr.HTML(message_html("Ingest needs a workspace folder (for the passage index); this app was started without one.", "info"))
        return

    def preview(_session: Session, files: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (Gradio's idiom)
        refused = ([], None, gr.update(interactive=False))
        paths = upload_paths(files)
        problem = check_uploads(paths)
        if problem:
            return (message_html(problem), *refused)
        model, why = extractor.get()
        if model is None:
            return (message_html(f"extractor not available: {why}", "error"), *refused)
        progress(0.0, desc="Reading the documents…")
        try:
            ingest = _ingest_api()
            documents = ingest.read_documents(paths)
            ingester = ingest.Ingester(store, model, workspace=workspace)

            def report(done: int, total: int) -> None:
                progress(done / total if total else 1.0, desc=f"Extracting: {done:,}/{total:,} sentences")

            result = ingester.preview(documents, progress=report)
        except QAError as e:  # unreadable/not-text upload, bad JSONL...: nothing was written
            return (message_html(f"{short_paths(str(e), paths)}. Nothing was written."), *refused)
        except Exception:  # a bug: logged, the page stays usable, nothing was written
            log.exception("ingest preview failed")
            return (message_html("The preview failed; the error was logged. Nothing was written.", "error"), *refused)
        can_commit = any(t.action != "skip" for t in result.triples) or bool(result.sentences)
        return preview_html(result, model), preview_rows(result), result, gr.update(interactive=can_commit)

    def commit(session: Session, pending: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        if pending is None:
            return message_html("Nothing to commit: preview an upload first (a preview is committed once)."), None, gr.update(interactive=False)
        model, why = extractor.get()
        if model is None:
            return message_html(f"extractor not available: {why}", "error"), pending, gr.update()
        progress(0.1, desc="Writing triples and passages…")
        try:
            summary = _ingest_api().Ingester(store, model, workspace=workspace).commit(pending)
        except IngestError as e:  # a document's write failed: the ones before it are in; a retry adds only what is missing
            return (message_html(f"Commit stopped: {e}. Committing again writes only what is still missing."),
                    pending, gr.update())
        except QAError as e:
            return message_html(f"Commit refused: {e}. Nothing was written."), pending, gr.update()
        except Exception:
            log.exception("ingest commit failed")
            return message_html("The commit failed; the error was logged.", "error"), pending, gr.update()
        log.info("ingest commit by %s in the app: %s", session.user, summary)
        return summary_html(summary), None, gr.update(interactive=False)

    gr.Markdown(
        "Grow the graph from text. Upload `.txt`, `.md` or `.jsonl` (one `{\"id\", \"text\"}` object a line) files, "
        "**Preview** the triples the extractor finds with their sentences, then **Commit** them (as `extracted` facts "
        "with the document and sentence as provenance; the sentences become evidence passages)."
    )
    files = gr.File(label="Documents", file_count="multiple", elem_id="ingest-files", height=140)
    with gr.Row():
        preview_button = gr.Button("Preview", variant="primary", elem_id="ingest-preview")
        commit_button = gr.Button("Commit", variant="secondary", interactive=False, elem_id="ingest-commit")
    status = gr.HTML(elem_id="ingest-status")
    table = gr.Dataframe(headers=PREVIEW_COLUMNS, interactive=False, wrap=True, elem_id="ingest-table", max_height=420,
                         column_widths=["34%", "15%", "12%", "15%", "6%", "7%", "11%"])
    pending = gr.State(None)
    private = {"api_visibility": "private"}
    preview_button.click(requires("ingest")(preview), inputs=[gate.session, files], outputs=[status, table, pending, commit_button],
                         concurrency_limit=1, **private)
    commit_button.click(requires("ingest")(commit), inputs=[gate.session, pending], outputs=[status, pending, commit_button],
                        concurrency_limit=1, **private)
    build_forget_panel(store, workspace, gate)  # take a document back (dry run first): curators
