"""WebNLG loading and the collator that places gold strings on word-piece spans (real MiniLM tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_system.errors import DataFormatError, DatasetNotFoundError
from qa_system.models.extraction_data import (
    ExtractionCollator,
    ExtractionExample,
    TokenTriple,
    find_sublist,
    load_webnlg,
    span_text,
)
from qa_system.models.span_extractor import minilm_tokenizer
from tests.training.webnlg_tiny import RELATIONS, SENTENCES, write_webnlg


@pytest.fixture(scope="module")
def tokenizer():
    return minilm_tokenizer()


def collator(tokenizer, max_length: int = 128) -> ExtractionCollator:
    return ExtractionCollator(tokenizer, {r: i for i, r in enumerate(RELATIONS)}, max_length)


@pytest.mark.parametrize("casrel_rel2id", [True, False])
def test_load_webnlg_both_rel2id_layouts(tmp_path: Path, casrel_rel2id: bool) -> None:
    write_webnlg(tmp_path, "WebNLG", casrel_rel2id=casrel_rel2id)
    examples, relations = load_webnlg(tmp_path, "webnlg", "dev")
    assert relations == RELATIONS
    assert [e.text for e in examples] == [s["text"] for s in SENTENCES]
    assert examples[2].triples == [("Italy", "capital", "Rome"), ("Italy", "leaderName", "Sergio Mattarella")]


def test_load_webnlg_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="webnlg-casrel"):
        load_webnlg(tmp_path, "webnlg-star", "train")
    with pytest.raises(DatasetNotFoundError, match="unknown extraction dataset"):
        load_webnlg(tmp_path, "nyt", "train")  # type: ignore[arg-type]
    root = write_webnlg(tmp_path) / "webnlg-casrel" / "WebNLG-star"
    (root / "train_triples.json").write_text("[{\"text\": \"x\"", encoding="utf-8")
    with pytest.raises(DataFormatError, match="train_triples.json"):
        load_webnlg(tmp_path, "webnlg-star", "train")
    (root / "test_triples.json").write_text(json.dumps([{"text": "a b", "triple_list": [["a", "nope", "b"]]}]))
    with pytest.raises(DataFormatError, match="'nope' is not in rel2id"):
        load_webnlg(tmp_path, "webnlg-star", "test")
    (root / "val_triples.json").write_text(json.dumps([{"text": "a b", "triple_list": [["a", "b"]]}]))
    with pytest.raises(DataFormatError, match="record 0"):
        load_webnlg(tmp_path, "webnlg-star", "dev")


def test_find_sublist() -> None:
    assert find_sublist([5, 1, 2, 3, 1, 2], [1, 2]) == 1
    assert find_sublist([5, 1, 2, 3, 1, 2], [1, 2], start=2) == 4
    assert find_sublist([5, 1, 2], [2, 5]) == -1
    assert find_sublist([5, 1, 2], []) == -1


def test_collator_places_gold_on_word_pieces(tokenizer) -> None:
    examples = [ExtractionExample(s["text"], [tuple(t) for t in s["triple_list"]]) for s in SENTENCES]
    c = collator(tokenizer)
    batch = c(examples)
    assert batch.input_ids.shape == batch.attention_mask.shape and batch.input_ids.shape[0] == 4
    assert c.stats.as_dict() == {"triples": 5, "located": 5, "unlocated": 0}
    assert batch.offsets[0][0] == (0, 0)  # [CLS]
    for text, offsets, triples, example in zip(batch.texts, batch.offsets, batch.triples, examples):
        assert len(triples) == len(example.triples)
        for t, (s, r, o) in zip(triples, example.triples):
            assert isinstance(t, TokenTriple) and t.sub_start >= 1 and t.sub_end >= t.sub_start
            assert span_text(text, offsets, t.sub_start, t.sub_end)[0] == s  # accents and case are the text's
            assert RELATIONS[t.relation] == r
            assert span_text(text, offsets, t.obj_start, t.obj_end)[0] == o


def test_collator_counts_unlocatable_and_truncated_entities(tokenizer) -> None:
    c = collator(tokenizer, max_length=8)
    batch = c([
        ExtractionExample("Alan Bean was born in Wheeler , Texas .", [("Alan Bean", "birthPlace", "Houston"),
                                                                      ("Alan Bean", "birthPlace", "Texas")]),
        ExtractionExample("Aarhus Airport is in Denmark .", [("Aarhus Airport", "country", "Denmark")]),
    ])
    # "Houston" is not in the sentence; "Texas" falls beyond 8 word pieces; the third one fits.
    assert c.stats.as_dict() == {"triples": 3, "located": 1, "unlocated": 2}
    assert batch.triples[0] == [] and len(batch.triples[1]) == 1
    assert {m for m, _ in c.stats.examples} == {"Houston", "Texas"}


def test_collator_rejects_unknown_relations_and_inference_batches_have_no_gold(tokenizer) -> None:
    c = collator(tokenizer)
    with pytest.raises(DataFormatError, match="'founder'"):
        c([ExtractionExample("Bill founded Microsoft .", [("Bill", "founder", "Microsoft")])])
    batch = c([ExtractionExample("Bill founded Microsoft .")])
    assert batch.triples == [[]]
    with pytest.raises(ValueError, match="max_length"):
        collator(tokenizer, max_length=2)
