"""HittER model: shapes, hidden states, context-free mode, neighbour sampling, MEP path, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qa_system.models.hitter import HittER, HittERConfig, Neighbourhoods, neighbour_batch_from_pairs

# 6 entities, 3 relations, 14 facts: a tiny real graph
TRIPLES = np.array([
    [0, 0, 1], [1, 0, 2], [2, 0, 3], [3, 0, 4], [4, 0, 5], [5, 0, 0],
    [0, 1, 2], [1, 1, 3], [2, 1, 4], [3, 1, 5],
    [0, 2, 3], [1, 2, 4], [2, 2, 5], [0, 2, 4],
])
E, R = 6, 3


def tiny_config(**overrides) -> HittERConfig:
    values = dict(num_entities=E, num_relations=R, dim=32, entity_layers=1, context_layers=2, heads=4, ffn_dim=64,
                  max_neighbours=4, dropout=0.0, embedding_dropout=0.0, output_dropout=0.0)
    values.update(overrides)
    return HittERConfig(**values)


@pytest.fixture
def neighbourhoods() -> Neighbourhoods:
    return Neighbourhoods.from_triples(TRIPLES, E, R)


def test_neighbourhoods_hold_both_directions(neighbourhoods):
    lo, hi = neighbourhoods.offsets[0], neighbourhoods.offsets[1]
    pairs = set(zip(neighbourhoods.entities[lo:hi].tolist(), neighbourhoods.relations[lo:hi].tolist()))
    # 0 -r0-> 1, 0 -r1-> 2, 0 -r2-> 3, 0 -r2-> 4, and 5 -r0-> 0 seen from 0 as (5, r0 + R)
    assert pairs == {(1, 0), (2, 1), (3, 2), (4, 2), (5, 0 + R)}
    assert neighbourhoods.degree.sum() == 2 * len(TRIPLES)


def test_sampling_caps_and_removes_the_target_fact(neighbourhoods):
    rng = np.random.default_rng(0)
    sources = np.array([0, 0, 3])
    batch = neighbourhoods.sample(sources, 3, rng, targets=np.array([1, 3, 4]), query_relations=np.array([0, 2, 0]))
    assert batch.entities.shape == (3, 3) and batch.mask.sum(1).max() <= 3
    for i, (t, r) in enumerate([(1, 0), (3, 2), (4, 0)]):
        got = set(zip(batch.entities[i][batch.mask[i]].tolist(), batch.relations[i][batch.mask[i]].tolist()))
        assert (t, r) not in got
    # "entity" mode drops every pair holding the target; many draws, never seen
    for _ in range(20):
        b = neighbourhoods.sample(np.array([0]), 5, rng, targets=np.array([3]), query_relations=np.array([0]),
                                  remove_target="entity")
        assert 3 not in b.entities[0][b.mask[0]].tolist()
        assert int(b.mask.sum()) == 4


def test_sampling_drop_and_zero_neighbours(neighbourhoods):
    rng = np.random.default_rng(1)
    full = neighbourhoods.sample(np.zeros(200, dtype=np.int64), 5, rng)
    dropped = neighbourhoods.sample(np.zeros(200, dtype=np.int64), 5, rng, drop=0.5)
    assert full.mask.sum() == 1000 and 300 < dropped.mask.sum() < 700
    assert not neighbourhoods.sample(np.array([1]), 0, rng).mask.any()


def test_output_shapes_and_hidden_states(neighbourhoods):
    torch.manual_seed(0)
    model = HittER(tiny_config()).eval()
    rng = np.random.default_rng(0)
    src, rel = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3])
    nb = neighbourhoods.sample(src.numpy(), 4, rng)
    out = model(src, rel, nb, output_hidden_states=True)
    assert out.logits.shape == (3, E)
    assert out.gcls.shape == (3, 32) and out.source_output.shape == (3, 32)
    assert len(out.hidden_states) == 2
    assert all(h.shape == (3, 1 + 1 + 4, 32) for h in out.hidden_states)
    assert out.attention_mask.shape == (3, 6) and out.attention_mask[:, :2].all()
    assert torch.equal(out.attention_mask[:, 2:], nb.mask)
    assert torch.allclose(out.hidden_states[-1][:, 0], out.gcls)


def test_padding_does_not_change_scores(neighbourhoods):
    torch.manual_seed(0)
    model = HittER(tiny_config()).eval()
    few = neighbour_batch_from_pairs([[(1, 0), (2, 1)]])
    padded = neighbour_batch_from_pairs([[(1, 0), (2, 1), (0, 0), (0, 0)]])
    padded.mask[0, 2:] = False
    a = model(torch.tensor([0]), torch.tensor([0]), few).logits
    b = model(torch.tensor([0]), torch.tensor([0]), padded).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_context_free_mode():
    model = HittER(tiny_config(use_context=False)).eval()
    assert model.context_encoder is None
    out = model(torch.tensor([0, 1]), torch.tensor([0, 4]), None, torch.tensor([1, 2]), output_hidden_states=True)
    assert out.logits.shape == (2, E) and out.loss.ndim == 0 and out.hidden_states is None
    with pytest.raises(ValueError, match="use_context"):
        model.embed_unseen(neighbour_batch_from_pairs([[(1, 0)]]))


def test_mep_loss_in_training(neighbourhoods):
    torch.manual_seed(0)
    model = HittER(tiny_config(mep_prob=1.0)).train()
    src = torch.tensor([0, 1, 2, 3])
    out = model(src, torch.tensor([0, 0, 0, 0]), neighbourhoods.sample(src.numpy(), 4, np.random.default_rng(0)),
                torch.tensor([1, 2, 3, 4]))
    assert out.mep_loss is not None and out.loss > out.mep_loss
    out.loss.backward()
    assert model.special.weight.grad[HittER.MASK].abs().sum() > 0  # [MASK] took part


def test_embed_unseen_uses_context():
    torch.manual_seed(0)
    model = HittER(tiny_config()).eval()
    pairs = neighbour_batch_from_pairs([[(1, 0), (2, 1)], [(3, 2)]])
    vecs = model.embed_unseen(pairs)
    assert vecs.shape == (2, 32) and torch.isfinite(vecs).all()
    assert not torch.allclose(vecs[0], vecs[1])
    assert model.score(vecs).shape == (2, E)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="neighbour_drop"):
        tiny_config(neighbour_drop=1.5)
    with pytest.raises(ValueError, match="unknown"):
        HittERConfig.from_dict({"dim": 8, "colour": "red"})


@pytest.mark.parametrize("use_context", [True, False])
def test_loss_decreases_on_tiny_graph(neighbourhoods, use_context):
    torch.manual_seed(0)
    model = HittER(tiny_config(use_context=use_context, mep_prob=0.0))
    # lr 5e-3: at 1e-2 the context model's loss spiked back up after step 40 on one CPU (AMX) and
    # not on another, a coin toss; at 5e-3 it falls steadily to ~0.5 on both, 1 or 2 threads
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    q = np.concatenate([TRIPLES, np.stack([TRIPLES[:, 2], TRIPLES[:, 1] + R, TRIPLES[:, 0]], 1)])
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(60):
        nb = neighbourhoods.sample(q[:, 0], 4, rng, targets=q[:, 2], query_relations=q[:, 1]) if use_context else None
        t = torch.from_numpy(q)
        loss = model(t[:, 0], t[:, 1], nb, t[:, 2]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_eval_dedup_matches_plain_encoding(neighbourhoods):
    torch.manual_seed(0)
    model = HittER(tiny_config(gcls_from_source=True, mep_prob=0.0)).eval()
    nb = neighbour_batch_from_pairs([[(1, 0), (2, 1), (1, 0)], [(1, 0)]])
    out = model(torch.tensor([0, 3]), torch.tensor([0, 1]), nb)
    manual = model.encode_pairs(model.entity_embeddings(torch.tensor([1, 2])), torch.tensor([0, 1]))
    model.train()
    model.config.dropout = 0.0
    with torch.no_grad():
        train_mode = model(torch.tensor([0, 3]), torch.tensor([0, 1]), nb, compute_logits=True)
    assert manual.shape == (2, 32)
    assert torch.allclose(out.gcls, train_mode.gcls, atol=1e-5)  # no dropout anywhere in tiny_config
