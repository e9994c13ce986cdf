"""Entity resolution for ingest: an extracted mention -> a graph entity (or a new one with a stable id).

Order, first hit wins:
1. the workspace's mention memo (``ingest/mentions.sqlite``): the entity this mention went to in an
   earlier committed ingest, if that entity still exists. Without it, a mention could resolve
   differently once the graph has grown (a closer name for a similarity match; a newly imported
   entity with the exact name of one ingest created), and re-ingesting a document would add a second
   copy of its facts on another entity; with it, the same mention resolves the same way across runs.
2. the exact id, name or alias, case-insensitively, with a leading article dropped: the very same
   ``fallback.resolve_name`` the LLM path uses, so ingest and fallback agree on names.
3. cosine similarity over the MiniLM name index (``retrievers.name_embeddings``) at or above
   ``threshold`` (0.88 by default), *confirmed by a lexical check*: the two names must have the same
   content words once case, accents, punctuation, initials ("Alan L. Bean"), articles, plural "s"
   and club/company suffixes ("F.C.", "Inc.") are set aside, or spell the same without spaces
   ("Leonardo Di Caprio"). Cosine alone merged distinct entities on WebNLG text: "David Cameron" ->
   "James Cameron" (0.91), "Serie B" -> "Serie A" (0.90), "Puerto" -> "Puerto Rico" (0.88), "Antwerp
   International" -> "Antwerp" (0.91); a wrong merge attaches facts to the wrong entity, a missed one
   only leaves a duplicate a maintainer can merge, so the check errs on the side of a new entity.
   Mentions without a letter (years, quantities) are never matched by similarity.
4. otherwise a new entity ``ext:<sha1 of the normalised mention>``: the same text gives the same id in
   every run, and after the first ingest step 2 finds it by name.

Resolution reads only; ``remember`` (called by ``Ingester.commit``) is the one write, to the memo.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from graph.name_index import normalise
from qa_system.errors import InputError
from retrievers.linking import untokenise  # tokenised text: "Abilene , Texas" -> "Abilene, Texas"

log = logging.getLogger(__name__)

EXTRACTED_ENTITY_PREFIX = "ext:"
DEFAULT_THRESHOLD = 0.88
MEMO_FILE = "ingest/mentions.sqlite"
MAX_MENTION_CHARS = 300
_EDGE_JUNK = " \t\r\n\"'“”‘’«»`,;:"
_DIGITS = re.compile(r"\d+")
_INITIAL = re.compile(r"[a-z]\.")
_NON_WORD = re.compile(r"[^\w]+")
_FUNCTION_WORDS = frozenset({"the", "a", "an", "of", "and", "&"})
_ORG_SUFFIXES = frozenset({"fc", "afc", "inc", "ltd", "plc", "llc", "corp", "co"})

How = Literal["memo", "id", "name", "embedding", "new"]


def clean_mention(text: str) -> str:
    """Whitespace collapsed, quotes and trailing commas/colons trimmed ("“Apollo 12”," -> "Apollo 12")."""

    return untokenise(" ".join(text.split())).strip(_EDGE_JUNK)


def lexical_key(name: str) -> str:
    """Content words of a name for the similarity check (see the module docstring)."""

    text = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).lower()
    words = []
    for raw in text.split():
        if _INITIAL.fullmatch(raw):
            continue
        word = _NON_WORD.sub("", raw)
        if not word or word in _FUNCTION_WORDS or word in _ORG_SUFFIXES:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return " ".join(words)


def lexically_compatible(mention: str, name: str) -> bool:
    a, b = lexical_key(mention), lexical_key(name)
    return bool(a) and (a == b or a.replace(" ", "") == b.replace(" ", ""))


def extracted_entity_id(mention: str) -> str:
    """Stable id of an entity first found by the extractor (the same mention -> the same id)."""

    return EXTRACTED_ENTITY_PREFIX + hashlib.sha1(normalise(mention).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Resolution:
    """Where a mention went: the entity, whether ingest must create it, how it was found and, for an
    embedding match, the cosine similarity."""

    entity_id: str
    name: str
    is_new: bool
    how: How
    similarity: float | None = None


class MentionMemo:
    """Normalised mention -> entity id decided by an earlier committed ingest (SQLite)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self, *, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS mentions(key TEXT PRIMARY KEY, entity_id TEXT NOT NULL,"
                " similarity REAL, created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
            )
            # entities merged away by a maintainer (``qa-system merge``): old id -> the entity kept
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS merged(old_id TEXT PRIMARY KEY, new_id TEXT NOT NULL,"
                " created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
            )
        return self._db

    def redirect(self, old_ids: Iterable[str], new_id: str) -> int:
        """A merge: mentions that resolved to any of ``old_ids`` now resolve to ``new_id``, and each old
        id (and every id merged into it before) is recorded as merged into ``new_id``. Returns how many
        remembered mentions moved."""

        old_ids = [i for i in dict.fromkeys(old_ids) if i != new_id]
        if not old_ids:
            return 0
        with self._lock:
            db = self._conn(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                marks = ",".join("?" * len(old_ids))
                moved = db.execute(f"UPDATE mentions SET entity_id = ? WHERE entity_id IN ({marks})", [new_id, *old_ids]).rowcount
                db.execute(f"UPDATE merged SET new_id = ? WHERE new_id IN ({marks})", [new_id, *old_ids])
                db.execute("DELETE FROM merged WHERE old_id = ?", (new_id,))
                db.executemany("INSERT OR REPLACE INTO merged(old_id, new_id) VALUES (?, ?)", [(i, new_id) for i in old_ids])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(moved)

    def merged_into(self, entity_id: str) -> str | None:
        """The entity ``entity_id`` was merged into, if it was."""

        with self._lock:
            db = self._conn(create=False)
            if db is None:
                return None
            row = db.execute("SELECT new_id FROM merged WHERE old_id = ?", (entity_id,)).fetchone()
            return row[0] if row else None

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        with self._lock:
            db = self._conn(create=False)
            if db is None or not keys:
                return {}
            found: dict[str, str] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, entity_id FROM mentions WHERE key IN ({marks})", chunk).fetchall())
            return found

    def put_many(self, rows: Iterable[tuple[str, str, float | None]]) -> None:
        rows = list(rows)
        if not rows:
            return
        with self._lock:
            db = self._conn(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO mentions(key, entity_id, similarity) VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class EntityResolver:
    """Mention text -> ``Resolution`` against a ``GraphStore``; see the module docstring.

    ``name_index`` is anything with ``search(texts, k) -> list[list[NameHit]]`` (the FAISS
    ``NameVectorIndex`` by default, built or loaded on first need from ``index_dir``).
    """

    def __init__(
        self,
        store: Any,
        *,
        workspace: Path | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        use_embeddings: bool = True,
        name_index: Any = None,
        index_dir: Path | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise InputError(f"similarity threshold must be in (0, 1]; got {threshold}")
        self.store = store
        self.threshold = threshold
        self.use_embeddings = use_embeddings
        self.memo = MentionMemo(Path(workspace) / MEMO_FILE) if workspace is not None else None
        self._name_index = name_index
        self._index_dir = index_dir
        self._keys: frozenset[str] | None = None
        self._lock = threading.Lock()

    def resolve(self, mention: str) -> Resolution:
        """One mention (see ``resolve_many``); ``InputError`` when nothing nameable is left."""

        resolved = self.resolve_many([mention])
        key = clean_mention(mention)
        if key not in resolved:
            raise InputError(f"cannot resolve an empty mention {mention!r}")
        return resolved[key]

    def resolve_many(self, mentions: Iterable[str]) -> dict[str, Resolution]:
        """Resolve many mentions at once (embeddings in one batch). Keys are ``clean_mention(text)``;
        empty or over-long mentions are left out."""

        cleaned = [m for m in dict.fromkeys(clean_mention(t) for t in mentions) if 0 < len(m) <= MAX_MENTION_CHARS]
        out: dict[str, Resolution] = {}
        memo = self.memo.get_many(normalise(m) for m in cleaned) if self.memo is not None else {}
        for mention in cleaned:
            remembered = memo.get(normalise(mention))
            entity = self.store.get_entity(remembered) if remembered else None
            if entity is not None:
                out[mention] = Resolution(entity.id, entity.name, False, "memo")
                continue
            exact = _exact(self.store, mention)
            if exact is not None:
                out[mention] = exact
        pending = [m for m in cleaned if m not in out]
        out.update(self._by_similarity([m for m in pending if _has_letter(m)]))
        for mention in pending:
            if mention not in out:
                out[mention] = self._new(mention)
        return out

    def remember(self, resolutions: Iterable[tuple[str, Resolution]]) -> None:
        """Record ``(mention, resolution)`` decisions in the memo. A decision not taken from the memo
        means the memo had no live entry for the mention, so it replaces any stale one."""

        if self.memo is not None:
            self.memo.put_many((normalise(m), r.entity_id, r.similarity) for m, r in resolutions if r.how != "memo")

    def close(self) -> None:
        if self.memo is not None:
            self.memo.close()

    # -- steps ------------------------------------------------------------------------------------
    def _index(self) -> Any:
        with self._lock:
            if self._name_index is None:
                from retrievers.linking import default_index_dir
                from retrievers.name_embeddings import NameVectorIndex

                index_dir = self._index_dir if self._index_dir is not None else default_index_dir(self.store)
                self._name_index = NameVectorIndex.for_store(self.store, index_dir)
            return self._name_index

    def _lexical_keys(self, index: Any) -> frozenset[str] | None:
        """Space-less lexical keys of every indexed name (None when the index does not expose its texts)."""

        with self._lock:
            if self._keys is None and getattr(index, "texts", None) is not None:
                self._keys = frozenset(lexical_key(t).replace(" ", "") for t in index.texts)
            return self._keys

    def _by_similarity(self, mentions: list[str]) -> dict[str, Resolution]:
        if not mentions or not self.use_embeddings:
            return {}
        index = self._index()
        keys = self._lexical_keys(index)
        if keys is not None:  # a mention no indexed name is lexically compatible with cannot match: do not embed it
            mentions = [m for m in mentions if lexical_key(m).replace(" ", "") in keys]
            if not mentions:
                return {}
        out: dict[str, Resolution] = {}
        for mention, hits in zip(mentions, index.search(mentions, k=3)):
            for hit in hits:
                if hit.cosine < self.threshold:
                    break
                if _DIGITS.findall(mention) != _DIGITS.findall(hit.text) or not lexically_compatible(mention, hit.text):
                    continue
                entity = self.store.get_entity(hit.entity_id)
                if entity is not None:
                    out[mention] = Resolution(entity.id, entity.name, False, "embedding", round(float(hit.cosine), 4))
                    break
        return out

    def _new(self, mention: str) -> Resolution:
        entity_id = extracted_entity_id(mention)
        existing = self.store.get_entity(entity_id)
        merged = self.memo.merged_into(entity_id) if existing is None and self.memo is not None else None
        if merged is not None:  # a maintainer merged the entity this mention once created into another
            existing = self.store.get_entity(merged)
        if existing is not None:  # created by an earlier ingest under a name the index no longer finds
            return Resolution(existing.id, existing.name, False, "id")
        return Resolution(entity_id, mention, True, "new")


def _exact(store: Any, mention: str) -> Resolution | None:
    from qa_system.explore import resolve_name

    found = resolve_name(store, mention)
    if found.id is None:
        return None
    return Resolution(found.id, found.name, False, "id" if found.how == "id" else "name")


def _has_letter(text: str) -> bool:
    return any(ch.isalpha() for ch in text)
