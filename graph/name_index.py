"""Entity name index of our own (SQLite + FTS5), because LadybugDB's full-text extension cannot be
installed offline. Exact and prefix lookups use a lower-cased key table; token search uses FTS5.

One file in the workspace; rebuilt from the store's entities by ``rebuild`` and kept in step by
``add`` on every entity upsert.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from qa_system.types import Entity, is_literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids(rowid INTEGER PRIMARY KEY, entity_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS names(key TEXT NOT NULL, entity_id TEXT NOT NULL, is_alias INTEGER NOT NULL,
                                 PRIMARY KEY (key, entity_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS names_by_entity ON names(entity_id);
CREATE VIRTUAL TABLE IF NOT EXISTS names_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
"""


def normalise(text: str) -> str:
    """Lower-case, collapse whitespace: the key exact and prefix matches use."""

    return " ".join(text.lower().split())


def _keys(entity: Entity) -> list[tuple[str, int]]:
    keys = [(normalise(entity.name), 0)]
    keys += [(normalise(alias), 1) for alias in entity.aliases if alias.strip()]
    return list(dict.fromkeys(keys))


class NameIndex:
    """Thread-safe SQLite name index (one connection guarded by a lock; lookups take microseconds)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, entities: Iterable[Entity]) -> None:
        """Index (or re-index) entities in one transaction; an entity's old names are replaced.
        Literal attribute values (``lit:`` ids) are never indexed: a name lookup must not return a
        birth year or a tagline."""

        with self._lock:
            self._db.execute("BEGIN")
            try:
                for entity in entities:
                    if is_literal(entity.id):
                        continue
                    self._db.execute("INSERT OR IGNORE INTO ids(entity_id) VALUES (?)", (entity.id,))
                    (rowid,) = self._db.execute("SELECT rowid FROM ids WHERE entity_id = ?", (entity.id,)).fetchone()
                    self._db.execute("DELETE FROM names WHERE entity_id = ?", (entity.id,))
                    self._db.execute("DELETE FROM names_fts WHERE rowid = ?", (rowid,))
                    self._db.executemany(
                        "INSERT OR REPLACE INTO names VALUES (?, ?, ?)",
                        [(key, entity.id, is_alias) for key, is_alias in _keys(entity)],
                    )
                    self._db.execute(
                        "INSERT INTO names_fts(rowid, text) VALUES (?, ?)", (rowid, " ".join([entity.name, *entity.aliases]))
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def remove(self, entity_ids: Iterable[str]) -> None:
        """Forget these entities' names (deleted or merged entities)."""

        with self._lock:
            self._db.execute("BEGIN")
            try:
                for entity_id in entity_ids:
                    row = self._db.execute("SELECT rowid FROM ids WHERE entity_id = ?", (entity_id,)).fetchone()
                    self._db.execute("DELETE FROM names WHERE entity_id = ?", (entity_id,))
                    if row is not None:
                        self._db.execute("DELETE FROM names_fts WHERE rowid = ?", (row[0],))
                        self._db.execute("DELETE FROM ids WHERE rowid = ?", (row[0],))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def rebuild(self, entities: Iterable[Entity]) -> None:
        with self._lock:
            self._db.execute("DELETE FROM names")
            self._db.execute("DELETE FROM names_fts")
            self._db.execute("DELETE FROM ids")
        self.add(entities)

    def exact(self, name: str, limit: int = 10) -> list[str]:
        key = normalise(name)
        if not key:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT entity_id FROM names WHERE key = ? ORDER BY is_alias, entity_id LIMIT ?", (key, limit)
            ).fetchall()
        return list(dict.fromkeys(r[0] for r in rows))

    def prefix(self, prefix: str, limit: int = 10) -> list[str]:
        key = normalise(prefix)
        if not key:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT entity_id FROM names WHERE key >= ? AND key < ? ORDER BY is_alias, length(key), key LIMIT ?",
                (key, key + "\U0010ffff", limit * 3),
            ).fetchall()
        return list(dict.fromkeys(r[0] for r in rows))[:limit]

    def search(self, text: str, limit: int = 10) -> list[str]:
        """Token search (every word must occur, the last as a prefix), ranked by BM25."""

        words = re.findall(r"\w+", text.lower())
        if not words:
            return []
        match = " ".join(f'"{w}"' for w in words[:-1]) + (" " if len(words) > 1 else "") + f'"{words[-1]}"*'
        with self._lock:
            rows = self._db.execute(
                "SELECT ids.entity_id FROM names_fts JOIN ids ON ids.rowid = names_fts.rowid"
                " WHERE names_fts MATCH ? ORDER BY bm25(names_fts) LIMIT ?",
                (match, limit * 3),
            ).fetchall()
        return list(dict.fromkeys(r[0] for r in rows))[:limit]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(DISTINCT entity_id) FROM names").fetchone()[0])
