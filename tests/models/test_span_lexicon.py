"""Entity-boundary snapping onto known entity strings (``models.span_lexicon``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_system.errors import CheckpointError
from qa_system.models.span_lexicon import LEXICON_FILE, EntityLexicon, load_lexicon

TEXT = "Abilene Regional airport serves Abilene , Texas , home of Sri Jayawardenepura Kotte ."
LEXICON = EntityLexicon.from_triples([("Abilene Regional", "cityServed", "Abilene"), ("Abilene", "isPartOf", "Texas"),
                                      ("Sri Jayawardenepura Kotte", "country", "Sri Lanka"), ("A", "x", "Ram")],
                                     min_overlap=0.3, source="test")


def span(text: str, surface: str) -> tuple[int, int]:
    a = text.index(surface)
    return a, a + len(surface)


def test_a_predicted_span_snaps_onto_the_known_string_it_overlaps() -> None:
    a, b = LEXICON.snap(TEXT, *span(TEXT, "Abilene Regional airport"))
    assert TEXT[a:b] == "Abilene Regional"  # too long by a lower-case word
    a, b = LEXICON.snap(TEXT, *span(TEXT, "Jayawardenepura Kotte"))
    assert TEXT[a:b] == "Sri Jayawardenepura Kotte"  # too short


def test_known_strings_and_unrelated_spans_stay_as_predicted() -> None:
    assert LEXICON.snap(TEXT, *span(TEXT, "Texas")) == span(TEXT, "Texas")
    assert LEXICON.snap(TEXT, *span(TEXT, "home")) == span(TEXT, "home")  # overlaps nothing known
    strict = EntityLexicon(LEXICON.counts, min_overlap=1.0)
    assert strict.snap(TEXT, *span(TEXT, "Abilene Regional airport")) == span(TEXT, "Abilene Regional airport")


def test_occurrences_respect_word_boundaries_and_skip_one_letter_strings() -> None:
    found = {s for _, _, s in LEXICON.occurrences("Ramallah and A Ram")}
    assert found == {"Ram"}  # not inside "Ramallah"; "A" is never a lexicon entry
    assert "A" not in LEXICON.counts


def test_save_load_round_trip_and_errors(tmp_path: Path) -> None:
    assert load_lexicon(tmp_path) is None
    LEXICON.save(tmp_path)
    loaded = load_lexicon(tmp_path)
    assert loaded is not None and loaded.counts == LEXICON.counts and loaded.min_overlap == 0.3 and loaded.source == "test"
    (tmp_path / LEXICON_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="unusable"):
        load_lexicon(tmp_path)
    with pytest.raises(ValueError, match="min_overlap"):
        EntityLexicon({"x y": 1}, min_overlap=0.0)
