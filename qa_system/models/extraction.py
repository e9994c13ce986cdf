"""The one interface every triple extractor sits behind (QIDN, the subject-guided cascade, fakes).

Why a separate module: ingest, the app's Ingest tab and the evaluation runner only need "text in,
triples with character spans and scores out"; they must not import torch models to type-check, and
tests of ingest logic use a fake extractor that satisfies the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Mention:
    """An entity mention: its surface text and character offsets ``[start, end)`` in the input text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ExtractedTriple:
    """One extracted (subject, relation, object) with the mentions' spans in the sentence.

    ``relation`` is a label of the extractor's own vocabulary (WebNLG's for the shipped models);
    ``score`` is the model's confidence in [0, 1].
    """

    subject: Mention
    relation: str
    object: Mention
    score: float


@runtime_checkable
class Extractor(Protocol):
    """Joint entity-relation extraction over sentences.

    ``name`` is the model family ("qidn", "cascade"), ``checkpoint`` identifies the weights (folder
    name or card id) and ``vocabulary`` the relation vocabulary recorded on every fact ("webnlg").
    """

    name: str
    checkpoint: str
    vocabulary: str

    def extract(self, texts: Sequence[str], *, batch_size: int = 16) -> list[list[ExtractedTriple]]:
        """One list of triples per input text, in input order; spans index into that text."""
        ...
