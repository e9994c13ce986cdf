"""Fakes for the LLM tests: a scripted client (what the fallback talks to) and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qa_system.errors import LLMUnavailableError
from qa_system.fallback.llm import LLMReply


@dataclass
class ScriptedClient:
    """Answers each ``complete`` with the next scripted reply (a string, or an exception to raise)."""

    replies: list[Any]
    endpoint: str = "http://fake/v1"
    model: str = "fake-model"
    calls: list[dict[str, Any]] = field(default_factory=list)

    def complete(self, messages, *, max_tokens=512, response_format=None) -> LLMReply:
        self.calls.append({"messages": list(messages), "max_tokens": max_tokens, "response_format": response_format})
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return LLMReply(text=reply, endpoint=self.endpoint, model=self.model, latency_s=0.01)


@pytest.fixture()
def down_client() -> ScriptedClient:
    return ScriptedClient([LLMUnavailableError("connection refused")])


@pytest.fixture()
def llm_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings with no endpoint configured (the embedded default), short timeouts."""

    from qa_system.config import load_settings

    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "QA_OPENAI_BASE_URL", "QA_OPENAI_API_KEY", "QA_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return load_settings(workspace=tmp_path / "ws", llm_timeout_s=2.0, llm_max_retries=1)
