"""Entailment cross-encoder: API shapes, probabilities, empty input, truncation, checkpoint round trip
and errors on a tiny random encoder; the shipped checkpoint on an obvious pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qa_system.errors import CheckpointError, InputError
from qa_system.models.entailment import (
    CARD,
    LABELS,
    WEIGHTS,
    EntailmentConfig,
    EntailmentCrossEncoder,
    EntailmentModel,
    build_encoder,
    encode_pairs,
    load_entailment_model,
    load_tokenizer,
    save_entailment,
    shipped_checkpoint,
)

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}


def tiny_config(**kw) -> EntailmentConfig:
    return EntailmentConfig(tiny=dict(TINY), lora_r=4, head_hidden=32, **kw)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture()
def tiny_model(tokenizer) -> EntailmentModel:
    cfg = tiny_config(max_length=64)
    return EntailmentModel(EntailmentCrossEncoder(cfg, build_encoder(cfg)), tokenizer)


def test_label_order_is_fixed() -> None:
    assert LABELS == ("entailment", "neutral", "contradiction")
    with pytest.raises(ValueError, match="labels must be"):
        EntailmentConfig(labels=("neutral", "entailment", "contradiction"))
    with pytest.raises(ValueError, match="max_length"):
        EntailmentConfig(max_length=4)
    with pytest.raises(ValueError, match="unknown entailment config keys"):
        EntailmentConfig.from_dict({"lora_r": 4, "bogus": 1})


def test_predict_shapes_and_probabilities(tiny_model: EntailmentModel) -> None:
    pairs = [("A man plays a guitar.", "A person plays music."), ("Short.", "A much longer hypothesis sentence here."), ("x", "y")]
    probs = tiny_model.predict(pairs, batch_size=2)
    assert probs.shape == (3, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    # batching and length sorting do not change a pair's result
    np.testing.assert_allclose(tiny_model.predict(pairs[1:2]), probs[1:2], atol=1e-5)
    scores = tiny_model.entailment_scores(["A man plays a guitar.", "x"], "A person plays music.")
    assert scores.shape == (2,)
    np.testing.assert_allclose(scores[0], probs[0, 0], atol=1e-5)


def test_empty_and_bad_input(tiny_model: EntailmentModel) -> None:
    assert tiny_model.predict([]).shape == (0, 3)
    assert tiny_model.entailment_scores([], "anything").shape == (0,)
    with pytest.raises(InputError, match="pair 1"):
        tiny_model.predict([("a", "b"), ("only one",)])  # type: ignore[list-item]
    with pytest.raises(InputError, match="batch_size"):
        tiny_model.predict([("a", "b")], batch_size=0)


def test_truncation_cuts_premise_first(tokenizer, tiny_model: EntailmentModel) -> None:
    long_premise = "word " * 2000
    hypothesis = "the cat sat on the mat"
    batch = encode_pairs(tokenizer, [(long_premise, hypothesis), ("short premise", hypothesis)], 32)
    assert batch["input_ids"].shape == (2, 32)
    decoded = tokenizer.decode(batch["input_ids"][0])
    assert decoded.endswith("[SEP] the cat sat on the mat [SEP]")  # hypothesis intact
    assert int(batch["token_type_ids"][0].sum()) == len(hypothesis.split()) + 1
    batch = encode_pairs(tokenizer, [("premise", "hypothesis " * 2000)], 32)  # a runaway hypothesis is cut too
    assert batch["input_ids"].shape == (1, 32) and tokenizer.decode(batch["input_ids"][0]).startswith("[CLS] premise [SEP]")
    probs = tiny_model.predict([(long_premise, hypothesis), ("p", "h " * 3000)])  # never crashes on over-long text
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_only_adapters_and_head_train() -> None:
    cfg = tiny_config()
    net = EntailmentCrossEncoder(cfg, build_encoder(cfg))
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert set(net.trainable_state_dict()) == trainable


def test_save_load_round_trip(tmp_path: Path, tiny_model: EntailmentModel) -> None:
    with torch.no_grad():
        for p in tiny_model.network.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # make adapters non-trivial so a failed load would show
    pairs = [("A dog runs.", "An animal moves."), ("A dog runs.", "A cat sleeps.")]
    expected = tiny_model.predict(pairs)
    save_entailment(tmp_path / "ckpt", tiny_model.network, {"date": "2026-01-01"})
    loaded = load_entailment_model(tmp_path / "ckpt")
    np.testing.assert_allclose(loaded.predict(pairs), expected, atol=1e-5)
    assert loaded.name == "entailment-minilm-lora" and loaded.version.startswith("2026-01-01+")
    save_entailment(tmp_path / "half", tiny_model.network, {"date": "2026-01-01"}, fp16=True)
    np.testing.assert_allclose(load_entailment_model(tmp_path / "half").predict(pairs), expected, atol=2e-2)


def test_load_errors(tmp_path: Path, tiny_model: EntailmentModel) -> None:
    with pytest.raises(CheckpointError, match="no entailment checkpoint"):
        load_entailment_model(tmp_path / "missing")
    folder = save_entailment(tmp_path / "ckpt", tiny_model.network, {})
    (folder / WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_entailment_model(folder)
    folder = save_entailment(tmp_path / "ckpt2", tiny_model.network, {})
    card = json.loads((folder / CARD).read_text())
    card["config"]["lora_r"] = 8  # adapters of rank 4 do not fit a rank-8 model
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_entailment_model(folder)
    (folder / CARD).write_text("{broken")
    with pytest.raises(CheckpointError, match="unusable"):
        load_entailment_model(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="no adapters.safetensors"):
        load_entailment_model(folder)


@pytest.mark.skipif(not (shipped_checkpoint() / CARD).is_file(), reason="entailment checkpoint not shipped yet")
def test_shipped_checkpoint_scores_an_obvious_pair() -> None:
    folder = shipped_checkpoint()
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 10 * 1024 * 1024
    model = load_entailment_model()
    premise = "Christopher Nolan directed Inception."
    right, wrong = model.entailment_scores([premise], "Inception was directed by Christopher Nolan"), \
        model.entailment_scores([premise], "Inception was directed by James Cameron")
    assert right[0] > 0.5 > wrong[0]
    probs = model.predict([("A man is playing a guitar on stage.", "Nobody is playing an instrument.")])
    assert probs[0].argmax() == LABELS.index("contradiction")
