"""Test doubles for ingest: a rule-based extractor (real spans, fixed scores) and a scripted name index.

The rule extractor satisfies ``qa_system.models.extraction.Extractor``; it finds "X was born in Y"-style
patterns so tests know exactly which triples a text yields without loading a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa_system.models.extraction import ExtractedTriple, Mention

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"

_NAME = r"[A-Z0-9](?:[\w.-]*\w)?\.?(?:,? [A-Z0-9](?:[\w.-]*\w)?\.?)*"
# (pattern, relation, score, swap subject/object)
RULES: list[tuple[str, str, float, bool]] = [
    (r"was born in", "birthPlace", 0.93, False),
    (r"was a crew member of", "was a crew member of", 0.88, False),
    (r"was operated by", "operator", 0.91, False),
    (r"was the commander of", "commander", 0.86, True),
    (r"is headquartered in", "headquarter", 0.8, False),
    (r"directed", "director", 0.9, True),
    (r"stars", "starring", 0.95, False),
    (r"is a citizen of", "nationality", 0.7, False),
    (r"is rumoured to be filmed in", "location", 0.2, False),
]
_COMPILED = [
    (re.compile(rf"(?P<s>{_NAME}) {pattern} (?:the )?(?P<o>{_NAME})"), relation, score, swap)
    for pattern, relation, score, swap in RULES
]


@dataclass
class RuleExtractor:
    """Finds the ``RULES`` patterns; counts calls so tests can check batching."""

    name: str = "rules"
    checkpoint: str = "rules-v1"
    vocabulary: str = "webnlg"
    calls: list[int] = field(default_factory=list)

    def extract(self, texts: Sequence[str], *, batch_size: int = 16) -> list[list[ExtractedTriple]]:
        self.calls.append(len(texts))
        out = []
        for text in texts:
            triples = []
            for regex, relation, score, swap in _COMPILED:
                for m in regex.finditer(text):
                    s = Mention(m.group("s").rstrip("."), m.start("s"), m.start("s") + len(m.group("s").rstrip(".")))
                    o = Mention(m.group("o").rstrip("."), m.start("o"), m.start("o") + len(m.group("o").rstrip(".")))
                    triples.append(ExtractedTriple(o if swap else s, relation, s if swap else o, score))
            out.append(triples)
        return out


@dataclass(frozen=True)
class Hit:
    entity_id: str
    text: str
    cosine: float


class ScriptedNameIndex:
    """``NameVectorIndex`` stand-in: mention -> fixed hits (for logic tests of the resolver)."""

    def __init__(self, hits: dict[str, list[Hit]]) -> None:
        self.hits = hits
        self.queries: list[str] = []
        self.texts = [h.text for found in hits.values() for h in found]

    def search(self, queries: list[str], k: int = 5) -> list[list[Hit]]:
        self.queries.extend(queries)
        return [self.hits.get(q, [])[:k] for q in queries]
