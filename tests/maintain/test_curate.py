"""Curation by hand (``qa_system.maintain.curate``, ``qa-system curate``) on both backends: retract,
correct and add a fact, rename an entity; each one undoable event; bad input changes nothing."""

from __future__ import annotations

import json

import pytest

from qa_system.cli import main
from qa_system.errors import EntityNotFoundError, FactNotFoundError, InputError, ReviewConflictError
from qa_system.maintain import curate
from qa_system.maintain.events import list_events, undo
from qa_system.maintain.review import ReviewQueue
from qa_system.types import FactStatus, SourceKind, fact_id
from tests.maintain.conftest import _propose, snapshot

NOLAN_UK = fact_id("/m/nolan", "/people/person/nationality", "/m/uk")


def test_retract_any_fact_and_undo(kg):
    store, _, _ = kg
    before = snapshot(store)
    event = curate.retract(store, NOLAN_UK, "ann", "he holds both nationalities; source unclear")
    view = store.get_fact(NOLAN_UK)
    assert view.status == FactStatus.REJECTED and view.provenance.reviewer == "ann" and "source unclear" in view.provenance.review_reason
    assert (event.action, event.actor, event.targets) == ("retract", "ann", (NOLAN_UK,))
    with pytest.raises(InputError, match="already rejected"):
        curate.retract(store, NOLAN_UK, "ann", "again")
    with pytest.raises(InputError, match="reason is required"):
        curate.retract(store, fact_id("/m/nolan", "/film/director/film", "/m/memento"), "ann", "  ")
    with pytest.raises(FactNotFoundError):
        curate.retract(store, "no-such-fact", "ann", "why")
    undo(store, event.id, "bob")
    assert snapshot(store) == before


def test_correct_a_verified_fact_and_undo(kg):
    store, _, _ = kg
    before = snapshot(store)
    event = curate.correct(store, NOLAN_UK, "ann", "wrong country", obj="United States of America")
    corrected = fact_id("/m/nolan", "/people/person/nationality", "/m/usa")
    assert store.get_fact(NOLAN_UK).status == FactStatus.REJECTED
    new = store.get_fact(corrected)
    assert new.status == FactStatus.VERIFIED and new.provenance.source_kind == SourceKind.MAINTAINER
    assert event.data["new_fact_id"] == corrected
    with pytest.raises(EntityNotFoundError):
        curate.correct(store, corrected, "ann", "x", obj="Atlantis")
    with pytest.raises(InputError, match="same fact"):
        curate.correct(store, corrected, "ann", "x", obj="/m/usa")
    undo(store, event.id, "bob")
    assert snapshot(store) == before


def test_add_a_fact_with_its_source_and_undo(kg):
    store, _, _ = kg
    before = snapshot(store)
    event = curate.add_fact(store, "Memento", "/film/film/starring", "/m/dicaprio", "ann", "checked", source="https://example.org/memento")
    added = store.get_fact(fact_id("/m/memento", "/film/film/starring", "/m/dicaprio"))
    assert added.status == FactStatus.VERIFIED and added.provenance.properties == {"source": "https://example.org/memento"}
    assert added.provenance.reviewer == "ann" and event.action == "add"
    with pytest.raises(InputError, match="already in the graph"):
        curate.add_fact(store, "/m/memento", "/film/film/starring", "/m/dicaprio", "ann", "again", source="x")
    with pytest.raises(InputError, match="source is required"):
        curate.add_fact(store, "/m/memento", "/film/film/genre", "/m/romance", "ann", "why", source="")
    with pytest.raises(InputError, match="same entity"):
        curate.add_fact(store, "/m/memento", "/x/r", "Memento", "ann", "why", source="s")
    undo(store, event.id, "bob")
    assert snapshot(store) == before and len(list_events(store)) == 2


def test_rename_an_entity_and_undo(kg):
    store, _, _ = kg
    before = snapshot(store)
    event = curate.rename(store, "/m/memento", "Memento (2000 film)", "ann", "disambiguate")
    entity = store.get_entity("/m/memento")
    assert (entity.name, entity.aliases) == ("Memento (2000 film)", ("Memento",))
    assert [e.id for e in store.find_entities("memento (2000 film)")] == ["/m/memento"]
    assert [e.id for e in store.find_entities("Memento")] == ["/m/memento"]  # the old name is an alias
    with pytest.raises(InputError, match="literal value"):
        curate.rename(store, "lit:abc", "x", "ann", "why")
    with pytest.raises(EntityNotFoundError):
        curate.rename(store, "/m/nope", "x", "ann", "why")
    undo(store, event.id, "bob")
    assert snapshot(store) == before and store.get_entity("/m/memento").aliases == ()
    assert store.find_entities("memento (2000 film)") == []


def test_a_curation_that_lost_a_race_writes_nothing(kg):
    store, ws, _ = kg
    (proposed,) = _propose(store, ("/m/memento", "/film/film/genre", "/m/scifi"))
    view = store.get_fact(proposed)
    ReviewQueue(store, ws).accept(proposed, reviewer="ada")  # decided between the read and the write
    store_get_fact = store.get_fact
    try:
        store.get_fact = lambda i: view if i == proposed else store_get_fact(i)  # the curator's stale read
        with pytest.raises(ReviewConflictError, match="already verified by ada at"):
            curate.retract(store, proposed, "cy", "not sure")
    finally:
        del store.get_fact
    assert store.get_fact(proposed).status == FactStatus.VERIFIED and [e.action for e in list_events(store)] == ["accept"]


def test_curate_commands(kg, cli_env, capsys):
    store, ws, backend = kg
    if backend == "embedded":
        store.close()

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--workspace", str(ws), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = cli("curate", "rename", "/m/memento", "Memento (film)", "--reason", "disambiguate", "--reviewer", "ann", "--json")
    renamed = json.loads(out)
    assert code == 0 and (renamed["action"], renamed["actor"], renamed["new_name"]) == ("rename", "ann", "Memento (film)")
    code, out, _ = cli("curate", "add", "Memento (film)", "/film/film/starring", "Leonardo DiCaprio", "--source", "a book",
                       "--reason", "checked", "--reviewer", "ann")  # fmt: skip
    assert code == 0 and "add" in out and "review undo" in out
    code, out, _ = cli("curate", "retract", NOLAN_UK, "--reason", "unclear", "--json")
    assert code == 0 and json.loads(out)["action"] == "retract"
    code, out, _ = cli("curate", "edit", NOLAN_UK, "--object", "Canada", "--reason", "x")  # a rejected fact can be corrected too
    assert code == 0
    code, out, err = cli("curate", "retract", "no-such-fact", "--reason", "x")
    assert code == 2 and out == "" and "no-such-fact" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("curate", "rename", "/m/memento", "Memento (film)", "--reason", "x")
    assert code == 2 and "already named" in err
    code, out, _ = cli("review", "undo", renamed["id"], "--json")
    assert code == 0  # the later add and retract touch facts, not the renamed entity: nothing depends on the rename
    code, out, _ = cli("review", "log", "--json")
    assert [e["action"] for e in json.loads(out)["events"]] == ["undo", "edit", "retract", "add", "rename"]
