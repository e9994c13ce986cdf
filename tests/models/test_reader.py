"""The fused reader on tiny random models (BERT 64-d x 2 layers, HittER 32-d with 2 context layers)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from qa_system.models.hitter import HittER, HittERConfig, neighbour_batch_from_pairs
from qa_system.models.reader import (
    QAReader,
    ReaderConfig,
    answer_loss,
    relation_loss,
    teacher_relations,
)

E, R = 12, 3


def tiny_hitter() -> HittER:
    cfg = HittERConfig(num_entities=E, num_relations=R, dim=32, entity_layers=1, context_layers=2, heads=4, ffn_dim=64,
                       dropout=0.0, embedding_dropout=0.0, output_dropout=0.0, max_neighbours=4, mep_prob=0.0)
    return HittER(cfg).eval()


def tiny_bert() -> BertModel:
    return BertModel(BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


def tiny_reader(**overrides) -> QAReader:
    torch.manual_seed(0)
    cfg = ReaderConfig(**{"text_dim": 64, "graph_dim": 32, "num_relations": R, "cross_heads": 4, "cross_dropout": 0.0, "lora_r": 4, **overrides})
    return QAReader(cfg, tiny_bert(), tiny_hitter())


def batch():
    input_ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 9, 2, 0]])
    attention_mask = (input_ids > 0).long()
    topics = torch.tensor([0, 3])
    neighbours = neighbour_batch_from_pairs([[(1, 0), (2, 1)], [(4, 2)]])
    candidates = torch.tensor([[1, 2, 5], [4, 6, 0]])
    candidate_mask = torch.tensor([[True, True, True], [True, True, False]])
    candidate_relations = torch.tensor([[[0, -1], [1, 4], [-1, -1]], [[2, -1], [5, -1], [-1, -1]]])
    answers = torch.tensor([[False, True, False], [True, False, False]])
    return input_ids, attention_mask, topics, neighbours, candidates, candidate_mask, candidate_relations, answers


def test_shapes_and_padding_candidates() -> None:
    reader = tiny_reader().eval()
    *inputs, answers = batch()
    out = reader(*inputs, answers=answers)
    assert out.scores.shape == (2, 3) and out.relation_logits.shape == (2, 2 * R)
    assert out.scores[1, 2] == float("-inf") and torch.isfinite(out.scores[0]).all()
    assert out.loss is not None and torch.isfinite(out.loss)
    assert len(out.gates) == 2 and out.gates == [0.0, 0.0]


def test_closed_gates_leave_the_encoder_unchanged_and_open_gates_change_it() -> None:
    reader = tiny_reader().eval()
    *inputs, _ = batch()
    base = reader(*inputs).scores
    with torch.no_grad():
        for block in reader.cross:
            block.gate.fill_(1.0)
    fused = reader(*inputs).scores
    ablated = tiny_reader(use_graph=False).eval()
    ablated.load_state_dict({k: v for k, v in reader.state_dict().items() if not k.startswith("cross.")}, strict=True)
    assert torch.allclose(ablated(*inputs).scores, base, atol=1e-5)  # gate 0 == no fusion
    assert not torch.allclose(fused, base)  # open gates let the graph in


def test_minilm_alone_scores_only_the_relation_paths_and_never_runs_hitter() -> None:
    """The fusion ablation's second twin: same candidates, no HittER state, embedding or score."""

    reader = tiny_reader(use_graph=False, graph_scores=False).eval()
    assert len(reader.cross) == 0
    calls: list[int] = []
    reader.hitter.register_forward_hook(lambda *_: calls.append(1))
    *inputs, answers = batch()
    out = reader(*inputs, answers=answers)
    assert calls == []
    expected = reader.path_weight * reader.path_scores(out.relation_logits, inputs[-1])
    assert torch.allclose(out.scores[inputs[-2]], expected[inputs[-2]])
    assert out.scores[1, 2] == float("-inf") and out.loss is not None and torch.isfinite(out.loss)
    with torch.no_grad():  # HittER's embeddings do not move its scores
        reader.hitter.entity_embeddings.weight.normal_()
    assert torch.allclose(reader(*inputs).scores, out.scores)
    no_paths = reader(*inputs[:-1]).scores  # without relation paths every candidate ties
    assert torch.equal(no_paths[0], torch.zeros(3)) and no_paths[1, 2] == float("-inf")


def test_cross_attention_without_graph_scores_is_refused() -> None:
    with pytest.raises(ValueError, match="graph_scores"):
        ReaderConfig(text_dim=64, graph_dim=32, num_relations=R, cross_heads=4, use_graph=True, graph_scores=False)


def test_merged_adapters_keep_the_fused_scores() -> None:
    """The app merges LoRA into MiniLM at load: the cross-attention hooks sit on the base model's
    attention modules and survive the merge, so the fused scores stay the same."""

    from qa_system.models.lora import merge_lora_for_inference

    reader = tiny_reader().eval()
    *inputs, _ = batch()
    with torch.no_grad():
        for block in reader.cross:
            block.gate.fill_(1.0)
        for name, p in reader.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
        before = reader(*inputs).scores
        assert merge_lora_for_inference(reader) is True and not any("lora" in n for n, _ in reader.named_parameters())
        after = reader(*inputs).scores
    assert torch.allclose(before, after, atol=1e-4)


def test_hooks_are_inert_outside_the_fused_pass() -> None:
    reader = tiny_reader().eval()
    with torch.no_grad():
        for block in reader.cross:
            block.gate.fill_(1.0)
    input_ids, attention_mask, *_ = batch()
    plain = tiny_reader(use_graph=False).eval()
    plain.load_state_dict({k: v for k, v in reader.state_dict().items() if not k.startswith("cross.")})
    assert torch.allclose(reader.encode(input_ids, attention_mask), plain.encode(input_ids, attention_mask), atol=1e-6)


def test_a_batch_of_one_repeated_question_is_encoded_once() -> None:
    reader = tiny_reader(use_graph=False).eval()
    input_ids, attention_mask, *_ = batch()
    one, mask = input_ids[:1].repeat(3, 1), attention_mask[:1].repeat(3, 1)
    seen: list[int] = []
    handle = reader.encoder.register_forward_hook(lambda module, args, kwargs_out: seen.append(1))
    with torch.no_grad():
        repeated = reader.encode(one, mask)
        assert len(seen) == 1  # one pass for three identical rows
        alone = reader.encode(one[:1], mask[:1])
        mixed = reader.encode(input_ids, attention_mask)  # different questions: one pass over all of them
    assert repeated.shape[0] == 3 and torch.allclose(repeated, alone.expand(3, -1))
    assert torch.allclose(mixed[:1], alone, atol=1e-6)
    reader.train()
    with torch.no_grad():
        reader.encode(one, mask)
    handle.remove()
    assert len(seen) == 4  # training: the batch as it is


def test_training_learns_and_keeps_hitter_frozen_in_eval_mode() -> None:
    reader = tiny_reader(gate_init=0.5)
    reader.train()
    assert not reader.hitter.training
    opt = torch.optim.Adam([p for p in reader.parameters() if p.requires_grad], lr=5e-3)
    *inputs, answers = batch()
    hitter_before = {k: v.clone() for k, v in reader.hitter.state_dict().items()}
    losses = []
    for _ in range(30):
        out = reader(*inputs, answers=answers, relation_targets=torch.tensor([[1, 4], [-1, -1]]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(v, reader.hitter.state_dict()[k]) for k, v in hitter_before.items())


def test_checkpoint_holds_adapters_cross_attention_and_heads_only() -> None:
    reader = tiny_reader()
    keys = set(reader.trainable_state_dict())
    assert any("lora_" in k for k in keys) and any(k.startswith("cross.") for k in keys)
    assert any(k.startswith("relation_head.") for k in keys) and "hitter_weight" in keys
    assert not any(k.startswith("hitter.") for k in keys)
    assert not any("lora_" not in k and k.startswith("encoder.") for k in keys)


def test_relation_is_predicted_at_inference_not_taken_from_labels() -> None:
    reader = tiny_reader().eval()
    *inputs, _ = batch()
    a = reader(*inputs, relation_targets=torch.tensor([[0], [0]])).scores
    b = reader(*inputs, relation_targets=torch.tensor([[5], [5]])).scores
    assert torch.equal(a, b)


def test_path_score_follows_the_relations_linking_topic_and_candidate() -> None:
    reader = tiny_reader().eval()
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    links = torch.tensor([[[0, -1], [1, 2], [-1, -1]]])
    path = reader.path_scores(logits, links)
    log_p = torch.log_softmax(logits, -1)[0]
    assert torch.allclose(path[0, 0], log_p[0])
    assert torch.allclose(path[0, 1], torch.logsumexp(log_p[1:3], 0))
    assert path[0, 2] == reader.indirect_score  # no direct relation
    assert path[0, 0] > path[0, 1]


def test_relation_loss_and_teacher_forcing_use_every_gold_relation() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 0.0]])
    targets = torch.tensor([[2, 1], [-1, -1]])
    expected = -torch.logsumexp(torch.log_softmax(logits[0], 0)[[1, 2]], 0)
    assert torch.allclose(relation_loss(logits, targets), expected)  # the row without labels is skipped
    chosen = teacher_relations(logits, targets, fallback=torch.tensor([0, 0]))
    assert chosen.tolist() == [1, 0]


def test_answer_loss_ignores_unreachable_questions() -> None:
    scores = torch.tensor([[2.0, 0.0, float("-inf")], [1.0, 1.0, 1.0]])
    answers = torch.tensor([[True, False, False], [False, False, False]])
    expected = -torch.log_softmax(scores[0], 0)[0]
    assert torch.allclose(answer_loss(scores, answers), expected)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="cross_heads"):
        ReaderConfig(text_dim=64, graph_dim=32, num_relations=3, cross_heads=5)
    with pytest.raises(ValueError, match="graph_dim"):
        ReaderConfig(text_dim=64, graph_dim=0, num_relations=3, cross_heads=4)
