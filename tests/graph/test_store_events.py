"""The audit trail in the store (``GraphStore.apply_change``, events), on every backend (``store`` fixture)."""

from __future__ import annotations

import pytest

from graph.store import AuditEvent, Change, GraphStore, StaleChangeError
from qa_system.errors import EntityNotFoundError
from qa_system.types import Entity, Fact, FactStatus, Provenance, SourceKind
from tests.graph.test_store_contract import ENTITIES, FACTS, _fact


@pytest.fixture()
def loaded(store: GraphStore) -> GraphStore:
    store.upsert_entities(ENTITIES)
    store.upsert_facts([_fact(*f) for f in FACTS])
    return store


def _event(ident: str, at: str, targets: tuple[str, ...] = (), action: str = "accept", **data) -> AuditEvent:
    return AuditEvent(id=ident, action=action, actor="ann", at=at, reason="why 'not'; MATCH (n) DETACH DELETE n", targets=targets, data=data)


def _proposed(store: GraphStore) -> Fact:
    fact = Fact(subject="/m/memento", relation="/film/film/genre", object="/m/inception", status=FactStatus.PROPOSED,
                provenance=Provenance(source_kind=SourceKind.LLM, model="m", question="q?"))  # fmt: skip
    store.upsert_fact(fact)
    return fact


def test_a_change_writes_facts_and_its_event_together(loaded: GraphStore) -> None:
    fact = _proposed(loaded)
    decided = fact.model_copy(update={"status": FactStatus.VERIFIED})
    event = _event("e1", "2026-01-01T00:00:00.000001+00:00", (fact.id,), before=[1], after={"x": "y"})
    loaded.apply_change(Change(event=event, expect={fact.id: "proposed"}, put_facts=(decided,)))
    assert loaded.get_fact(fact.id).status == FactStatus.VERIFIED
    assert loaded.get_fact(fact.id).provenance.question == "q?"
    assert loaded.get_event("e1") == event
    assert loaded.list_events() == [event]
    assert loaded.get_event("nope") is None


def test_a_stale_expectation_writes_nothing(loaded: GraphStore) -> None:
    fact = _proposed(loaded)
    loaded.set_fact_status(fact.id, FactStatus.REJECTED, reviewer="bob")
    other = Entity(id="/m/other", name="Other")
    change = Change(
        event=_event("e1", "2026-01-01T00:00:00.000001+00:00", (fact.id,)), expect={fact.id: "proposed"},
        put_entities=(other,), put_facts=(fact.model_copy(update={"status": FactStatus.VERIFIED}),),
    )  # fmt: skip
    with pytest.raises(StaleChangeError) as caught:
        loaded.apply_change(change)
    assert (caught.value.fact_id, caught.value.found) == (fact.id, "rejected")
    assert loaded.get_fact(fact.id).status == FactStatus.REJECTED
    assert loaded.get_entity("/m/other") is None and loaded.list_events() == []
    with pytest.raises(StaleChangeError) as caught:  # a fact that is gone
        loaded.apply_change(Change(event=_event("e2", "2026-01-02T00:00:00.000001+00:00"), expect={"missing": "proposed"}))
    assert caught.value.found is None and loaded.list_events() == []


def test_a_fact_with_an_unknown_end_rolls_the_whole_change_back(loaded: GraphStore) -> None:
    change = Change(
        event=_event("e1", "2026-01-01T00:00:00.000001+00:00"), put_entities=(Entity(id="/m/new", name="New"),),
        put_facts=(_fact("/m/new", "/x/r", "/m/nowhere"),),
    )  # fmt: skip
    with pytest.raises(EntityNotFoundError):
        loaded.apply_change(change)
    assert loaded.get_entity("/m/new") is None and loaded.list_events() == []


def test_entities_and_facts_put_and_deleted_in_one_change(loaded: GraphStore) -> None:
    renamed = loaded.get_entity("/m/memento").model_copy(update={"name": "Memento (film)", "aliases": ("Memento",)})
    new = Entity(id="/m/new", name="Brand New")
    gone = [f for f in loaded.neighbors(["/m/titanic"]).facts]
    change = Change(
        event=_event("e1", "2026-01-01T00:00:00.000001+00:00", ("/m/memento", "/m/new", "/m/titanic")),
        put_entities=(renamed, new), put_facts=(_fact("/m/new", "/x/r", "/m/uk"),), delete_entities=("/m/titanic", "/m/unknown"),
    )  # fmt: skip
    loaded.apply_change(change)
    assert loaded.get_entity("/m/memento").name == "Memento (film)"
    assert [e.id for e in loaded.find_entities("memento (film)")] == ["/m/memento"]
    assert [e.id for e in loaded.find_entities("brand new")] == ["/m/new"]
    assert loaded.get_entity("/m/titanic") is None and loaded.find_entities("Titanic") == []
    assert loaded.stats().facts == len(FACTS) - len(gone) + 1
    loaded.apply_change(Change(event=_event("e2", "2026-01-02T00:00:00.000001+00:00"), delete_facts=(_fact("/m/new", "/x/r", "/m/uk").id,)))
    assert loaded.stats().facts == len(FACTS) - len(gone)


def test_undo_of_an_event_is_marked_once(loaded: GraphStore) -> None:
    loaded.apply_change(Change(event=_event("e1", "2026-01-01T00:00:00.000001+00:00")))
    undo = _event("u1", "2026-01-02T00:00:00.000001+00:00", action="undo")
    undo = AuditEvent(**{**undo.__dict__, "undoes": "e1"})
    loaded.apply_change(Change(event=undo, undo_of="e1"))
    assert loaded.get_event("e1").undone_by == "u1" and loaded.get_event("u1").undoes == "e1"
    again = AuditEvent(**{**undo.__dict__, "id": "u2"})
    with pytest.raises(StaleChangeError) as caught:
        loaded.apply_change(Change(event=again, undo_of="e1"))
    assert caught.value.undone_by == "u1" and loaded.get_event("u2") is None
    with pytest.raises(StaleChangeError):
        loaded.apply_change(Change(event=AuditEvent(**{**undo.__dict__, "id": "u3"}), undo_of="missing"))


def test_events_listed_newest_first_and_found_by_target(loaded: GraphStore) -> None:
    for i, targets in enumerate([("a", "b"), ("c",), ("b", "d")], 1):
        loaded.apply_change(Change(event=_event(f"e{i}", f"2026-01-0{i}T00:00:00.000001+00:00", targets)))
    assert [e.id for e in loaded.list_events()] == ["e3", "e2", "e1"]
    assert [e.id for e in loaded.list_events(limit=1, offset=1)] == ["e2"]
    assert [e.id for e in loaded.events_touching(["b"])] == ["e1", "e3"]
    assert [e.id for e in loaded.events_touching(["b", "c"], after="2026-01-01T00:00:00.000001+00:00")] == ["e2", "e3"]
    assert loaded.events_touching(["zzz"]) == [] and loaded.events_touching([]) == []


@pytest.mark.parametrize("attempt", range(3))
def test_racing_changes_from_the_same_read_give_one_winner(loaded: GraphStore, attempt: int) -> None:
    """Eight writers that all read the fact as proposed apply their decision at the same moment: the
    check inside the transaction lets exactly one through, and only its event is written."""

    import threading

    fact = _proposed(loaded)
    n = 8
    barrier, results = threading.Barrier(n), {}

    def decide(i: int) -> None:
        status = FactStatus.VERIFIED if i % 2 else FactStatus.REJECTED
        change = Change(
            event=_event(f"race-{attempt}-{i}", f"2026-01-01T00:00:00.{i:06d}+00:00", (fact.id,)),
            expect={fact.id: "proposed"}, put_facts=(fact.model_copy(update={"status": status}),), subjects={fact.id: fact.subject},
        )  # fmt: skip
        barrier.wait()
        try:
            loaded.apply_change(change)
            results[i] = status.value
        except StaleChangeError as e:
            results[i] = f"lost: {e.found}"

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = {i: s for i, s in results.items() if not s.startswith("lost")}
    assert len(results) == n and len(winners) == 1, results
    ((winner, status),) = winners.items()
    assert loaded.get_fact(fact.id).status.value == status
    assert all(s == f"lost: {status}" for i, s in results.items() if i != winner)
    assert [e.id for e in loaded.list_events()] == [f"race-{attempt}-{winner}"]
