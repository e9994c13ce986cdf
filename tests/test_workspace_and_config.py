"""Settings and workspace format: bad values fail at load with the value in the message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph.embedded import EmbeddedStore
from qa_system.config import load_settings
from qa_system.errors import ConfigError, WorkspaceVersionError


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEO4J_URI", raising=False)
    settings = load_settings()
    assert settings.graph_backend == "embedded" and settings.workspace == Path("qa-workspace")


def test_read_topics_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().read_topics == 1
    monkeypatch.setenv("QA_READ_TOPICS", "3")
    assert load_settings().read_topics == 3


def test_secrets_are_hidden_but_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_PASSWORD", "bolt-s3cret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-s3cret")
    settings = load_settings(maintainer_password="m-s3cret")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert settings.neo4j_password.get_secret_value() == "bolt-s3cret"
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "sk-s3cret"
    assert settings.maintainer_password.get_secret_value() == "m-s3cret"


def test_neo4j_uri_selects_neo4j(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_URI", "bolt://db.example:7687")
    assert load_settings().graph_backend == "neo4j"


@pytest.mark.parametrize(
    ("env", "value"),
    [("NEO4J_URI", "http://db:7474"), ("QA_LLM_TIMEOUT_S", "-3"), ("QA_LOG_LEVEL", "LOUD"), ("QA_MAX_NEIGHBOURS_PER_HOP", "0"),
     ("QA_READ_TOPICS", "0")],
)
def test_bad_values_fail_with_the_value(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert value in str(info.value)


def test_newer_workspace_is_refused_not_corrupted(tmp_path: Path) -> None:
    marker = tmp_path / "workspace.json"
    marker.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(WorkspaceVersionError, match="format version 99"):
        EmbeddedStore.open(tmp_path)
    assert json.loads(marker.read_text()) == {"format_version": 99}
    assert not (tmp_path / "graph").exists()
