"""One error hierarchy for the whole product.

Why: the CLI and the app turn any ``QAError`` into one clear line (and an exit code) instead of a
stack trace; everything else is a bug. Wrap third-party errors with ``raise ... from e``.
"""

from __future__ import annotations


class QAError(Exception):
    """Base of every error the product raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class ConfigError(QAError):
    """A setting has a bad value (the message names the value)."""


class DataFormatError(QAError):
    """An input file is malformed; the message names the file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class DatasetNotFoundError(QAError):
    """A dataset name is unknown or its files are missing."""

    exit_code = 2


class GraphError(QAError):
    """Base for graph-store failures."""


class GraphUnavailableError(GraphError):
    """The graph database cannot be reached or opened."""


class WorkspaceVersionError(GraphError):
    """The workspace was written by a newer (or unknown) format version; refuse rather than corrupt."""


class EntityNotFoundError(GraphError):
    """No entity has this id or exact name."""

    exit_code = 2


class FactNotFoundError(GraphError):
    """No fact has this id."""

    exit_code = 2


class ReadOnlyViolationError(GraphError):
    """A query sent to the read-only Cypher path would write."""

    exit_code = 2


class QueryError(GraphError):
    """A Cypher query failed (syntax or runtime) on the database."""

    exit_code = 2


class ModelError(QAError):
    """A model or checkpoint cannot be built, loaded or trained (e.g. vocabulary mismatch, NaN loss)."""


class CheckpointError(ModelError):
    """A checkpoint is missing, malformed, or does not match the graph."""


class InputError(QAError):
    """User input is unusable (empty, too long...)."""

    exit_code = 2


class LLMError(QAError):
    """The LLM endpoint is down, slow, or answered something unusable."""


class LLMUnavailableError(LLMError):
    """The LLM endpoint cannot be reached, timed out, or the embedded server failed to start."""

    exit_code = 3


class ReviewConflictError(QAError):
    """A review decision lost: the fact was already decided (by someone else or earlier)."""

    exit_code = 3


class IngestError(QAError):
    """Writing an ingested document failed; the message names the document. Documents before it are
    written; re-running the same ingest finishes the job without duplicates (writes are idempotent)."""
