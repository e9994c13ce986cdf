"""An ``AskPipeline`` without trained models, for app tests: the real pipeline and retriever over a
real store, with a name-lookup linker and a keyword ranker standing in for the trained models."""

from __future__ import annotations

import re
from typing import Any

from qa_system.ask.pipeline import AskPipeline, PipelineConfig
from qa_system.ask.stages import OneAtATimeRanker
from retrievers.linking import LinkedEntity
from retrievers.subgraph import SubgraphRetriever

# question keyword -> relation substring the answer is linked by
KEYWORDS = {"direct": "director", "nationality": "nationality", "star": "performance", "genre": "genre"}


class NgramLinker:
    """Links the longest word n-grams of the question that are entity names (exact, case-insensitive)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]:
        words = re.findall(r"[\w'’.-]+", question)
        hits: list[LinkedEntity] = []
        for n in range(min(5, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                mention = " ".join(words[i : i + n]).strip(".")
                if len(mention) < 3 or any(h.mention.find(mention) >= 0 for h in hits):
                    continue
                found = self.store.find_entities(mention, limit=1)
                if found:
                    start = question.find(mention)
                    hits.append(LinkedEntity(found[0], 0.9, mention, start, start + len(mention), ("fake",)))
        return hits[:top_k]


class KeywordRanker(OneAtATimeRanker):
    """Candidates linked to the topic by a relation the question's keyword names score high."""

    def rank(self, question: str, context: Any) -> list[tuple[str, float]]:
        wanted = [rel for word, rel in KEYWORDS.items() if word in question.lower()]
        topic = context.topics[0]
        linked: dict[str, int] = {}
        for fact in context.subgraph.facts:
            if topic in (fact.subject, fact.object) and any(w in fact.relation for w in wanted):
                other = fact.object if fact.subject == topic else fact.subject
                linked[other] = linked.get(other, 0) + 1
        scores = {c: 0.02 for c in context.candidates[:50]}
        for i, c in enumerate(sorted(linked)):
            scores[c] = 0.9 - 0.15 * i
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class _AnyIndex(dict):
    """Every id is in the (fake) model vocabulary."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> int:
        return 0

    def __len__(self) -> int:
        return 1


def fake_pipeline(store: Any, threshold: float = 0.5) -> AskPipeline:
    retriever = SubgraphRetriever(store, _AnyIndex(), _AnyIndex(), hops=1)
    return AskPipeline(store, NgramLinker(store), retriever, KeywordRanker(), PipelineConfig(threshold=threshold))


FAKE_RELATIONS = {"directed": "director", "starred in": "starring", "was born in": "birthPlace"}


class FakeExtractor:
    """A rule-based stand-in for the QIDN extractor (``qa_system.models.extraction.Extractor``) for app tests.

    Finds "<Subject> directed <Object>", "<Subject> starred in <Object>" and "<Subject> was born in
    <Object>" (capitalised names), with character spans into the sentence.
    """

    name = "fake"
    checkpoint = "tests.ui.fakes.FakeExtractor"
    vocabulary = "webnlg"
    PATTERN = re.compile(r"(?P<s>[A-Z][\w'’.-]*(?: [A-Z][\w'’.-]*)*) (?P<r>directed|starred in|was born in) "
                         r"(?P<o>[A-Z][\w'’.-]*(?: [A-Z][\w'’.-]*)*)")
    def __init__(self) -> None:
        self.calls = 0

    def extract(self, texts: Any, *, batch_size: int = 16) -> list[list[Any]]:
        from qa_system.models.extraction import ExtractedTriple, Mention

        self.calls += 1
        out = []
        for text in texts:
            found = []
            for m in self.PATTERN.finditer(text):
                subject, obj = Mention(m["s"], m.start("s"), m.end("s")), Mention(m["o"].rstrip("."), m.start("o"), m.start("o") + len(m["o"].rstrip(".")))
                found.append(ExtractedTriple(subject, FAKE_RELATIONS[m["r"]], obj, 0.9))
            out.append(found)
        return out
