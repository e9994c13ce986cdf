"""QA benchmark loaders: counts against the SOURCE.md files of ../shared/data, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.qa_data import QAExample, in_dev_carve, load_qa, question_key, to_mid
from graph.kg_files import default_data_dir
from qa_system.errors import DatasetNotFoundError

DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    DATA is None or not (DATA / "webqsp").is_dir() or not (DATA / "freebaseqa").is_dir(),
    reason="QA data not found: set QA_DATA_DIR or place the shared data at ../shared/data",
)


def test_mid_conversion_and_keys() -> None:
    assert to_mid("m.03_r3") == "/m/03_r3"
    assert to_mid("/m/03_r3") == "/m/03_r3"
    assert to_mid("g.11b6") == "/g/11b6"
    assert to_mid("1999") is None and to_mid(None) is None
    assert question_key('Who produced ""12 Angry Men""?') == question_key("who produced 12 angry men")


def test_dev_carve_is_deterministic_and_about_ten_percent() -> None:
    ids = [f"WebQTrn-{i}" for i in range(5000)]
    carved = [i for i in ids if in_dev_carve(i)]
    assert carved == [i for i in ids if in_dev_carve(i)]
    assert 0.08 < len(carved) / len(ids) < 0.12


@pytest.mark.parametrize(
    ("dataset", "split", "setting"),
    [("nope", "test", "full"), ("webqsp", "valid", "full"), ("webqsp", "test", "partial")],
)
def test_unknown_names_are_clear_errors(dataset: str, split: str, setting: str) -> None:
    with pytest.raises(DatasetNotFoundError, match="unknown QA"):
        load_qa(dataset, split, setting)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        load_qa("webqsp", "test", "full", data_dir=tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="webqsp"):
        load_qa("webqsp", "test", "full", data_dir=tmp_path)


@needs_data
@pytest.mark.parametrize(
    ("dataset", "split", "setting", "count"),
    [
        ("freebaseqa", "test", "filtered", 755),
        ("freebaseqa", "dev", "filtered", 743),
        ("freebaseqa", "train", "filtered", 3713),
        ("freebaseqa", "test", "full", 3996),
        ("freebaseqa", "dev", "full", 3994),
        ("webqsp", "test", "filtered", 484),
        ("webqsp", "test", "full", 1639),
    ],
)
def test_counts_match_the_sources(dataset: str, split: str, setting: str, count: int) -> None:
    examples = load_qa(dataset, split, setting)
    assert len(examples) == count
    assert len({e.id for e in examples}) == count
    assert all(isinstance(e, QAExample) and e.question for e in examples)
    assert all(t.startswith("/m/") for e in examples for t in e.topic_ids + e.answer_ids)
    if setting == "filtered":
        assert all(len(e.topic_ids) == 1 and len(e.answer_ids) == 1 for e in examples)


@needs_data
@pytest.mark.parametrize(("setting", "total"), [("filtered", 850), ("full", 3098)])
def test_webqsp_dev_is_a_carve_of_train(setting: str, total: int) -> None:
    train, dev = load_qa("webqsp", "train", setting), load_qa("webqsp", "dev", setting)
    assert len(train) + len(dev) == total
    assert not {e.id for e in train} & {e.id for e in dev}
    assert 0.06 * total < len(dev) < 0.14 * total


@needs_data
def test_freebaseqa_full_train_is_not_available() -> None:
    with pytest.raises(DatasetNotFoundError, match="filtered"):
        load_qa("freebaseqa", "train", "full")


@needs_data
def test_known_records() -> None:
    fbqa = {e.id: e for e in load_qa("freebaseqa", "test", "filtered")}
    grimm = fbqa["FreebaseQA-eval-2"]
    assert grimm.topic_ids == ["/m/04z257"] and grimm.answer_ids == ["/m/07h5d"]
    assert grimm.inferential_chain == ["film.film.directed_by"]

    webqsp = {e.id: e for e in load_qa("webqsp", "test", "full")}
    jamaica = webqsp["WebQTest-0"]
    assert jamaica.topic_ids == ["/m/03_r3"]
    assert "Jamaican English" in jamaica.answer_names
    assert jamaica.inferential_chain == ["location.country.languages_spoken"]

    full = load_qa("freebaseqa", "test", "full")
    answerable = [e for e in full if e.topic_ids]
    # Every filtered question is in the full set with its filtered topic among the full topics.
    by_id = {e.id: e for e in full}
    assert all(set(e.topic_ids) <= set(by_id[i].topic_ids) for i, e in fbqa.items())
    assert len(fbqa) <= len(answerable) < len(full)
