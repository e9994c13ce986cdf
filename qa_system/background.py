"""Warm-up work in a daemon thread: the app starts answering while indexes and caches fill in.

Several parts of the app build something slow once (the answer-text vectors, the passage index,
the name index) that requests can also build on demand. Starting that work in the background must
never take the app down, so a failure is logged with its traceback and the on-demand path stays in
charge; one helper keeps that rule (and the thread naming, for ``py-spy`` and logs) in one place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def run_in_background(work: Callable[[], object], *, name: str, failure: str) -> threading.Thread:
    """Start ``work()`` in a daemon thread called ``name``; an exception is logged as ``failure``
    (with its traceback) instead of propagating. Returns the started thread (join it to wait)."""

    def run() -> None:
        try:
            work()
        except Exception:  # the caller's on-demand path still works
            log.exception("%s", failure)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
