"""The Explore page's entity card: values from data or users are rendered as text, never markup."""

from __future__ import annotations

from qa_system.types import Entity
from ui.format import card_html


def test_card_escapes_every_value() -> None:
    entity = Entity(
        id="/m/x<y>",
        name="<script>alert(1)</script>",
        description='"><img src=x onerror=alert(1)>',
        aliases=("<b>bold</b>",),
        url="javascript:alert(1)",
        image_url='https://img.example/a.png" onerror="alert(1)',
    )
    html = card_html(entity)
    assert "<script>" not in html and "<b>bold</b>" not in html and "<img src=x" not in html
    assert "javascript:" not in html  # only http(s) links are rendered
    assert 'onerror="alert(1)"' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_card_shows_link_and_image_when_present() -> None:
    entity = Entity(id="/m/1", name="Inception", url="https://en.wikipedia.org/wiki/Inception", image_url="https://img.example/i.png")
    html = card_html(entity)
    assert 'href="https://en.wikipedia.org/wiki/Inception"' in html and 'src="https://img.example/i.png"' in html


# --- facts grouped on the card, relation filter, expanding one hop: a real tiny embedded store ---

import pytest  # noqa: E402

from qa_system.explore import (  # noqa: E402
    MAX_HOPS,
    entity_fact_counts,
    filter_by_relations,
    group_facts,
    next_hops,
    relations_present,
)
from qa_system.types import FactStatus, fact_id  # noqa: E402
from ui.explore_tab import ExploreHandlers  # noqa: E402
from ui.format import facts_html  # noqa: E402

DIRECTED = "/film/director/film"
NATIONALITY = "/people/person/nationality"


def test_group_facts_counts_relation_by_status_including_rejected(tiny_store) -> None:
    tiny_store.set_fact_status(fact_id("/m/nolan", DIRECTED, "/m/memento"), FactStatus.REJECTED, reviewer="t", reason="test")
    counts = entity_fact_counts(tiny_store, "/m/nolan")
    assert counts.by_relation == {
        DIRECTED: {"verified": 1, "extracted": 0, "proposed": 0, "rejected": 1},
        NATIONALITY: {"verified": 1, "extracted": 0, "proposed": 0, "rejected": 0},
    }
    assert list(counts.by_relation) == [DIRECTED, NATIONALITY]  # most facts first
    assert counts.total == 3 and not counts.sampled


def test_group_facts_ignores_facts_not_touching_the_entity(tiny_store) -> None:
    subgraph = tiny_store.neighbors(["/m/nolan"], hops=2)
    assert any("/m/nolan" not in (f.subject, f.object) for f in subgraph.facts)
    grouped = group_facts(subgraph.facts, "/m/nolan")
    assert set(grouped) == {DIRECTED, NATIONALITY}


def test_card_counts_are_sampled_beyond_the_limit(tiny_store) -> None:
    counts = entity_fact_counts(tiny_store, "/m/nolan", limit=1)
    assert counts.sampled and counts.total == 1
    assert "sample" in facts_html(counts)


def test_facts_html_uses_readable_labels_and_escapes() -> None:
    from qa_system.explore import FactCounts

    html = facts_html(FactCounts(by_relation={DIRECTED: {"verified": 2, "proposed": 1}, "/x/<b>y</b>": {"verified": 1}}))
    assert "director › film" in html and f'title="{DIRECTED}"' in html
    assert "<b>y</b>" not in html and "&lt;b&gt;y&lt;/b&gt;" in html
    assert "4 facts by relation and status" in html


def test_relation_filter_and_hops(tiny_store) -> None:
    facts = tiny_store.neighbors(["/m/nolan"], hops=2).facts
    present = relations_present(facts)
    assert present == sorted({DIRECTED, NATIONALITY, "/film/film/starring", "/film/film/genre"})
    only = filter_by_relations(facts, [NATIONALITY])
    assert only and all(f.relation == NATIONALITY for f in only)
    assert filter_by_relations(facts, []) == facts and filter_by_relations(facts, None) == facts
    assert [next_hops(h) for h in (1, 2, 3, 7)] == [2, 3, MAX_HOPS, MAX_HOPS] and MAX_HOPS == 3


def test_show_fills_the_relation_filter_and_the_card(tiny_store) -> None:
    h = ExploreHandlers(tiny_store)
    card, rows, note, relation_filter, view = h.show(None, "Christopher Nolan", 1, 50, [])
    assert "director › film" in card and "nationality" in card and "Christopher Nolan" in card
    assert len(rows) == 3 and note.startswith("3 facts within 1 hop")
    assert [value for _, value in relation_filter["choices"]] == [DIRECTED, NATIONALITY]
    assert relation_filter["value"] == [] and len(view["facts"]) == 3
    # a selection that no longer applies is dropped; one that does is kept and filters
    _, rows, note, relation_filter, _ = h.show("/m/nolan", "", 1, 50, [NATIONALITY, "/gone/relation"])
    assert relation_filter["value"] == [NATIONALITY] and [r[2] for r in rows] == ["nationality"]  # readable names
    assert note.startswith("1 of 3 facts")


def test_refilter_uses_the_shown_neighbourhood(tiny_store) -> None:
    h = ExploreHandlers(tiny_store)
    *_, view = h.show("/m/nolan", "", 2, 50, [])
    rows, note = h.refilter(view, ["/film/film/genre"])
    assert rows and {r[2] for r in rows} == {"genre"} and f"of {len(view['facts'])} facts" in note
    rows, note = h.refilter(view, [])
    assert len(rows) == len(view["facts"])
    assert h.refilter({}, [DIRECTED]) == ([], "")


def test_expand_adds_a_hop_keeps_the_filter_and_stops_at_three(tiny_store) -> None:
    h = ExploreHandlers(tiny_store)
    hops, _, rows1, *_ = h.expand("/m/nolan", "", 0, 50, [])
    assert hops == 1
    hops, _, rows2, note, relation_filter, view = h.expand("/m/nolan", "", 1, 50, ["/film/film/starring"])
    assert hops == 2 and view["hops"] == 2 and "within 2 hops" in note
    assert relation_filter["value"] == ["/film/film/starring"]
    assert rows2 and all(r[2] == "starring" and r[0] == 2 for r in rows2)
    hops, _, rows3, note, _, view = h.expand("/m/nolan", "", 3, 50, [])
    assert hops == MAX_HOPS and view["hops"] == MAX_HOPS and "maximum" in note
    assert len(rows3) > len(h.show("/m/nolan", "", 2, 50, [])[1])


@pytest.mark.parametrize("typed", ["", "<img src=x onerror=alert(1)>"])
def test_show_and_expand_report_bad_input_as_text(tiny_store, typed: str) -> None:
    h = ExploreHandlers(tiny_store)
    card, rows, note, relation_filter, view = h.show(None, typed, 1, 50, [NATIONALITY])
    assert card == "" and rows == [] and view == {} and note.startswith("⚠️") and "<img" not in note
    assert relation_filter["choices"] == [] and relation_filter["value"] == []
    hops, *_, view = h.expand(None, typed, 1, 50, [])
    assert hops == 2 and view == {}
