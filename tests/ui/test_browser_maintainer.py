"""The maintainer tabs in a real browser (Debian's Chromium driven by Playwright): Review and Ingest.

One app, built in-process on a copy of the demo graph with 12 seeded proposed facts
(``evaluation.load_test.seed_proposed_facts``), around the shipped reader when it is there (linker
without the FAISS fuzzy index, whose first build takes minutes on a fresh copy) and the rule-based
``FakeExtractor``: the QIDN checkpoint is not shipped yet, so the extractor is injected at
``build_app``; the rest of ingest is the real ``qa_system.ingest.ingester``. Screenshots: review.png and
ingest.png (see ``tests/ui/test_browser.py`` for where they go); timings in artifacts/ui-timings.json.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_system.maintain.review import ReviewQueue, read_jsonl
from tests.ui.test_browser import (
    CHROMIUM,
    MAINTAINER,
    _ask,
    _free_port,
    _login,
    _open,
    record_timing,
    shoot,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

DOCUMENT = (
    "# Notes on directors\n\nChristopher Nolan was born in London. Leonardo DiCaprio starred in Titanic.\n\n"
    "<script>alert('doc')</script><img src=x onerror=alert(3)> Quentin Tarantino directed Inception.\n"
)


@pytest.fixture(scope="module")
def maintainer_app(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (scripts/install-system-packages.sh installs it)")
    from evaluation.load_test import seed_proposed_facts
    from graph.embedded import EmbeddedStore
    from qa_system.ask.pipeline import load_pipeline
    from qa_system.ask.reader_loading import shipped_reader
    from qa_system.config import load_settings
    from qa_system.maintain.accounts import AccountStore
    from tests.ui.fakes import FakeExtractor, fake_pipeline
    from ui.app import build_app, launch_options
    from ui.auth import MaintainerAuth

    workspace = tmp_path_factory.mktemp("browser-maintainer") / "ws"
    shutil.copytree(demo_workspace, workspace)
    store = EmbeddedStore.open(workspace)
    seeded = seed_proposed_facts(store, 12)
    real_reader = (shipped_reader() / "card.json").is_file()
    pipeline = load_pipeline(load_settings(workspace=workspace), store, use_faiss=False) if real_reader else fake_pipeline(store)
    accounts = AccountStore(workspace)  # none yet: the single login, until a test adds named accounts
    app = build_app(store, pipeline, auth=MaintainerAuth(*MAINTAINER, accounts=accounts), extractor=FakeExtractor())
    port = _free_port()
    app.queue(default_concurrency_limit=8).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                                                  quiet=True, **launch_options())
    yield {"url": f"http://127.0.0.1:{port}/", "store": store, "workspace": workspace, "seeded": seeded, "real_reader": real_reader}
    app.close()
    store.close()


@pytest.fixture()
def mpage(maintainer_app: dict):
    yield from _open(maintainer_app["url"], "first_paint_s")


def _logged_in(page) -> None:
    _login(page, *MAINTAINER)
    page.locator("#login-message").get_by_text("Logged in as maintainer").wait_for(timeout=15_000)


def _count(page, name: str) -> int:
    return int(page.locator(f"#review-counts .qa-count-{name} .qa-count-value").inner_text().replace(",", ""))


def test_review_accept_and_reject_change_the_counts(mpage, maintainer_app: dict) -> None:
    page, store = mpage, maintainer_app["store"]
    assert page.get_by_role("tab", name="Review").count() == 0  # hidden before login
    _logged_in(page)
    page.get_by_role("tab", name="Review").click()
    page.locator("#review-shown").get_by_text(re.compile(r"\d+ proposed facts? match")).wait_for(timeout=30_000)
    expect(page.locator("#review-detail")).to_contain_text("Evidence premises", timeout=20_000)
    pending, accepted, rejected = _count(page, "pending"), _count(page, "accepted"), _count(page, "rejected")
    assert pending >= 2
    shoot(page, "review")

    first = page.locator("#review-fact input").input_value()  # the selected fact's label
    page.locator("#review-accept").click()
    page.locator("#review-message").get_by_text("Accepted", exact=False).wait_for(timeout=20_000)
    expect(page.locator("#review-counts .qa-count-pending .qa-count-value")).to_have_text(f"{pending - 1:,}", timeout=20_000)
    assert _count(page, "accepted") == accepted + 1
    assert "by maintainer" in page.locator("#review-message").inner_text()

    page.locator("#review-reject").click()  # no reason: refused, nothing changes
    page.locator("#review-message").get_by_text("reason is required", exact=False).wait_for(timeout=20_000)
    assert _count(page, "rejected") == rejected
    page.locator("#review-reason textarea").fill("the premises do not say this")
    page.locator("#review-reject").click()
    page.locator("#review-message").get_by_text("Rejected", exact=False).wait_for(timeout=20_000)
    expect(page.locator("#review-counts .qa-count-rejected .qa-count-value")).to_have_text(f"{rejected + 1:,}", timeout=20_000)
    assert _count(page, "pending") == pending - 2
    expect(page.locator("#review-audit")).to_contain_text("the premises do not say this", timeout=10_000)
    third = ReviewQueue(store, maintainer_app["workspace"]).list(limit=3)[2]  # clicking a queue row selects its fact
    page.locator("#review-queue").get_by_text(third.id, exact=True).first.click()
    expect(page.locator("#review-detail")).to_contain_text(f"fact id {third.id}", timeout=20_000)
    audit = [r for r in read_jsonl(maintainer_app["workspace"] / "review" / "audit.jsonl") if r["outcome"] == "applied"]
    assert [(r["action"], r["reviewer"]) for r in audit] == [("accept", "maintainer"), ("reject", "maintainer")]
    accepted_fact, rejected_fact = (store.get_fact(r["fact_id"]) for r in audit)
    assert accepted_fact.status.value == "verified" and rejected_fact.status.value == "rejected"
    assert accepted_fact.subject_name in first and accepted_fact.provenance.reviewer == "maintainer"  # the selected one
    shoot(page, "review-decided")


def test_ingest_upload_preview_and_commit(mpage, maintainer_app: dict, tmp_path: Path) -> None:
    page, store = mpage, maintainer_app["store"]
    _logged_in(page)
    page.get_by_role("tab", name="Ingest").click()
    doc = tmp_path / "directors.md"
    doc.write_text(DOCUMENT, encoding="utf-8")
    # the upload round-trips through the server; on a loaded 2-core machine it took over 20 s once
    page.locator("#ingest-files input[type=file]").set_input_files(str(doc))
    page.locator("#ingest-files").get_by_text("directors.md").first.wait_for(timeout=60_000)
    page.locator("#ingest-preview").click()
    status = page.locator("#ingest-status")
    status.get_by_text("nothing written yet", exact=False).wait_for(timeout=60_000)
    table = page.locator("#ingest-table")
    expect(table).to_contain_text("Christopher Nolan was born in London.", timeout=10_000)
    expect(table).to_contain_text("<script>alert('doc')</script>", timeout=10_000)  # the uploaded markup is text
    before = store.stats().facts
    shoot(page, "ingest")
    page.locator("#ingest-commit").click()
    status.get_by_text("Committed", exact=False).wait_for(timeout=60_000)
    assert "3 triples added" in status.inner_text()
    assert store.stats().facts == before + 3
    expect(page.locator("#ingest-commit")).to_be_disabled(timeout=10_000)
    assert page.dialogs == []
    shoot(page, "ingest-committed")


def test_bad_inputs_wrong_password_and_a_non_text_upload(mpage, tmp_path: Path) -> None:
    page = mpage
    _login(page, MAINTAINER[0], "wrong")
    page.locator("#login-message").get_by_text("Wrong user name or password").wait_for(timeout=10_000)
    assert page.get_by_role("tab", name="Ingest").count() == 0
    _logged_in(page)
    page.get_by_role("tab", name="Ingest").click()
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")
    page.locator("#ingest-files input[type=file]").set_input_files(str(png))
    page.locator("#ingest-files").get_by_text("photo.png").first.wait_for(timeout=60_000)
    page.locator("#ingest-preview").click()
    page.locator("#ingest-status").get_by_text("Not a text document: photo.png", exact=False).wait_for(timeout=20_000)
    expect(page.locator("#ingest-commit")).to_be_disabled()


def test_kg_answer_visible_warm_with_the_app_reader(mpage, maintainer_app: dict) -> None:
    """Warm KG-path answer visibility: submit to the answer on screen (target ≤ 1 s)."""

    page = mpage
    answer = page.locator("#ask-answer")
    _ask(page, "Who directed Inception?")  # warm-up (the session's first request)
    answer.locator(".qa-answer").wait_for(timeout=60_000)
    took = []
    for question, expected in (("What is the nationality of Christopher Nolan?", "Christopher Nolan"),
                               ("Who directed Inception?", "Inception")):
        started = time.monotonic()
        _ask(page, question)
        expect(answer).to_contain_text(f"about: {expected}" if maintainer_app["real_reader"] else expected, timeout=30_000)
        took.append(time.monotonic() - started)
    name = "answer_visible_real_reader_warm_s" if maintainer_app["real_reader"] else "answer_visible_warm_s"
    for t in took:
        record_timing(name, t)
    assert min(took) < 5  # target 1 s (issue 7); generous for a shared 2-core machine


def test_named_curator_merges_a_duplicate_reviewer_may_not(mpage, maintainer_app: dict) -> None:
    """Issue 27: named accounts (added while the app runs) log in under their own names; a reviewer sees
    Review but not Ingest nor "Merge into…"; a curator merges a duplicate from Explore (preview, confirm)
    and the merge is recorded under her name. Last in the module: it removes the accounts again."""

    from qa_system.maintain.accounts import AccountStore
    from qa_system.types import Entity, Fact, Provenance

    page, store, workspace = mpage, maintainer_app["store"], maintainer_app["workspace"]
    accounts = AccountStore(workspace)
    accounts.add("ann", "curator", "ann-browser-password")
    accounts.add("rob", "reviewer", "rob-browser-password")
    nolan = store.find_entities("Christopher Nolan")[0]
    kept_fact = store.neighbors([nolan.id], hops=1).facts[0]
    dup = Entity(id="ext:nolan-duplicate", name="Nolan duplicate record", type=nolan.type)
    store.upsert_entity(dup)
    other = kept_fact.object if kept_fact.subject == nolan.id else kept_fact.subject
    prov = Provenance(dataset="browser-test")
    store.upsert_facts([Fact(subject=dup.id, relation="/people/person/profession", object=other, provenance=prov)])
    try:
        _login(page, MAINTAINER[0], MAINTAINER[1])  # accounts exist: the single login no longer opens
        page.locator("#login-message").get_by_text("Wrong user name or password").wait_for(timeout=15_000)
        _login(page, "rob", "rob-browser-password")
        page.locator("#login-message").get_by_text("Logged in as rob (reviewer)").wait_for(timeout=15_000)
        expect(page.get_by_role("tab", name="Review")).to_be_visible(timeout=10_000)
        assert page.get_by_role("tab", name="Ingest").count() == 0
        page.get_by_role("tab", name="Explore").click()
        expect(page.locator("#merge-panel")).to_be_hidden()
        page.reload()  # a new browser session: logged out (the login tab may sit in the tab overflow now)
        page.get_by_text("Question answering over a knowledge graph").wait_for(timeout=15_000)
        _login(page, "ann", "ann-browser-password")
        page.locator("#login-message").get_by_text("Logged in as ann (curator)").wait_for(timeout=15_000)

        page.get_by_role("tab", name="Explore").click()
        box = page.locator("#explore-query textarea, #explore-query input").first
        box.fill(dup.name)
        box.press("Enter")
        page.locator("#explore-card").get_by_text(dup.name).wait_for(timeout=20_000)
        page.locator("#merge-panel").get_by_text("Merge into", exact=False).first.click()
        page.locator("#merge-keep-query textarea, #merge-keep-query input").first.fill(nolan.id)
        page.locator("#merge-preview").click()
        page.locator("#merge-message").get_by_text("Merge preview", exact=False).wait_for(timeout=20_000)
        expect(page.locator("#merge-facts")).to_contain_text("moves", timeout=10_000)
        assert store.get_entity(dup.id) is not None  # the preview wrote nothing
        shoot(page, "merge-preview")
        page.locator("#merge-confirm").click()
        page.locator("#merge-message").get_by_text("by ann", exact=False).wait_for(timeout=30_000)
        expect(page.locator("#explore-card")).to_contain_text("Christopher Nolan", timeout=20_000)  # the kept entity shown
        expect(page.locator("#explore-card")).to_contain_text(dup.name, timeout=10_000)  # now an alias
        assert store.get_entity(dup.id) is None
        record = [r for r in read_jsonl(workspace / "review" / "audit.jsonl") if r.get("action") == "merge"][-1]
        assert (record.get("actor") or record["reviewer"], record["keep"], record["duplicates"]) == ("ann", nolan.id, [dup.id])

        # forget a document from the Ingest tab: dry run first, then forget, under her name
        from qa_system.ingest.ingester import Document, Ingester
        from tests.ui.fakes import FakeExtractor

        Ingester(store, FakeExtractor(), workspace=workspace).ingest([Document("browser-forget", "Zadie Quill was born in Orbury.", "t")])
        assert len(store.facts_of_document("browser-forget")) == 1
        page.get_by_role("tab", name="Ingest").click()
        page.locator("#forget-panel").get_by_text("Forget a document").first.click()
        page.locator("#forget-list").click()
        page.locator("#forget-document input").first.click()
        page.get_by_role("option", name=re.compile("browser-forget")).first.click()
        page.locator("#forget-preview").click()
        page.locator("#forget-message").get_by_text("Dry run", exact=False).wait_for(timeout=30_000)
        expect(page.locator("#forget-facts")).to_contain_text("Zadie Quill", timeout=10_000)
        assert len(store.facts_of_document("browser-forget")) == 1  # the dry run wrote nothing
        page.locator("#forget-confirm").click()
        page.locator("#forget-message").get_by_text("By ann", exact=False).wait_for(timeout=30_000)
        assert store.facts_of_document("browser-forget") == [] and store.find_entities("Zadie Quill") == []
        shoot(page, "forget-done")
        assert page.dialogs == []
    finally:
        accounts.remove("ann")
        accounts.remove("rob")
        accounts.path.unlink()  # back to the single login for any later test
