"""Background warm-up: the work runs in a named daemon thread and a failure is logged, not raised."""

from __future__ import annotations

import logging

import pytest

from qa_system.background import run_in_background


def test_work_runs_in_a_named_daemon_thread() -> None:
    seen: list[str] = []
    thread = run_in_background(lambda: seen.append("done"), name="warm-test", failure="never")
    thread.join(5)
    assert seen == ["done"] and thread.name == "warm-test" and thread.daemon


def test_a_failure_is_logged_with_its_message(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("index file is corrupt")

    with caplog.at_level(logging.ERROR, logger="qa_system.background"):
        run_in_background(broken, name="warm-broken", failure="warming up the test index failed").join(5)
    assert "warming up the test index failed" in caplog.text and "index file is corrupt" in caplog.text
