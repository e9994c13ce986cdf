"""The subject-guided cascade: MHSA-RPE, BGDSFM fusion, nearest-end decoding, a tiny overfit, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from qa_system.errors import CheckpointError
from qa_system.models.cascade import (
    SHIPPED,
    CascadeConfig,
    RelativeSelfAttention,
    SubjectFusion,
    build_cascade,
    load_cascade,
    load_cascade_extractor,
    pair_spans,
    relative_index,
    save_cascade,
    sinusoid,
)
from qa_system.models.extraction import Extractor
from qa_system.models.extraction_data import (
    ExtractionCollator,
    ExtractionExample,
    SpanExtractionModel,
    TokenTriple,
)

RELATIONS = ["birthPlace", "country", "leader", "capital"]
SENTENCES = [
    ExtractionExample("Alan Bean was born in Wheeler , Texas .", [("Bean", "birthPlace", "Texas")]),
    ExtractionExample("Paris is the capital of France , led by Macron .",
                      [("France", "capital", "Paris"), ("France", "leader", "Macron")]),
    ExtractionExample("Aarhus Airport is in Denmark , whose capital is Copenhagen .",
                      [("Airport", "country", "Denmark"), ("Denmark", "capital", "Copenhagen")]),
    ExtractionExample("The weather was nice yesterday .", []),
]


def tiny_config(**kw) -> CascadeConfig:
    base = {"backbone": "random", "random_hidden": 32, "random_layers": 1, "lora_r": 0, "rpe_heads": 2, "rpe_ffn": 64, "dropout": 0.0}
    return CascadeConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tokenizer():
    from qa_system.models.span_extractor import minilm_tokenizer

    return minilm_tokenizer()


# ----------------------------------------------------------------------------- MHSA-RPE
def test_relative_index_is_distance_plus_offset():
    idx = relative_index(4)
    assert idx.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert idx[i, j] == i - j + 3
    assert idx.min() == 0 and idx.max() == 6  # 2T-1 distinct distances


def test_sinusoid_zero_distance_and_symmetry():
    enc = sinusoid(torch.tensor([-3, 0, 3]), 8)
    assert enc.shape == (3, 8)
    assert torch.allclose(enc[1], torch.tensor([0.0] * 4 + [1.0] * 4))  # sin 0, cos 0
    assert torch.allclose(enc[0, :4], -enc[2, :4]) and torch.allclose(enc[0, 4:], enc[2, 4:])  # odd sin, even cos


def test_rpe_attention_shape_and_padding_is_ignored():
    torch.manual_seed(0)
    attn = RelativeSelfAttention(16, 4, dropout=0.0).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out = attn(x, mask)
    assert out.shape == (2, 5, 16)
    x2 = x.clone()
    x2[1, 3:] = torch.randn(2, 16) * 100  # change padding only
    assert torch.allclose(attn(x2, mask)[1, :3], out[1, :3], atol=1e-5)


def test_rpe_attention_is_shift_equivariant():
    """Only distances enter the scores: a pattern placed later in the sequence gives the same outputs there."""

    torch.manual_seed(0)
    attn = RelativeSelfAttention(16, 4, dropout=0.0).eval()
    pattern = torch.randn(1, 4, 16)
    early = torch.zeros(1, 7, 16)
    late = torch.zeros(1, 7, 16)
    early[:, 0:4], late[:, 3:7] = pattern, pattern
    out_early = attn(early, torch.tensor([[1, 1, 1, 1, 0, 0, 0]]))[:, 0:4]
    out_late = attn(late, torch.tensor([[0, 0, 0, 1, 1, 1, 1]]))[:, 3:7]
    assert torch.allclose(out_early, out_late, atol=1e-5)
    # and the relative term matters: with W_r zeroed the attention would be position-blind
    reversed_ = attn(early.flip(1)[:, 3:7], torch.ones(1, 4, dtype=torch.long)).flip(1)
    assert not torch.allclose(reversed_, out_early, atol=1e-3)


# ----------------------------------------------------------------------------- BGDSFM
def test_subject_fusion_is_boundary_plus_global():
    torch.manual_seed(0)
    fusion = SubjectFusion(3)
    states = torch.randn(2, 6, 3)
    spans = torch.tensor([[1, 3], [4, 4]])
    got = fusion(states, spans)
    for n, (s, e) in enumerate(spans.tolist()):
        boundary = fusion.boundary(torch.cat([states[n, s], states[n, e]]))
        globl = fusion.globl(states[n, s:e + 1].mean(0))
        assert torch.allclose(got[n], boundary + globl, atol=1e-6)


# ----------------------------------------------------------------------------- decoding
def test_pair_spans_nearest_end():
    start = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.1, 0.6])
    end = torch.tensor([0.1, 0.1, 0.7, 0.1, 0.9, 0.1])
    spans = pair_spans(start, end, 0.5, max_span=8)
    assert [(s, e) for s, e, _ in spans] == [(1, 2), (3, 4)]  # start 5 has no end after it
    assert math.isclose(spans[0][2], math.sqrt(0.9 * 0.7), rel_tol=1e-6)
    assert pair_spans(start, end, 0.5, max_span=1) == []  # spans longer than max_span are dropped


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="subject_threshold"):
        CascadeConfig(subject_threshold=1.5)
    with pytest.raises(ValueError, match="teacher_forcing"):
        CascadeConfig(teacher_forcing="some")
    with pytest.raises(ValueError, match="unknown cascade config keys"):
        CascadeConfig.from_dict({"nope": 1})


# ----------------------------------------------------------------------------- training
def gold_sets(batch) -> list[set[TokenTriple]]:
    return [set(t) for t in batch.triples]


def test_tiny_cascade_overfits_four_sentences(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_cascade(tiny_config(), RELATIONS)
    assert isinstance(model, SpanExtractionModel)
    collator = ExtractionCollator(tokenizer, {r: i for i, r in enumerate(RELATIONS)}, max_length=32)
    batch = collator(SENTENCES)
    assert collator.stats.unlocated == 0
    model.train()
    opt = torch.optim.AdamW(model.param_groups(3e-3, head_lr_scale=1.0), lr=3e-3)
    first = None
    for _ in range(300):
        loss, _parts = model.loss(batch)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    model.eval()
    predicted = [{t for t, _ in row} for row in model.decode(batch)]
    assert predicted == gold_sets(batch)
    assert all(0.5 < score <= 1.0 for row in model.decode(batch) for _, score in row)

    # the checkpoint round trip keeps the predictions (fp16 weights, fp32 compute)
    folder = save_cascade(tmp_path / "ckpt", model, {"vocabulary": "webnlg", "max_length": 32})
    again, card = load_cascade(folder)
    assert card["config"]["relation_names"] == RELATIONS
    assert [{t for t, _ in row} for row in again.decode(batch)] == predicted

    extractor = load_cascade_extractor(folder)
    assert isinstance(extractor, Extractor) and extractor.checkpoint == "ckpt"
    triples = extractor.extract([SENTENCES[1].text, ""])
    assert triples[1] == []
    assert {(t.subject.text, t.relation, t.object.text) for t in triples[0]} == set(SENTENCES[1].triples)
    first_triple = triples[0][0]
    assert SENTENCES[1].text[first_triple.subject.start:first_triple.subject.end] == first_triple.subject.text


def test_sample_teacher_forcing_uses_one_subject_per_sentence(tokenizer):
    model = build_cascade(tiny_config(teacher_forcing="sample"), RELATIONS).train()
    collator = ExtractionCollator(tokenizer, {r: i for i, r in enumerate(RELATIONS)}, max_length=32)
    batch = collator(SENTENCES)
    chosen = model._teacher_subjects(batch.triples)
    assert sorted(b for b, _, _ in chosen) == [0, 1, 2]  # sentence 2 has two subjects, one is sampled
    assert len(build_cascade(tiny_config(), RELATIONS)._teacher_subjects(batch.triples)) == 4


# ----------------------------------------------------------------------------- checkpoints
def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no cascade checkpoint"):
        load_cascade_extractor(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.json").write_text("{not json")
    (tmp_path / "bad" / "cascade.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="malformed"):
        load_cascade(tmp_path / "bad")


@pytest.mark.skipif(not (SHIPPED / "card.json").is_file(), reason="cascade checkpoint not shipped yet")
def test_shipped_checkpoint_extracts_webnlg_triples():
    card = json.loads((SHIPPED / "card.json").read_text())
    assert (SHIPPED / "cascade.safetensors").stat().st_size <= 30 * 1024 * 1024
    assert card["metrics"]["test"]["f1"] > 0.5
    extractor = load_cascade_extractor()
    assert extractor.name == "cascade" and extractor.vocabulary == "webnlg"
    text = "Alan Bean was born in Wheeler , Texas and was a crew member of Apollo 12 ."
    triples = extractor.extract([text])[0]
    assert triples, "the shipped cascade found nothing in a training-style sentence"
    assert all(text[t.object.start:t.object.end] == t.object.text for t in triples)
    assert any(t.relation == "birthPlace" and t.object.text == "Texas" for t in triples)
