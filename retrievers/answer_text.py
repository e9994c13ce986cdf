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
the text, so an edited name or description is embedded again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

CARD_KEY = "answer_text_weight"

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

    def __init__(self, texts: Callable[[Sequence[str]], Mapping[str, str]], weight: float, *, embed: Embedder | None = None) -> None:
        if weight < 0:
            raise ValueError(f"answer text weight must be >= 0, got {weight}")
        self.texts = texts
        self.weight = float(weight)
        self.embed = embed or _default_embed
        self._vectors: dict[str, tuple[str, np.ndarray]] = {}  # entity id -> (embedded text, vector)
        self._lock = threading.Lock()

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
            cosines = np.array([float(vectors[c] @ q) if c in vectors else 0.0 for c in row], dtype=np.float32)
            out.append(self.weight * cosines)
        return out

    def _candidate_vectors(self, ids: set[str]) -> dict[str, np.ndarray]:
        with self._lock:
            texts = self.texts(sorted(ids))
            stale = [i for i, text in texts.items() if text and self._vectors.get(i, ("", None))[0] != text]
            if stale:
                for i, vector in zip(stale, self.embed([texts[i] for i in stale])):
                    self._vectors[i] = (texts[i], np.asarray(vector, dtype=np.float32))
            return {i: self._vectors[i][1] for i in texts if i in self._vectors and self._vectors[i][0] == texts[i]}


def store_texts(store: Any) -> Callable[[Sequence[str]], dict[str, str]]:
    """Entity id -> :func:`entity_text` from a ``GraphStore`` (ids it lacks are left out)."""

    def texts(ids: Sequence[str]) -> dict[str, str]:
        found = {}
        for entity_id in ids:
            entity = store.get_entity(entity_id)
            if entity is not None:
                found[entity_id] = entity_text(entity.name, entity.description)
        return found

    return texts


def matcher_from_card(card: Mapping[str, Any], store: Any) -> AnswerTextMatcher | None:
    """The matcher a reader card asks for; None when it sets no (or a zero) weight."""

    weight = float(card.get(CARD_KEY) or 0.0)
    return AnswerTextMatcher(store_texts(store), weight) if weight > 0 else None
