"""``qa-system review list|show|accept|edit|reject`` on a real workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa_system.cli import main
from qa_system.errors import InputError
from qa_system.fallback.answer import LLMFallback
from qa_system.maintain.review import ValidationDecision, read_jsonl, record_decisions
from qa_system.types import parse_duration
from tests.conftest import write_tiny_kg
from tests.llm.conftest import ScriptedClient


@pytest.fixture()
def review_ws(tmp_path: Path) -> tuple[Path, list[str]]:
    """A closed workspace: the tiny KG plus two proposed facts (scores 0.9 and 0.6)."""

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg

    workspace = tmp_path / "ws"
    store = EmbeddedStore.open(workspace)
    try:
        import_kg(store, write_tiny_kg(tmp_path / "kg"))
        text = json.dumps(
            {"answer": "x", "triples": [["Memento", "genre", "Science fiction"], ["Christopher Nolan", "born in", "United Kingdom"]]}
        )
        result = LLMFallback(ScriptedClient([text]), store).ask("What genre is Memento?")
        decisions = [
            ValidationDecision(decision="entailed", score=s, premises=["Memento is a science fiction film."], premise_scores=[s])
            for s in (0.9, 0.6)
        ]
        report = record_decisions(store, workspace, result, list(zip(result.triples, decisions)))
    finally:
        store.close()
    return workspace, report.inserted


def cli(capsys, workspace: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--workspace", str(workspace), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_parse_duration():
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration("2d").days == 2
    assert parse_duration("3").total_seconds() == 3 * 3600
    with pytest.raises(InputError):
        parse_duration("soon")


def test_review_list_show_accept_reject_edit(capsys, review_ws):
    workspace, (genre, born) = review_ws
    code, out, _ = cli(capsys, workspace, "review", "list", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["count"] == 2 and {f["id"] for f in payload["facts"]} == {genre, born}
    code, out, _ = cli(capsys, workspace, "review", "list", "--min-score", "0.8", "--json")
    assert [f["id"] for f in json.loads(out)["facts"]] == [genre]
    code, out, _ = cli(capsys, workspace, "review", "list", "--relation", "born in", "--json")  # free text: the tiny KG has no birth places
    assert [f["id"] for f in json.loads(out)["facts"]] == [born]
    code, out, _ = cli(capsys, workspace, "review", "list", "--older-than", "1d")
    assert code == 0 and out.startswith("0 proposed")

    code, out, _ = cli(capsys, workspace, "review", "show", genre)
    assert code == 0 and "Memento is a science fiction film." in out and "What genre is Memento?" in out

    code, out, _ = cli(capsys, workspace, "review", "accept", genre, "--reviewer", "ada", "--json")
    assert code == 0 and json.loads(out)["status"] == "verified"
    code, out, err = cli(capsys, workspace, "review", "reject", genre, "--reviewer", "bob", "--reason", "no")
    assert code == 3 and "already verified by ada" in err and out == ""

    code, out, _ = cli(capsys, workspace, "review", "edit", born, "--reviewer", "ada", "--object", "United States of America", "--json")
    assert code == 0
    edited = json.loads(out)
    assert edited["status"] == "rejected" and edited["new_fact_id"] and edited["new_fact_id"] != born

    code, out, _ = cli(capsys, workspace, "review", "show", edited["new_fact_id"], "--json")
    shown = json.loads(out)
    assert shown["fact"]["status"] == "verified" and shown["fact"]["object_name"] == "United States of America"

    code, out, _ = cli(capsys, workspace, "review", "list", "--json")
    assert json.loads(out)["count"] == 0
    audit = read_jsonl(workspace / "review" / "audit.jsonl")
    assert [(r["action"], r["outcome"]) for r in audit] == [("accept", "applied"), ("reject", "conflict"), ("edit", "applied")]


def test_review_errors_are_one_line(capsys, review_ws):
    workspace, _ = review_ws
    code, _, err = cli(capsys, workspace, "review", "show", "nope")
    assert code == 2 and err.startswith("error:")
    with pytest.raises(SystemExit):  # argparse: --reason is required for reject
        main(["--workspace", str(workspace), "review", "reject", "nope", "--reviewer", "x"])


def test_review_cli_subprocess(review_ws):
    """The installed entry point as a user runs it."""

    workspace, (genre, _) = review_ws
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")} | {"QA_WORKSPACE": str(workspace), "QA_REVIEWER": "carol"}
    done = subprocess.run(
        [sys.executable, "-m", "qa_system", "review", "accept", genre, "--json"], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reviewer"] == "carol"
