"""Closing the embedded store releases its file lock at once (not when the GC collects the store)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from graph.embedded import EmbeddedStore


def test_another_process_can_open_the_workspace_right_after_close(tmp_path: Path) -> None:
    store = EmbeddedStore.open(tmp_path / "ws")
    store.stats()
    worker = threading.Thread(target=store.stats)  # a second thread's connection must be closed too
    worker.start()
    worker.join()
    store.close()  # `store` stays referenced: only close() may release the lock
    code = (
        "import sys, pathlib; from graph.embedded import EmbeddedStore; "
        f"s = EmbeddedStore.open(pathlib.Path({str(tmp_path / 'ws')!r})); print(s.stats().entities); s.close()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0"
    assert store is not None
