"""``qa-system import-kg`` from a graph of one's own (real subprocesses on a real workspace): a Neo4j
over Bolt (the ArcadeDB test server), a neo4j-admin CSV folder, and bad sources as one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.graph.bolt_server import BoltServer, bolt_server  # noqa: F401  (fixture)
from tests.graph.movies_source import MoviesSource, loaded_movies
from tests.test_cli import run_cli

CSV_DIR = Path(__file__).resolve().parent / "fixtures" / "movies-csv"


@pytest.fixture()
def movies(bolt_server: BoltServer) -> Iterator[MoviesSource]:  # noqa: F811
    with loaded_movies(bolt_server) as source:
        yield source


def _keanu(workspace: Path) -> dict:
    result = run_cli("neighbors", "Keanu Reeves", "--json", workspace=workspace)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.neo4j
def test_import_from_bolt_then_neighbors(tmp_path: Path, movies: MoviesSource) -> None:
    workspace = tmp_path / "ws"
    args = ["import-kg", movies.uri, "--source-user", movies.user, "--json"]
    args += ["--source-database", movies.database] if movies.database else []
    env = {"QA_SOURCE_NEO4J_PASSWORD": movies.password}  # the password from the environment
    first = run_cli(*args, workspace=workspace, env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["entities_added"] == 6 and summary["unnamed"] == 1 and "1 node(s) had no name" in first.stderr
    payload = _keanu(workspace)
    facts = {(f["relation"], f["object"]["name"]) for f in payload["facts"]}
    assert {("ACTED_IN", "The Matrix"), ("born", "1964")} <= facts
    matrix = [f for f in payload["facts"] if f["object"]["name"] == "The Matrix"][0]
    assert matrix["properties"] == {"roles": ["Neo"]} and not matrix["object"]["literal"]
    assert [f["object"]["literal"] for f in payload["facts"] if f["relation"] == "born"] == [True]
    second = run_cli(*args, workspace=workspace, env=env)
    assert json.loads(second.stdout)["entities_added"] == 0 and json.loads(second.stdout)["facts_added"] == 0
    wrong = run_cli(*args, "--source-password", "wrong-password", workspace=tmp_path / "ws2")
    assert wrong.returncode == 1 and "error: cannot log in to the source graph" in wrong.stderr
    assert "Traceback" not in wrong.stderr and wrong.stdout == ""


def test_import_csv_then_neighbors(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    result = run_cli("import-kg", str(CSV_DIR), workspace=workspace)
    assert result.returncode == 0, result.stderr
    assert "imported csv:movies-csv: entities +6" in result.stdout and "values +11" in result.stdout
    facts = {(f["relation"], f["object"]["name"]) for f in _keanu(workspace)["facts"]}
    assert {("ACTED_IN", "The Matrix"), ("born", "1964")} <= facts
    stats = json.loads(run_cli("stats", "--json", workspace=workspace).stdout)
    assert (stats["entities"], stats["literals"], stats["facts"]) == (6, 11, 16)


def test_bad_sources_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    unreachable = run_cli("import-kg", "bolt://127.0.0.1:1", "--source-password", "x", workspace=workspace)
    assert unreachable.returncode == 1 and "error: cannot reach the source graph at bolt://127.0.0.1:1" in unreachable.stderr
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "nodes.csv").write_text("name\nKeanu\n", encoding="utf-8")
    malformed = run_cli("import-kg", str(folder), workspace=workspace)
    assert malformed.returncode == 1 and "nodes.csv:1: header has no :ID column" in malformed.stderr
    bad_flag = run_cli("import-kg", str(folder), "--name-property", "Movie", workspace=workspace)
    assert bad_flag.returncode == 2 and "LABEL=PROPERTY" in bad_flag.stderr
    for result in (unreachable, malformed, bad_flag):
        assert "Traceback" not in result.stderr
    stats = json.loads(run_cli("stats", "--json", workspace=workspace).stdout)
    assert (stats["entities"], stats["facts"]) == (0, 0)
