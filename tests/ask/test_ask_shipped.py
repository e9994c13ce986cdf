"""The shipped reader on the demo graph, end to end (real linker without the fuzzy index, real models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_system.ask.reader_loading import shipped_reader

pytestmark = pytest.mark.skipif(not (shipped_reader() / "card.json").is_file(), reason="no reader checkpoint shipped")


@pytest.fixture(scope="module")
def pipeline(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory):
    import shutil

    from graph.embedded import EmbeddedStore
    from qa_system.ask.pipeline import load_pipeline
    from qa_system.config import load_settings

    # a private copy: the embedded store is locked by whoever has it open, and other tests run the CLI on the demo workspace
    workspace = tmp_path_factory.mktemp("ask-shipped") / "ws"
    shutil.copytree(demo_workspace, workspace)
    store = EmbeddedStore.open(workspace)
    try:
        yield load_pipeline(load_settings(workspace=workspace), store, use_faiss=False)
    finally:
        store.close()


def test_card_is_complete_and_weights_are_small() -> None:
    card = json.loads((shipped_reader() / "card.json").read_text())
    for key in ("hitter", "use_graph", "threshold", "calibration", "dev", "datasets", "reader_config"):
        assert key in card, key
    assert (shipped_reader() / "reader.safetensors").stat().st_size <= 20 * 1024 * 1024


def test_who_directed_inception(pipeline) -> None:
    answer = pipeline.ask("Who directed Inception?")
    assert answer.answer is not None and answer.answer.name == "Christopher Nolan"
    assert answer.source in {"graph", "graph-unsure"} and 0.0 < answer.confidence <= 1.0
    assert any("direct" in f.relation and {f.subject_name, f.object_name} == {"Christopher Nolan", "Inception"} for f in answer.evidence)
    assert answer.evidence[0].provenance.source_kind.value == "dataset"
    assert "director" in answer.evidence[0].relation  # the fact behind the predicted relation leads


def test_evidence_order_follows_the_question(pipeline) -> None:
    produced = pipeline.ask("Who produced Inception?")
    assert produced.answer is not None and produced.answer.name == "Christopher Nolan"
    assert "produced_by" in produced.evidence[0].relation


def test_batched_answers_match_single_answers(pipeline) -> None:
    questions = ["Who directed Inception?", "", "What language is spoken in Brazil?", "Who is the president of Atlantis?"]
    batched = pipeline.ask_many(questions)
    assert isinstance(batched[1], Exception)
    for question, answer in zip(questions, batched):
        if question and not isinstance(answer, Exception):
            single = pipeline.ask(question)
            assert (single.answer.id if single.answer else None) == (answer.answer.id if answer.answer else None)


def test_the_shipped_answer_reranker_is_small_tuned_on_dev_and_used(pipeline) -> None:
    from qa_system.models.answer_reranker import CARD, WEIGHTS, shipped_checkpoint

    folder = shipped_checkpoint()
    if not (folder / CARD).is_file():
        pytest.skip("no answer reranker shipped")
    card = json.loads((folder / CARD).read_text())
    for key in ("weight", "top_k", "answer_text_weight", "dev", "config", "command"):
        assert key in card, key
    assert card["dev"]["mean_hits1"] >= card["dev"]["reader_mean_hits1"]  # chosen on dev: weight 0 is on the grid
    assert (folder / WEIGHTS).stat().st_size <= 5 * 1024 * 1024
    stage = pipeline.ranker.reranker
    assert stage is not None and stage.reranker.weight == card["weight"]
    matcher = pipeline.ranker.answer_bias  # the text match at the weight the reranker was tuned with
    assert (matcher.weight if matcher is not None else 0.0) == float(card["answer_text_weight"])
    answer = pipeline.ask("What language is spoken in Brazil?")
    assert answer.answer is not None and answer.answer.name == "Portuguese Language"
    assert stage.reranker.top_k == card["top_k"] and not any("lora" in n for n, _ in stage.reranker.network.named_parameters())  # merged
    assert stage.reranker.read_within == card.get("read_within")
    if card.get("read_within") is not None:  # chosen on dev as a gap that loses nothing there
        grid = card["dev"]["read_within_grid"][str(float(card["read_within"]))]
        assert grid["mean_hits1"] >= card["dev"]["mean_hits1"] and grid["pairs_per_question"] < card["top_k"]
    from qa_system.ask.reranking import reranker_for
    from qa_system.errors import InputError

    fewer = reranker_for(pipeline.store, pipeline.ranker.relations, top_k=3)
    assert fewer is not None and fewer.reranker.top_k == 3
    with pytest.raises(InputError, match="top_k"):
        reranker_for(pipeline.store, pipeline.ranker.relations, top_k=0)
    assert stage.reranker.precision == card.get("precision", "float32")  # what its weight was tuned in
    other = "float32" if stage.reranker.precision != "float32" else "bfloat16"
    switched = reranker_for(pipeline.store, pipeline.ranker.relations, precision=other)
    assert switched is not None and switched.reranker.precision in (other, "float32")  # float32 where bfloat16 is not fast
    question = "who played rachel green on friends?"
    passages = ["Jennifer Aniston: American actress | via: tv.regular_tv_appearance.actor | topic: Friends: American sitcom",
                "Paris: capital of France | via: location.location.contains | topic: Friends: American sitcom",
                "Matthew Perry: American actor | via: tv.regular_tv_appearance.actor | topic: Friends: American sitcom"]
    a, b = stage.reranker.scores(question, passages), switched.reranker.scores(question, passages)
    assert abs(a - b).max() < 0.2 and a.argmin() == b.argmin()  # bfloat16 moves logits by hundredths
    with pytest.raises(InputError, match="precision"):
        reranker_for(pipeline.store, pipeline.ranker.relations, precision="int4")


def test_the_reader_encodes_through_onnx_runtime_as_pytorch_would(pipeline) -> None:
    """``load_pipeline`` swaps the (graph-free) reader's MiniLM for its ONNX Runtime twin
    (``models.onnx_encoder``); a freshly loaded PyTorch reader encodes questions the same way."""

    pytest.importorskip("onnxruntime")
    import torch

    from qa_system.ask.reader_loading import load_reader_checkpoint
    from qa_system.models.onnx_encoder import OnnxBertEncoder

    reader = pipeline.ranker.reader
    if reader.config.use_graph:
        pytest.skip("the shipped reader fuses the graph: it stays on PyTorch")
    assert isinstance(reader.encoder, OnnxBertEncoder) and reader.encoder.path.is_file()
    torch_reader, tokenizer, *_ = load_reader_checkpoint(shipped_reader())
    batch = tokenizer(["Who directed Inception?", "what language is spoken in brazil today?"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = torch_reader.encode(batch["input_ids"], batch["attention_mask"])
        got = reader.encode(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(got, expected, atol=1e-4)


def test_ask_starts_the_readers_question_pass_ahead_and_takes_it(pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ask`` starts the reader's pass over the question before linking it (one reading per
    question), and the reader takes that result instead of encoding the question again."""

    pytest.importorskip("onnxruntime")
    from qa_system.models.onnx_encoder import OnnxBertEncoder

    encoder = pipeline.ranker.reader.encoder
    if not isinstance(encoder, OnnxBertEncoder):
        pytest.skip("the reader runs in PyTorch here")
    assert pipeline.config.read_topics == 1 and encoder.session.get_session_options().intra_op_num_threads == 1
    ran: list[str] = []
    real_run = OnnxBertEncoder._run
    monkeypatch.setattr(OnnxBertEncoder, "_run", lambda self, feed: ran.append("pass") or real_run(self, feed))
    started = []
    real_ahead = OnnxBertEncoder.encode_ahead
    monkeypatch.setattr(OnnxBertEncoder, "encode_ahead", lambda self, *a, **k: started.append(self) or real_ahead(self, *a, **k))
    before = pipeline.ask("Who directed Inception?")
    assert encoder in started and not encoder._ahead  # started ahead, then taken
    assert ran.count("pass") >= 1
    monkeypatch.setattr(pipeline.ranker, "encode_ahead", lambda question: None)  # the same question without a head start
    after = pipeline.ask("Who directed Inception?")
    assert after.answer is not None and before.answer is not None and after.answer.id == before.answer.id
    assert after.confidence == pytest.approx(before.confidence, abs=1e-6)


def test_question_constraints_are_the_cards_and_their_facts_join_the_evidence(pipeline) -> None:
    from qa_system.ask.constraints import weights_from_card

    card = json.loads((shipped_reader() / "card.json").read_text())
    weights = weights_from_card(card)
    if weights is None:
        pytest.skip("the shipped reader card has no question constraints")
    assert pipeline.constraints is not None and pipeline.constraints.weights == weights
    dev = card["constraints_dev"]  # chosen on dev: the grid holds the all-zero point, and choosing survives a split
    assert dev["net_gain"] > 0 and dev["split_half"]["mean"] > 0
    answer = pipeline.ask("Which Christopher Nolan film starred Leonardo DiCaprio?")
    assert answer.answer is not None and answer.answer.name == "Inception"
    tied = [f for f in answer.evidence if {f.subject_name, f.object_name} == {"Inception", "Leonardo DiCaprio"}]
    assert tied, [(f.subject_name, f.relation, f.object_name) for f in answer.evidence]
