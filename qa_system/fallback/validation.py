"""SATORI validation: a candidate triple is kept only when retrieved premises entail its hypothesis.

Steps per triple (subject, relation, object):
1. templates (``prompts/validation_templates.json``): the relation's search query, LM prompt and
   hypothesis ("{X} was born in {Y}."); relations not listed get a generic template built from the
   relation's readable text, so a free-text relation from the LLM is still checkable;
2. premises: the passage retriever's top ``k`` for the search query, plus the descriptions of the
   subject and object when the graph knows them; only those naming the subject are evidence (for
   object completion: naming both subject and candidate);
3. the entailment model scores P(entailment) of the hypothesis for each premise; the triple's score
   is the **maximum** over premises. Why max and not mean: a fact is normally stated by one sentence
   and the other retrieved premises are about something else (neutral), so a mean would punish a
   fact for the irrelevant company it is retrieved with; SATORI likewise accepts on any entailing premise;
4. entailed iff score ≥ the relation's threshold (tuned for F1 on a dev split, ``qa-system tune
   validation``) or the global default; or, when the thresholds file carries a ``calibration``
   (``qa-system tune validation --calibrate``), by the **calibrated decision** below.

Calibrated decision (object completion, ``complete()`` only; ``qa_system.fallback.validation_calibration``):
a logistic regression fitted on dev over each candidate's features within its (subject, relation)
group; a candidate is entailed iff its probability ≥ the calibration's threshold. The decision's
``score`` stays the entailment score, its ``threshold`` is the probability threshold and its
``reason`` names the probability and the features. ``validate()`` (the LLM fallback's triples)
always uses the thresholds: see its docstring. The evidence rule holds either way: no evidence
premise → ``not_entailed``, unscored.

No premises means ``not_entailed`` with reason "no evidence", never an exception. Any object with
``name``, ``version`` and ``entailment_scores(premises, hypothesis)`` can score (``EntailmentScorer``);
the shipped one is ``qa_system.models.entailment``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from qa_system.errors import ConfigError, DataFormatError, InputError
from qa_system.fallback.answer import ProposedTriple
from qa_system.fallback.candidates import Candidate, gather, graph_range_objects
from qa_system.fallback.validation_calibration import (
    Calibration,
    group_ranks,
    relation_group_features,
)
from qa_system.maintain.review import InsertionReport, ValidationDecision, record_decisions
from qa_system.relations import readable_relation, relation_words

log = logging.getLogger(__name__)

TEMPLATES_FILE = "validation_templates.json"
THRESHOLDS_FILE = "validation_thresholds.json"
DEFAULT_THRESHOLD = 0.5
DEFAULT_K = 5
NO_EVIDENCE = "no evidence"
_VERB_START = {"is", "was", "are", "were", "has", "had", "have", "plays", "played", "won", "directed", "wrote", "born",
               "died", "located", "lives", "lived", "works", "worked", "speaks", "member", "married", "studied"}  # fmt: skip
_VERB_END = {"of", "by", "in", "to", "for", "with", "from", "at", "on", "as"}


@runtime_checkable
class EntailmentScorer(Protocol):
    """What validation needs from an entailment model."""

    name: str
    version: str

    def entailment_scores(self, premises: Sequence[str], hypothesis: str) -> np.ndarray: ...


# -- templates ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelationTemplate:
    relation: str
    search: str  # fields {X} (+ {relation} for generic)
    prompt: str  # fields {X} (+ {relation})
    hypothesis: str  # fields {X}, {Y} (+ {relation})
    generic: bool = False

    def _fill(self, template: str, subject: str, obj: str = "") -> str:
        text = template.format(X=subject, Y=obj, relation=readable_relation(self.relation) if self.generic else "")
        return " ".join(text.split())

    def search_query(self, subject: str) -> str:
        return self._fill(self.search, subject)

    def prompt_text(self, subject: str) -> str:
        return self._fill(self.prompt, subject)

    def hypothesis_text(self, subject: str, obj: str) -> str:
        return self._fill(self.hypothesis, subject, obj)


_FIELDS = {"search": {"X"}, "prompt": {"X"}, "hypothesis": {"X", "Y"}}


HYPOTHESIS_STYLES = ("natural", "plain")


class TemplateBook:
    """Per-relation templates with the two generic fallbacks (``_generic``, ``_generic_verb``).

    ``hypotheses="plain"`` replaces every hypothesis by ``"{X} <relation words> {Y}"``: the form of the
    entailment model's WebNLG training pairs, which it may judge better than a natural sentence; which
    style serves best is measured on dev and recorded with the tuned thresholds.
    """

    def __init__(self, entries: dict[str, Any], *, source: str = "templates", hypotheses: str = "natural") -> None:
        from prompts import template_fields

        if hypotheses not in HYPOTHESIS_STYLES:
            raise ConfigError(f"hypothesis style must be one of {HYPOTHESIS_STYLES}; got {hypotheses!r}")
        self.hypotheses = hypotheses

        self._by_relation: dict[str, RelationTemplate] = {}
        generic: dict[str, RelationTemplate] = {}
        for relation, entry in entries.items():
            if relation == "_comment":
                continue
            is_generic = relation.startswith("_")
            if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
                raise ConfigError(f"{source}: entry {relation!r} must have exactly the keys {sorted(_FIELDS)}")
            for key, needed in _FIELDS.items():
                found = template_fields(str(entry[key]))
                allowed = needed | ({"relation"} if is_generic else set())
                if not needed <= found or not found <= allowed:
                    raise ConfigError(
                        f"{source}: {relation!r} {key} template {entry[key]!r} must use {sorted(needed)}"
                        f"{' (and may use relation)' if is_generic else ''}; it uses {sorted(found)}"
                    )
            template = RelationTemplate(relation, entry["search"], entry["prompt"], entry["hypothesis"], generic=is_generic)
            (generic if is_generic else self._by_relation)[relation] = template
        missing = {"_generic", "_generic_verb"} - set(generic)
        if missing:
            raise ConfigError(f"{source}: the generic templates {sorted(missing)} are missing")
        self._generic = generic

    def __contains__(self, relation: object) -> bool:
        return relation in self._by_relation

    def __len__(self) -> int:
        return len(self._by_relation)

    def get(self, relation: str) -> RelationTemplate:
        """The relation's own template, else a generic one over its readable text."""

        if self.hypotheses == "plain":
            natural = self._natural(relation)
            words = relation_words(relation).replace("{", "{{").replace("}", "}}")
            return RelationTemplate(relation, natural.search, natural.prompt, "{X} " + words + " {Y}", generic=natural.generic)
        return self._natural(relation)

    def _natural(self, relation: str) -> RelationTemplate:
        if relation in self._by_relation:
            return self._by_relation[relation]
        words = readable_relation(relation).split()
        verbal = bool(words) and (words[0] in _VERB_START or (len(words) > 1 and words[-1] in _VERB_END))
        base = self._generic["_generic_verb" if verbal else "_generic"]
        return RelationTemplate(relation, base.search, base.prompt, base.hypothesis, generic=True)


def load_templates(name: str = TEMPLATES_FILE, *, hypotheses: str = "natural") -> TemplateBook:
    from prompts import load_json

    entries = load_json(name)
    if not isinstance(entries, dict):
        raise ConfigError(f"prompt data {name!r} must be a JSON object of relation → templates")
    return TemplateBook(entries, source=name, hypotheses=hypotheses)


# -- thresholds -----------------------------------------------------------------------------------------
class Thresholds(BaseModel):
    """Per-relation decision thresholds on the aggregated entailment score, with a global default."""

    default: float = Field(default=DEFAULT_THRESHOLD, ge=0.0, le=1.0)
    relations: dict[str, float] = Field(default_factory=dict)
    hypotheses: Literal["natural", "plain"] = "natural"  # the hypothesis style they were tuned with
    model: str = ""
    version: str = ""
    tuned_on: str = ""
    command: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    # when present, the validator decides by it instead of the thresholds above (see the module docstring)
    calibration: Calibration | None = None

    def for_relation(self, relation: str) -> float:
        return self.relations.get(relation, self.default)


def thresholds_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("prompts").joinpath(THRESHOLDS_FILE)))


def load_thresholds(path: Path | None = None) -> Thresholds:
    """The tuned thresholds (``prompts/validation_thresholds.json``); the global default when none."""

    path = Path(path) if path is not None else thresholds_path()
    if not path.is_file():
        log.info("no tuned validation thresholds at %s; using %.2f", path, DEFAULT_THRESHOLD)
        return Thresholds()
    try:
        thresholds = Thresholds.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as e:
        if any(error["loc"][:1] == ("calibration",) for error in e.errors()):
            raise DataFormatError(f"malformed calibration in the thresholds file ({e})", path=str(path)) from e
        raise DataFormatError(f"not a thresholds file ({e})", path=str(path)) from e
    except ValueError as e:
        raise DataFormatError(f"not a thresholds file ({e})", path=str(path)) from e
    bad = {r: t for r, t in thresholds.relations.items() if not 0.0 <= t <= 1.0}
    if bad:
        raise DataFormatError(f"thresholds outside [0, 1]: {bad}", path=str(path))
    return thresholds


def aggregate(scores: Sequence[float] | np.ndarray) -> float:
    """Premise scores → one triple score: the maximum (see the module docstring for why)."""

    return float(np.max(scores)) if len(scores) else 0.0


# -- the validator ----------------------------------------------------------------------------------------
class TripleValidator:
    """Decides, per candidate triple, whether the retrieved premises entail it.

    ``retriever`` is a ``retrievers.passages.PassageRetriever`` (or anything with ``search`` and
    ``for_entities``); ``k`` premises are retrieved per query.
    """

    def __init__(
        self,
        scorer: EntailmentScorer,
        retriever: Any,
        *,
        templates: TemplateBook | None = None,
        thresholds: Thresholds | None = None,
        store: Any | None = None,
        k: int = DEFAULT_K,
        batch_size: int = 32,
    ) -> None:
        if k < 1:
            raise InputError(f"k must be at least 1; got {k}")
        for attribute in ("name", "version", "entailment_scores"):
            if not hasattr(scorer, attribute):
                raise InputError(f"scorer {type(scorer).__name__} has no {attribute!r}")
        self.scorer, self.retriever, self.store, self.k, self.batch_size = scorer, retriever, store, k, batch_size
        self.thresholds = thresholds if thresholds is not None else load_thresholds()
        self.templates = templates if templates is not None else load_templates(hypotheses=self.thresholds.hypotheses)
        if self.thresholds.model and self.thresholds.model != scorer.name:
            log.warning("validation thresholds were tuned for %s, not %s", self.thresholds.model, scorer.name)

    # -- premises -----------------------------------------------------------------------------------
    def premises(self, subject_name: str, relation: str, *, entity_ids: Iterable[str] = ()) -> list[str]:
        """Top-``k`` passages for the relation's search query, plus the known ends' descriptions."""

        query = self.templates.get(relation).search_query(subject_name)
        texts = [p.text for p, _score in self.retriever.search(query, self.k)]
        if hasattr(self.retriever, "for_entities"):
            texts += [p.text for p in self.retriever.for_entities([e for e in entity_ids if e])]
        return list(dict.fromkeys(t for t in texts if t.strip()))

    def about_subject(self, premises: Sequence[str], triple: ProposedTriple) -> list[str]:
        """The evidence rule for a proposed triple: only premises naming its subject (by name or,
        when the graph knows it, an alias) can entail "X ... Y"; retrieval also returns sentences
        about look-alikes, which a small entailment model can be fooled by."""

        from qa_system.fallback.candidates import mentioned_in

        names = [triple.subject_name, triple.subject_text]
        if self.store is not None and triple.subject_known and (entity := self.store.get_entity(triple.subject)) is not None:
            names += list(entity.aliases)
        keep: set[int] = set()
        for name in dict.fromkeys(n for n in names if n and n.strip()):
            keep.update(mentioned_in(name, premises))
        return [p for i, p in enumerate(premises) if i in keep]

    # -- scoring ------------------------------------------------------------------------------------
    def score_many(self, items: Sequence[tuple[Sequence[str], str]]) -> list[np.ndarray]:
        """Per item (premises, hypothesis) the P(entailment) of each premise; one model call when the
        scorer can ``predict`` pairs in batch (column 0 = entailment), else one call per item."""

        if hasattr(self.scorer, "predict"):
            pairs = [(p, h) for premises, h in items for p in premises]
            if not pairs:
                return [np.zeros(0) for _ in items]
            probs = np.asarray(self.scorer.predict(pairs, batch_size=self.batch_size))[:, 0]
            out, at = [], 0
            for premises, _h in items:
                out.append(probs[at : at + len(premises)])
                at += len(premises)
            return out
        return [np.asarray(self.scorer.entailment_scores(list(p), h)) if p else np.zeros(0) for p, h in items]

    def _common(self, hypothesis: str, threshold: float) -> dict[str, Any]:
        return {"hypothesis": hypothesis, "threshold": threshold, "model": self.scorer.name, "version": self.scorer.version}

    def _no_evidence(self, hypothesis: str, threshold: float) -> ValidationDecision:
        return ValidationDecision(decision="not_entailed", score=0.0, reason=NO_EVIDENCE, **self._common(hypothesis, threshold))

    def _decision(self, hypothesis: str, threshold: float, premises: Sequence[str], scores: np.ndarray, score: float,
                  entailed: bool, reason: str) -> ValidationDecision:
        return ValidationDecision(
            decision="entailed" if entailed else "not_entailed", score=score, premises=list(premises),
            premise_scores=[float(s) for s in scores], reason=reason, **self._common(hypothesis, threshold),
        )  # fmt: skip

    def decide(self, relation: str, hypothesis: str, premises: Sequence[str], scores: np.ndarray) -> ValidationDecision:
        threshold = self.thresholds.for_relation(relation)
        if not premises:
            return self._no_evidence(hypothesis, threshold)
        score = min(1.0, max(0.0, aggregate(scores)))
        best = int(np.argmax(scores))
        entailed = score >= threshold
        reason = (
            f"entailed by premise {best + 1} (score {score:.3f} >= threshold {threshold:.3f})"
            if entailed
            else f"not entailed (best score {score:.3f} < threshold {threshold:.3f})"
        )
        return self._decision(hypothesis, threshold, premises, scores, score, entailed, reason)

    def decide_group(
        self, relation: str, items: Sequence[tuple[Sequence[str], str]], scores: Sequence[np.ndarray], graph: Sequence[bool],
        objects: Sequence[str],
    ) -> list[ValidationDecision]:
        """Decisions for one group (the candidates of one (subject, relation)): ``items`` are
        (evidence premises, hypothesis), ``scores`` their premise scores, ``graph`` whether the graph
        proposes each object, ``objects`` the candidate objects (for the calibration's shape prior).
        The calibrated decision when the thresholds carry one, else ``decide``."""

        calibration = self.thresholds.calibration
        if calibration is None:
            return [self.decide(relation, h, p, s) for (p, h), s in zip(items, scores)]
        triple_scores = [min(1.0, max(0.0, aggregate(s))) if p else 0.0 for (p, _h), s in zip(items, scores)]
        evidence = [len(p) for p, _h in items]
        features = relation_group_features(relation, objects, triple_scores, evidence, graph, calibration.shape_prior)
        probabilities = calibration.probabilities(features)
        ranks, n_scored = group_ranks(triple_scores, evidence), sum(e > 0 for e in evidence)
        decisions = []
        for (premises, hypothesis), s, score, probability, rank, known in zip(items, scores, triple_scores, probabilities, ranks, graph):
            if not premises:
                decisions.append(self._no_evidence(hypothesis, calibration.threshold))
                continue
            entailed = bool(probability >= calibration.threshold)
            why = (f"entailment {score:.2f} from {len(premises)} premise{'s' if len(premises) > 1 else ''}, rank {rank + 1} of {n_scored}, "
                   f"{'graph-known object' if known else 'object not proposed by the graph'}")  # fmt: skip
            reason = (f"calibrated {probability:.2f} >= {calibration.threshold:.2f}: {why}" if entailed
                      else f"not entailed (calibrated {probability:.2f} < {calibration.threshold:.2f}: {why})")  # fmt: skip
            decisions.append(self._decision(hypothesis, calibration.threshold, premises, s, score, entailed, reason))
        return decisions

    def validate(self, triples: Sequence[ProposedTriple]) -> list[ValidationDecision]:
        """One decision per triple, in order (the pairs ``review.record_decisions`` takes).

        Always by the entailment score against the relation's threshold, never by the calibration:
        the calibration was fitted on groups of ~13 competing candidates per (subject, relation),
        where rank and gap to the best say something; an LLM's triple is usually alone in its group,
        so it would be "rank 1, gap 0" by construction and a weak entailment score would pass. The
        product rule (no LLM fact without entailment) is kept by the entailment threshold alone.
        """

        items, relations = [], []
        for triple in triples:
            relation = triple.relation_text if triple.free_text_relation else triple.relation
            ids = [triple.subject if triple.subject_known else "", triple.object if triple.object_known else ""]
            premises = self.about_subject(self.premises(triple.subject_name, relation, entity_ids=ids), triple)
            items.append((premises, self.templates.get(relation).hypothesis_text(triple.subject_name, triple.object_name)))
            relations.append(relation)
        scores = self.score_many(items)
        return [self.decide(r, h, p, s) for r, (p, h), s in zip(relations, items, scores)]

    # -- SATORI object completion -------------------------------------------------------------------
    def candidates(
        self,
        subject: str,
        relation: str,
        llm_objects: Iterable[str] = (),
        *,
        premises: Sequence[str] | None = None,
        graph_objects: Iterable[str | tuple[str, str]] | None = None,
        use_ner: bool = True,
        graph_cap: int = 200,
    ) -> list[Candidate]:
        """Candidate objects for (subject, relation) from the LLM, the graph and NER, filtered.

        ``subject`` is a name (or a graph id when ``store`` knows it). ``graph_objects`` default to the
        relation's objects in ``store``; ``premises`` default to the retrieved ones.
        """

        subject_id, subject_name = None, subject
        if self.store is not None and (entity := self.store.get_entity(subject)) is not None:
            subject_id, subject_name = entity.id, entity.name
        if premises is None:
            premises = self.premises(subject_name, relation, entity_ids=[subject_id] if subject_id else [])
        if graph_objects is None:
            graph_objects = (
                graph_range_objects(self.store, relation, exclude_subject=subject_id, cap=graph_cap) if self.store is not None else []
            )
        return gather(subject_name, premises, llm_objects=llm_objects, graph_objects=graph_objects, use_ner=use_ner)

    def complete(self, subject: str, relation: str, llm_objects: Iterable[str] = (), **kwargs: Any) -> list[tuple[Candidate, ValidationDecision]]:
        """SATORI end to end: candidates for (subject, relation), each with its entailment decision
        (the candidates are one group for the calibrated decision; the graph feature is the graph source).

        A candidate's evidence is the premises that name both the subject and the candidate: a premise
        that does not name them cannot entail "X ... Y" (and skipping it saves most model calls); a
        candidate with no such premise is ``not_entailed`` with reason "no evidence".
        """

        premises = kwargs.pop("premises", None)
        if premises is None:
            premises = self.premises(subject, relation)
        found = self.candidates(subject, relation, llm_objects, premises=premises, **kwargs)
        template = self.templates.get(relation)
        items = [([premises[i] for i in c.evidence], template.hypothesis_text(subject, c.text)) for c in found]
        decisions = self.decide_group(relation, items, self.score_many(items), ["graph" in c.sources for c in found], [c.text for c in found])
        return list(zip(found, decisions))


def validate_and_record(fallback_result: Any, validator: TripleValidator, store: Any, workspace: Path) -> InsertionReport:
    """Validate a fallback result's triples and record them: entailed → ``proposed``, the rest → rejected log."""

    triples = list(fallback_result.triples)
    if not triples:
        return InsertionReport()
    started = time.perf_counter()
    decisions = validator.validate(triples)
    log.info("validated %d LLM triple(s) in %.2f s: %d entailed", len(triples), time.perf_counter() - started,
             sum(d.entailed for d in decisions))  # fmt: skip
    return record_decisions(store, workspace, fallback_result, list(zip(triples, decisions)))


def default_validator(settings: Any, store: Any) -> TripleValidator:
    """The shipped entailment model over the workspace's passages and the graph's descriptions.

    The passage index is brought up to date on the first validation, not here (building it for a
    large graph's descriptions takes a while once, and ``serve`` should start at once).
    Raises a ``QAError`` (ModelError/CheckpointError) when the entailment model is not available.
    """

    from qa_system.errors import ModelError
    from retrievers.passages import PassageRetriever

    try:
        from qa_system.models.entailment import load_entailment_model
    except ImportError as e:
        raise ModelError(f"the entailment model is not available: {e}") from e
    scorer = load_entailment_model()
    retriever = PassageRetriever(Path(settings.workspace), store)
    return TripleValidator(scorer, retriever, store=store)


def write_thresholds(thresholds: Thresholds, path: Path | None = None) -> Path:
    path = Path(path) if path is not None else thresholds_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(thresholds.model_dump(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
