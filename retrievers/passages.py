"""Passages: the sentences ingest reads and the entity descriptions, as premises for validation.

Why a JSONL file in the workspace and not graph nodes: passages are evidence text, not facts; the
graph store stays a graph, and both backends (embedded, Neo4j) share one passage file. The file is
append-only and keyed by a content id, so ingesting a document twice adds nothing. The FAISS search
over these passages (``PassageRetriever``) is built on top of this store by the validation work.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from qa_system.errors import DataFormatError

PASSAGES_FILE = "passages/passages.jsonl"
MAX_PASSAGE_CHARS = 4000


def passage_id(document_id: str, start: int, end: int, text: str) -> str:
    """Stable id of a passage: the same sentence of the same document always gets the same id."""

    digest = hashlib.sha1(f"{document_id}\x1f{start}\x1f{end}\x1f{text}".encode()).hexdigest()
    return f"p:{digest[:20]}"


class Passage(BaseModel):
    """One premise text with where it came from (document sentence or entity description)."""

    id: str
    text: str = Field(min_length=1, max_length=MAX_PASSAGE_CHARS)
    kind: Literal["sentence", "description"] = "sentence"
    document_id: str = ""
    start: int | None = None  # character offsets of the sentence in its document
    end: int | None = None
    entity_id: str = ""  # for descriptions: whose description it is

    @classmethod
    def sentence(cls, document_id: str, text: str, start: int, end: int) -> Passage:
        return cls(id=passage_id(document_id, start, end, text), text=text, kind="sentence",
                   document_id=document_id, start=start, end=end)


class PassageStore:
    """Append-only, de-duplicated passage file under the workspace (``passages/passages.jsonl``).

    Safe for threads of one process (a lock) and for several processes (``flock`` while appending).
    """

    def __init__(self, workspace: Path) -> None:
        self.path = Path(workspace) / PASSAGES_FILE
        self._lock = threading.Lock()
        self._ids: set[str] | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def __iter__(self) -> Iterator[Passage]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield Passage.model_validate_json(line)
                except ValidationError as e:
                    raise DataFormatError(f"{self.path}:{line_no}: not a passage record ({e.errors()[0]['msg']})") from e

    def __len__(self) -> int:
        return len(self._known_ids())

    def _known_ids(self) -> set[str]:
        if self._ids is None:
            self._ids = {p.id for p in self}
        return self._ids

    def __contains__(self, passage_id_: object) -> bool:
        return passage_id_ in self._known_ids()

    def add_many(self, passages: Iterable[Passage]) -> int:
        """Append the passages not stored yet; returns how many were new."""

        with self._locked():
            self._ids = None  # another process may have appended since we last read
            known = self._known_ids()
            new = []
            for p in passages:
                if p.id not in known:
                    known.add(p.id)
                    new.append(p)
            if new:
                with open(self.path, "a", encoding="utf-8") as f:
                    for p in new:
                        f.write(json.dumps(p.model_dump(mode="json"), ensure_ascii=False) + "\n")
            return len(new)
