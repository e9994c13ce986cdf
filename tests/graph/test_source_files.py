"""``import-kg`` from files: a neo4j-admin CSV folder and RDF (Turtle, N-Triples, JSON-LD) holding the
same small Movies graph, the mapping file, and bad input (one clear error, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from graph.embedded import EmbeddedStore
from graph.importers import SourceOptions, import_kg
from graph.source_mapping import Mapping, build_mapping
from graph.source_rdf import read_rdf_graph
from qa_system.errors import DataFormatError, InputError
from qa_system.types import is_literal

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CSV_DIR = FIXTURES / "movies-csv"
RDF_DIR = FIXTURES / "movies-rdf"
EX = "http://example.org/movies/"


def _counts(store: EmbeddedStore) -> tuple[int, int, int]:
    stats = store.stats()
    return stats.entities, stats.literals, stats.facts


def _keanu_facts(store: EmbeddedStore) -> set[tuple[str, str]]:
    keanu = store.find_entities("Keanu Reeves")[0]
    return {(f.relation, f.object_name) for f in store.neighbors([keanu.id]).facts}


def test_csv_folder_import(embedded_store: EmbeddedStore) -> None:
    summary = import_kg(embedded_store, CSV_DIR)
    assert summary.dataset == "csv:movies-csv" and summary.unnamed == 1  # the Thing without a name
    assert _counts(embedded_store) == (6, 11, 16)
    assert embedded_store.get_entity("matrix").name == "The Matrix"  # title when there is no name
    assert embedded_store.get_entity("nameless").name == "nameless"  # the id when neither
    facts = _keanu_facts(embedded_store)
    assert {("ACTED_IN", "The Matrix"), ("born", "1964"), ("nicknames", "The One"), ("nicknames", "Johnny Mnemonic")} <= facts
    acted = embedded_store.neighbors(["keanu"], relations=["ACTED_IN"]).facts
    assert {f.object: f.provenance.properties["roles"] for f in acted} == {"matrix": ["Neo"], "reloaded": ["Neo", "The One"]}
    rating = [f for f in embedded_store.neighbors(["matrix"]).facts if f.relation == "rating"][0]
    assert embedded_store.get_entity(rating.object).type == "literal:float" and rating.object_name == "8.7"
    tagline = [f for f in embedded_store.neighbors(["reloaded"]).facts if f.relation == "tagline"][0]
    assert tagline.object_name == "Free your mind, again"  # a quoted comma stays in the value
    assert embedded_store.find_entities("1964") == []
    assert ("keanu", "ACTED_IN", "matrix", "") in embedded_store.export_triples()
    assert not any(is_literal(o) for _s, _r, o, _split in embedded_store.export_triples())
    again = import_kg(embedded_store, CSV_DIR)
    assert (again.entities_added, again.literals_added, again.facts_added) == (0, 0, 0)
    assert _counts(embedded_store) == (6, 11, 16)


@pytest.mark.parametrize(("name", "counts"), [("movies.ttl", (6, 7, 13)), ("movies.nt", (3, 1, 3)), ("movies.jsonld", (2, 1, 2))])
def test_rdf_file_import(embedded_store: EmbeddedStore, name: str, counts: tuple[int, int, int]) -> None:
    summary = import_kg(embedded_store, RDF_DIR / name)
    assert summary.dataset == "rdf:movies"
    assert _counts(embedded_store) == counts
    keanu = embedded_store.get_entity(EX + "keanu")
    assert keanu is not None and keanu.name == "Keanu Reeves"
    facts = _keanu_facts(embedded_store)
    assert {(EX + "actedIn", "The Matrix"), (EX + "born", "1964")} <= facts
    again = import_kg(embedded_store, RDF_DIR / name)
    assert (again.entities_added, again.facts_added) == (0, 0) and _counts(embedded_store) == counts


def test_turtle_names_types_descriptions_and_blank_nodes(embedded_store: EmbeddedStore) -> None:
    import_kg(embedded_store, RDF_DIR / "movies.ttl")
    keanu = embedded_store.get_entity(EX + "keanu")
    assert keanu.type == "Person" and keanu.aliases == ("Keanu",)  # rdfs:label first, schema:name an alias
    matrix = embedded_store.get_entity(EX + "matrix")
    assert matrix.type == "Movie" and matrix.description == "A 1999 science fiction film."
    birth = [f for f in embedded_store.neighbors([keanu.id]).facts if f.relation == "http://schema.org/birthDate"][0]
    assert birth.object_name == "1964-09-02" and embedded_store.get_entity(birth.object).type == "literal:date"
    award = [f for f in embedded_store.neighbors([matrix.id]).facts if f.relation == EX + "award"][0]
    assert award.object.startswith("_:rdf:movies:") and award.object_name == "Academy Award for Best Visual Effects"
    batches = [read_rdf_graph(RDF_DIR / "movies.ttl", Mapping())[0] for _ in range(2)]
    first, second = ({e.id for b in run for e in b.entities} for run in batches)
    assert award.object in first and first == second  # the blank node's id is stable across parses


def test_rdf_folder_merges_its_files(embedded_store: EmbeddedStore) -> None:
    summary = import_kg(embedded_store, RDF_DIR)
    assert summary.dataset == "rdf:movies-rdf"
    assert embedded_store.get_entity(EX + "keanu").name == "Keanu Reeves"
    assert len(embedded_store.neighbors([EX + "keanu"], relations=[EX + "born"]).facts) == 1  # same value from 3 files: one fact


def test_mapping_file_and_flags(tmp_path: Path, embedded_store: EmbeddedStore) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"name_properties": {"Thing": "id"}, "skip_properties": ["nicknames"], "batch_size": 2}))
    mapping = build_mapping(path, name_properties=["Movie=tagline"])
    assert mapping.batch_size == 2 and mapping.name_properties == {"Thing": "id", "Movie": "tagline"}
    summary = import_kg(embedded_store, CSV_DIR, options=SourceOptions(mapping=mapping))
    assert embedded_store.get_entity("matrix").name == "Welcome to the Real World"
    assert not any(f.relation == "nicknames" for f in embedded_store.neighbors(["keanu"]).facts)
    assert summary.unnamed == 1  # 'nameless' has no 'id' property: the :ID column is the id, not a property
    yaml_path = tmp_path / "mapping.yaml"
    yaml_path.write_text("id_property: uid\nname_keys: [title, name]\n")
    assert build_mapping(yaml_path).id_property == "uid" and build_mapping(yaml_path).name_keys == ("title", "name")
    path.write_text(json.dumps({"name_property": {}}))
    with pytest.raises(DataFormatError, match="unknown mapping key"):
        build_mapping(path)
    with pytest.raises(InputError, match="LABEL=PROPERTY"):
        build_mapping(None, name_properties=["Movie"])


def _csv_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "kg"
    shutil.copytree(CSV_DIR, folder)
    return folder


@pytest.mark.parametrize(
    ("file", "text", "error"),
    [
        ("nodes.csv", "name,:LABEL\nKeanu,Person\n", r"nodes\.csv:1: header has no :ID column"),
        ("nodes.csv", "id:ID,born:int\nkeanu,nineteen\n", r"nodes\.csv:2: column 'born': 'nineteen' is not a int"),
        ("nodes.csv", "id:ID,born:integer\nkeanu,1964\n", r"nodes\.csv:1: header field 'born:integer': unknown type"),
        ("nodes.csv", "id:ID,name\nkeanu,Keanu,extra\n", r"nodes\.csv:2: expected 2 fields, got 3"),
        ("relationships.csv", ":START_ID,:END_ID,:TYPE\nkeanu,nobody,ACTED_IN\n", r"relationships\.csv:2: END_ID 'nobody' is not a node id"),
        ("relationships.csv", ":START_ID,:END_ID\nkeanu,matrix\n", r"relationships\.csv:1: header has no :TYPE column"),
    ],
)
def test_bad_csv_is_one_error_and_writes_nothing(tmp_path: Path, embedded_store: EmbeddedStore, file: str, text: str, error: str) -> None:
    folder = _csv_copy(tmp_path)
    (folder / file).write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=error):
        import_kg(embedded_store, folder)
    assert _counts(embedded_store) == (0, 0, 0)


def test_turtle_syntax_error_is_one_error_and_writes_nothing(tmp_path: Path, embedded_store: EmbeddedStore) -> None:
    folder = tmp_path / "rdf"
    shutil.copytree(RDF_DIR, folder)
    (folder / "zz-broken.ttl").write_text("@prefix ex: <http://ex.org/> .\nex:a ex:b \"unterminated .\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"zz-broken\.ttl: not valid turtle"):
        import_kg(embedded_store, folder)
    assert _counts(embedded_store) == (0, 0, 0)
