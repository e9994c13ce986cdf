"""Typed settings (pydantic-settings). Environment variables win over defaults.

Every field is commented; bad values fail at load with the offending value in the message
(``load_settings`` turns pydantic's error into one ``ConfigError`` line).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa_system.errors import ConfigError


class Settings(BaseSettings):
    """All knobs of the product. Env names: ``QA_*``, plus ``NEO4J_*`` and ``OPENAI_*`` as usual."""

    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore", frozen=True)

    # Folder holding the embedded graph, indexes, trained checkpoints and logs.
    workspace: Path = Field(default=Path("qa-workspace"))
    # Where benchmark data lives (layout of ../shared/data); only evaluation and training read it.
    data_dir: Path | None = None
    # Logging level for stderr logs (every library's; ``qa-system -v`` wins). Unset: warnings only,
    # plus our own progress logs in training, imports and ingest (``qa_system.cli.quiet_logging``).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None

    # Neo4j (or any Bolt server). When the URI is set, the graph lives there instead of embedded.
    neo4j_uri: str | None = Field(default=None, validation_alias=AliasChoices("NEO4J_URI", "QA_NEO4J_URI"))
    neo4j_user: str = Field(default="neo4j", validation_alias=AliasChoices("NEO4J_USER", "NEO4J_USERNAME", "QA_NEO4J_USER"))
    # Secrets are SecretStr (hidden in repr, logs and errors); read them with .get_secret_value() where used.
    neo4j_password: SecretStr = Field(default=SecretStr(""), validation_alias=AliasChoices("NEO4J_PASSWORD", "QA_NEO4J_PASSWORD"))
    neo4j_database: str | None = Field(default=None, validation_alias=AliasChoices("NEO4J_DATABASE", "QA_NEO4J_DATABASE"))
    # Seconds to wait for the Bolt server before reporting it unreachable.
    neo4j_connect_timeout_s: float = Field(default=5.0, gt=0, le=300)

    # Neighbourhood caps: a 2-hop expansion of a hub (e.g. "USA") must stay bounded.
    max_neighbours_per_hop: int = Field(default=200, ge=1, le=100_000)
    # Linked entities `ask` reads per question, each on its own (``topic_choice``): more is more
    # accurate with predicted linking and slower (3: p95 ~165 ms on 2 cores instead of ~85).
    read_topics: int = Field(default=1, ge=1, le=10)
    # ``qa-system ask``: fuzzy entity linking through the MiniLM index over every entity name
    # (``retrievers.name_embeddings``, built once per graph into <workspace>/indexes: minutes on CPU for
    # the demo graph's 34k names). false = exact names and aliases only: a new graph answers at once.
    fuzzy_linking: bool = True
    # Short MiniLM passes (the question, its mentions) through ONNX Runtime, exported once into
    # <workspace>/cache/onnx (``models.onnx_encoder``); false = eager PyTorch. Same answers.
    onnx_runtime: bool = True

    # LLM endpoint (OpenAI-compatible). Unset: the packaged local SmolLM2 server is started on use.
    openai_base_url: str | None = Field(default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "QA_OPENAI_BASE_URL"))
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "QA_OPENAI_API_KEY"))
    llm_model: str = "smollm2"
    llm_timeout_s: float = Field(default=30.0, gt=0, le=600)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    # Threads of the embedded llama.cpp server; 0 = the idle cores at start (at least 1).
    llm_threads: int = Field(default=0, ge=0, le=256)

    # Maintainer logins for the app's Review/Ingest/Cypher tabs. With named accounts in the workspace
    # (``qa-system users add``; ``qa_system.maintain.accounts``) only they log in. Without: this one
    # login (a curator); empty password => generated and printed once per run, or refused in production.
    maintainer_user: str = "maintainer"
    maintainer_password: SecretStr = SecretStr("")
    production: bool = False
    # Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For is believed
    # when they are the direct peer: the login and API rate limits then key on the client address they
    # forward. Empty: X-Forwarded-For is ignored (a client could write anything there).
    trusted_proxies: str = ""

    # HTTP API (``ui.api``, served by ``qa-system serve`` under /v1). Keys for the maintainer routes
    # (ingest, review), comma-separated, each ``KEY`` or ``NAME:KEY`` (NAME is the reviewer in the
    # audit log; default the maintainer user). None set: the maintainer routes are refused (403).
    api_keys: SecretStr = SecretStr("")
    # Asking (and every other read route) needs one of those keys too; default: open.
    api_ask_requires_key: bool = False
    # Requests per minute per API key (per client address without one), bursts up to a tenth of it; 0 = no limit.
    api_rate_limit_per_minute: int = Field(default=1200, ge=0, le=10_000_000)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        import ipaddress

        for item in (value or "").split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError as e:
                    raise ValueError(f"QA_TRUSTED_PROXIES holds {item.strip()!r}, not an address or network: {e}") from e
        return value or ""

    @field_validator("neo4j_uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        schemes = ("bolt://", "bolt+s://", "bolt+ssc://", "neo4j://", "neo4j+s://", "neo4j+ssc://")
        if not value.startswith(schemes):
            raise ValueError(f"NEO4J_URI must start with one of {', '.join(schemes)}; got {value!r}")
        return value

    @cached_property
    def graph_backend(self) -> Literal["embedded", "neo4j"]:
        return "neo4j" if self.neo4j_uri else "embedded"

    @property
    def graph_dir(self) -> Path:
        return self.workspace / "graph"

    @property
    def checkpoints_dir(self) -> Path:
        return self.workspace / "checkpoints"

    @property
    def logs_dir(self) -> Path:
        return self.workspace / "logs"

    @property
    def onnx_cache_dir(self) -> Path:
        return self.workspace / "cache" / "onnx"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and explicit overrides), failing with one clear line."""

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}={err.get('input')!r}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from e
