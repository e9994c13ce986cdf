"""The ``qa-system`` command as users run it (a real subprocess on a real workspace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, workspace: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    full_env.update({"QA_WORKSPACE": str(workspace), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "qa_system", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def test_stats_json_reports_the_demo_counts(demo_workspace: Path) -> None:
    result = run_cli("stats", "--json", workspace=demo_workspace)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert payload["entities"] == 14_541 and payload["facts"] == 310_116
    assert payload["facts_by_status"] == {"verified": 310_116}
    assert len(payload["facts_by_relation"]) == 237


def test_neighbors_lists_films_with_names(demo_workspace: Path) -> None:
    result = run_cli("neighbors", "Christopher Nolan", "--json", workspace=demo_workspace)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["entity"]["id"] == "/m/0184dt"
    directed = {f["object"]["name"] for f in payload["facts"] if f["relation"] == "/film/director/film"}
    assert {"Inception", "The Dark Knight", "Memento"} <= directed
    two = json.loads(run_cli("neighbors", "/m/0184dt", "--hops", "2", "--limit", "5", "--json", workspace=demo_workspace).stdout)
    assert two["truncated"] and {f["hop"] for f in two["facts"]} == {1, 2}


def test_unknown_entity_exits_2_with_one_line(demo_workspace: Path) -> None:
    result = run_cli("neighbors", "Christopher Nolann", workspace=demo_workspace)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown entity 'Christopher Nolann'")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cypher_reads_and_refuses_writes(demo_workspace: Path) -> None:
    ok = run_cli("cypher", "MATCH (e:Entity) WHERE e.name = $n RETURN e.id AS id", "--params", '{"n": "Inception"}', "--json", workspace=demo_workspace)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rows"] == [{"id": "/m/0661ql3"}]
    refused = run_cli("cypher", "MATCH (e:Entity) DETACH DELETE e", workspace=demo_workspace)
    assert refused.returncode != 0 and "read-only" in refused.stderr and "Traceback" not in refused.stderr
    bad_params = run_cli("cypher", "MATCH (e) RETURN e", "--params", "{oops", workspace=demo_workspace)
    assert bad_params.returncode == 2 and "--params is not JSON" in bad_params.stderr


def test_import_malformed_file_reports_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "train.tsv").write_text("/m/a\t/r\t/m/b\n/m/a\t/r\n", encoding="utf-8")
    result = run_cli("import-kg", str(folder), workspace=tmp_path / "ws")
    assert result.returncode != 0
    assert "train.tsv:2:" in result.stderr and "Traceback" not in result.stderr
    stats = json.loads(run_cli("stats", "--json", workspace=tmp_path / "ws").stdout)
    assert stats["facts"] == 0 and stats["entities"] == 0


def test_import_kg_twice_is_idempotent(tmp_path: Path, tiny_kg_dir: Path) -> None:
    first = run_cli("import-kg", str(tiny_kg_dir), "--json", workspace=tmp_path / "ws")
    second = run_cli("import-kg", str(tiny_kg_dir), "--json", workspace=tmp_path / "ws")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert json.loads(first.stdout)["facts_added"] == 11 and json.loads(second.stdout)["facts_added"] == 0
    assert json.loads(run_cli("stats", "--json", workspace=tmp_path / "ws").stdout)["facts"] == 11


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run_cli("stats", workspace=tmp_path, env={"NEO4J_URI": "http://nowhere:7474"})
    assert result.returncode != 0 and "http://nowhere:7474" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_neo4j_names_the_uri(tmp_path: Path) -> None:
    result = run_cli("stats", workspace=tmp_path, env={"NEO4J_URI": "bolt://127.0.0.1:1", "QA_NEO4J_CONNECT_TIMEOUT_S": "3"})
    assert result.returncode != 0
    assert "bolt://127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("neighbors", "  "), ("neighbors", "x", "--hops", "9"), ("serve", "--port", "0")])
def test_bad_arguments_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run_cli(*args, workspace=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error:") or "error" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_kge_on_the_workspace_graph(tmp_path: Path, tiny_kg_dir: Path) -> None:
    workspace = tmp_path / "ws"
    assert run_cli("import-kg", str(tiny_kg_dir), workspace=workspace).returncode == 0
    result = run_cli("train", "kge", "--dataset", "workspace", "--config", "small", "--epochs", "1",
                     "--run-dir", str(tmp_path / "run"), workspace=workspace, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    trace = [json.loads(line) for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines()]
    assert trace[0]["epoch"] == 1 and (tmp_path / "run" / "best" / "card.json").is_file()


@pytest.mark.parametrize("command", [["ask", "Who directed Inception?"],
                                     ["evaluate", "qa", "--dataset", "webqsp", "--linking", "predicted", "--limit", "1"]])
def test_reading_zero_topics_is_refused(command: list[str]) -> None:
    """`--read-topics 0` is a clear error before the graph or any model is opened (exit 2), for
    `ask` and for `evaluate qa` alike (the evaluation used to read one topic without a word)."""

    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "qa_system", *command, "--read-topics", "0"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "read_topics must be at least 1" in done.stderr


def test_train_reranker_refuses_a_pinned_weight_without_tune_only(tmp_path: Path) -> None:
    result = run_cli("train", "reranker", "--weight", "2", workspace=tmp_path / "ws")
    assert result.returncode != 0 and "--weight needs --tune-only" in result.stderr
    negative = run_cli("train", "reranker", "--tune-only", str(tmp_path), "--weight", "-1", workspace=tmp_path / "ws")
    assert negative.returncode != 0 and "must be >= 0" in negative.stderr


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run_cli("--version", workspace=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"qa-system {version('qa-system')}"


def test_help_shows_defaults(tmp_path: Path) -> None:
    result = run_cli("ask", "--help", workspace=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(default:" in result.stdout
    serve = run_cli("serve", "--help", workspace=tmp_path).stdout
    assert "(default: 7860)" in serve  # the formatter's, not a hand-written one
    assert "(default: False)" not in serve and "(default: None)" not in serve  # nothing shown where there is nothing to show


def test_every_command_and_argument_has_help_with_defaults_shown() -> None:
    import argparse

    from qa_system.cli import HelpFormatter, build_parser

    def walk(parser: argparse.ArgumentParser, path: str):
        assert parser.formatter_class is HelpFormatter, path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            else:
                yield path, action

    missing = [f"{path} {action.dest}" for path, action in walk(build_parser(), "qa-system") if not action.help]
    assert missing == []
