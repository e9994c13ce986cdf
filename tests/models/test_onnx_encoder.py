"""The ONNX Runtime twin of a BertModel: same hidden states, exported once per weights, PyTorch when it cannot."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

from qa_system.models import onnx_encoder as oe  # noqa: E402


def tiny_bert(seed: int = 0) -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    return BertModel(config, add_pooling_layer=False).eval()


def padded_batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 15, 27, 41, 3], [2, 9, 3, 0, 0]])
    mask = (ids != 0).long()
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def test_twin_gives_the_pytorch_hidden_states(tmp_path: Path) -> None:
    bert = tiny_bert()
    twin = oe.onnx_encoder(bert, tmp_path, "tiny-same")
    assert twin is not None
    batch = padded_batch()
    with torch.no_grad():
        expected = bert(**batch).last_hidden_state
    got = twin(**batch).last_hidden_state
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    # longer sequences and another batch size than the export's example: the axes are dynamic
    longer = torch.randint(4, 100, (3, 21))
    with torch.no_grad():
        expected = bert(input_ids=longer, attention_mask=torch.ones_like(longer)).last_hidden_state
    assert torch.allclose(twin(input_ids=longer, attention_mask=torch.ones_like(longer)).last_hidden_state, expected, atol=1e-5)


def test_export_is_keyed_by_the_weights(tmp_path: Path) -> None:
    first, second = tiny_bert(1), tiny_bert(2)
    a = oe.onnx_encoder(first, tmp_path, "tiny-key")
    b = oe.onnx_encoder(second, tmp_path, "tiny-key")
    assert a is not None and b is not None
    assert a.path != b.path and a.path.is_file() and b.path.is_file()  # other weights: another file
    again = oe.onnx_encoder(first, tmp_path, "tiny-key")
    assert again is not None and again.path == a.path  # same weights: the same export
    assert oe.weights_digest(first) in a.path.name


def test_a_damaged_cache_file_is_exported_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bert = tiny_bert(3)
    path = tmp_path / f"tiny-damaged-{oe.weights_digest(bert)}.onnx"
    path.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING):
        twin = oe.onnx_encoder(bert, tmp_path, "tiny-damaged")
    assert twin is not None and "exporting it again" in caplog.text
    with torch.no_grad():
        assert torch.allclose(twin(**padded_batch()).last_hidden_state, bert(**padded_batch()).last_hidden_state, atol=1e-5)


def test_without_onnx_runtime_the_model_stays_on_pytorch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oe, "onnx_runtime_available", lambda: False)
    holder = torch.nn.Module()
    holder.encoder = tiny_bert(4)
    assert oe.onnx_encoder(holder.encoder, tmp_path, "tiny-none") is None
    assert oe.swap_in_onnx_encoder(holder, tmp_path, "tiny-none") is False
    assert not isinstance(holder.encoder, oe.OnnxBertEncoder) and not list(tmp_path.iterdir())


def test_swap_needs_a_cache_dir_and_merged_weights(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    holder = torch.nn.Module()
    holder.encoder = tiny_bert(5)
    assert oe.swap_in_onnx_encoder(holder, None, "tiny-off") is False  # turned off
    holder.encoder = get_peft_model(tiny_bert(5), LoraConfig(r=2, target_modules=["query", "value"]))
    assert oe.swap_in_onnx_encoder(holder, tmp_path, "tiny-peft") is False  # adapters not merged: the export would differ
    holder.encoder = tiny_bert(5)
    assert oe.swap_in_onnx_encoder(holder, tmp_path, "tiny-swap") is True
    assert isinstance(holder.encoder, oe.OnnxBertEncoder)
    assert oe.swap_in_onnx_encoder(holder, tmp_path, "tiny-swap") is False  # already swapped


def test_settings_turn_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_WORKSPACE", str(tmp_path))
    assert oe.default_cache_dir() == tmp_path / "cache" / "onnx"
    monkeypatch.setenv("QA_ONNX_RUNTIME", "false")
    assert oe.default_cache_dir() is None

    from qa_system.config import load_settings

    other = tmp_path / "other"
    assert oe.default_cache_dir(load_settings(workspace=other, onnx_runtime=True)) == other / "cache" / "onnx"  # given settings win
    assert oe.default_cache_dir(load_settings(workspace=other, onnx_runtime=False)) is None


def test_a_pass_started_ahead_is_taken_by_the_forward_with_the_same_input(tmp_path: Path) -> None:
    from concurrent.futures import Future

    bert = tiny_bert(5)
    twin = oe.onnx_encoder(bert, tmp_path, "tiny-ahead")
    assert twin is not None
    batch = padded_batch()
    with torch.no_grad():
        expected = bert(**batch).last_hidden_state
    twin.encode_ahead(**batch)
    assert len(twin._ahead) == 1
    assert torch.allclose(twin(**batch).last_hidden_state, expected, atol=1e-5)
    assert not twin._ahead  # taken, not kept
    other = {k: v[:1] for k, v in batch.items()}
    twin.encode_ahead(**batch)
    with torch.no_grad():
        assert torch.allclose(twin(**other).last_hidden_state, bert(**other).last_hidden_state, atol=1e-5)  # another input: run here
    assert len(twin._ahead) == 1  # the first one still waits for its forward
    for n in range(twin.AHEAD_KEPT + 3):  # passes nobody takes are dropped, oldest first
        ids = torch.tensor([[2, 10 + n, 3]])
        twin.encode_ahead(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert len(twin._ahead) == twin.AHEAD_KEPT
    failed: Future = Future()
    failed.set_exception(RuntimeError("worker died"))
    twin._ahead.clear()
    twin._ahead[oe._key(oe._feed(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]))] = failed
    assert torch.allclose(twin(**batch).last_hidden_state, expected, atol=1e-5)  # a failed head start: run again


def test_threads_choose_the_session_not_the_export(tmp_path: Path) -> None:
    bert = tiny_bert(6)
    one = oe.onnx_encoder(bert, tmp_path, "tiny-threads", threads=1)
    two = oe.onnx_encoder(bert, tmp_path, "tiny-threads", threads=2)
    assert one is not None and two is not None and one.path == two.path  # one export
    assert one.session.get_session_options().intra_op_num_threads == 1
    assert two.session.get_session_options().intra_op_num_threads == 2
    batch = padded_batch()
    assert torch.allclose(one(**batch).last_hidden_state, two(**batch).last_hidden_state, atol=1e-6)
