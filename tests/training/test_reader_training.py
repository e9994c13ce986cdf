"""Reader training loop on tiny random models: learns, exports the best, resumes without losing an epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qa_system.ask.reader_features import ReaderFeatures
from qa_system.ask.reader_loading import load_reader_weights, rank
from qa_system.training.reader import ReaderTrainConfig, fit
from tests.models.test_reader import tiny_reader


class CharTokenizer:
    """Enough of a tokenizer for tiny models: characters -> ids in [3, 50)."""

    def __call__(self, texts, padding=True, truncation=True, max_length=64, return_tensors="pt"):
        rows = [[1] + [3 + ord(c) % 47 for c in t[: max_length - 2]] + [2] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}


def features() -> list[ReaderFeatures]:
    # two question types: "who directed X" -> candidate 1, "where is X" -> candidate 2
    out = []
    for i, (question, answer) in enumerate([("who directed it", 1), ("where is it", 2)] * 4):
        out.append(ReaderFeatures(f"q{i}", question, f"/m/t{i % 3}", i % 3, [(4, 0), (5, 1)], ["/m/a", "/m/b", "/m/c"], [1, 2, 5], {"/m/a" if answer == 1 else "/m/b"}, [0] if answer == 1 else [1]))
    return out


def test_fit_learns_exports_and_resumes(tmp_path: Path) -> None:
    reader = tiny_reader(gate_init=0.3)
    data = features()
    cfg = ReaderTrainConfig(epochs=2, batch_size=4, lr=5e-3, warmup=0.1)
    summary = fit(reader, data, data, CharTokenizer(), cfg, tmp_path / "run")
    trace = [json.loads(line) for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in trace] == [1, 2]
    assert (tmp_path / "run" / "best" / "reader.safetensors").is_file()
    # resume: two more epochs continue at epoch 3
    fit(reader, data, data, CharTokenizer(), ReaderTrainConfig(epochs=4, batch_size=4, lr=5e-3), tmp_path / "run")
    trace = [json.loads(line) for line in (tmp_path / "run" / "trace.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in trace] == [1, 2, 3, 4]
    assert trace[-1]["loss"] < trace[0]["loss"]
    assert summary["best_epoch"] >= 1
    fresh = tiny_reader(gate_init=0.3)
    card = load_reader_weights(fresh, tmp_path / "run" / "best")
    assert card["model"] == "qa-reader" and "dev" in card
    ranked = rank(fresh, data, CharTokenizer())
    assert len(ranked) == len(data) and all(len(r) == 3 for r in ranked)
    assert abs(sum(p for _, p in ranked[0]) - 1.0) < 1e-4


def test_nan_loss_is_a_clear_error(tmp_path: Path) -> None:
    from qa_system.errors import ModelError

    reader = tiny_reader()
    with torch.no_grad():
        reader.answer_proj.weight.fill_(float("nan"))
    with pytest.raises(ModelError, match="loss is"):
        fit(reader, features(), features(), CharTokenizer(), ReaderTrainConfig(epochs=1, batch_size=4), tmp_path / "run")


def test_relation_texts_cover_reciprocals_and_cvt_chains() -> None:
    from qa_system.ask.reader_loading import relation_text, relation_texts

    assert relation_text("/film/film/directed_by") == "film directed_by".replace("_", " ")
    assert relation_text("/film/film/release_date_s./film/film_regional_release_date/film_release_region") == (
        "film regional release date film release region"
    )
    texts = relation_texts(["/a/b/c", "/d/e/f"])
    assert texts == ["b c", "e f", "b c of", "e f of"]


def test_relation_head_starts_from_relation_names() -> None:
    reader = tiny_reader()
    texts = [f"relation number {i}" for i in range(6)]
    reader.init_relation_head(texts, CharTokenizer())
    weight = reader.relation_head[-1].weight
    assert torch.isfinite(weight).all() and weight.abs().sum() > 0 and (reader.relation_head[-1].bias == 0).all()
    with pytest.raises(ValueError, match="relation texts"):
        reader.init_relation_head(texts[:3], CharTokenizer())


def test_collate_pads_candidate_relations_with_minus_one() -> None:
    from qa_system.ask.reader_features import collate

    first, second = features()[:2]
    first.candidate_relations = [[3], [], [1, 4, 7]]
    second.candidates, second.candidate_indices, second.candidate_relations = ["/m/a"], [1], [[2, 5]]
    batch = collate([first, second], CharTokenizer())
    assert batch["candidate_relations"].dtype == torch.long
    assert batch["candidate_relations"].tolist() == [[[3, -1, -1], [-1, -1, -1], [1, 4, 7]],
                                                     [[2, 5, -1], [-1, -1, -1], [-1, -1, -1]]]
    assert batch["candidate_mask"].tolist() == [[True, True, True], [True, False, False]]
    second.candidate_relations = None  # no relation lists at all: all padding
    assert collate([second], CharTokenizer())["candidate_relations"].tolist() == [[[-1]]]


def test_a_fused_reader_warm_started_from_its_twin_starts_as_the_twin(tmp_path: Path) -> None:
    from qa_system.ask.reader_loading import save_reader
    from qa_system.errors import CheckpointError
    from tests.models.test_reader import batch

    twin = tiny_reader(use_graph=False)
    with torch.no_grad():  # a "trained" twin: its heads differ from a fresh reader's
        twin.answer_proj.weight.add_(0.5)
        twin.path_weight.fill_(2.0)
    save_reader(tmp_path / "twin", twin, {"use_graph": False})
    fused = tiny_reader()  # gate_init 0: the cross-attention blocks start closed
    with pytest.raises(CheckpointError, match="lacks"):
        load_reader_weights(fused, tmp_path / "twin")  # a checkpoint for inference must hold every tensor
    load_reader_weights(fused, tmp_path / "twin", may_lack=("cross.",))
    twin.eval(), fused.eval()
    *inputs, _ = batch()
    assert torch.allclose(twin(*inputs).scores, fused(*inputs).scores, atol=1e-5, equal_nan=True)
    other = tiny_reader(use_graph=False, lora_r=2)
    with pytest.raises(CheckpointError, match="another shape"):
        load_reader_weights(other, tmp_path / "twin")


@pytest.mark.parametrize(("reader_config", "graph_scores"), [({"graph_scores": False}, False), ({}, True), (None, True)])
def test_a_checkpoint_card_says_whether_hitter_scores_answers(tmp_path: Path, monkeypatch, reader_config, graph_scores) -> None:
    """A MiniLM-alone twin is rebuilt as one; cards written before the switch keep HittER's terms."""

    import qa_system.ask.reader_loading as module

    built: dict = {}
    monkeypatch.setattr(module, "build_reader", lambda hitter_dir, **kw: built.update(kw) or (tiny_reader(use_graph=False), None, [], []))
    monkeypatch.setattr(module, "load_reader_weights", lambda reader, folder: {})
    card = {"use_graph": False, "hitter": str(tmp_path), **({"reader_config": reader_config} if reader_config is not None else {})}
    (tmp_path / "card.json").write_text(json.dumps(card))
    module.load_reader_checkpoint(tmp_path, merge=False)
    assert built == {"use_graph": False, "graph_scores": graph_scores, "init_relation_head": False}  # trained weights overwrite it
