"""Snap predicted entity spans onto known entity strings (a gazetteer of the training split's entities).

Why: on WebNLG with exact entities about half of QIDN's wrong triples on dev have the right
relation and one entity whose boundary is off by a word or two ("Abilene Regional airport" for
the gold "Abilene Regional", "Sri Jayawardenepura" for "Sri Jayawardenepura Kotte"). When a
predicted span is not itself a known entity string but overlaps one that occurs in the sentence
(on word boundaries), the known string is taken instead, provided the overlap covers at least
``min_overlap`` of the longer of the two. The lexicon is built from training data only and the
threshold is chosen on dev; it ships in the checkpoint folder (``entities.json``) and both the
evaluation and the product's extractor apply it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LEXICON_FILE = "entities.json"


def _on_word_boundaries(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not before.isalnum() and not after.isalnum()


@dataclass
class EntityLexicon:
    """Known entity strings with their training counts; ``min_overlap`` in (0, 1]."""

    counts: dict[str, int]
    min_overlap: float = 0.3
    source: str = ""
    _by_first: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1]; got {self.min_overlap}")
        self.counts = {s: int(n) for s, n in self.counts.items() if len(s) >= 2}  # one letter matches everywhere
        for s in self.counts:
            self._by_first.setdefault(s[:2], []).append(s)

    @classmethod
    def from_triples(cls, triples: Iterable[Sequence[str]], *, min_overlap: float = 0.3, source: str = "") -> EntityLexicon:
        counts: Counter[str] = Counter()
        for s, _, o in triples:
            counts[s] += 1
            counts[o] += 1
        return cls(dict(counts), min_overlap, source)

    def occurrences(self, text: str) -> list[tuple[int, int, str]]:
        """Every ``(start, end, string)`` of a known string in ``text``, on word boundaries."""

        found = []
        starts = {i for i in range(len(text)) if i == 0 or not text[i - 1].isalnum()}
        for i in sorted(starts):
            for s in self._by_first.get(text[i:i + 2], ()):
                if text.startswith(s, i) and _on_word_boundaries(text, i, i + len(s)):
                    found.append((i, i + len(s), s))
        return found

    def snap(self, text: str, start: int, end: int, found: list[tuple[int, int, str]] | None = None) -> tuple[int, int]:
        """The character span to use for a predicted ``[start, end)`` (itself when no known string fits better)."""

        if text[start:end] in self.counts:
            return start, end
        best, best_key = (start, end), None
        for c, d, s in self.occurrences(text) if found is None else found:
            overlap = min(end, d) - max(start, c)
            if overlap <= 0:
                continue
            key = (overlap / max(end - start, d - c), self.counts[s], d - c)
            if best_key is None or key > best_key:
                best, best_key = (c, d), key
        return best if best_key is not None and best_key[0] >= self.min_overlap else (start, end)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / LEXICON_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"min_overlap": self.min_overlap, "source": self.source, "counts": self.counts},
                                  ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def load_lexicon(folder: Path) -> EntityLexicon | None:
    """The checkpoint's lexicon, or None when it ships none. A malformed file is a CheckpointError."""

    from qa_system.errors import CheckpointError

    path = Path(folder) / LEXICON_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EntityLexicon(dict(data["counts"]), float(data["min_overlap"]), str(data.get("source", "")))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"entity lexicon {path} is unusable: {e}") from e
