"""Building the relation-words reader for a loaded pipeline: which relation scorer, its calibration,
and encoding every relation's words ahead of the questions (the app)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from qa_system.errors import InputError

log = logging.getLogger(__name__)


def relation_scorer_factory(name: str) -> Callable[[], Any]:
    """How to build the relation scorer named ``name``: "zero-shot" (MiniLM cosine), "trained" (the
    shipped checkpoint) or "mean" (the mean of both)."""

    from qa_system.ask.relation_reader import MeanOfScorers
    from qa_system.models.relation_scorer import load_relation_scorer, zero_shot_scorer

    factories: dict[str, Callable[[], Any]] = {
        "zero-shot": zero_shot_scorer, "trained": load_relation_scorer,
        "mean": lambda: MeanOfScorers([load_relation_scorer(), zero_shot_scorer()]),
    }
    if name not in factories:
        raise InputError(f"unknown relation scorer {name!r}; expected one of {', '.join(factories)}")
    return factories[name]


def words_calibration() -> dict[str, Any]:
    """The relation-words reader's settings shipped in ``qa_system/data/words-calibration.json``: which
    relation scorer it uses and its null logit, both chosen on grown-graph dev questions
    (``evaluation.grow_then_ask --fit-null``); empty when absent."""

    import json
    from importlib import resources

    path = resources.files("qa_system") / "data" / "words-calibration.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def warm_relations_in_background(pipeline: Any) -> threading.Thread:
    """Encode the texts of every relation the store holds for the relation-words reader, off the
    ask path (a hub topic's first question would otherwise encode hundreds of relation texts)."""

    def warm() -> None:
        try:
            relations = sorted(pipeline.store.stats().facts_by_relation)
            count = pipeline.words_reader.scorer.warm(relations, pipeline._model_lock)  # type: ignore[union-attr]
            log.info("relation-words reader: %d relation texts encoded ahead", count)
        except Exception:  # noqa: BLE001 - a head start only; questions encode what they need
            log.exception("encoding relation texts ahead failed; questions will encode their own")

    thread = threading.Thread(target=warm, name="relation-texts", daemon=True)
    thread.start()
    return thread
