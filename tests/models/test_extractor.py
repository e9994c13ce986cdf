"""QIDN on tiny random backbones: matching, contrastive losses, decoding, overfitting, checkpoints, the Extractor."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from qa_system.errors import CheckpointError
from qa_system.ingest.extractors import load_extractor
from qa_system.models.extraction import Extractor
from qa_system.models.extraction_data import (
    ExtractionCollator,
    ExtractionExample,
    TokenTriple,
)
from qa_system.models.lora import merge_lora_for_inference
from qa_system.models.qidn import (
    SHIPPED,
    QIDNConfig,
    best_spans,
    build_qidn,
    load_qidn,
    load_qidn_extractor,
    save_qidn,
    span_indices,
)
from qa_system.models.qidn_losses import (
    hungarian_match,
    instance_infonce,
    match_cost,
    relation_infonce,
)
from qa_system.models.span_extractor import TokenSpanExtractor, minilm_tokenizer
from tests.training.webnlg_tiny import RELATIONS, SENTENCES

TINY = {"backbone": "random", "random_hidden": 64, "random_layers": 2, "lora_r": 0, "frozen_layers": 0, "lstm_hidden": 32,
        "hidden": 64, "decoder_layers": 1, "decoder_heads": 4, "decoder_ffn": 128, "dropout": 0.0, "num_queries": 6,
        "width_dim": 8}


@pytest.fixture(scope="module")
def tokenizer():
    return minilm_tokenizer()


@pytest.fixture(scope="module")
def examples() -> list[ExtractionExample]:
    return [ExtractionExample(s["text"], [tuple(t) for t in s["triple_list"]]) for s in SENTENCES]


def collator(tokenizer) -> ExtractionCollator:
    return ExtractionCollator(tokenizer, {r: i for i, r in enumerate(RELATIONS)}, 64)


# ---------------------------------------------------------------------- pieces
def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="backbone"):
        QIDNConfig(backbone="bert-large")
    with pytest.raises(ValueError, match="divisible"):
        QIDNConfig(hidden=100, decoder_heads=8)
    with pytest.raises(ValueError, match="unknown QIDN config keys: nope"):
        QIDNConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="frozen_layers"):
        build_qidn(QIDNConfig(**{**TINY, "frozen_layers": 2}), RELATIONS)


def test_span_indices_cover_inner_tokens_up_to_the_width() -> None:
    starts, ends = span_indices(6, 2)  # [CLS] t1 t2 t3 t4 [SEP]
    assert list(zip(starts.tolist(), ends.tolist())) == [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (3, 4), (4, 4)]


def test_best_spans_keeps_start_before_end_and_length_limit() -> None:
    p_start = torch.tensor([[0.0, 0.1, 0.0, 0.9]])
    p_end = torch.tensor([[0.0, 0.8, 0.2, 0.0]])  # the best end (1) lies before the best start (3)
    s, e, p = best_spans(p_start, p_end, max_len=4)
    assert (int(s), int(e)) == (1, 1) and float(p) == pytest.approx(0.08)
    p_end = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    p_start2, p_end2 = torch.tensor([[0.9, 0.1, 0.0, 0.0]]), torch.tensor([[0.0, 0.1, 0.0, 0.9]])
    s, e, _ = best_spans(p_start2, p_end2, max_len=2)  # 0..3 is too long
    assert e - s < 2


def test_hungarian_matching_finds_the_cheapest_assignment() -> None:
    gold = [[TokenTriple(1, 1, 0, 3, 3), TokenTriple(2, 2, 1, 4, 4)]]
    rel = torch.full((1, 3, 3), -10.0)
    boundary = torch.full((1, 4, 3, 6), -10.0)
    # query 0 fits gold 1 perfectly, query 2 fits gold 0; query 1 predicts no relation (class 2)
    rel[0, 0, 1] = rel[0, 2, 0] = rel[0, 1, 2] = 10.0
    for k, pos in enumerate((2, 2, 4, 4)):
        boundary[0, k, 0, pos] = 10.0
    for k, pos in enumerate((1, 1, 3, 3)):
        boundary[0, k, 2, pos] = 10.0
    assert hungarian_match(rel, boundary, gold) == [[(0, 1), (2, 0)]]
    cost = match_cost(rel[0].softmax(-1), boundary[0].softmax(-1), gold[0])
    assert cost.shape == (3, 2) and float(cost[0, 1]) == pytest.approx(-5.0, abs=1e-3)
    assert hungarian_match(rel, boundary, [[]]) == [[]]


def test_instance_infonce_prefers_same_type_clusters() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.05, 1.0]]), dim=-1)
    mixed = clustered[[0, 2, 1, 3]]
    assert float(instance_infonce(clustered, labels, 0.1)) < float(instance_infonce(mixed, labels, 0.1))
    assert float(instance_infonce(clustered, torch.tensor([0, 1, 2, 3]), 0.1)) == 0.0  # no positives
    assert float(instance_infonce(clustered[:1], labels[:1], 0.1)) == 0.0


def test_relation_infonce_is_cross_entropy_over_relation_similarities() -> None:
    inst = torch.tensor([[1.0, 0.0]])
    rels = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    expected = -math.log(math.exp(10.0) / (math.exp(10.0) + 1.0))
    assert float(relation_infonce(inst, rels, torch.tensor([0]), 0.1)) == pytest.approx(expected, rel=1e-3)


def test_loss_parts_follow_the_ablation_switches(tokenizer, examples) -> None:
    torch.manual_seed(0)
    batch = collator(tokenizer)(examples)
    full = build_qidn(QIDNConfig(**TINY), RELATIONS)
    _, parts = full.loss(batch)
    assert {"relation", "boundary", "instance_nce", "relation_nce", "total"} <= set(parts)
    ablated = build_qidn(QIDNConfig(**TINY, instance_contrast=False, relation_contrast=False), RELATIONS)
    _, parts = ablated.loss(batch)
    assert "instance_nce" not in parts and "relation_nce" not in parts
    assert parts["total"] == pytest.approx(parts["relation"] + parts["boundary"], rel=1e-5)


def test_frozen_layer_cache_gives_the_same_states(tokenizer, examples) -> None:
    """LoRA on the top layer only; cached lower-layer outputs must not change the forward pass."""

    torch.manual_seed(0)
    model = build_qidn(QIDNConfig(**{**TINY, "lora_r": 4, "frozen_layers": 1}), RELATIONS)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n and ".layer.1." in n for n in trainable)
    assert not any(".layer.0." in n for n in trainable)
    batch = collator(tokenizer)(examples)
    model.train()  # frozen layers stay in eval mode; reseeding gives the upper layers the same dropout masks

    def encode(texts=None):
        torch.manual_seed(1)
        return model.encode(batch.input_ids, batch.attention_mask, texts)

    plain = encode()
    model.lower_cache = {}
    first = encode(batch.texts)  # fills the cache
    cached = encode(batch.texts)  # reads it (fp16)
    assert len(model.lower_cache) == 4
    mask = batch.attention_mask.bool()
    assert torch.allclose(plain[mask], first[mask], atol=1e-5)
    assert torch.allclose(first[mask], cached[mask], atol=2e-2)


# ---------------------------------------------------------------------- learning
@pytest.fixture(scope="module")
def overfit(tokenizer, examples):
    """A tiny QIDN trained on the four sentences until it reproduces every gold triple exactly."""

    torch.manual_seed(0)
    model = build_qidn(QIDNConfig(**TINY), RELATIONS)
    batch = collator(tokenizer)(examples)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    gold = [set(t) for t in batch.triples]
    for step in range(150):
        model.train()
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9:
            predicted = [{t for t, _ in p} for p in model.eval().decode(batch)]
            if predicted == gold:
                break
    return model, batch, step


def test_tiny_qidn_overfits_four_sentences_exactly(overfit) -> None:
    from evaluation.extraction import predict, score

    model, batch, step = overfit
    assert step < 149, "did not reach exact triples in 150 steps"
    decoded = model.decode(batch)
    assert [{t for t, _ in p} for p in decoded] == [set(t) for t in batch.triples]
    assert all(0.0 <= s <= 1.0 for p in decoded for _, s in p)
    examples = batch.examples
    tokenizer = minilm_tokenizer()
    strings = predict(model, collator(tokenizer), examples, RELATIONS)
    assert score([e.triples for e in examples], strings)["f1"] == 1.0


def test_checkpoint_round_trip_and_errors(overfit, tmp_path: Path) -> None:
    model, batch, _ = overfit
    folder = save_qidn(tmp_path / "ckpt", model, {"dataset": "tiny"}, fp16=True)
    loaded, card = load_qidn(folder)
    assert card["dataset"] == "tiny" and card["config"]["backbone"] == "random"
    assert not any("embeddings" in k for k in loaded.shipped_state_dict()) or TINY["lora_r"] == 0
    assert [{t for t, _ in p} for p in loaded.decode(batch)] == [{t for t, _ in p} for p in model.decode(batch)]
    with pytest.raises(CheckpointError, match="no QIDN checkpoint"):
        load_qidn(tmp_path / "missing")
    (folder / "qidn.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_qidn(folder)
    (folder / "card.json").write_text("{")
    with pytest.raises(CheckpointError, match="not a valid QIDN card"):
        load_qidn(folder)


def test_token_span_extractor_returns_character_spans(overfit, tokenizer) -> None:
    model, _, _ = overfit
    extractor = TokenSpanExtractor(model, tokenizer, RELATIONS, name="qidn", checkpoint="tiny")
    assert isinstance(extractor, Extractor)
    texts = [SENTENCES[2]["text"], "", SENTENCES[1]["text"]]
    results = extractor.extract(texts, batch_size=2)
    assert len(results) == 3 and results[1] == []
    for text, triples in zip(texts, results):
        for t in triples:
            assert text[t.subject.start:t.subject.end] == t.subject.text
            assert text[t.object.start:t.object.end] == t.object.text
    got = {(t.subject.text, t.relation, t.object.text) for t in results[0]}
    assert got == {("Italy", "capital", "Rome"), ("Italy", "leaderName", "Sergio Mattarella")}
    assert {(t.subject.text, t.object.text) for t in results[2]} == {("1 . FC Köln", "Peter Stöger")}
    with pytest.raises(ValueError, match="batch_size"):
        extractor.extract(texts, batch_size=0)


def test_merging_lora_for_inference_keeps_the_outputs(tokenizer, examples) -> None:
    torch.manual_seed(0)
    model = build_qidn(QIDNConfig(**{**TINY, "lora_r": 4}), RELATIONS).eval()
    with torch.no_grad():  # LoRA's B starts at zero; make the adapters matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    batch = collator(tokenizer)(examples)
    with torch.no_grad():
        before = model(batch.input_ids, batch.attention_mask)
    assert merge_lora_for_inference(model) is True
    assert not any("lora" in name for name, _ in model.named_parameters())
    with torch.no_grad():
        after = model(batch.input_ids, batch.attention_mask)
    assert torch.allclose(before["relation"], after["relation"], atol=1e-4)
    assert torch.allclose(before["boundary"], after["boundary"], atol=1e-3)
    assert merge_lora_for_inference(model) is False  # nothing left to merge


# ---------------------------------------------------------------------- the shipped checkpoint
needs_shipped = pytest.mark.skipif(not (SHIPPED / "card.json").is_file(), reason="QIDN checkpoint not shipped yet")


@needs_shipped
def test_shipped_checkpoint_loads_and_extracts() -> None:
    extractor = load_extractor("qidn")
    assert extractor.name == "qidn" and extractor.vocabulary == "webnlg"
    assert extractor.checkpoint == "extractor-qidn-webnlg"
    assert (SHIPPED / "qidn.safetensors").stat().st_size <= 30 * 1024 * 1024
    text = "Alan Bean was born in Wheeler , Texas and served as a crew member of Apollo 12 ."
    [triples] = extractor.extract([text])
    assert triples, "the shipped QIDN found nothing in an easy WebNLG-style sentence"
    for t in triples:
        assert t.relation in extractor.relation_names
        assert text[t.subject.start:t.subject.end] == t.subject.text and 0.0 <= t.score <= 1.0
    # trained on exact entities (not webnlg-star's last words): whole names, usable as graph entities
    assert ("Alan Bean", "was a crew member of", "Apollo 12") in {(t.subject.text, t.relation, t.object.text) for t in triples}


def test_missing_checkpoint_folder_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="train one with"):
        load_qidn_extractor(tmp_path)


def test_long_texts_are_windowed_not_truncated(overfit, tokenizer) -> None:
    model, _, _ = overfit
    extractor = TokenSpanExtractor(model, tokenizer, RELATIONS, name="qidn", checkpoint="tiny", max_length=24)
    text = " ".join([SENTENCES[3]["text"], SENTENCES[0]["text"], SENTENCES[2]["text"], SENTENCES[1]["text"]])
    windows = extractor.windows(text, overlap=8)
    assert len(windows) > 1 and windows[0][0] == 0 and windows[-1][1] == len(text)
    for (a1, b1), (a2, _) in itertools.pairwise(windows):
        assert a1 < a2 < b1  # consecutive windows overlap
    for a, b in windows:
        assert len(tokenizer(text[a:b], add_special_tokens=False)["input_ids"]) <= 22
    [triples] = extractor.extract([text])
    assert triples, "nothing found in any window"
    for t in triples:
        assert text[t.subject.start:t.subject.end] == t.subject.text
        assert text[t.object.start:t.object.end] == t.object.text
    assert max(t.object.end for t in triples) > windows[0][1]  # something found beyond the first window
    assert extractor.windows(SENTENCES[0]["text"]) == [(0, len(SENTENCES[0]["text"]))]


# ---------------------------------------------------------------------- casing feature and warm start
def test_case_shapes_tell_casing_the_uncased_backbone_cannot_see(tokenizer) -> None:
    from qa_system.models.extraction_data import CASE_SHAPES, case_shapes

    text = "Agra airport, AIDS 1987 Mendrisio"
    enc = tokenizer(text, return_offsets_mapping=True)
    shapes = case_shapes(text, [tuple(o) for o in enc["offset_mapping"]])
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    by_piece = dict(zip(pieces, shapes))
    assert shapes[0] == 0 and shapes[-1] == 0  # [CLS], [SEP]
    assert by_piece["agra"] == 1 + 2 * 1 and by_piece["airport"] == 1 + 2 * 0  # Capitalised vs lower, both word starts
    assert by_piece["aids"] == 1 + 2 * 2 and by_piece["1987"] == 1 + 2 * 3 and by_piece[","] == 1 + 2 * 4 + 1  # "," continues "airport"
    assert any(p.startswith("##") and by_piece[p] % 2 == 0 for p in pieces if p.startswith("##"))  # continuation pieces
    assert max(shapes) < CASE_SHAPES
    upper = tokenizer("Agra Airport", return_offsets_mapping=True)
    lower = tokenizer("Agra airport", return_offsets_mapping=True)
    assert upper["input_ids"] == lower["input_ids"]  # what the backbone sees is the same ...
    assert case_shapes("Agra Airport", [tuple(o) for o in upper["offset_mapping"]]) != \
        case_shapes("Agra airport", [tuple(o) for o in lower["offset_mapping"]])  # ... the casing ids are not


def test_collator_batches_carry_case_ids(tokenizer, examples) -> None:
    batch = collator(tokenizer)(examples[:2])
    assert batch.case_ids is not None and batch.case_ids.shape == batch.input_ids.shape
    assert int(batch.case_ids[batch.attention_mask == 0].abs().sum()) == 0  # padding is class 0
    assert batch.to("cpu").case_ids is not None


def test_casing_qidn_needs_case_ids(tokenizer, examples) -> None:
    from qa_system.errors import ModelError

    model = build_qidn(QIDNConfig(**{**TINY, "case_dim": 4}), RELATIONS)
    batch = collator(tokenizer)(examples[:2])
    model.eval()
    assert len(model.decode(batch)) == 2
    with pytest.raises(ModelError, match="case_ids"):
        model(batch.input_ids, batch.attention_mask)
    with pytest.raises(ValueError, match="case_dim"):
        QIDNConfig(case_dim=-1)


def test_warm_start_adds_casing_without_changing_the_outputs(tokenizer, examples, tmp_path: Path) -> None:
    from qa_system.training.extractor import warm_start

    torch.manual_seed(3)
    plain = build_qidn(QIDNConfig(**TINY), RELATIONS)
    save_qidn(tmp_path / "plain", plain, {"epoch": 7, "dataset": "tiny"}, fp16=False)
    plain, _ = load_qidn(tmp_path / "plain")
    cased = build_qidn(QIDNConfig(**{**TINY, "case_dim": 4}), RELATIONS)
    summary = warm_start(cased, "qidn", tmp_path / "plain")
    assert summary["epoch"] == 7 and any("lstm.weight_ih_l0" in k for k in summary["widened"])
    assert "case_embedding.weight" in summary["new"]
    batch = collator(tokenizer)(examples[:3])
    plain.eval()
    cased.eval()
    with torch.no_grad():
        a = plain(batch.input_ids, batch.attention_mask)
        b = cased(batch.input_ids, batch.attention_mask, case_ids=batch.case_ids)
    assert torch.allclose(a["relation"], b["relation"], atol=1e-5) and torch.allclose(a["boundary"], b["boundary"], atol=1e-4)
    other = build_qidn(QIDNConfig(**{**TINY, "hidden": 32, "decoder_heads": 4}), RELATIONS)
    with pytest.raises(CheckpointError, match="shape"):
        warm_start(other, "qidn", tmp_path / "plain")
