"""The Ingest tab: the shared lazy extractor, upload checks, then the real app over HTTP.

The HTTP tests upload files and press Preview/Commit through Gradio's queue protocol as the page
does (``evaluation.gradio_http``), on a real embedded store with the real ``qa_system.ingest.ingester``;
only the extractor is a rule-based fake (``tests.ui.fakes.FakeExtractor``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from evaluation.gradio_http import BrowserSession, GradioHTTPError
from qa_system.errors import CheckpointError
from qa_system.types import FactStatus
from tests.ui.fakes import FakeExtractor
from ui import ingest_tab
from ui.ingest_tab import SharedExtractor

DOC = "Christopher Nolan directed Titanic. It was a long film.\n\nLeonardo DiCaprio starred in Memento.\n"


def test_the_extractor_loads_once_for_every_session() -> None:
    calls = []

    def loader():
        time.sleep(0.05)
        calls.append(1)
        return FakeExtractor()

    shared = SharedExtractor(loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(shared.get()[0])) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(g) for g in got}) == 1 and got[0] is not None


def test_a_failing_extractor_says_why_and_is_retried_after_a_while() -> None:
    now = [0.0]
    attempts = []

    def loader():
        attempts.append(1)
        if len(attempts) == 1:
            raise CheckpointError("no QIDN checkpoint at qa_system/checkpoints/qidn-webnlg")
        return FakeExtractor()

    shared = SharedExtractor(loader, retry_after_s=60, clock=lambda: now[0])
    model, why = shared.get()
    assert model is None and "CheckpointError: no QIDN checkpoint" in why
    now[0] = 30
    assert shared.get() == (None, why) and len(attempts) == 1  # no reload storm
    now[0] = 61
    assert shared.get()[0] is not None and len(attempts) == 2


def test_upload_checks() -> None:
    assert "at least one" in ingest_tab.check_uploads([])
    assert "Not a text document: photo.png" in ingest_tab.check_uploads([Path("/tmp/x/a.txt"), Path("/tmp/y/photo.png")])
    assert "at most" in ingest_tab.check_uploads([Path(f"/t/{i}.txt") for i in range(ingest_tab.MAX_FILES + 1)])
    assert ingest_tab.check_uploads([Path("a.TXT"), Path("b.md"), Path("c.jsonl")]) == ""
    assert ingest_tab.short_paths("/tmp/gradio/ab12/x.txt: looks binary", [Path("/tmp/gradio/ab12/x.txt")]) == "x.txt: looks binary"


def test_too_large_an_upload_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest_tab, "MAX_UPLOAD_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("x" * 2000, encoding="utf-8")
    assert "qa-system ingest" in ingest_tab.check_uploads([big])
    big.write_text("x" * 10, encoding="utf-8")
    assert ingest_tab.check_uploads([big]) == ""


def test_summary_and_rows_render() -> None:
    sentence = SimpleNamespace(text="<script>alert(1)</script> A directed B.", document_id="d")
    triple = SimpleNamespace(sentence=sentence, subject_text="A", subject_name="Alpha", subject_new=False, relation="director",
                             object_text="B", object_name="B", object_new=True, score=0.87654, action="add", reason="new fact")
    rows = ingest_tab.preview_rows(SimpleNamespace(triples=[triple]))
    assert rows == [["<script>alert(1)</script> A directed B.", "A → Alpha", "director", "B (new)", 0.877, "add", "new fact"]]
    summary = SimpleNamespace(documents=2, sentences=5, triples_added=1, triples_merged=0, triples_skipped=3, new_entities=1, passages_added=5)
    html = ingest_tab.summary_html(summary)
    assert "2 documents" in html and "1 triple added" in html and "1 new entity" in html and "5 passages" in html


# -- the real app over HTTP --------------------------------------------------------------------------
def _serve(blocks: gr.Blocks) -> str:
    from evaluation.load_test import _free_port

    port = _free_port()
    blocks.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/"


@pytest.fixture()
def ingest_app(tiny_store):
    from tests.ui.fakes import fake_pipeline
    from ui.app import build_app
    from ui.auth import MaintainerAuth

    extractor = FakeExtractor()
    app = build_app(tiny_store, fake_pipeline(tiny_store), auth=MaintainerAuth("maintainer", "pw"), extractor=extractor)
    page = BrowserSession(_serve(app))
    yield page, tiny_store, extractor
    page.close()
    app.close()


def _login(page: BrowserSession) -> None:
    assert "Logged in" in str(page.call("login-button", "click", [None, "maintainer", "pw"])[1])


def test_ingest_needs_a_login(ingest_app, tmp_path: Path) -> None:
    page, _, extractor = ingest_app
    doc = tmp_path / "nolan.txt"
    doc.write_text(DOC, encoding="utf-8")
    with pytest.raises(GradioHTTPError, match="Maintainer login required"):
        page.call("ingest-preview", "click", [None, page.upload([doc])])
    assert extractor.calls == 0


def test_preview_then_commit_once(ingest_app, tmp_path: Path) -> None:
    page, store, extractor = ingest_app
    _login(page)
    doc = tmp_path / "nolan.txt"
    doc.write_text(DOC, encoding="utf-8")
    before = store.stats().facts
    status, table, _state, commit = page.call("ingest-preview", "click", [None, page.upload([doc])])
    assert "Preview" in status and "nothing written yet" in status and "1 document" in status
    rows = table["data"]
    assert ["Christopher Nolan directed Titanic.", "Christopher Nolan", "director", "Titanic"] == rows[0][:4]
    assert {r[5] for r in rows} == {"add"} and commit.get("interactive") is True
    assert store.stats().facts == before and extractor.calls >= 1  # a preview writes nothing

    status, _state, commit = page.call("ingest-commit", "click", [None, None])
    assert "Committed" in status and "2 triples added" in status and commit.get("interactive") is False
    added = [f for f in store.list_facts(statuses=[FactStatus.EXTRACTED], limit=10)]
    assert {(f.subject_name, f.relation, f.object_name) for f in added} == {
        ("Christopher Nolan", "director", "Titanic"), ("Leonardo DiCaprio", "starring", "Memento")}
    assert added[0].provenance.document_id.startswith("nolan") and added[0].provenance.sentence
    status = page.call("ingest-commit", "click", [None, None])[0]  # the preview was used: not committed twice
    assert "Nothing to commit" in status and store.stats().facts == before + 2


def test_bad_uploads_are_refused_before_anything_is_read(ingest_app, tmp_path: Path) -> None:
    page, store, extractor = ingest_app
    _login(page)
    before = store.stats().facts
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    status = page.call("ingest-preview", "click", [None, page.upload([png])])[0]
    assert "Not a text document: photo.png" in status
    binary = tmp_path / "fake.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    status = page.call("ingest-preview", "click", [None, page.upload([binary])])[0]
    assert "fake.txt: looks binary" in status and "/tmp/" not in status and "Nothing was written" in status
    status = page.call("ingest-preview", "click", [None, []])[0]
    assert "Upload at least one" in status
    assert store.stats().facts == before and extractor.calls == 0


def test_an_unavailable_extractor_is_a_clear_message(tiny_store, tmp_path: Path) -> None:
    from ui.auth import MaintainerAuth, MaintainerGate

    def missing():
        raise CheckpointError("no QIDN checkpoint shipped")

    with gr.Blocks() as blocks:
        gate = MaintainerGate(MaintainerAuth("maintainer", "pw"))
        with gate.tab("Ingest"):
            ingest_tab.build_ingest_tab(tiny_store, Path(tiny_store.db_path).parent.parent, gate, SharedExtractor(missing))
        gate.build_login_tab()
    page = BrowserSession(_serve(blocks))
    try:
        _login(page)
        doc = tmp_path / "a.md"
        doc.write_text(DOC, encoding="utf-8")
        status = page.call("ingest-preview", "click", [None, page.upload([doc])])[0]
        assert "extractor not available: CheckpointError: no QIDN checkpoint shipped" in status
    finally:
        page.close()
        blocks.close()
