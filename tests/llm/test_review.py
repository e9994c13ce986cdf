"""Insertion of validated triples and the review queue, on the real embedded store."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from qa_system.errors import (
    EntityNotFoundError,
    FactNotFoundError,
    InputError,
    ReviewConflictError,
)
from qa_system.fallback.answer import FallbackResult, LLMFallback
from qa_system.maintain.review import (
    ReviewQueue,
    ValidationDecision,
    llm_entity_id,
    read_jsonl,
    record_decisions,
    rejected_log,
)
from qa_system.types import FactStatus, SourceKind, fact_id
from tests.llm.conftest import ScriptedClient

PREMISES = ["Inception is a 2010 film directed by Christopher Nolan.", "Inception is a heist film."]


def entailed(score: float = 0.93) -> ValidationDecision:
    return ValidationDecision(
        decision="entailed", score=score, premises=PREMISES, premise_scores=[score, 0.2], threshold=0.5,
        model="minilm-nli", version="1",
    )  # fmt: skip


def not_entailed(score: float = 0.12) -> ValidationDecision:
    return ValidationDecision(decision="not_entailed", score=score, premises=PREMISES, premise_scores=[score, 0.05], threshold=0.5)


def fallback_result(store, *triples) -> FallbackResult:
    text = json.dumps({"answer": "Christopher Nolan", "triples": [dict(zip(("subject", "relation", "object"), t)) for t in triples]})
    return LLMFallback(ScriptedClient([text]), store).ask("Who directed Inception?")


@pytest.fixture()
def workspace(tiny_store) -> Path:
    return Path(tiny_store.db_path).parent.parent


@pytest.fixture()
def proposed(tiny_store, workspace):
    """Three new entailed triples inserted as proposed; their fact ids (scores 0.93, 0.7, 0.55)."""

    result = fallback_result(
        tiny_store,
        ("Christopher Nolan", "nationality", "United States of America"),
        ("Memento", "genre", "Science fiction"),
        ("Titanic", "genre", "Science fiction"),
    )
    report = record_decisions(tiny_store, workspace, result, [(t, entailed(s)) for t, s in zip(result.triples, (0.93, 0.7, 0.55))])
    assert len(report.inserted) == 3
    return report.inserted


def test_entailed_triples_inserted_as_proposed_with_full_provenance(tiny_store, workspace):
    before = tiny_store.stats()
    result = fallback_result(tiny_store, ("Inception", "directed by", "Christopher Nolan"), ("Inception", "genre", "Heist film"))
    (nolan, heist) = result.triples
    report = record_decisions(tiny_store, workspace, result, [(nolan, entailed()), (heist, not_entailed())])
    # Nolan→Inception exists in the tiny KG already: left untouched (verified stays verified)
    assert report.already_present == [fact_id("/m/nolan", "/film/director/film", "/m/inception")]
    assert tiny_store.get_fact(report.already_present[0]).status == FactStatus.VERIFIED
    assert report.inserted == []
    assert tiny_store.stats().facts == before.facts  # the non-entailed one did not reach the graph
    (rejected,) = rejected_log(workspace)
    assert rejected["triple"]["object_text"] == "Heist film"
    assert "not entailed" in rejected["reason"] and rejected["question"] == "Who directed Inception?"
    assert rejected["raw_answer"] == result.raw_answer


def test_new_triple_with_unknown_entity_becomes_proposed(tiny_store, workspace):
    result = fallback_result(tiny_store, ("Inception", "genre", "Heist film"), ("Inception", "was inspired by", "Memento"))
    report = record_decisions(tiny_store, workspace, result, [(t, entailed()) for t in result.triples])
    assert report.entities_created == [llm_entity_id("Heist film")]
    assert len(report.inserted) == 2
    heist = tiny_store.get_fact(report.inserted[0])
    assert heist.status == FactStatus.PROPOSED
    assert (heist.subject, heist.relation, heist.object_name) == ("/m/inception", "/film/film/genre", "Heist film")
    p = heist.provenance
    assert p.source_kind == SourceKind.LLM
    assert p.question == "Who directed Inception?" and p.raw_answer == result.raw_answer
    assert p.endpoint == "http://fake/v1" and p.model == "fake-model"
    assert p.premises == PREMISES and p.scores == [0.93, 0.2] and p.score == pytest.approx(0.93)
    assert p.checkpoint == "minilm-nli@1" and p.vocabulary == "graph"
    assert p.created_at is not None
    free = tiny_store.get_fact(report.inserted[1])
    assert free.relation == "was inspired by" and free.provenance.vocabulary == "free-text"
    # proposed facts are not answerable
    assert ("/m/inception", "/film/film/genre", llm_entity_id("Heist film")) not in {t[:3] for t in tiny_store.export_triples()}


def test_self_loop_is_rejected_even_when_entailed(tiny_store, workspace):
    result = fallback_result(tiny_store, ("Canada", "country", "Canada"))
    report = record_decisions(tiny_store, workspace, result, [(result.triples[0], entailed())])
    assert report.inserted == [] and rejected_log(workspace)[0]["reason"] == "subject and object are the same"


def test_unknown_entities_can_be_refused(tiny_store, workspace):
    result = fallback_result(tiny_store, ("Inception", "genre", "Heist film"))
    report = record_decisions(tiny_store, workspace, result, [(result.triples[0], entailed())], create_missing_entities=False)
    assert report.inserted == [] and report.entities_created == []
    assert "unknown entity" in rejected_log(workspace)[0]["reason"]


def test_list_filters(tiny_store, workspace, proposed):
    queue = ReviewQueue(tiny_store, workspace)
    assert {v.id for v in queue.list()} == set(proposed)
    assert [v.id for v in queue.list(min_score=0.9)] == [proposed[0]]
    assert {v.id for v in queue.list(max_score=0.71)} == set(proposed[1:])
    assert {v.id for v in queue.list(relation="/film/film/genre")} == set(proposed[1:])
    assert queue.list(older_than=timedelta(hours=1)) == []
    assert len(queue.list(newer_than=timedelta(hours=1))) == 3
    assert len(queue.list(limit=2)) == 2
    with pytest.raises(InputError):
        queue.list(limit=0)


def test_show_has_evidence(tiny_store, workspace, proposed):
    item = ReviewQueue(tiny_store, workspace).show(proposed[0])
    assert item.fact.status == FactStatus.PROPOSED
    assert [e["premise"] for e in item.evidence] == PREMISES
    assert item.evidence[0]["score"] == pytest.approx(0.93)
    assert item.score == pytest.approx(0.93) and item.history == []


def test_accept_reject_and_audit(tiny_store, workspace, proposed):
    queue = ReviewQueue(tiny_store, workspace)
    out = queue.accept(proposed[0], reviewer="ada", reason="checked IMDb")
    assert out.outcome == "applied" and out.status == FactStatus.VERIFIED
    view = tiny_store.get_fact(proposed[0])
    assert view.status == FactStatus.VERIFIED and view.provenance.reviewer == "ada"
    assert view.provenance.review_reason == "checked IMDb"
    with pytest.raises(InputError):
        queue.reject(proposed[1], reviewer="bob", reason="  ")
    queue.reject(proposed[1], reviewer="bob", reason="wrong genre")
    assert tiny_store.get_fact(proposed[1]).status == FactStatus.REJECTED
    assert proposed[1] not in {v.id for v in queue.list()}
    # deciding again loses, and the attempt is logged
    with pytest.raises(ReviewConflictError, match="already verified by ada"):
        queue.reject(proposed[0], reviewer="bob", reason="changed my mind")
    assert tiny_store.get_fact(proposed[0]).status == FactStatus.VERIFIED
    audit = read_jsonl(workspace / "review" / "audit.jsonl")
    assert [(r["fact_id"], r["action"], r["outcome"], r["reviewer"]) for r in audit] == [
        (proposed[0], "accept", "applied", "ada"),
        (proposed[1], "reject", "applied", "bob"),
        (proposed[0], "reject", "conflict", "bob"),
    ]
    assert audit[2]["decided_by"] == "ada"
    assert [h["outcome"] for h in queue.show(proposed[0]).history] == ["applied", "conflict"]
    with pytest.raises(InputError):
        queue.accept(proposed[2], reviewer="")
    with pytest.raises(FactNotFoundError):
        queue.accept("no-such-fact", reviewer="ada")


def test_edit_then_accept(tiny_store, workspace, proposed):
    queue = ReviewQueue(tiny_store, workspace)
    titanic_scifi = proposed[2]
    out = queue.edit(titanic_scifi, reviewer="ada", obj="Romance film", reason="it is a romance")
    new_id = fact_id("/m/titanic", "/film/film/genre", "/m/romance")
    assert out.new_fact_id == new_id
    original = tiny_store.get_fact(titanic_scifi)
    assert original.status == FactStatus.REJECTED and original.provenance.review_reason.startswith("edited")
    corrected = tiny_store.get_fact(new_id)
    assert corrected.status == FactStatus.VERIFIED  # (it was in the test split already; now verified)
    with pytest.raises(EntityNotFoundError):
        queue.edit(proposed[1], reviewer="ada", obj="No Such Genre")
    assert tiny_store.get_fact(proposed[1]).status == FactStatus.PROPOSED  # a bad edit decides nothing
    with pytest.raises(InputError):
        queue.edit(proposed[1], reviewer="ada")
    # a brand-new corrected fact
    out = queue.edit(proposed[1], reviewer="ada", relation="/film/film/starring", obj="Leonardo DiCaprio")
    new = tiny_store.get_fact(out.new_fact_id)
    assert (new.subject, new.relation, new.object, new.status) == ("/m/memento", "/film/film/starring", "/m/dicaprio", FactStatus.VERIFIED)
    assert new.provenance.source_kind == SourceKind.MAINTAINER and new.provenance.question == "Who directed Inception?"


@pytest.mark.parametrize("actions", [("accept", "reject"), ("accept", "accept"), ("reject", "edit")])
def test_concurrent_decisions_exactly_one_wins(tiny_store, workspace, proposed, actions):
    queue = ReviewQueue(tiny_store, workspace)
    target = proposed[1]
    n = 8
    barrier = threading.Barrier(n)
    wins, losses, errors = [], [], []

    def decide(i: int) -> None:
        action = actions[i % 2]
        barrier.wait()
        try:
            if action == "accept":
                out = queue.accept(target, reviewer=f"maintainer-{i}")
            elif action == "reject":
                out = queue.reject(target, reviewer=f"maintainer-{i}", reason="no")
            else:
                out = queue.edit(target, reviewer=f"maintainer-{i}", obj="Thriller")
            wins.append((i, out))
        except ReviewConflictError:
            losses.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(wins) == 1 and len(losses) == n - 1
    audit = [r for r in read_jsonl(workspace / "review" / "audit.jsonl") if r["fact_id"] == target]
    assert len(audit) == n  # every attempt is there
    assert sum(r["outcome"] == "applied" for r in audit) == 1
    winner_i, winner = wins[0]
    (applied,) = [r for r in audit if r["outcome"] == "applied"]
    assert applied["reviewer"] == f"maintainer-{winner_i}"
    assert tiny_store.get_fact(target).status == winner.status
    assert {r["reviewer"] for r in audit} == {f"maintainer-{i}" for i in range(n)}
