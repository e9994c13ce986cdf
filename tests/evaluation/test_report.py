"""evaluation.report: docs/RESULTS.md is generated from the records, deterministic, and never stale."""

from __future__ import annotations

import json
import re
from pathlib import Path

from evaluation import report

ROOT = Path(__file__).resolve().parents[2]


def test_real_records_render_every_family_that_has_files() -> None:
    text = report.render(report.RESULTS_DIR)
    assert text.startswith("# Results\n")
    names = set(report.load_records(report.RESULTS_DIR))
    for title, patterns, *_ in report.FAMILIES:
        has_files = any(re.fullmatch(p.replace(".", r"\.").replace("*", ".*"), n) for p in patterns for n in names)
        if not has_files:
            assert f"## {title}\n" not in text
    # every record file is named somewhere: in a table or in the "Other records" list
    for name in names:
        assert f"`{name}`" in text, name
    if "qa-shipped-webqsp-filtered-oracle.json" in names:
        assert "## Question answering: the shipped chain" in text
    assert "/work/" not in text  # machine-specific paths are cleaned out of the commands


def test_generation_is_deterministic() -> None:
    assert report.render(report.RESULTS_DIR) == report.render(report.RESULTS_DIR)
    assert report.headline(report.RESULTS_DIR) == report.headline(report.RESULTS_DIR)


def test_fake_records_and_missing_keys(tmp_path: Path) -> None:
    (tmp_path / "qa-shipped-webqsp-filtered-oracle.json").write_text(json.dumps({
        "dataset": "webqsp", "split": "test", "setting": "filtered", "linking": "oracle", "questions": 10,
        "hits@1": 0.5, "hits@5": 0.9, "command": "qa-system evaluate qa --dataset webqsp --data-dir /work/shared/data --json"}))
    # a relation-scorer record without its latency and held-out keys
    (tmp_path / "relation-scorer-fake.json").write_text(json.dumps({"name": "fake", "split": "test", "all": {"hits@1": 71.25}}))
    (tmp_path / "not-a-record.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    text = report.render(tmp_path)
    assert "| `qa-shipped-webqsp-filtered-oracle.json` | webqsp | test | filtered | oracle | 10 | 50.0 | 90.0 | — | — |" in text
    assert "Reproduce: `qa-system evaluate qa --dataset webqsp --json`" in text
    assert "## Relation scorer" in text and "| `relation-scorer-fake.json` | fake | — | test | 71.2 | — | — | — | — | — |" in text
    assert "## Entailment" not in text and "## Link prediction (HittER)" not in text
    assert "Sections without records (skipped)" in text
    head = report.headline(tmp_path)
    assert "50.0 / —" in head and "qa-shipped-webqsp-filtered-oracle.json" in head
    assert "MRR" not in head  # its record is absent: the row is left out
    out = tmp_path / "out" / "RESULTS.md"
    assert report.main(["--results", str(tmp_path), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == text


def test_committed_results_md_is_fresh() -> None:
    committed = (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert committed == report.render(report.RESULTS_DIR), (
        "docs/RESULTS.md is stale: run `python -m evaluation.report` and commit it with the records")


def test_headline_block_is_rewritten_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{report.START}\nold numbers\n{report.END}\n\noutro\n", encoding="utf-8")
    assert report.main(["--results", str(report.RESULTS_DIR), "--out", str(tmp_path / "R.md"), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n\n") and text.endswith("\n\noutro\n") and "old numbers" not in text
    assert report.readme_block(text) == "\n" + report.headline(report.RESULTS_DIR)


def test_readme_headline_matches_the_records() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = report.readme_block(readme)
    assert block is not None, "README.md lost its <!-- results:start --> / <!-- results:end --> markers"
    assert block == "\n" + report.headline(report.RESULTS_DIR), (
        "README.md's headline table is stale: run `python -m evaluation.report --readme README.md`")
    assert len(readme.splitlines()) <= 300
    # the set-up commands users copy, and the one CI runs
    assert "./scripts/install.sh && qa-system serve" in readme and "./scripts/test.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
