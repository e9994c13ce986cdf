"""The Explore graph's data: nodes, edges, colours, literal value boxes, readable labels; the node
expansion it asks the server for; vis-network served from the installed pyvis package (no CDN)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gradio")

from qa_system.types import Fact, FactStatus, Provenance, SourceKind, literal_entity  # noqa: E402
from ui.explore_tab import ExploreHandlers  # noqa: E402
from ui.format import STATUS_COLOURS
from ui.graph_view import LITERAL_FILL, graph_data, vis_assets, vis_head  # noqa: E402

DIRECTED = "/film/director/film"
BORN = "/people/person/date_of_birth"


@pytest.fixture()
def store(tiny_store):
    born = literal_entity("/m/nolan", BORN, 1970)
    tiny_store.upsert_entities([born])
    tiny_store.upsert_facts([
        Fact(subject="/m/nolan", relation=BORN, object=born.id),
        Fact(subject="/m/nolan", relation="/award/award_nominee/award_nominations./award/award_nomination/award", object="/m/uk",
             status=FactStatus.PROPOSED, confidence=0.4,
             provenance=Provenance(source_kind=SourceKind.EXTRACTOR, document_id="doc-1", sentence="Nolan won <b>it</b>.")),
    ])  # fmt: skip
    tiny_store.born_id = born.id
    return tiny_store


def test_graph_data_of_a_neighbourhood(store) -> None:
    facts = store.neighbors(["/m/nolan"], hops=1).facts
    data = graph_data(facts, focus="/m/nolan", limit=50)
    nodes = {n["id"]: n for n in data["nodes"]}
    edges = {e["id"]: e for e in data["edges"]}
    assert len(edges) == len(facts) == data["total"] and not data["truncated"] and data["limit"] == 50
    assert set(nodes) == {f.subject for f in facts} | {f.object for f in facts}
    assert all(e["from"] in nodes and e["to"] in nodes for e in edges.values())
    # the focus: larger, already expanded, coloured by its strongest status
    nolan = nodes["/m/nolan"]
    assert nolan["focus"] and nolan["expanded"] and nolan["label"] == "Christopher Nolan" and not nolan["literal"]
    assert nolan["status"] == "verified" and nolan["color"]["background"] == STATUS_COLOURS["verified"]
    assert nolan["size"] > nodes["/m/memento"]["size"] and not nodes["/m/memento"]["expanded"]
    # a literal value: a small box with its value as label, not expandable
    born = nodes[store.born_id]
    assert born["literal"] and born["shape"] == "box" and born["label"] == "1970" and born["color"]["background"] == LITERAL_FILL
    assert nodes["/m/memento"]["shape"] == "dot"
    # edges: readable relation labels (raw id on hover), status colours, the fact for the click panel
    directed = next(e for e in edges.values() if e["fact"]["relation_id"] == DIRECTED)
    assert directed["label"] == "film" and DIRECTED in directed["title"] and directed["arrows"] == "to"
    assert directed["color"]["color"] == STATUS_COLOURS["verified"] and not directed["dashes"]
    assert directed["fact"]["subject"] == "Christopher Nolan" and directed["fact"]["provenance"].startswith("dataset")
    proposed = next(e for e in edges.values() if e["status"] == "proposed")
    assert proposed["label"] == "award nominations award" and proposed["dashes"]
    assert proposed["color"]["color"] == STATUS_COLOURS["proposed"]
    assert proposed["fact"] == {
        "id": proposed["id"], "subject": "Christopher Nolan", "subject_id": "/m/nolan", "relation": "award nominations award",
        "relation_id": "/award/award_nominee/award_nominations./award/award_nomination/award", "object": "United Kingdom",
        "object_id": "/m/uk", "status": "proposed", "confidence": 0.4, "provenance": "extracted from doc-1: “Nolan won <b>it</b>.”",
    }  # fmt: skip
    # the UK has a verified fact (nationality) and a proposed one: the node takes the verified colour
    assert nodes["/m/uk"]["status"] == "verified" and nodes["/m/uk"]["color"]["background"] == STATUS_COLOURS["verified"]
    assert all(not e["label"].startswith("/") for e in edges.values())
    json.dumps(data)  # what the browser receives


def test_graph_data_caps_the_picture_and_draws_a_lone_focus(store) -> None:
    facts = store.neighbors(["/m/nolan"], hops=2).facts
    data = graph_data(facts, focus="/m/nolan", max_facts=2)
    assert len(data["edges"]) == 2 and data["truncated"] and data["total"] == len(facts)
    assert {e["fact"]["id"] for e in data["edges"]} <= {f.id for f in facts if f.hop == 1}  # nearest hops first
    lone = graph_data([], focus="/m/lonely")
    assert [n["id"] for n in lone["nodes"]] == ["/m/lonely"] and lone["edges"] == []


def test_handlers_draw_the_shown_neighbourhood_and_expand_a_node(store) -> None:
    h = ExploreHandlers(store)
    *_, view = h.show(None, "Christopher Nolan", 1, 50, [])
    data = json.loads(h.graph(view, []))
    assert data["focus"] == "/m/nolan" and len(data["edges"]) == len(view["facts"])
    only = json.loads(h.graph(view, [DIRECTED]))
    assert {e["fact"]["relation_id"] for e in only["edges"]} == {DIRECTED}  # filtered like the table
    assert h.graph({}, []) == ""
    expanded = h.expand_node("/m/memento", 50)  # a neighbour's own neighbours, to add to the picture
    assert "/m/memento" in {n["id"] for n in expanded["nodes"]}
    assert any(e["fact"]["subject_id"] == "/m/memento" or e["fact"]["object_id"] == "/m/memento" for e in expanded["edges"])
    assert "error" in h.expand_node(store.born_id, 50) and "error" in h.expand_node("", 50)
    assert h.expand_node("/m/memento", "lots")["limit"] == 50 and h.expand_node("/m/memento", 10**6)["limit"] == 200


def test_vis_network_comes_from_the_installed_package() -> None:
    folder = vis_assets()
    if folder is None:
        pytest.skip("pyvis is not installed")
    assert (folder / "vis-network.min.js").stat().st_size > 100_000
    head = vis_head()
    assert 'src="gradio_api/file=' in head and "vis-network.min.js" in head and "http" not in head
