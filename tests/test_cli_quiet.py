"""A quiet CLI: ``qa-system ask`` prints its answer and nothing on stderr; the plain-text answer format."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa_system.ask.reader_loading import shipped_reader
from qa_system.cli import quiet_logging
from qa_system.cli.ask_commands import answer_text
from qa_system.types import Answer, FactStatus, FactView, Provenance, RankedEntity


def _fact(subject: str, s_name: str, relation: str, obj: str, o_name: str, status: FactStatus = FactStatus.VERIFIED,
          provenance: Provenance | None = None) -> FactView:
    return FactView(id=f"{subject}{relation}{obj}", subject=subject, subject_name=s_name, relation=relation, object=obj,
                    object_name=o_name, status=status, confidence=1.0,
                    provenance=provenance or Provenance(dataset="FB15k-237", split="train"))


def test_answer_text_names_the_answer_and_its_evidence_in_words() -> None:
    answer = Answer(question="Who directed Inception?", source="graph", confidence=0.912,
                    answer=RankedEntity(id="/m/nolan", name="Christopher Nolan", confidence=0.912),
                    evidence=[_fact("/m/inception", "Inception", "/film/film/directed_by", "/m/nolan", "Christopher Nolan")])
    assert answer_text(answer) == (
        "Christopher Nolan  (confidence 0.91, from the graph)\n"
        "  Inception —directed by→ Christopher Nolan   [verified, FB15k-237 train]"
    )


def test_answer_text_unsure_llm_value_and_no_answer() -> None:
    unsure = Answer(question="q", source="graph-unsure", confidence=0.3, message="The graph is not sure (confidence 0.30 < 0.50).",
                    answer=RankedEntity(id="/m/x", name="X", confidence=0.3))
    assert answer_text(unsure).splitlines() == ["X  (confidence 0.30, from the graph, unsure)",
                                                "  The graph is not sure (confidence 0.30 < 0.50)."]
    extracted = Provenance(source_kind="extractor", document_id="doc-1")
    llm = Answer(question="q", source="llm", confidence=0.8, validated=True, answer=RankedEntity(id="e", name="Paris", confidence=0.8),
                 evidence=[_fact("e1", "France", "capital", "e", "Paris", FactStatus.PROPOSED, Provenance(source_kind="llm", model="smollm2")),
                           _fact("e1", "France", "hasCapital", "e", "Paris", FactStatus.EXTRACTED, extracted)])
    assert answer_text(llm).splitlines() == ["Paris  (confidence 0.80, from the LLM, validated)",
                                             "  France —capital→ Paris   [proposed, proposed by LLM smollm2]",
                                             "  France —has capital→ Paris   [extracted, extracted from doc-1]"]
    value = Answer(question="When was Nolan born?", source="graph", confidence=0.7,
                   answer=RankedEntity(id="lit:1", name="1970-07-30", confidence=0.7, kind="value"),
                   evidence=[_fact("/m/nolan", "Christopher Nolan", "birthDate", "lit:1", "1970-07-30")])
    assert answer_text(value).splitlines()[0] == "1970-07-30  (confidence 0.70, from the graph)"
    assert answer_text(value).splitlines()[1].startswith("  Christopher Nolan —birth date→ 1970-07-30")
    many = value.model_copy(update={"evidence": value.evidence * 7})
    assert answer_text(many).splitlines()[-1] == "  … 2 more (--json)"
    none = Answer(question="q", message="No entity of the graph is named in this question.")
    assert answer_text(none) == "No entity of the graph is named in this question."


@pytest.fixture()
def _restore_logging():
    root, own = logging.getLogger(), logging.getLogger("qa_system")
    levels = root.level, own.level
    yield
    root.setLevel(levels[0])
    own.setLevel(levels[1])


@pytest.mark.usefixtures("_restore_logging")
def test_quiet_logging_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.delenv(name, raising=False)
    assert quiet_logging(0, None, "ask") == logging.WARNING
    assert not logging.getLogger("qa_system.ask.pipeline").isEnabledFor(logging.INFO)
    assert not logging.getLogger("faiss.loader").isEnabledFor(logging.INFO)
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    quiet_logging(0, None, "train")  # our own progress logs stay in long commands; the libraries' do not
    assert logging.getLogger("qa_system.training.reader").isEnabledFor(logging.INFO)
    assert not logging.getLogger("sentence_transformers").isEnabledFor(logging.INFO)
    assert quiet_logging(0, "ERROR", "ask") == logging.ERROR
    assert quiet_logging(1, "ERROR", "ask") == logging.INFO  # -v wins over QA_LOG_LEVEL
    assert logging.getLogger("sentence_transformers").isEnabledFor(logging.INFO)
    assert quiet_logging(2, None, "ask") == logging.DEBUG


@pytest.mark.skipif(not (shipped_reader() / "card.json").is_file(), reason="no reader checkpoint shipped")
def test_ask_prints_the_answer_and_nothing_on_stderr(demo_workspace: Path, tmp_path: Path) -> None:
    # a private copy: the embedded store is locked by whoever has it open
    workspace = tmp_path / "ws"
    shutil.copytree(demo_workspace, workspace)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "NEO4J_", "TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS"))}
    # exact-name linking: the fuzzy name index would take minutes to build on first use
    env.update({"QA_WORKSPACE": str(workspace), "QA_FUZZY_LINKING": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    done = subprocess.run([sys.executable, "-m", "qa_system", "ask", "Who directed Inception?"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Christopher Nolan  (confidence "), done.stdout
    assert lines[0].endswith(", from the graph)")
    assert len(lines) >= 2 and all(line.startswith("  ") and "→ " in line for line in lines[1:]), done.stdout
    assert any("Inception" in line and "Christopher Nolan" in line for line in lines[1:]), done.stdout


def test_building_the_parser_imports_no_heavy_library() -> None:
    """Every command pays for the parser: torch or transformers there cost seconds on ``stats``."""

    code = ("import sys; from qa_system.cli import build_parser; build_parser(); "
            "print(','.join(m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_entailment_dataset_choices_match_the_data_module() -> None:
    from qa_system.cli.entailment_commands import DATASETS
    from qa_system.training import entailment_data

    assert DATASETS == entailment_data.DATASETS
