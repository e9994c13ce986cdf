"""The load test runner (``evaluation.load_test``): askers over HTTP and a reviewer through the page.

Real servers, real HTTP, real stores. The default test runs 2 askers for 3 s against the tiny graph
with the fake pipeline; the slow one runs the shipped reader on the demo graph (2 askers x 10 s).
The recorded full run (8 askers x 120 s) is ``evaluation/results/load-test.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evaluation.load_test import check_decisions, main, percentiles, run_load_test


def test_percentiles() -> None:
    p = percentiles([0.001 * i for i in range(1, 101)])
    assert p["p50_ms"] == 51.0 and p["p95_ms"] == 96.0 and p["max_ms"] == 100.0
    assert percentiles([])["p95_ms"] == 0.0


def test_a_lost_decision_is_detected(tiny_store) -> None:
    from evaluation.load_test import REVIEWER, seed_proposed_facts
    from qa_system.maintain.review import ReviewQueue

    workspace = Path(tiny_store.db_path).parent.parent
    first, second = seed_proposed_facts(tiny_store, 2)
    ReviewQueue(tiny_store, workspace).accept(first, reviewer=REVIEWER)
    assert check_decisions(tiny_store, workspace, [first]) == []
    lost = check_decisions(tiny_store, workspace, [first, second])  # "accepted" but still proposed, not in the log
    assert any("proposed" in x for x in lost) and any("0 applied accepts" in x for x in lost)


def test_two_askers_and_a_reviewer_lose_nothing(tiny_kg_dir: Path, tmp_path: Path) -> None:
    from graph.embedded import EmbeddedStore
    from graph.importers import import_kg

    store = EmbeddedStore.open(tmp_path / "ws")
    import_kg(store, tiny_kg_dir)
    store.close()
    workspace = tmp_path / "copy"  # a closed store's lock stays with this process: the server opens a copy
    shutil.copytree(tmp_path / "ws", workspace)
    record = run_load_test(workspace, askers=2, duration_s=3, seed_facts=8, review_interval_s=0.2,
                           pipeline="tests.ui.fakes:fake_pipeline")
    assert record["errors"] == 0, record["error_samples"]
    assert record["requests"] >= 2 and record["latency"]["p95_ms"] > 0
    assert record["review"]["accepted"] >= 1 and record["review"]["lost_decisions"] == 0
    assert record["answered_with_entity"] >= 1 and "POST /v1/ask" in record["api"]


@pytest.mark.slow
def test_the_shipped_reader_under_load_from_the_command_line(demo_workspace: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "load.json"
    code = main(["--askers", "2", "--duration", "10", "--seed-facts", "30", "--workspace", str(demo_workspace),
                 "--pipeline", "evaluation.load_test:shipped_pipeline_exact_linking", "--out", str(out), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed == json.loads(out.read_text())
    assert printed["errors"] == 0 and printed["review"]["lost_decisions"] == 0 and printed["review"]["accepted"] >= 1
    assert printed["answered_with_entity"] >= 1
