"""The ask pipeline: link -> retrieve -> read -> an ``Answer`` with evidence and confidence.

Loaded once, used for many questions (the CLI's ``--file`` mode, the app and evaluation share one
object). Each stage sits behind a small interface (``ask.stages``: ``Linker``, ``Retriever``,
``AnswerRanker``) so tests can swap in fakes; ``ask.stages.ranking_stages`` builds the ranking
stages the evaluations drive too.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qa_system.ask.stages import AnswerRanker, Calibrator, Linker, Retriever
from qa_system.errors import InputError, QAError
from qa_system.types import Answer, RankedEntity

if TYPE_CHECKING:
    from qa_system.ask.constraints import QuestionConstraints
    from qa_system.ask.relation_reader import RelationWordsReader, WordsReading

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2_000


@dataclass
class PipelineConfig:
    top_k_topics: int = 3  # linked entities shown with the answer
    retrieve_topics: int = 1  # linked entities whose neighbourhood is read (the reader was trained on one topic)
    min_link_score: float = 0.05  # below this a linked entity is ignored
    threshold: float = 0.5  # answer confidence below this is "not sure" (calibrated on dev)
    alternatives: int = 4
    # linked entities read one at a time; the answer with the best link score and confidence wins
    # (``topic_choice``). 1 = the first linked entity only: each extra topic costs a reading.
    read_topics: int = 1
    topic_link_weight: float = 2.0  # ``topic_choice.reading_score``'s weight on the link score
    # an answer read by relation words (``ask.relation_reader``) below this confidence is "not sure"
    words_threshold: float = 0.5


def check_read_topics(read_topics: int) -> int:
    """``read_topics`` when it is at least 1, else an ``InputError`` (``ask``, ``evaluate qa`` and
    ``load_pipeline`` refuse it before opening anything)."""

    if read_topics < 1:
        raise InputError(f"read_topics must be at least 1; got {read_topics}")
    return read_topics


def validate_question(question: object) -> str:
    """The question as text, or an ``InputError`` saying what is wrong with it."""

    if not isinstance(question, str):
        raise InputError("the question must be text")
    text = " ".join(question.split())
    if not text:
        raise InputError("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(f"the question is {len(text):,} characters; the limit is {MAX_QUESTION_CHARS:,}")
    return text


@dataclass
class _Prepared:
    """A question linked and retrieved, waiting for the reader: one context per topic to read,
    with the topic's link score (the first linked entity's first)."""

    text: str
    topics: list[RankedEntity]
    readings: list[tuple[float, Any]]
    linked: list[Any] = field(default_factory=list)  # every linked entity (``constraints`` reads the others)
    # per reading: facts tying its head candidates to other entities the question names
    constraint_facts: list[list[Any]] = field(default_factory=list)

    @property
    def context(self) -> Any:
        """The context answered from: the first reading's (the only one once chosen)."""

        return self.readings[0][1]


class AskPipeline:
    """Question in, ``Answer`` out. Thread-safe for concurrent askers (model calls are serialised)."""

    def __init__(
        self,
        store: Any,
        linker: Linker,
        retriever: Retriever,
        ranker: AnswerRanker,
        config: PipelineConfig | None = None,
        *,
        calibrator: Calibrator | None = None,
        fallback: Callable[[Answer], Answer] | None = None,
        constraints: QuestionConstraints | None = None,
        words_reader: RelationWordsReader | None = None,
    ) -> None:
        self.store = store
        # answers from facts the trained reader cannot see (new entities, relations, literal values)
        self.words_reader = words_reader
        # the other entities the question names re-order the head of each ranking (``constraints``)
        self.constraints = constraints
        # When the graph is not sure: the LLM answers and its triples are validated
        # (``fallback_step.FallbackStep``); runs outside the reader lock, it is slow.
        self.fallback = fallback
        self.calibrator = calibrator  # (top probabilities, number of candidates) -> P(top answer is right); None = the raw top probability
        self.linker = linker
        self.retriever = retriever
        self.ranker = ranker
        self.config = config or PipelineConfig()
        self._model_lock = threading.Lock()

    def ask(self, question: object, *, fallback: bool = True) -> Answer:
        """``fallback=False``: the graph's answer only (the app then calls ``fall_back`` itself, to
        show progress while the LLM works)."""

        text = validate_question(question)
        self.ranker.encode_ahead(text)  # the reader encodes the question once, whatever the number of readings
        prepared = self._prepare(text)
        if not isinstance(prepared, Answer):
            with self._model_lock:
                rankings = self._rank([(prepared.text, context) for _, context in prepared.readings])
            prepared = self._finish(*self._choose(*self._constrain(prepared, rankings)))
        return self.fall_back(prepared) if fallback else prepared

    def _rank(self, items: list[tuple[str, Any]]) -> list[list[tuple[str, float]]]:
        """The ranker over (question, context) pairs, batched (caller holds the lock)."""

        return self.ranker.rank_many(items)

    def _constrain(
        self, prepared: _Prepared, rankings: list[list[tuple[str, float]]]
    ) -> tuple[_Prepared, list[list[tuple[str, float]]]]:
        """Each reading's ranking re-ordered by the question's other named entities, and a copy of
        ``prepared`` holding the facts that tied candidates to them (for the evidence). Both
        unchanged without ``constraints``."""

        if self.constraints is None:
            return prepared, rankings
        out, tying = [], []
        for (_, context), ranked in zip(prepared.readings, rankings):
            ranked, facts = self.constraints.apply(ranked, prepared.linked, context.topics[0] if context.topics else "")
            out.append(ranked)
            tying.append(facts)
        return replace(prepared, constraint_facts=tying), out

    def _confidence(self, ranked: list[tuple[str, float]], context: Any) -> float:
        from qa_system.ask.calibration import answer_confidence  # numpy: kept off this module's import

        return answer_confidence(self.calibrator, ranked, len(context.candidates))

    def _choose(self, prepared: _Prepared, rankings: list[list[tuple[str, float]]]) -> tuple[_Prepared, list[tuple[str, float]]]:
        """The reading to answer from (``topic_choice``); the only one when one topic was read."""

        if len(prepared.readings) == 1:
            return prepared, rankings[0]
        from qa_system.ask.topic_choice import choose_reading

        scores = [(link, self._confidence(ranked, context)) for (link, context), ranked in zip(prepared.readings, rankings)]
        best = choose_reading(scores, self.config.topic_link_weight)
        chosen = replace(prepared, readings=[prepared.readings[best]], constraint_facts=prepared.constraint_facts[best : best + 1])
        return chosen, rankings[best]

    def wants_fallback(self, answer: Answer) -> bool:
        return self.fallback is not None and answer.source in ("graph-unsure", "none")

    def fall_back(self, answer: Answer) -> Answer:
        """The fallback's answer when one is configured and the graph is not sure; never loses the
        graph's answer (a failing fallback only adds its error to the message)."""

        if not self.wants_fallback(answer):
            return answer
        try:
            return self.fallback(answer)  # type: ignore[misc]  # wants_fallback: not None
        except QAError as e:
            log.warning("LLM fallback failed: %s", e)
            note = f"LLM fallback failed: {e}"
            return answer.model_copy(update={"message": f"{answer.message} {note}".strip()})

    def ask_many(self, questions: Sequence[object]) -> list[Answer | InputError]:
        """Answers in input order; a bad question yields its ``InputError`` in place, the rest go on.
        The reader scores all retrieved questions in batches when the ranker has ``rank_many``."""

        results: list[Answer | InputError | _Prepared] = []
        for question in questions:
            try:
                results.append(self._prepare(validate_question(question)))
            except InputError as e:
                results.append(e)
        pending = [r for r in results if isinstance(r, _Prepared)]
        if pending:
            items = [(r.text, context) for r in pending for _, context in r.readings]
            with self._model_lock:
                flat = self._rank(items)
            finished, at = {}, 0
            for r in pending:
                rankings, at = flat[at:at + len(r.readings)], at + len(r.readings)
                finished[id(r)] = self._finish(*self._choose(*self._constrain(r, rankings)))
            results = [finished[id(r)] if isinstance(r, _Prepared) else r for r in results]
        return [self.fall_back(r) if isinstance(r, Answer) else r for r in results]  # type: ignore[return-value]

    def _prepare(self, text: str) -> Answer | _Prepared:
        """Link and retrieve; an ``Answer`` already when the graph has nothing to rank."""

        cfg = self.config
        wanted = max(cfg.top_k_topics, cfg.read_topics, self.constraints.weights.link_top_k if self.constraints else 1)
        linked = [c for c in self.linker.link(text, top_k=wanted) if c.score >= cfg.min_link_score]
        topics = [RankedEntity(id=c.entity.id, name=c.entity.name, description=c.entity.description, confidence=min(1.0, max(0.0, c.score)))
                  for c in linked[: cfg.top_k_topics]]
        if not linked:
            return Answer(question=text, source="none", message="No entity of the graph is named in this question.")
        context = self.retriever.retrieve([c.entity.id for c in linked[: cfg.retrieve_topics]])
        if self.words_reader is not None:
            by_words = self._read_words(text, topics, linked, context)
            if by_words is not None:
                return by_words
        readings = [(linked[0].score, context)] if _readable(context) else []
        for other in linked[1 : max(1, cfg.read_topics)]:  # further topics, each read on its own
            extra = self.retriever.retrieve([other.entity.id])
            if _readable(extra):
                readings.append((other.score, extra))
        if readings:
            return _Prepared(text, topics, readings, linked)
        if not context.candidates:
            return Answer(question=text, topic_entities=topics, source="none",
                          message=f"The graph holds no usable facts about {linked[0].entity.name}.")
        # e.g. an entity added after the graph model was trained
        return Answer(question=text, topic_entities=topics, source="none",
                      message=f"The graph model does not know {linked[0].entity.name} yet (added after training).")

    def _read_words(self, text: str, topics: list[RankedEntity], linked: list[Any], context: Any) -> Answer | None:
        """The answer read by relation words, when the trained reader cannot answer this question
        (its topic is new to the graph model) or the question asks for a relation it cannot see
        (a fact it has no vocabulary for is the best match); None: the trained reader answers.
        A topic whose every fact the reader can see costs nothing here."""

        from graph.store import ANSWERABLE_STATUSES
        from qa_system.ask.relation_reader import LinkedTopic

        assert self.words_reader is not None
        first = linked[0].entity.id
        readable = _readable(context)
        entity_index = getattr(self.retriever, "entity_index", {})
        unseen = getattr(context, "unseen", [])  # found by the retriever in its one pass over the topic's facts
        # another reading of the topic's own words that the trained reader does not know: the same
        # name in an imported graph beside the demo graph ("Keanu Reeves" twice)
        twins = {c.entity.id for c in linked[1 : self.words_reader.max_topics]
                 if c.start < linked[0].end and linked[0].start < c.end and c.entity.id not in entity_index}
        if readable and not unseen and not twins:
            return None
        wanted = linked[: self.words_reader.max_topics]
        facts = {first: context.subgraph.facts}
        others = [c.entity.id for c in wanted[1:] if c.entity.id != first]
        for other in others:
            facts[other] = self.store.neighbors([other], hops=1, statuses=ANSWERABLE_STATUSES).facts
        link_topics = [LinkedTopic(c.entity.id, c.entity.name, float(c.score)) for c in wanted]
        with self._model_lock:
            reading = self.words_reader.read(text, link_topics, facts)
        if reading is None:
            return None
        if readable:  # the reader answers unless the best relation is one only the words reader sees
            best = max(reading.group_probs, key=reading.group_probs.__getitem__)
            unseen_ids = {f.id for f in unseen}
            best_facts = [f for f in reading.facts if (f.relation, f.subject == best[0]) == best[1:] and best[0] in (f.subject, f.object)]
            if best[0] not in twins and (best[0] != first or not any(f.id in unseen_ids for f in best_facts)):
                return None
        return self._finish_words(text, topics, linked, reading)

    def _finish_words(self, text: str, topics: list[RankedEntity], linked: list[Any], reading: WordsReading) -> Answer:
        from qa_system.types import is_literal

        cfg = self.config
        ranked, tying = reading.ranked, []
        if self.constraints is not None:
            # among the answers of the leading relation only, and the order only: each answer keeps its
            # relation's probability (a tie to another named entity must not lift an answer of a
            # relation the question did not ask for)
            from qa_system.ask.constraints import QuestionConstraints

            lead = [item for item in ranked if item[1] >= 0.9 * ranked[0][1]][:200]
            whole_lead = replace(self.constraints.weights, head=len(lead))  # all of them may move, not the first 5
            reordered, tying = QuestionConstraints(self.store, whole_lead, self.constraints.statuses).apply(lead, linked, reading.topic)
            original = dict(ranked)
            ranked = [(node, original[node]) for node, _ in reordered] + ranked[len(lead):]
        head = ranked[: cfg.alternatives + 1]
        values = {f.object: f.object_name for f in reading.facts if is_literal(f.object)}
        entities = self._entities([i for i, _ in head if not is_literal(i)])

        def named(node: str, p: float) -> RankedEntity:
            if is_literal(node):
                return RankedEntity(id=node, name=values.get(node, node), confidence=min(1.0, max(0.0, p)), kind="value")
            return self._ranked(entities, node, p)

        best = named(*head[0])
        evidence = reading.evidence(best.id) + [f for f in tying if best.id in (f.subject, f.object)]
        return _graded(text, topics, best, best.confidence, cfg.words_threshold, evidence, [named(node, p) for node, p in head[1:]])

    def _finish(self, prepared: _Prepared, ranked: list[tuple[str, float]]) -> Answer:
        cfg, text, topics, context = self.config, prepared.text, prepared.topics, prepared.context
        if not ranked:
            return Answer(question=text, topic_entities=topics, source="none", message="No candidate answer was scored.")
        names = self._entities([entity_id for entity_id, _ in ranked[: cfg.alternatives + 1]])
        best_id = ranked[0][0]
        best_p = self._confidence(ranked, context)
        best = self._ranked(names, best_id, best_p)
        evidence = context.facts_between(context.topics[0], best_id) if context.topics else []
        evidence = order_evidence(evidence, context.topics[0] if context.topics else "", getattr(context, "relation_probs", None))
        if prepared.constraint_facts:  # what ties the answer to the question's other named entities
            evidence += [f for f in prepared.constraint_facts[0] if best_id in (f.subject, f.object)]
        return _graded(text, topics, best, best_p, cfg.threshold, evidence,
                       [self._ranked(names, e, p) for e, p in ranked[1 : cfg.alternatives + 1]])

    def _entities(self, ids: list[str]) -> dict[str, Any]:
        from graph.store import entities_by_id

        return entities_by_id(self.store, ids)

    @staticmethod
    def _ranked(entities: dict[str, Any], entity_id: str, probability: float) -> RankedEntity:
        entity = entities.get(entity_id)
        return RankedEntity(
            id=entity_id,
            name=entity.name if entity else entity_id,
            description=entity.description if entity else "",
            confidence=min(1.0, max(0.0, float(probability))),
        )


def _graded(text: str, topics: list[RankedEntity], best: RankedEntity, confidence: float, threshold: float,
            evidence: list[Any], alternatives: list[RankedEntity]) -> Answer:
    """The graph's answer, ``graph`` when ``confidence`` reaches the threshold, else ``graph-unsure``
    with the message saying by how much (both readers grade their answers this one way)."""

    sure = confidence >= threshold
    return Answer(
        question=text,
        answer=best,
        confidence=best.confidence,
        source="graph" if sure else "graph-unsure",
        message="" if sure else f"The graph is not sure (confidence {confidence:.2f} < {threshold:.2f}).",
        topic_entities=topics,
        evidence=evidence,
        alternatives=alternatives,
    )


def _readable(context: Any) -> bool:
    """Whether the reader can read ``context``: it has candidates and its topic is one the graph
    model knows (an entity added after training has no HittER index)."""

    return bool(context.candidates) and getattr(context, "topic_index", 0) is not None


def order_evidence(facts: list[Any], topic: str, relation_probs: dict[tuple[str, bool], float] | None) -> list[Any]:
    """The facts behind the predicted relation first: when topic and answer are linked by several
    relations (directed *and* produced), the one the question asks about leads. ``relation_probs``
    maps (relation id, topic is the subject) to the reader's probability; stable otherwise."""

    if not relation_probs or len(facts) < 2:
        return facts
    return sorted(facts, key=lambda f: -relation_probs.get((f.relation, f.subject == topic), 0.0))


def freeze_loaded_heap() -> None:
    """Collect once, then move every object alive now out of the cyclic garbage collector's sight
    (``gc.freeze``); for processes that load a pipeline and then answer many questions.

    Why: a loaded pipeline holds ~580k tracked objects (models, tokenizers, indexes, caches). Each
    full collection walks them all; during ``ask`` one took 278 ms and set the p99 (WebQSP test, 200
    questions, 2 cores), and the younger collections cost ~1.8 ms a question. Frozen, they are
    never walked again (objects still die by reference counting); new objects are collected as
    before. Not done inside :func:`load_pipeline`: a one-question ``ask`` would pay the collection
    (~0.3 s) for nothing, and tests that load many pipelines should not keep their cycles."""

    gc.collect()
    gc.freeze()


def load_pipeline(
    settings: Any, store: Any, *, reader_dir: Any = None, hops: int = 1, limit_per_entity: int | None = None, use_faiss: bool = True,
    background_index: bool = False, rerank: bool = True, rerank_top_k: int | None = None, rerank_precision: str | None = None,
    read_topics: int = 1, constraints: bool = True, words: bool = True,
) -> AskPipeline:
    """Build the pipeline from the shipped (or given) reader checkpoint and the graph store.

    ``use_faiss=False`` skips the fuzzy name index (built on first use: minutes on CPU for the demo
    graph); ``background_index=True`` builds it in a thread and links without it until it is ready
    (the app: it starts in seconds), and likewise embeds every entity's text for the answer-text
    match (``retrievers.answer_text``). ``rerank=False`` leaves the shipped answer reranker out
    (``reranking``): the reader's order, as before it shipped; ``rerank_top_k`` reads that many of
    the reader's candidates instead of the card's number, ``rerank_precision`` runs it in
    ``float32``, ``bfloat16`` or ``int8`` instead of the card's precision. ``read_topics``: how many
    linked entities are read, each on its own (``PipelineConfig.read_topics``). ``constraints=False``
    leaves out the re-ordering by the question's other named entities (``constraints``; the card's
    weights). ``words=False`` leaves out the relation-words reader (``ask.relation_reader``): only
    what the trained reader knows is answered."""

    check_read_topics(read_topics)

    from pathlib import Path

    from qa_system.ask.reader_loading import load_reader_checkpoint, shipped_reader
    from qa_system.ask.stages import ranking_stages
    from retrievers.answer_text import warm_up_in_background
    from retrievers.linking import GraphEntityLinker
    from retrievers.subgraph import SubgraphRetriever

    folder = Path(reader_dir) if reader_dir else shipped_reader()
    reader, tokenizer, entities, relations, card = load_reader_checkpoint(folder)
    if not reader.config.use_graph:  # the fused reader's cross-attention hooks need PyTorch's layers
        from qa_system.models.onnx_encoder import default_cache_dir, swap_in_onnx_encoder

        # its pass over the question starts ahead, beside linking (``ReaderRanker.encode_ahead``): one ORT
        # thread leaves the other core to spaCy and the linker (p50 ~64 -> ~58 ms, same process)
        swap_in_onnx_encoder(reader, default_cache_dir(settings), "reader", threads=1)
    entity_index = {e: i for i, e in enumerate(entities)}
    retriever = SubgraphRetriever(store, entity_index, {r: i for i, r in enumerate(relations)}, hops=hops, limit_per_entity=limit_per_entity)
    config = PipelineConfig(threshold=float(card.get("threshold", PipelineConfig.threshold)), read_topics=read_topics)
    stages = ranking_stages(card, store, reader, tokenizer, entities, relations, rerank=rerank, rerank_top_k=rerank_top_k,
                            rerank_precision=rerank_precision, constraints=constraints)
    matcher = stages.ranker.answer_bias
    if matcher is not None and background_index:  # the app: embed every candidate text once, off the ask path
        warm_up_in_background(matcher, store)
    linker = GraphEntityLinker(store, use_faiss=use_faiss, background_index=background_index, embed_questions=matcher is not None).load()
    words_reader = None
    if words:
        from qa_system.ask.relation_reader import LazyRelationScorer, RelationWordsReader
        from qa_system.ask.words_loading import relation_scorer_factory, words_calibration

        calibration = words_calibration()
        # which scorer answers by relation words is a dev decision kept with its calibration: MiniLM
        # cosine ("zero-shot") or the shipped trained scorer ("trained")
        scorer = relation_scorer_factory(calibration.get("scorer", "trained"))
        words_reader = RelationWordsReader(LazyRelationScorer(scorer), null_logit=calibration.get("null_logit"))
    pipeline = AskPipeline(store, linker, retriever, stages.ranker, config, calibrator=stages.calibrator,
                           constraints=stages.constraints, words_reader=words_reader)
    if words_reader is not None and background_index:  # the app: every relation's words encoded before the questions come
        from qa_system.ask.words_loading import warm_relations_in_background

        warm_relations_in_background(pipeline)
    return pipeline
