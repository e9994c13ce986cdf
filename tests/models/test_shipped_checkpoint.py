"""The HittER checkpoint shipped in the package: loads against FB15k-237; its card's numbers hold."""

from __future__ import annotations

import json

import pytest

from qa_system.cli.kge_commands import shipped_checkpoint

CARD = shipped_checkpoint() / "card.json"
pytestmark = pytest.mark.skipif(not CARD.is_file(), reason="no shipped HittER checkpoint yet")


@pytest.fixture(scope="module")
def fb15k237():
    from qa_system.training.kge_data import load_kge_dataset

    return load_kge_dataset("fb15k-237")


def test_card_names_how_it_was_made():
    card = json.loads(CARD.read_text())
    assert card["dataset"] == "fb15k-237" and card["command"].startswith("qa-system")
    assert card["dtype"] == "float16" and card["metrics"]["test"]["num_queries"] == 40932
    assert (shipped_checkpoint() / "model.safetensors").stat().st_size <= 15 * 1024 * 1024


def test_loads_with_matching_vocabulary(fb15k237):
    from qa_system.models.checkpoint import load_checkpoint

    model, card = load_checkpoint(shipped_checkpoint(), entities=fb15k237.entities, relations=fb15k237.relations)
    assert model.config.num_entities == 14541 and card["vocab_sha256"] == fb15k237.vocab_hash()


@pytest.mark.slow
def test_full_test_evaluation_matches_card(fb15k237):
    from qa_system.cli.kge_commands import evaluate_checkpoint

    card = json.loads(CARD.read_text())
    record = evaluate_checkpoint(shipped_checkpoint(), fb15k237, "test")
    assert record["num_queries"] == 40932
    assert record["metrics"]["mrr"] >= 0.30
    assert record["metrics"]["mrr"] == pytest.approx(card["metrics"]["test"]["mrr"], abs=2e-3)
