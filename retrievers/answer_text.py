"""Question-to-answer text match: a per-candidate score added to the reader's answer scores.

The reader scores a candidate mostly by the relations that link it to the topic (``path_scores``).
On the dev questions about half of its wrong top answers share the right relation with the gold
answer: every actor of *Friends* for "Who played Rachel Green in Friends?", every state for "Which
US state ...". Its entity term (question projected into HittER's entity space) rarely separates
them; the candidates' own words often do ("Jennifer Aniston: American actress", "Sunderland A.F.C.:
association football club in Sunderland, England" for "the Black Cats"). So each candidate gets
``weight * cosine(MiniLM(question), MiniLM("name: description"))``, with the shared MiniLM sentence
encoder (``retrievers.name_embeddings``) and no training. The weight belongs to the reader (it is
on the scale of that reader's logits): the card's ``answer_text_weight``, chosen on dev. With the
shipped reader (weight 14, filtered dev, oracle topic) Hits@1 went 0.451 -> 0.501 on FreebaseQA
and stayed 0.553 on WebQSP.

Candidate vectors are embedded on first need and kept in memory (about 1.5 KB an entity), keyed by
the text, so an edited name or description is embedded again. Embedding a hub topic's hundreds of
candidates on the fly costs seconds on CPU (``ask`` p50 went from 50 ms to 711 ms), so the app warms
the cache with every entity of the graph in a background thread (``warm_up_in_background``; ~1 min
for the 14.5k-entity demo graph on 2 cores) and the vectors are saved in the workspace
(``<workspace>/indexes/answer_text.npz``) for the next start.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CARD_KEY = "answer_text_weight"
VECTORS_FILE = "answer_text.npz"

Embedder = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised vectors (N, d)


def entity_text(name: str, description: str = "") -> str:
    """What is embedded for a candidate: ``"name: description"`` (the name alone without one)."""

    name, description = " ".join(name.split()), " ".join(description.split())
    return f"{name}: {description}" if description else name


def _default_embed(texts: list[str]) -> np.ndarray:
    from retrievers.name_embeddings import embed

    return embed(texts)


class AnswerTextMatcher:
    """``weight * cosine(question, candidate text)`` for the candidates of a question.

    ``texts`` maps entity ids to their text (see :func:`entity_text`); an id it does not know
    scores 0. Thread-safe."""

    def __init__(self, texts: Callable[[Sequence[str]], Mapping[str, str]], weight: float, *, embed: Embedder | None = None,
                 cache_path: Path | None = None) -> None:
        if weight < 0:
            raise ValueError(f"answer text weight must be >= 0, got {weight}")
        self.texts = texts
        self.weight = float(weight)
        self.embed = embed or _default_embed
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self._vectors: dict[str, tuple[str, np.ndarray]] = {}  # entity id -> (embedded text, vector)
        self._lock = threading.Lock()
        self.load_cache()

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self) -> dict[str, np.ndarray]:
        """A copy of every cached vector by entity id (analyses over all candidates' texts)."""

        with self._lock:
            return {i: vector for i, (_text, vector) in self._vectors.items()}

    def load_cache(self) -> int:
        """Vectors saved by an earlier ``warm_up`` (none when the file is missing or unreadable)."""

        if self.cache_path is None or not self.cache_path.is_file():
            return 0
        try:
            with np.load(self.cache_path, allow_pickle=False) as data:
                ids, texts, vectors = data["ids"].tolist(), data["texts"].tolist(), data["vectors"]
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring the answer-text vector cache %s (%s); it will be rebuilt", self.cache_path, e)
            return 0
        if len(ids) != len(texts) or len(ids) != len(vectors):
            log.warning("ignoring the answer-text vector cache %s (inconsistent lengths)", self.cache_path)
            return 0
        with self._lock:
            for i, text, vector in zip(ids, texts, vectors):
                self._vectors.setdefault(i, (text, np.asarray(vector, dtype=np.float32)))
        return len(ids)

    def save_cache(self) -> Path | None:
        """Write the vectors beside the graph (atomically) so the next process starts warm."""

        if self.cache_path is None:
            return None
        with self._lock:
            ids = list(self._vectors)
            texts = [self._vectors[i][0] for i in ids]
            vectors = np.stack([self._vectors[i][1] for i in ids]) if ids else np.zeros((0, 384), dtype=np.float32)
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(self.cache_path.name + ".tmp.npz")
        np.savez(tmp, ids=np.array(ids, dtype=str), texts=np.array(texts, dtype=str), vectors=vectors)
        os.replace(tmp, self.cache_path)
        return self.cache_path

    def _needs(self, entity_id: str, text: str) -> bool:
        """Whether ``text`` must be embedded for ``entity_id`` (not cached, or cached for another text)."""

        return bool(text) and self._vectors.get(entity_id, ("", None))[0] != text

    def warm_up(self, rows: Iterable[tuple[str, str]], *, batch_size: int = 512) -> int:
        """Embed every (entity id, text) not cached with that text yet, in batches, then save the
        cache when anything was added; returns how many were embedded."""

        todo = [(i, t) for i, t in rows if self._needs(i, t)]
        for at in range(0, len(todo), batch_size):
            chunk = todo[at:at + batch_size]
            vectors = self.embed([t for _, t in chunk])
            with self._lock:
                for (i, t), vector in zip(chunk, vectors):
                    self._vectors[i] = (t, np.asarray(vector, dtype=np.float32))
        if todo:
            self.save_cache()
        return len(todo)

    def __call__(self, questions: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """One float32 array per question, aligned with its candidates."""

        if len(questions) != len(candidates):
            raise ValueError(f"{len(questions)} questions but {len(candidates)} candidate lists")
        if not questions:
            return []
        if self.weight == 0.0:
            return [np.zeros(len(c), dtype=np.float32) for c in candidates]
        question_vectors = self.embed(list(questions))
        vectors = self._candidate_vectors({c for row in candidates for c in row})
        out = []
        for q, row in zip(question_vectors, candidates):
            known = [i for i, c in enumerate(row) if c in vectors]
            cosines = np.zeros(len(row), dtype=np.float32)
            if known:
                cosines[known] = np.stack([vectors[row[i]] for i in known]) @ np.asarray(q, dtype=np.float32)
            out.append(self.weight * cosines)
        return out

    def _candidate_vectors(self, ids: set[str]) -> dict[str, np.ndarray]:
        with self._lock:
            texts = self.texts(sorted(ids))
            stale = [i for i, text in texts.items() if self._needs(i, text)]
            if stale:
                for i, vector in zip(stale, self.embed([texts[i] for i in stale])):
                    self._vectors[i] = (texts[i], np.asarray(vector, dtype=np.float32))
            return {i: self._vectors[i][1] for i in texts if i in self._vectors and self._vectors[i][0] == texts[i]}


def store_texts(store: Any) -> Callable[[Sequence[str]], dict[str, str]]:
    """Entity id -> :func:`entity_text` from a ``GraphStore`` (ids it lacks are left out).

    One parameterised read (the store's ``entity_texts``: three columns, not every entity column)
    per question: a lookup per candidate cost more than the reader on hub topics."""

    def texts(ids: Sequence[str]) -> dict[str, str]:
        ids = list(ids)
        if not ids:
            return {}
        if hasattr(store, "entity_texts"):  # every real store (``graph.cypher_store``)
            return {i: entity_text(name, description) for i, (name, description) in store.entity_texts(ids).items()}
        found = {}  # a minimal store (tests): one lookup per id
        for entity_id in ids:
            entity = store.get_entity(entity_id)
            if entity is not None:
                found[entity_id] = entity_text(entity.name, entity.description)
        return found

    return texts


def store_rows(store: Any) -> list[tuple[str, str]]:
    """(entity id, :func:`entity_text`) for every entity of the graph (the shared read-only query)."""

    from retrievers.name_embeddings import entity_rows

    return [(row["e.id"], entity_text(str(row["e.name"] or ""), str(row.get("e.description") or ""))) for row in entity_rows(store)]


def warm_up_in_background(matcher: AnswerTextMatcher, store: Any) -> threading.Thread:
    """Embed the whole graph's candidate texts in a daemon thread (questions asked meanwhile embed
    their own candidates on demand, as before)."""

    from qa_system.background import run_in_background

    def run() -> None:
        added = matcher.warm_up(store_rows(store))
        log.info("answer-text vectors ready (%d embedded, %d cached)", added, len(matcher))

    return run_in_background(run, name="answer-text-vectors", failure="warming up the answer-text vectors failed")


def matcher_from_card(card: Mapping[str, Any], store: Any) -> AnswerTextMatcher | None:
    """The matcher a reader card asks for (its vectors cached in the workspace's index folder when
    the store has one); None when it sets no (or a zero) weight."""

    from retrievers.linking import default_index_dir

    weight = float(card.get(CARD_KEY) or 0.0)
    if weight <= 0:
        return None
    index_dir = default_index_dir(store)
    return AnswerTextMatcher(store_texts(store), weight, cache_path=index_dir / VECTORS_FILE if index_dir is not None else None)
