"""The Review tab: rendering without a server, then the real app over HTTP on the tiny graph.

The HTTP tests drive the tab's own (private) events through Gradio's queue protocol, exactly as a
browser page does (``evaluation.gradio_http``), on a real embedded store with seeded proposed facts:
access control, decisions under the logged-in name, counts, bad input, conflicts, filters.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from evaluation.gradio_http import BrowserSession, GradioHTTPError
from evaluation.load_test import seed_proposed_facts
from qa_system.maintain.review import ReviewItem, ReviewQueue, read_jsonl
from qa_system.types import FactStatus, FactView, Provenance, SourceKind
from ui import review_tab

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
FILTERS = ["(any relation)", 0, "any age"]


def test_age_filter_uses_the_cli_durations() -> None:
    assert review_tab.age_filter("any age") == {} and review_tab.age_filter(None) == {}
    assert review_tab.age_filter("newer than 24 h") == {"newer_than": timedelta(hours=24)}
    assert review_tab.age_filter("older than 7 d") == {"older_than": timedelta(days=7)}
    assert all(review_tab.age_filter(c) or c == "any age" for c in review_tab.AGE_CHOICES)


def test_counts_come_from_applied_decisions() -> None:
    audit = [
        {"action": "accept", "outcome": "applied"}, {"action": "edit", "outcome": "applied"},
        {"action": "reject", "outcome": "applied"}, {"action": "accept", "outcome": "conflict"},
    ]  # fmt: skip
    counts = review_tab.decision_counts(audit, pending=7)
    assert counts == {"pending": 7, "accepted": 2, "rejected": 1, "conflicts": 1}
    html = review_tab.counts_html(counts)
    assert "qa-count-pending" in html and ">7<" in html


def test_fact_detail_escapes_everything_and_shows_premise_scores() -> None:
    p = Provenance(source_kind=SourceKind.LLM, model=XSS, question=XSS, raw_answer=XSS, premises=[XSS, "plain premise"],
                   scores=[0.91, 0.12], score=0.91)
    view = FactView(id="f1", subject="/m/a", subject_name=XSS, relation="/x/<b>y</b>", object="/m/b", object_name=XSS,
                    status=FactStatus.PROPOSED, confidence=0.91, provenance=p)
    item = ReviewItem(fact=view, score=0.91, age_hours=3.0, evidence=[{"premise": XSS, "score": 0.91}, {"premise": "plain premise", "score": 0.12}],
                      history=[{"at": "2026-01-01T00:00:00", "action": "accept", "reviewer": XSS, "outcome": "conflict", "reason": XSS}])
    html = review_tab.item_html(item)
    assert "<script>" not in html and "<img src=x" not in html and "<b>y</b>" not in html
    assert "&lt;script&gt;" in html and "0.91" in html and "0.12" in html and "plain premise" in html


def test_audit_rows_newest_first_and_bounded() -> None:
    audit = [{"at": f"2026-01-01T00:00:{i:02d}", "action": "accept", "outcome": "applied", "fact_id": f"f{i}", "reviewer": "m"} for i in range(40)]
    rows = review_tab.audit_rows(audit, limit=5)
    assert [r[3] for r in rows] == ["f39", "f38", "f37", "f36", "f35"]
    assert rows[0][0] == "2026-01-01 00:00:39"


# -- the real app over HTTP --------------------------------------------------------------------------
@pytest.fixture()
def review_app(tiny_store):
    """The app on the tiny graph with 5 seeded proposed facts; (session, store, workspace, fact ids)."""

    from evaluation.load_test import _free_port
    from tests.ui.fakes import fake_pipeline
    from ui.app import build_app
    from ui.auth import MaintainerAuth

    workspace = Path(tiny_store.db_path).parent.parent
    seeded = seed_proposed_facts(tiny_store, 5)
    assert len(seeded) == 5
    app = build_app(tiny_store, fake_pipeline(tiny_store), auth=MaintainerAuth("maintainer", "test-password"))
    port = _free_port()
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    page = BrowserSession(f"http://127.0.0.1:{port}/")
    yield page, tiny_store, workspace, seeded
    page.close()
    app.close()


def _login(page: BrowserSession) -> None:
    assert "Logged in as maintainer" in str(page.call("login-button", "click", [None, "maintainer", "test-password"])[1])


def _value(update):
    return update.get("value") if isinstance(update, dict) else update


def test_review_events_refuse_a_session_that_is_not_logged_in(review_app) -> None:
    page, store, _, seeded = review_app
    with pytest.raises(GradioHTTPError, match="Maintainer login required"):
        page.call("review-accept", "click", [None, seeded[0], "", "", "", "", *FILTERS])
    with pytest.raises(GradioHTTPError, match="Maintainer login required"):
        page.call("review-refresh", "click", [None, *FILTERS, None])
    assert store.get_fact(seeded[0]).status == FactStatus.PROPOSED


def test_accept_and_reject_as_the_logged_in_maintainer_update_the_counts(review_app) -> None:
    page, store, workspace, seeded = review_app
    _login(page)
    table, fact, _relations, counts, _audit, shown, _message = page.call("review-refresh", "click", [None, *FILTERS, None])
    assert len(table["data"]) == 5 and "5 proposed facts match" in shown
    assert ">5<" in counts.split("qa-count-pending")[1][:400]
    first = _value(fact)
    assert first in seeded

    out = page.call("review-accept", "click", [None, first, "looks right", "", "", "", *FILTERS])
    assert "qa-ok" in out[6] and "now verified" in out[6] and "by maintainer" in out[6]
    assert len(out[0]["data"]) == 4 and _value(out[1]) != first
    counts = out[3]
    assert ">4<" in counts.split("qa-count-pending")[1][:400] and ">1<" in counts.split("qa-count-accepted")[1][:400]
    view = store.get_fact(first)
    assert view.status == FactStatus.VERIFIED and view.provenance.reviewer == "maintainer"

    second = _value(out[1])
    out = page.call("review-reject", "click", [None, second, "", "", "", "", *FILTERS])  # no reason: refused, nothing applied
    assert "reason is required" in out[6] and store.get_fact(second).status == FactStatus.PROPOSED
    out = page.call("review-reject", "click", [None, second, "not supported by the premises", "", "", "", *FILTERS])
    assert "now rejected" in out[6] and store.get_fact(second).status == FactStatus.REJECTED
    assert ">1<" in out[3].split("qa-count-rejected")[1][:400]
    log = read_jsonl(workspace / "review" / "audit.jsonl")
    assert [(r["action"], r["outcome"], r["reviewer"]) for r in log] == [("accept", "applied", "maintainer"), ("reject", "applied", "maintainer")]
    assert out[4]["data"][0][1] == "reject"  # the audit table, newest first


def test_a_fact_decided_elsewhere_is_a_clear_conflict(review_app) -> None:
    page, store, workspace, seeded = review_app
    _login(page)
    ReviewQueue(store, workspace).reject(seeded[0], reviewer="someone-else", reason="duplicate")
    out = page.call("review-accept", "click", [None, seeded[0], "", "", "", "", *FILTERS])
    assert "Not applied" in out[6] and "already rejected by someone-else" in out[6]
    assert store.get_fact(seeded[0]).status == FactStatus.REJECTED
    assert read_jsonl(workspace / "review" / "audit.jsonl")[-1]["outcome"] == "conflict"


def test_edit_then_accept_and_the_detail_view(review_app) -> None:
    page, store, _, seeded = review_app
    _login(page)
    fact = store.get_fact(seeded[0])
    detail, subject, relation, obj = page.call("review-fact", "change", [None, fact.id])
    assert fact.subject_name in detail and "Evidence premises" in detail and (subject, relation, obj) == (
        fact.subject_name, fact.relation, fact.object_name)
    target = next(e for e in ("Canada", "Memento", "Thriller") if e != fact.object_name and e != fact.subject_name)
    out = page.call("review-edit", "click", [None, fact.id, "wrong object", subject, relation, target, *FILTERS])
    assert "Edited and accepted" in out[6], out[6]
    assert store.get_fact(fact.id).status == FactStatus.REJECTED
    corrected = [f for f in store.list_facts(statuses=[FactStatus.VERIFIED], limit=100) if f.provenance.reviewer == "maintainer"]
    assert [(f.subject, f.object_name) for f in corrected] == [(fact.subject, target)]
    bad = page.call("review-edit", "click", [None, seeded[1], "", "No Such Entity Anywhere", "", "", *FILTERS])
    assert "unknown entity" in bad[6] and store.get_fact(seeded[1]).status == FactStatus.PROPOSED


def test_filters_narrow_the_queue(review_app) -> None:
    page, store, _, seeded = review_app
    _login(page)
    scores = sorted(store.get_fact(f).provenance.score for f in seeded)
    out = page.call("review-refresh", "click", [None, "(any relation)", scores[2], "any age", None])
    assert len(out[0]["data"]) == 3
    relation = store.get_fact(seeded[0]).relation
    out = page.call("review-refresh", "click", [None, relation, 0, "any age", None])
    assert {row[-1] for row in out[0]["data"]} == {f for f in seeded if store.get_fact(f).relation == relation}
    assert page.call("review-refresh", "click", [None, "(any relation)", 0, "older than 1 h", None])[0]["data"] in ([], [[""] * 7])
