"""``qa-system ingest``: the command handler on a real workspace with an injected rule extractor, and
one run of the real command with the shipped extractor (skipped while its checkpoint is absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa_system.cli import build_parser, main
from qa_system.cli.ingest_commands import run_ingest
from qa_system.config import load_settings
from tests.conftest import write_tiny_kg
from tests.ingest_support import FIXTURES, RuleExtractor

QIDN_CHECKPOINT = Path(__file__).resolve().parents[2] / "qa_system" / "checkpoints" / "extractor-qidn-webnlg"


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    """A closed workspace holding the tiny KG (the handler opens the store itself)."""

    return tiny_workspace(tmp_path)


def tiny_workspace(tmp_path: Path) -> Path:
    """``tmp_path/ws`` holding the tiny KG, closed again (the CLI opens the store itself)."""

    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg

    ws = tmp_path / "ws"
    store = EmbeddedStore.open(ws)
    try:
        import_kg(store, write_tiny_kg(tmp_path / "kg"))
    finally:
        store.close()
    return ws


def ingest(capsys, workspace: Path, *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["--workspace", str(workspace), "ingest", "--exact-only", *argv])
    code = run_ingest(args, load_settings(workspace=workspace), extractor=RuleExtractor())
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stats(workspace: Path) -> dict:
    from graph.embedded import EmbeddedStore

    store = EmbeddedStore.open(workspace)
    try:
        return store.stats().model_dump()
    finally:
        store.close()


def test_ingest_json_summary_then_idempotent_rerun(capsys, workspace: Path):
    code, out, err = ingest(capsys, workspace, str(FIXTURES), "--json")
    assert code == 0
    first = json.loads(out)  # exactly one JSON object on stdout
    assert first == {
        "documents": 4, "sentences": 11, "triples_added": 9, "triples_merged": 0, "triples_skipped": 1,
        "new_entities": 8, "passages_added": 11, "extractor": "rules", "checkpoint": "rules-v1",
        "problems": [],
    }  # fmt: skip
    # 6 from the Apollo text, London and (exact names only) "Leonardo Di Caprio"; Halifax is only in a skipped triple
    assert "ingest" in err and "11/11" in err  # the tqdm bar went to stderr
    facts = stats(workspace)["facts_by_status"]["extracted"]
    code, out, _ = ingest(capsys, workspace, str(FIXTURES / "films.jsonl"), str(FIXTURES / "apollo.md"), "--json")
    second = json.loads(out)
    assert code == 0 and (second["triples_added"], second["new_entities"], second["passages_added"]) == (0, 0, 0)
    assert second["triples_merged"] == 9 and stats(workspace)["facts_by_status"]["extracted"] == facts


def test_human_summary(capsys, workspace: Path):
    code, out, _ = ingest(capsys, workspace, str(FIXTURES / "films.jsonl"))
    assert code == 0
    assert out == (
        "ingested 3 document(s), 5 sentence(s): triples +4 added, 0 merged, 1 skipped; 2 new entities; 5 passages added\n"
    )


def test_dry_run_writes_nothing_and_lists_the_triples(capsys, workspace: Path):
    before = stats(workspace)
    code, out, _ = ingest(capsys, workspace, str(FIXTURES / "films.jsonl"), "--dry-run")
    assert code == 0 and out.startswith("dry run (nothing written): 3 document(s), 5 sentence(s); would add 4, merge 0, skip 1")
    assert "add    0.93  Christopher Nolan | birthPlace | +London  (new fact, new entity)" in out
    assert "skip   0.20  Titanic | location | +Halifax  (score 0.200 < min-score 0.50)" in out
    code, out, _ = ingest(capsys, workspace, str(FIXTURES / "films.jsonl"), "--dry-run", "--json", "--min-score", "0.1")
    payload = json.loads(out)
    assert payload["dry_run"] and payload["triples_to_add"] == 5 and len(payload["triples"]) == 5
    assert payload["triples"][0]["sentence"] == "Christopher Nolan was born in London."
    assert stats(workspace) == before and not (workspace / "passages").exists()


def test_bad_inputs_are_reported_and_the_rest_ingested(capsys, workspace: Path, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "ok", "text": "Alan Bean was born in Wheeler."}\n{oops\n', encoding="utf-8")
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\x00\x00")
    code, out, err = ingest(capsys, workspace, str(bad), str(binary), "--json")
    payload = json.loads(out)
    assert code == 2 and payload["documents"] == 1 and payload["triples_added"] == 1
    assert payload["problems"] == [f"{bad}:2: not JSON (Expecting property name enclosed in double quotes at column 2)",
                                   f"{binary}: looks binary (NUL byte at offset 4); expected UTF-8 text"]  # fmt: skip
    assert f"skipped: {bad}:2: not JSON" in err


def test_nothing_readable_is_an_error_through_main(capsys, workspace: Path, tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    args = build_parser().parse_args(["--workspace", str(workspace), "ingest", str(empty)])
    from qa_system.errors import InputError

    with pytest.raises(InputError, match="nothing to ingest: 1 input problem"):
        run_ingest(args, load_settings(workspace=workspace), extractor=RuleExtractor())
    # and through main(): one line on stderr, exit code 2, before any model is loaded for a bad option
    code = main(["--workspace", str(workspace), "ingest", str(empty), "--min-score", "3"])
    assert code == 2 and "--min-score must be between 0 and 1" in capsys.readouterr().err


def test_an_empty_folder_is_an_input_error(capsys, workspace: Path, tmp_path: Path):
    folder = tmp_path / "nothing"
    folder.mkdir()
    code = main(["--workspace", str(workspace), "ingest", str(folder)])
    assert code == 2 and "folder holds no .txt, .md, .jsonl files" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not (QIDN_CHECKPOINT / "card.json").is_file(), reason="the QIDN extractor checkpoint has not shipped yet (qa_system/checkpoints/extractor-qidn-webnlg)")
def test_real_cli_with_the_shipped_extractor(workspace: Path):
    """The real command in a subprocess: shipped QIDN, real resolver (MiniLM index), twice."""

    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "qa_system", "--workspace", str(workspace), "ingest", str(FIXTURES / "apollo.md"), "--json"]
    runs = [subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=600) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:]
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["extractor"] == "qidn" and first["sentences"] == 6 and first["passages_added"] == 6
    assert first["triples_added"] >= 1  # how many of the demo's 5 triples depends on the checkpoint's quality
    assert (second["triples_added"], second["new_entities"], second["passages_added"]) == (0, 0, 0)
    assert second["triples_merged"] == first["triples_added"] + first["triples_merged"]
    from graph.embedded import EmbeddedStore
    from qa_system.types import FactStatus, SourceKind

    store = EmbeddedStore.open(workspace)
    try:
        facts = store.list_facts(statuses=[FactStatus.EXTRACTED])
    finally:
        store.close()
    assert len(facts) == first["triples_added"]
    for fact in facts:
        p = fact.provenance
        assert p.source_kind == SourceKind.EXTRACTOR and p.model == "qidn" and p.checkpoint and p.vocabulary == "webnlg"
        assert p.sentence and p.document_id.startswith("apollo-") and p.sentence_end - p.sentence_start == len(p.sentence)
