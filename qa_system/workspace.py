"""The workspace folder and its format version.

Why a version file: a workspace written by a newer release may use a schema this one does not
understand; opening it would corrupt it, so we refuse with a clear message instead.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qa_system.errors import WorkspaceVersionError

FORMAT_VERSION = 1
_MARKER = "workspace.json"


def prepare_workspace(path: Path, *, create: bool = True) -> Path:
    """Check (and on first use create) the workspace; returns its absolute path."""

    path = Path(path).expanduser().resolve()
    marker = path / _MARKER
    if marker.exists():
        try:
            found = json.loads(marker.read_text(encoding="utf-8")).get("format_version")
        except (OSError, ValueError) as e:
            raise WorkspaceVersionError(f"{marker}: unreadable workspace marker ({e})") from e
        if not isinstance(found, int) or found > FORMAT_VERSION:
            raise WorkspaceVersionError(
                f"workspace {path} has format version {found!r}; this qa-system reads up to {FORMAT_VERSION}. "
                "Upgrade qa-system or point QA_WORKSPACE elsewhere."
            )
        return path
    if create:
        path.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"format_version": FORMAT_VERSION}) + "\n", encoding="utf-8")
    return path


# -- a lock file in the workspace: exclusive across threads and processes -------------------------
_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(path, threading.Lock())


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive across threads of this process and across processes (``flock``): the review log and
    the passage index append under it, so two app servers on one workspace never interleave writes."""

    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock(path), open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
