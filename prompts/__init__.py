"""Prompt templates kept as data files, and a loader that checks their placeholders.

Why data files: maintainers tune wording without touching code, and a template that lost (or
gained) a placeholder fails at load with the file name instead of producing a silently broken prompt.
Templates use ``str.format`` fields (``{question}``); literal braces are doubled (``{{``).
"""

from __future__ import annotations

import json
import string
from functools import lru_cache
from importlib import resources
from typing import Any

from qa_system.errors import ConfigError


def template_fields(text: str) -> set[str]:
    """The placeholder names a ``str.format`` template uses."""

    try:
        return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(text) if field}
    except ValueError as e:  # unbalanced braces
        raise ConfigError(f"malformed template: {e}") from e


@lru_cache(maxsize=64)
def _read(name: str) -> str:
    path = resources.files(__name__).joinpath(name)
    if not path.is_file():
        raise ConfigError(f"prompt template {name!r} is missing from the prompts package")
    return path.read_text(encoding="utf-8")


def load_template(name: str, fields: set[str] | frozenset[str]) -> str:
    """The text of ``prompts/<name>``; it must use exactly ``fields`` as placeholders."""

    text = _read(name)
    found = template_fields(text)
    if found != set(fields):
        missing, extra = sorted(set(fields) - found), sorted(found - set(fields))
        raise ConfigError(f"prompt template {name!r}: missing placeholders {missing}, unexpected {extra}")
    return text


def load_text(name: str) -> str:
    """A prompt data file used verbatim (no placeholders: braces are literal), e.g. a worked example."""

    return _read(name)


def load_json(name: str) -> Any:
    """A JSON data file of the prompts package (e.g. ``relations.json``)."""

    try:
        return json.loads(_read(name))
    except ValueError as e:
        raise ConfigError(f"prompt data {name!r} is not valid JSON: {e}") from e
