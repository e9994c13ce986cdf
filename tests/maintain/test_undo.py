"""The audit trail in the store and ``undo`` (``qa_system.maintain.events``), library and CLI, on both
backends: review decisions, forget and merge each record one event that ``undo`` reverts, when no
later event depends on it; bad input is one clear error that changes nothing."""

from __future__ import annotations

import json

import pytest

from graph.name_index import normalise
from qa_system.cli import main
from qa_system.errors import InputError, ReviewConflictError
from qa_system.ingest.entity_resolution import MEMO_FILE, MentionMemo
from qa_system.maintain.actions import forget_document, merge_entities, resolve_merged
from qa_system.maintain.actions import undo as undo_in_workspace
from qa_system.maintain.events import UndoBlockedError, list_events, undo
from qa_system.maintain.review import ReviewQueue
from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind, fact_id
from retrievers.passages import Passage, PassageStore
from tests.maintain.conftest import _propose, snapshot


def test_decisions_are_events_and_undo_puts_the_fact_back(kg):
    store, ws, _ = kg
    a, b, c = _propose(store, ("/m/memento", "/film/film/genre", "/m/scifi"), ("/m/titanic", "/film/film/genre", "/m/scifi"),
                       ("/m/nolan", "/people/person/nationality", "/m/usa"))  # fmt: skip
    before = snapshot(store)
    queue = ReviewQueue(store, ws)
    accepted = queue.accept(a, reviewer="ada", reason="checked")
    rejected = queue.reject(b, reviewer="bob", reason="not in the premises")
    edited = queue.edit(c, reviewer="cy", obj="/m/canada", reason="wrong country")
    events = list_events(store)
    assert [(e.action, e.actor) for e in events] == [("edit", "cy"), ("reject", "bob"), ("accept", "ada")]
    assert [e.id for e in events] == [edited.event_id, rejected.event_id, accepted.event_id]
    assert events[2].reason == "checked" and events[2].targets == (a,)
    corrected = fact_id("/m/nolan", "/people/person/nationality", "/m/canada")
    assert store.get_fact(corrected).status == FactStatus.VERIFIED

    for outcome in (edited, rejected, accepted):  # any order works: they touch different facts
        done = undo(store, outcome.event_id, "dee", reason="too quick")
        assert (done.action, done.actor, done.undoes) == ("undo", "dee", outcome.event_id)
    assert snapshot(store) == before  # statuses and provenance as before; the corrected fact is gone
    assert store.get_event(accepted.event_id).undone_by
    assert queue.accept(a, reviewer="ada").outcome == "applied"  # proposed again: it can be decided again


def test_bad_undo_is_one_clear_error_that_changes_nothing(kg):
    store, ws, _ = kg
    (a,) = _propose(store, ("/m/memento", "/film/film/genre", "/m/scifi"))
    event_id = ReviewQueue(store, ws).accept(a, reviewer="ada").event_id
    with pytest.raises(InputError, match="unknown event 'nope'"):
        undo(store, "nope", "dee")
    done = undo(store, event_id, "dee")
    state = snapshot(store)
    with pytest.raises(ReviewConflictError, match=f"event {event_id} was already undone by event {done.id}"):
        undo(store, event_id, "dee")
    with pytest.raises(InputError, match="is itself an undo"):
        undo(store, done.id, "dee")
    assert snapshot(store) == state and len(list_events(store)) == 2
    with pytest.raises(InputError):
        list_events(store, limit=0)


def test_a_later_decision_on_the_same_fact_blocks_the_undo_until_it_is_undone(kg):
    store, ws, _ = kg
    dup = Entity(id="ext:memento-film", name="Memento (film)", type="/film/film")
    store.upsert_entity(dup)
    (proposed,) = _propose(store, (dup.id, "/film/film/genre", "/m/scifi"))
    merge = merge_entities(store, ws, "/m/memento", [dup.id], reason="same film", reviewer="ann")
    moved = fact_id("/m/memento", "/film/film/genre", "/m/scifi")
    assert merge.event_id and store.get_fact(moved).status == FactStatus.PROPOSED
    accept = ReviewQueue(store, ws).accept(moved, reviewer="ada")
    state = snapshot(store)
    with pytest.raises(UndoBlockedError, match=f"event {accept.event_id} \\(accept by ada at .*undo it first"):
        undo(store, merge.event_id, "dee")
    assert snapshot(store) == state
    undo(store, accept.event_id, "dee")
    undo(store, merge.event_id, "dee")
    assert store.get_entity(dup.id) == dup and store.get_fact(proposed).status == FactStatus.PROPOSED
    assert store.get_entity("/m/memento").aliases == ()
    with pytest.raises(Exception):
        store.get_fact(moved)


def test_undo_merge_gives_back_the_graph_before(kg):
    store, ws, _ = kg
    dup = Entity(id="ext:dup-inception", name="Inception (film)", aliases=("Inception 2010",), type="/film/film")
    store.upsert_entity(dup)
    prov = Provenance(dataset="tiny", split="train")
    store.upsert_facts([
        Fact(subject=dup.id, relation="/film/film/starring", object="/m/dicaprio", provenance=prov),  # Inception has it
        Fact(subject=dup.id, relation="/film/film/genre", object="/m/thriller", status=FactStatus.EXTRACTED, confidence=0.8, provenance=prov),
        Fact(subject=dup.id, relation="/x/same_as", object="/m/inception", provenance=prov),  # would be a self-loop
    ])  # fmt: skip
    memo = MentionMemo(ws / MEMO_FILE)
    memo.put_many([(normalise("Inception 2010"), dup.id, None), (normalise("Incepshun"), dup.id, 0.9)])
    before = snapshot(store)
    report = merge_entities(store, ws, "/m/inception", [dup.id], reviewer="ann")
    assert store.get_entity(dup.id) is None and store.find_entities("Inception 2010")[0].id == "/m/inception"
    undo_in_workspace(store, ws, report.event_id, "dee")
    assert snapshot(store) == before
    assert [e.id for e in store.find_entities("Inception 2010")] == [dup.id]
    assert resolve_merged(ws, dup.id, store) == dup.id
    # a mention spelled like the duplicate's names resolves to it again; one matched by similarity stays moved
    assert memo.get_many([normalise("Inception 2010"), normalise("Incepshun")]) == {
        normalise("Inception 2010"): dup.id, normalise("Incepshun"): "/m/inception"}
    memo.close()


def test_undo_forget_restores_facts_entities_and_passages(kg):
    store, ws, _ = kg
    apollo = Entity(id="ext:apollo-12", name="Apollo 12")
    store.upsert_entity(apollo)
    text = "Apollo 12 starred Leonardo DiCaprio."
    prov = Provenance(source_kind=SourceKind.EXTRACTOR, document_id="doc-1", sentence=text, model="rules")
    store.upsert_facts([Fact(subject=apollo.id, relation="/film/film/starring", object="/m/dicaprio", status=FactStatus.EXTRACTED, provenance=prov)])
    PassageStore(ws).add_many([Passage.sentence("doc-1", text, 0, len(text))])
    before, passages = snapshot(store), list(PassageStore(ws))
    report = forget_document(store, ws, "doc-1", reason="by mistake", reviewer="ann")
    assert len(report.facts) == 1 and [e.id for e in report.entities] == [apollo.id] and len(PassageStore(ws)) == 0
    (event,) = list_events(store)
    assert (event.id, event.action, event.data["document_ids"]) == (report.event_id, "forget", ["doc-1"])
    undo_in_workspace(store, ws, report.event_id, "dee")
    assert snapshot(store) == before and list(PassageStore(ws)) == passages
    assert store.find_entities("Apollo 12") == [apollo]


def test_review_log_and_undo_commands(kg, cli_env, capsys):
    store, ws, backend = kg
    (a,) = _propose(store, ("/m/memento", "/film/film/genre", "/m/scifi"))
    if backend == "embedded":
        store.close()  # the CLI opens the embedded database itself

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--workspace", str(ws), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    assert cli("review", "accept", a, "--reviewer", "ada", "--json")[0] == 0
    code, out, _ = cli("review", "log", "--json")
    (event,) = json.loads(out)["events"]
    assert code == 0 and (event["action"], event["actor"], event["undone_by"]) == ("accept", "ada", None)
    code, out, _ = cli("review", "log")
    assert code == 0 and event["id"] in out and "accept  by ada" in out
    code, out, _ = cli("review", "undo", event["id"], "--reviewer", "dee", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["undone"]["undone_by"] == payload["undo"]["id"]
    code, out, err = cli("review", "undo", event["id"], "--reviewer", "dee")
    assert code == 3 and out == "" and "already undone" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("review", "undo", "no-such-event")
    assert code == 2 and out == "" and "unknown event 'no-such-event'" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli("review", "log", "--about", a, "--json")
    assert code == 0 and json.loads(out)["count"] == 2
    code, out, _ = cli("review", "log", "--about", "/m/nolan", "--json")
    assert code == 0 and json.loads(out)["count"] == 0
    code, out, _ = cli("review", "log", "--json", "--data")
    events = json.loads(out)["events"]
    assert [e["action"] for e in events] == ["undo", "accept"] and "data" in events[0]


def test_history_shows_decisions_made_through_another_server(kg, tmp_path):
    store, ws, _ = kg
    (a,) = _propose(store, ("/m/memento", "/film/film/genre", "/m/scifi"))
    here, there = ReviewQueue(store, ws), ReviewQueue(store, tmp_path / "other-server")
    event_id = there.accept(a, reviewer="ada", reason="checked").event_id
    with pytest.raises(ReviewConflictError, match="already verified by ada at"):
        here.reject(a, reviewer="bob", reason="no")
    history = here.show(a).history
    assert [(h["action"], h["reviewer"], h["outcome"]) for h in history] == [("accept", "ada", "applied"), ("reject", "bob", "conflict")]
    assert history[0]["event_id"] == event_id
