"""Entity name index of our own (SQLite + FTS5), because LadybugDB's full-text extension cannot be
installed offline. Exact and prefix lookups use a lower-cased key table; token search uses FTS5.

One file in the workspace; rebuilt from the store's entities by ``rebuild`` and kept in step by
``add`` on every entity upsert.

A Neo4j (Bolt) store keeps one too (``MirroredNameIndex``): scanning every node's name keys on the
server took ~19 ms a lookup on ArcadeDB with the demo graph, and the linker makes dozens a question.
The mirror is kept in step by the store's own writes and rebuilt from the database when the
database's entity count differs from the count the index was last in step with (another client
added or deleted entities).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from qa_system.types import Entity, is_literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids(rowid INTEGER PRIMARY KEY, entity_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS names(key TEXT NOT NULL, entity_id TEXT NOT NULL, is_alias INTEGER NOT NULL,
                                 PRIMARY KEY (key, entity_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS names_by_entity ON names(entity_id);
CREATE VIRTUAL TABLE IF NOT EXISTS names_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# ``meta`` row of a mirrored index: the database's entity-node count the index is in step with.
_STAMP = "entities"


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

    def add(self, entities: Iterable[Entity], *, stamp_delta: int = 0) -> None:
        """Index (or re-index) entities in one transaction; an entity's old names are replaced.
        Literal attribute values (``lit:`` ids) are never indexed: a name lookup must not return a
        birth year or a tagline. ``stamp_delta`` moves a mirrored index's entity count (if it has one)
        in the same transaction."""

        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._add_rows(entities)
                self._move_stamp(stamp_delta)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _add_rows(self, entities: Iterable[Entity]) -> None:
        for entity in entities:
            if is_literal(entity.id):
                continue
            self._db.execute("INSERT OR IGNORE INTO ids(entity_id) VALUES (?)", (entity.id,))
            (rowid,) = self._db.execute("SELECT rowid FROM ids WHERE entity_id = ?", (entity.id,)).fetchone()
            self._db.execute("DELETE FROM names WHERE entity_id = ?", (entity.id,))
            self._db.execute("DELETE FROM names_fts WHERE rowid = ?", (rowid,))
            # OR IGNORE: an alias spelled like the name keeps the name's row (``_keys`` lists the name
            # first), so the entity ranks as a name match, as the Bolt store's ``name_key`` did.
            self._db.executemany(
                "INSERT OR IGNORE INTO names VALUES (?, ?, ?)",
                [(key, entity.id, is_alias) for key, is_alias in _keys(entity)],
            )
            self._db.execute(
                "INSERT INTO names_fts(rowid, text) VALUES (?, ?)", (rowid, " ".join([entity.name, *entity.aliases]))
            )

    def _move_stamp(self, delta: int) -> None:
        if delta:
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (int(delta), _STAMP))

    def remove(self, entity_ids: Iterable[str], *, stamp_delta: int = 0) -> None:
        """Forget these entities' names (deleted or merged entities)."""

        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._move_stamp(stamp_delta)
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

    def replace(self, entities: Iterable[Entity], stamp: int) -> None:
        """Every name anew and the entity count they are in step with, in one transaction: readers
        (other threads, other processes sharing the file) see the old index or the new one."""

        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM names")
                self._db.execute("DELETE FROM names_fts")
                self._db.execute("DELETE FROM ids")
                self._add_rows(entities)
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (_STAMP, int(stamp)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def stamp(self) -> int | None:
        """The entity count a mirrored index is in step with (None: never built, or not a mirror)."""

        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_STAMP,)).fetchone()
        return None if row is None else int(row[0])

    def exact(self, name: str, limit: int = 10) -> list[str]:
        return self.exact_many([name], limit)[name]

    def exact_many(self, names: Sequence[str], limit: int = 10) -> dict[str, list[str]]:
        """``exact`` for each of ``names`` under one lock: the linker's n-grams of a question."""

        found: dict[str, list[str]] = {}
        with self._lock:
            for name in names:
                key = normalise(name)
                if name in found:
                    continue
                if not key:
                    found[name] = []
                    continue
                rows = self._db.execute(
                    "SELECT entity_id FROM names WHERE key = ? ORDER BY is_alias, entity_id LIMIT ?", (key, limit)
                ).fetchall()
                found[name] = list(dict.fromkeys(r[0] for r in rows))
        return found

    def prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Entities with a name or alias starting with ``prefix``: name matches first, then by the
        matching key's length, the key, the id (each entity at its best key)."""

        key = normalise(prefix)
        if not key or limit < 1:
            return []
        found: dict[str, None] = {}
        page, offset = limit * 3, 0
        with self._lock:
            while len(found) < limit:
                rows = self._db.execute(
                    "SELECT entity_id FROM names WHERE key >= ? AND key < ?"
                    " ORDER BY is_alias, length(key), key, entity_id LIMIT ? OFFSET ?",
                    (key, key + "\U0010ffff", page, offset),
                ).fetchall()
                found.update(dict.fromkeys(r[0] for r in rows))
                if len(rows) < page:
                    break
                offset += page
        return list(found)[:limit]

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


def names_path_for(settings: Any) -> Path:
    """Where the workspace keeps the name index of the Neo4j database the settings point at: one
    file per (URI, database), so two databases never share names."""

    from qa_system.workspace import prepare_workspace

    digest = hashlib.sha256(f"{settings.neo4j_uri}\n{settings.neo4j_database or ''}".encode()).hexdigest()[:16]
    folder = prepare_workspace(settings.workspace) / "graph"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"names-neo4j-{digest}.sqlite"


class MirroredNameIndex:
    """A ``NameIndex`` in step with a database other clients can write (the Neo4j store).

    ``count`` reads the database's number of entity nodes (literal values included: one cheap
    ``count``, not a scan), ``entities`` every entity. Each lookup first compares that count with the
    one the index was last in step with (stored in the index, so processes sharing the file share
    it) and rebuilds the index from ``entities`` when they differ or it was never built: one
    round trip a lookup instead of a scan. The store's own writes keep it in step through
    ``written``/``deleted``/``cleared``, which move the stored count by what they added or removed,
    in the same SQLite transaction as the names; a concurrent write by another client then leaves
    the counts apart, and the next lookup rebuilds.

    What a count cannot see: another client renaming an entity, or deleting and adding as many
    entities between two lookups, without this index being told; ``rebuild()`` then (the store's
    ``rebuild_name_index``).
    """

    def __init__(self, index: NameIndex, count: Callable[[], int], entities: Callable[[], Iterable[Entity]]) -> None:
        self.index = index
        self._count = count
        self._entities = entities
        self._rebuilding = threading.Lock()
        self.rebuilds = 0  # how often the database was read in full (tests, logs)

    @property
    def path(self) -> Path:
        return self.index.path

    def close(self) -> None:
        self.index.close()

    def current(self) -> NameIndex:
        """The index, rebuilt first when it is out of step with the database."""

        count = self._count()
        if self.index.stamp() != count:
            with self._rebuilding:
                if self.index.stamp() != self._count():  # another thread may have rebuilt meanwhile
                    self.rebuild()
        return self.index

    def rebuild(self) -> None:
        count = self._count()  # read before the entities: a write in between leaves the counts apart
        self.index.replace(self._entities(), count)
        self.rebuilds += 1

    # -- the store's own writes ----------------------------------------------------------------
    def written(self, entities: Iterable[Entity], added: int) -> None:
        """``entities`` were written (``added`` of them new nodes)."""

        self.index.add(entities, stamp_delta=added)

    def deleted(self, entity_ids: Sequence[str]) -> None:
        """These entities (each one that existed) were deleted."""

        self.index.remove(entity_ids, stamp_delta=-len(entity_ids))

    def cleared(self) -> None:
        self.index.replace((), 0)

    # ``NameIndex``'s write names, for code written against it (an unknown ``stamp_delta`` on ``add``
    # leaves the counts apart when entities were new: the next lookup then rebuilds, slower, still right)
    def add(self, entities: Iterable[Entity], *, stamp_delta: int = 0) -> None:
        self.written(entities, stamp_delta)

    def remove(self, entity_ids: Iterable[str], *, stamp_delta: int | None = None) -> None:
        ids = list(entity_ids)
        self.index.remove(ids, stamp_delta=-len(ids) if stamp_delta is None else stamp_delta)

    # -- lookups (``NameIndex``'s) ---------------------------------------------------------------
    def exact(self, name: str, limit: int = 10) -> list[str]:
        return self.current().exact(name, limit)

    def exact_many(self, names: Sequence[str], limit: int = 10) -> dict[str, list[str]]:
        return self.current().exact_many(names, limit)

    def prefix(self, prefix: str, limit: int = 10) -> list[str]:
        return self.current().prefix(prefix, limit)

    def search(self, text: str, limit: int = 10) -> list[str]:
        return self.current().search(text, limit)

    def count(self) -> int:
        return self.current().count()


class NameLookups:
    """``find_entities``/``search_entities``/``find_entities_many`` over a store's ``names`` (a
    ``NameIndex`` or a ``MirroredNameIndex``) and its ``get_entities`` (``graph.cypher_store``):
    ids from the index, then one read for the entities."""

    names: NameIndex | MirroredNameIndex
    get_entities: Callable[[Sequence[str]], dict[str, Entity]]  # the store's (``CypherStoreBase.get_entities``)

    def _in_order(self, ids: list[str]) -> list[Entity]:
        if not ids:
            return []
        found = self.get_entities(ids)
        return [found[i] for i in ids if i in found]

    def find_entities(self, name: str, *, limit: int = 10) -> list[Entity]:
        if limit < 1:
            return []
        return self._in_order(self.names.exact(name, limit))

    def find_entities_many(self, names: Sequence[str], *, limit: int = 10) -> dict[str, list[Entity]]:
        """``find_entities`` of each name (keyed by the name as given), with one index check and one
        entity read for all of them: the linker looks up every n-gram of a question at once."""

        if limit < 1:
            return {name: [] for name in names}
        ids = self.names.exact_many(list(dict.fromkeys(names)), limit)
        found = self.get_entities(list(dict.fromkeys(i for hits in ids.values() for i in hits)))
        return {name: [found[i] for i in hits if i in found] for name, hits in ids.items()}

    def search_entities(self, prefix: str, *, limit: int = 10) -> list[Entity]:
        if limit < 1:
            return []
        index = self.names.current() if isinstance(self.names, MirroredNameIndex) else self.names
        ids = index.prefix(prefix, limit)
        if len(ids) < limit:
            ids += [i for i in index.search(prefix, limit) if i not in ids]
        return self._in_order(ids[:limit])

    def rebuild_name_index(self) -> None:
        """Re-read every entity's names from the database (after another client renamed some)."""

        if isinstance(self.names, MirroredNameIndex):
            self.names.rebuild()
