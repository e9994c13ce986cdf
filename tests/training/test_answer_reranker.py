"""Answer reranker: passage format, listwise loss, the reader + reranker combination and its dev
weight, training samples, a checkpoint round trip, a short training on a tiny random encoder that
must learn to put the gold passage first, and the second stage over graph texts."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from qa_system.ask.reranking import CandidateReranker, text_match_card, top_passages
from qa_system.errors import CheckpointError, InputError
from qa_system.models.answer_reranker import (
    AnswerReranker,
    RerankerConfig,
    build_network,
    candidate_passage,
    load_reranker,
    read_count,
    rerank,
    save_reranker,
)
from qa_system.models.entailment import load_tokenizer
from qa_system.training.answer_reranker import (
    RerankerTrainConfig,
    RerankGroup,
    choose_read_within,
    choose_skip,
    choose_weight,
    combined_order,
    dev_report,
    fit,
    hits_at_1,
    listwise_loss,
    training_sample,
)

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}


def tiny_network(**kw):
    return build_network(RerankerConfig(tiny=dict(TINY), lora_r=4, max_length=48, **kw))


def group(gold_at: int, n: int = 4, dataset: str = "d", reader: list[float] | None = None) -> RerankGroup:
    return RerankGroup(question="who?", candidates=[f"e{i}" for i in range(n)], passages=[f"p{i}" for i in range(n)],
                       reader_scores=reader or [-float(i) for i in range(n)], gold=[i == gold_at for i in range(n)], dataset=dataset)


def test_candidate_passage_names_relations_once_and_the_topic():
    text = candidate_passage("Jennifer  Aniston: American actress", ["tv regular cast of", "tv regular cast of", "award nominee"],
                             "Friends: American sitcom")
    assert text == "Jennifer Aniston: American actress | via: tv regular cast of; award nominee | topic: Friends: American sitcom"
    assert candidate_passage("", [], "") == "(unnamed)"


def test_listwise_loss_is_low_when_the_gold_leads_and_counts_several_golds():
    logits = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0])
    labels = torch.tensor([True, False, False, False, True])
    good = listwise_loss(logits[:3], labels[:3], [3])
    bad = listwise_loss(torch.tensor([0.0, 5.0, 0.0]), labels[:3], [3])
    assert good < 0.02 < 4.0 < bad
    two = listwise_loss(torch.zeros(2), torch.tensor([True, True]), [2])  # every passage gold: nothing to learn
    assert two.item() == pytest.approx(0.0, abs=1e-6)
    mean = listwise_loss(torch.cat([logits[:3], torch.zeros(2)]), torch.tensor([True, False, False, True, False]), [3, 2])
    assert mean.item() == pytest.approx((good.item() + math.log(2)) / 2, rel=1e-5)


def test_combined_order_and_weight_choice_on_dev():
    g = group(gold_at=2)  # the reader ranks the gold third
    assert combined_order(g, [0.0, 0.0, 3.0, 0.0], 0.0)[0] == 0
    assert combined_order(g, [0.0, 0.0, 3.0, 0.0], 1.0)[0] == 2
    groups = [group(gold_at=2), group(gold_at=0)]
    scores = [[0.0, 0.0, 3.0, 0.0], [0.0, 2.5, 0.0, 0.0]]  # weight 1 fixes the first and breaks the second (1 - 2.5 < 0)...
    assert hits_at_1(groups, scores, 0.0) == 0.5
    assert hits_at_1(groups, scores, 1.0) == 0.5
    weight, table = choose_weight(groups, scores, grid=(0.0, 1.0, 0.5))
    assert table == {"0.0": 0.5, "1.0": 0.5, "0.5": 0.0} and weight == 0.0  # ties: the smaller weight
    scores[1] = [0.0, 0.5, 0.0, 0.0]  # ...unless the reranker is less sure there
    weight, _ = choose_weight(groups, scores, grid=(0.0, 0.5, 1.0))
    assert weight == 1.0


def test_choose_weight_averages_datasets_instead_of_pooling_questions():
    big = [group(gold_at=0, dataset="big") for _ in range(9)]
    small = [group(gold_at=1, dataset="small")]
    scores = [[0.0, 1.5, 0, 0]] * 9 + [[0.0, 1.5, 0, 0]]
    # weight 1: big loses all 9 (1.5 - 1 > 0), small wins its 1; pooled 0.1 vs 0.9, per-dataset mean 0.5 vs 0.5
    weight, table = choose_weight(big + small, scores, grid=(0.0, 1.0))
    assert table == {"0.0": 0.5, "1.0": 0.5} and weight == 0.0
    assert choose_weight(big + small, scores, grid=(0.0, 1.0), by_dataset=False)[1] == {"0.0": 0.9, "1.0": 0.1}


def test_choose_skip_is_the_lowest_reader_confidence_that_loses_nothing_on_dev():
    sure = group(gold_at=0)
    sure.reader_scores = [math.log(0.95), math.log(0.03), math.log(0.01), math.log(0.01)]
    unsure = group(gold_at=2)
    unsure.reader_scores = [math.log(0.4), math.log(0.3), math.log(0.2), math.log(0.1)]
    fixed_by_rerank = group(gold_at=1)
    fixed_by_rerank.reader_scores = [math.log(0.75), math.log(0.2), math.log(0.03), math.log(0.02)]
    groups = [sure, unsure, fixed_by_rerank]
    scores = [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0], [0.0, 5.0, 0.0, 0.0]]
    assert hits_at_1(groups, scores, 1.0) == 1.0 and hits_at_1(groups, scores, 1.0, skip_above=0.7) == pytest.approx(2 / 3)
    skip, table = choose_skip(groups, scores, 1.0, grid=(0.5, 0.7, 0.9))
    assert skip == 0.9 and table["0.9"] == {"mean_hits1": 1.0, "skipped": pytest.approx(1 / 3, abs=1e-4)}
    assert table["0.5"]["skipped"] == pytest.approx(2 / 3, abs=1e-4) and table["0.5"]["mean_hits1"] < 1.0
    assert choose_skip(groups, scores, 1.0, grid=(0.5, 0.7))[0] is None  # every skip loses a question
    with pytest.raises(ValueError, match="skip_above"):
        AnswerReranker(tiny_network(), load_tokenizer(), skip_above=1.5)


def test_read_count_keeps_the_candidates_near_the_reader_top_and_at_least_two():
    scores = [-0.1, -1.0, -2.9, -3.5, -9.0]
    assert read_count(scores, 5, None) == 5 and read_count(scores, 3, None) == 3
    assert read_count(scores, 5, 3.0) == 3  # -3.5 and -9.0 are more than 3 nats below -0.1
    assert read_count(scores, 5, 0.5) == 2  # never fewer than two: the top meets its closest rival
    assert read_count(scores, 5, 100.0) == 5 and read_count(scores[:1], 5, 3.0) == 1 and read_count([], 5, 3.0) == 0
    with pytest.raises(ValueError, match="read_within"):
        AnswerReranker(tiny_network(), load_tokenizer(), read_within=-1.0)
    with pytest.raises(ValueError, match="read_within"):
        AnswerReranker(tiny_network(), load_tokenizer(), read_within=float("nan"))


def test_choose_read_within_is_the_narrowest_gap_that_loses_nothing_on_dev():
    close = group(gold_at=1, reader=[math.log(0.5), math.log(0.45), math.log(0.04), math.log(0.01)])
    far_gold = group(gold_at=2, reader=[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)])  # gold 1.2 nats below the top
    sure = group(gold_at=0, reader=[math.log(0.97), math.log(0.01), math.log(0.01), math.log(0.01)])
    groups = [close, far_gold, sure]
    scores = [[0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.0], [2.0, 0.0, 0.0, 1.0]]
    assert hits_at_1(groups, scores, 1.0) == 1.0
    assert hits_at_1(groups, scores, 1.0, read_within=0.5) == pytest.approx(2 / 3)  # the far gold is not read
    assert hits_at_1(groups, scores, 1.0, read_within=2.0) == 1.0
    within, table = choose_read_within(groups, scores, 1.0, grid=(0.5, 2.0, 10.0))
    assert within == 2.0 and table["2.0"]["mean_hits1"] == 1.0
    assert table["0.5"]["pairs_per_question"] == 2.0 and table["10.0"]["pairs_per_question"] == 4.0
    assert table["2.0"]["pairs_per_question"] == pytest.approx((2 + 3 + 2) / 3, abs=1e-3)
    assert choose_read_within(groups, scores, 1.0, grid=(0.5,))[0] is None  # every narrowing loses a question


def test_dev_report_chooses_or_keeps_the_weight_and_narrows_unless_told_not_to():
    class ByPassage:  # logits fixed per passage, as a trained reranker would give
        def __init__(self, logits):
            self.logits = logits

        def scores(self, question, passages):
            return np.array([self.logits[p] for p in passages])

    groups = [group(gold_at=1, reader=[math.log(0.5), math.log(0.45), math.log(0.04), math.log(0.01)], dataset="a"),
              group(gold_at=0, reader=[math.log(0.9), math.log(0.05), math.log(0.03), math.log(0.02)], dataset="b")]
    reranker = ByPassage({"p0": 0.0, "p1": 1.0, "p2": 0.0, "p3": 0.0})
    chosen = dev_report(reranker, groups)
    assert chosen["weight"] == 0.25 and chosen["mean_hits1"] == 1.0  # the smallest weight that lets p1 overtake p0
    assert chosen["read_within"] == 1.0 and chosen["read_within_grid"]["1.0"]["pairs_per_question"] == 2.0
    kept = dev_report(reranker, groups, weight=2.5, narrow=False)
    assert kept["weight"] == 2.5 and kept["grid"]["2.5"] == 1.0 and kept["read_within"] is None
    assert kept["read_within_free_of_hits_loss"] == 1.0  # reported all the same


def test_training_sample_keeps_gold_and_the_hardest_negatives():
    g = group(gold_at=3, n=12)
    cfg = RerankerTrainConfig(group_size=6, hard_negatives=3)
    passages, labels = training_sample(g, cfg, random.Random(0))
    assert len(passages) == 6 and labels.count(True) == 1
    assert passages[:4] == ["p3", "p0", "p1", "p2"]
    assert training_sample(group(gold_at=99), cfg, random.Random(0)) is None


def test_reranker_scores_shapes_and_bad_question():
    reranker = AnswerReranker(tiny_network(), load_tokenizer(), weight=2.0, top_k=3)
    scores = reranker.scores("who directed Inception?", ["Christopher Nolan: director", "x " * 500, "Paris"])
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert reranker.scores("q", []).shape == (0,)
    with pytest.raises(InputError):
        reranker.scores("  ", ["a"])
    with pytest.raises(ValueError):
        AnswerReranker(tiny_network(), load_tokenizer(), weight=-1.0)


def test_checkpoint_round_trip_and_errors(tmp_path):
    network = tiny_network()
    tokenizer = load_tokenizer()
    before = AnswerReranker(network, tokenizer).scores("q?", ["a b", "c"])
    save_reranker(tmp_path / "ck", network, {"weight": 1.5, "top_k": 7, "read_within": 3.0})
    loaded = load_reranker(tmp_path / "ck")
    assert loaded.weight == 1.5 and loaded.top_k == 7 and loaded.read_within == 3.0
    np.testing.assert_allclose(loaded.scores("q?", ["a b", "c"]), before, atol=5e-2)  # float16 weights
    with pytest.raises(CheckpointError, match="no answer-reranker checkpoint"):
        load_reranker(tmp_path / "missing")
    (tmp_path / "ck" / "reranker.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="unusable"):
        load_reranker(tmp_path / "ck")


def test_checkpoint_precision_follows_the_card_unless_overridden(tmp_path):
    network = tiny_network()
    tokenizer = load_tokenizer()
    before = AnswerReranker(network, tokenizer).scores("q?", ["a b", "c d e", "f"])
    save_reranker(tmp_path / "ck", network, {"precision": "int8"})
    int8 = load_reranker(tmp_path / "ck")
    assert int8.precision == "int8" and not any(type(m) is torch.nn.Linear for m in int8.network.modules())
    np.testing.assert_allclose(int8.scores("q?", ["a b", "c d e", "f"]), before, atol=0.15)
    assert load_reranker(tmp_path / "ck", precision="float32").precision == "float32"
    bf16 = load_reranker(tmp_path / "ck", precision="bfloat16")
    assert bf16.precision in ("bfloat16", "float32")  # float32 on CPUs without bfloat16 instructions
    np.testing.assert_allclose(bf16.scores("q?", ["a b", "c d e", "f"]), before, atol=0.1)
    save_reranker(tmp_path / "old", network, {})  # cards written before precision existed: float32
    assert load_reranker(tmp_path / "old").precision == "float32"
    save_reranker(tmp_path / "bad", network, {"precision": "int4"})
    with pytest.raises(CheckpointError, match="precision"):
        load_reranker(tmp_path / "bad")


def test_fit_learns_to_put_the_gold_passage_first_and_keeps_an_existing_run(tmp_path):
    torch.manual_seed(0)
    rng = random.Random(0)
    words = ["paris", "london", "berlin", "madrid", "rome", "vienna"]

    def make(i: int) -> RerankGroup:  # the gold passage alone says "capital"; the reader ranks it last
        city = words[i % len(words)]
        others = [w for w in words if w != city]
        rng.shuffle(others)
        passages = [f"{w}: a small town" for w in others[:3]] + [f"{city}: the capital"]
        return RerankGroup(f"what is {city}?", [f"e{j}" for j in range(4)], passages, [0.0, -0.1, -0.2, -0.3],
                           [False, False, False, True], "d")

    train, dev = [make(i) for i in range(96)], [make(i) for i in range(6)]
    network = tiny_network()
    cfg = RerankerTrainConfig(epochs=3, questions_per_step=8, group_size=4, hard_negatives=3, lr=1e-2, save_every=5)
    summary = fit(network, load_tokenizer(), train, dev, cfg, tmp_path / "run", top_k=4)
    assert summary["best_dev"] == 1.0  # the reader alone gets 0 of 6
    best = load_reranker(tmp_path / "run" / "best")
    assert best.card["dev"]["reader_mean_hits1"] == 0.0 and best.weight > 0
    with pytest.raises(CheckpointError, match="--resume"):
        fit(tiny_network(), load_tokenizer(), train, dev, cfg, tmp_path / "run", top_k=4)


def test_rerank_reorders_only_the_top_and_keeps_probabilities_normalised():
    ranking = [("a", 0.5), ("b", 0.3), ("c", 0.15), ("d", 0.05)]
    out = rerank(ranking, [0.0, 2.0], weight=1.0)  # b: log .3 + 2 > log .5
    assert [c for c, _ in out] == ["b", "a", "c", "d"]
    assert sum(p for _, p in out) == pytest.approx(1.0)
    assert out[2][1] < ranking[2][1]  # the rest keep their score, so lose mass to the boosted candidate
    assert rerank(ranking, [5.0, 0.0], weight=0.0) == [(c, pytest.approx(p)) for c, p in ranking]
    assert rerank(ranking, [], weight=1.0) == ranking
    with pytest.raises(ValueError):
        rerank(ranking[:1], [0.0, 1.0], weight=1.0)


def test_candidate_reranker_builds_passages_from_the_graph_and_reorders():
    texts = {"q1": "Friends: American sitcom", "a": "Jennifer Aniston: American actress", "b": "Matt LeBlanc: American actor"}
    names = ["tv regular cast", "award nominee", "tv regular cast of", "award nominee of"]
    passages = top_passages(lambda ids: {i: texts[i] for i in ids if i in texts}, names, "q1", ["b", "a", "z"],
                            [[2], [2, 3], [9]], ["a", "z"])
    assert passages == ["Jennifer Aniston: American actress | via: tv regular cast of; award nominee of | topic: Friends: American sitcom",
                        "z | topic: Friends: American sitcom"]  # an unknown entity keeps its id; an out-of-range relation is dropped

    class Fixed(AnswerReranker):  # scores by whether the passage names an actress
        def __init__(self) -> None:
            self.weight, self.top_k, self.card, self.read_within = 1.0, 2, {"answer_text_weight": 3.0}, None
            self.read: list[int] = []

        def scores(self, question, passages, *, batch_size=32):
            self.read.append(len(passages))
            return np.array([5.0 if "actress" in p else 0.0 for p in passages])

    stage = CandidateReranker(Fixed(), lambda ids: {i: texts[i] for i in ids if i in texts}, names)
    stage.reranker.skip_above = None
    ranked = stage("Who played Rachel?", "q1", ["a", "b"], [[2], [2]], [("b", 0.6), ("a", 0.4)])
    assert [c for c, _ in ranked] == ["a", "b"]
    stage.reranker.skip_above = 0.6  # the reader is sure enough: its order stands, the reranker is not run
    assert stage("Who played Rachel?", "q1", ["a", "b"], [[2], [2]], [("b", 0.6), ("a", 0.4)]) == [("b", 0.6), ("a", 0.4)]
    stage.reranker.skip_above = None
    assert stage("q?", "q1", ["a"], [[2]], [("a", 1.0)]) == [("a", 1.0)]  # one candidate: nothing to rerank
    stage.reranker.top_k, stage.reranker.read_within, stage.reranker.read = 3, 2.0, []
    far = [("b", 0.6), ("z", 0.39), ("a", 0.01)]  # the actress is 4.1 nats below the reader's top: not read
    assert [c for c, _ in stage("Who played Rachel?", "q1", ["a", "b", "z"], None, far)] == ["b", "z", "a"] and stage.reranker.read == [2]
    stage.reranker.read_within = None
    assert [c for c, _ in stage("Who played Rachel?", "q1", ["a", "b", "z"], None, far)][0] == "a" and stage.reranker.read == [2, 3]
    assert text_match_card({"answer_text_weight": 14.0, "x": 1}, stage) == {"answer_text_weight": 3.0, "x": 1}
    assert text_match_card({"answer_text_weight": 14.0}, None) == {"answer_text_weight": 14.0}
