"""The QA reader: MiniLM question encoder with HittER graph states fused in by cross-attention.

After the self-attention of each MiniLM layer ``i`` a :class:`CrossAttentionBlock` lets the question
tokens attend to the hidden states of HittER context layer ``layer_map[i]`` (the seed's Figure 4:
one MiniLM layer per HittER context layer). The blocks are attached with forward hooks on
``BertLayer.attention``: transformers is composed, never forked. The backbone is fine-tuned through
LoRA adapters (peft); the cross-attention blocks and heads are trained fully.

Answering is entity-based, not word cloze. A candidate's score sums three terms:

- *path*: the log-probability, under the relation head on the fused ``[CLS]``, of the relations
  that link the topic to the candidate in the graph (``log sum_r p(r | question, graph)``);
- *entity*: the fused ``[CLS]`` projected into HittER's entity space, dot the candidate embedding;
- *link prediction*: HittER's own score for (topic, predicted relation, candidate).

The ablations: ``use_graph=False`` drops the cross-attention (the twin the issue compares against);
``graph_scores=False`` also drops the entity and link-prediction terms, leaving MiniLM alone over
the same candidates with only the relation-path term (HittER is then never run).

The relation is never read from a test record: the same head on the graph-free question encoding
predicts the relation HittER is queried with (teacher-forced in training by the relations that
link topic and answer in the training graph, the distant labels). Cross-attention lets the
question see which relations and neighbours the topic actually has before the relation head and
the entity projection decide.

Shapes: B questions, T word pieces, S = 2 + N HittER context tokens, C candidates, d_t text width
(384), d_g graph width (HittER ``dim``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from qa_system.models.hitter import HittER, NeighbourBatch


@dataclass
class ReaderConfig:
    """Hyper-parameters of the fused reader."""

    text_dim: int = 384  # MiniLM hidden size
    graph_dim: int = 0  # HittER dim (set from the checkpoint)
    num_relations: int = 0  # HittER base relations R; the relation head predicts one of 2R (reciprocals)
    cross_heads: int = 6  # heads of each cross-attention block (text_dim must divide by it)
    cross_dropout: float = 0.1  # dropout inside cross-attention
    layer_map: tuple[int, ...] = ()  # MiniLM layer i attends to HittER context layer layer_map[i]; () = one-to-one
    gate_init: float = 0.0  # tanh gate of each block starts closed: the pre-trained encoder starts unchanged
    use_graph: bool = True  # False: no cross-attention (the fusion ablation's twin)
    graph_scores: bool = True  # False: no HittER terms in the answer score either (with use_graph False: MiniLM alone)
    hitter_score_weight: float = 1.0  # initial weight of HittER's (topic, relation, ?) score in the answer score
    lora_r: int = 8  # LoRA rank on the backbone (0 = freeze the backbone)
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "value")  # BertSelfAttention linear layers that get adapters

    def __post_init__(self) -> None:
        problems = []
        if self.text_dim <= 0 or self.text_dim % self.cross_heads:
            problems.append(f"text_dim={self.text_dim} must be > 0 and divide by cross_heads={self.cross_heads}")
        if self.use_graph and not self.graph_scores:
            problems.append("cross-attention (use_graph) without graph_scores is not a configuration this reader has")
        if self.use_graph and self.graph_dim <= 0:
            problems.append(f"graph_dim must be > 0 when use_graph; got {self.graph_dim}")
        if self.num_relations <= 0:
            problems.append(f"num_relations must be > 0; got {self.num_relations}")
        if not 0.0 <= self.cross_dropout < 1.0:
            problems.append(f"cross_dropout must be in [0, 1); got {self.cross_dropout}")
        if problems:
            raise ValueError("invalid reader config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReaderOutput:
    """What :meth:`QAReader.forward` returns."""

    scores: torch.Tensor  # (B, C) answer scores over the candidates (-inf on padding)
    relation_logits: torch.Tensor  # (B, 2R) from the fused encoding
    loss: torch.Tensor | None = None  # answer CE (+ relation CE when relation labels are given)
    gates: list[float] = field(default_factory=list)  # tanh(gate) per cross-attention block


class CrossAttentionBlock(nn.Module):
    """Question states attend to graph states (projected to the text width), gated and residual."""

    def __init__(self, text_dim: int, graph_dim: int, heads: int, dropout: float, gate_init: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(text_dim)
        self.graph_proj = nn.Linear(graph_dim, text_dim)  # keys/values: HittER layer -> 384
        self.attention = nn.MultiheadAttention(text_dim, heads, dropout=dropout, batch_first=True)
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))

    def forward(self, text: torch.Tensor, graph: torch.Tensor, graph_mask: torch.Tensor) -> torch.Tensor:
        # text (B, T, d_t), graph (B, S, d_g), graph_mask (B, S) True = real token
        memory = self.graph_proj(graph)  # (B, S, d_t)
        attended, _ = self.attention(self.norm(text), memory, memory, key_padding_mask=~graph_mask, need_weights=False)
        return text + torch.tanh(self.gate) * attended  # (B, T, d_t)


class QAReader(nn.Module):
    """MiniLM (+LoRA) x cross-attention x HittER context layers -> scores over candidate entities."""

    def __init__(self, config: ReaderConfig, encoder: nn.Module, hitter: HittER) -> None:
        super().__init__()
        self.config = config
        self.hitter = hitter
        for p in self.hitter.parameters():  # the graph encoder is a fixed feature extractor here
            p.requires_grad_(False)
        self.encoder = self._with_lora(encoder)
        layers = self._bert_layers()
        context_layers = hitter.config.context_layers if hitter.config.use_context else 0
        layer_map = config.layer_map or tuple(
            max(0, context_layers - len(layers) + i) for i in range(len(layers))
        )  # one-to-one when the depths match; else the deepest HittER layers feed the deepest text layers
        if config.use_graph and (not context_layers or len(layer_map) != len(layers) or max(layer_map) >= context_layers):
            raise ValueError(
                f"layer_map {layer_map} does not fit {len(layers)} text layers and {context_layers} HittER context layers"
            )
        self.layer_map = layer_map
        self.cross = nn.ModuleList(
            CrossAttentionBlock(config.text_dim, config.graph_dim, config.cross_heads, config.cross_dropout, config.gate_init)
            for _ in (layers if config.use_graph else [])
        )
        self.relation_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(config.text_dim, 2 * config.num_relations))
        self.answer_proj = nn.Linear(config.text_dim, hitter.config.dim)  # fused [CLS] -> entity space
        self.hitter_weight = nn.Parameter(torch.tensor(float(config.hitter_score_weight)))
        self.path_weight = nn.Parameter(torch.tensor(1.0))
        self.indirect_score = nn.Parameter(torch.tensor(-5.0))  # path term of candidates with no direct relation
        self._graph: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None = None
        self._hooks = [
            layer.attention.register_forward_hook(self._make_hook(i)) for i, layer in enumerate(layers)
        ] if config.use_graph else []

    def train(self, mode: bool = True) -> QAReader:
        """Training mode for the reader only: HittER stays in eval (no dropout, no MEP corruption)."""

        super().train(mode)
        self.hitter.eval()
        return self

    # ------------------------------------------------------------------ composition
    def _with_lora(self, encoder: nn.Module) -> nn.Module:
        cfg = self.config
        if cfg.lora_r <= 0:
            for p in encoder.parameters():
                p.requires_grad_(False)
            return encoder
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_targets))
        return get_peft_model(encoder, lora)

    def _bert_layers(self) -> Sequence[nn.Module]:
        base = self.encoder.get_base_model() if hasattr(self.encoder, "get_base_model") else self.encoder
        return base.encoder.layer

    def _make_hook(self, index: int):
        def hook(_module: nn.Module, _inputs: tuple, output: tuple | torch.Tensor):
            if self._graph is None:  # graph-free pass (relation prediction)
                return output
            states, mask = self._graph
            hidden = output[0] if isinstance(output, tuple) else output  # (B, T, d_t)
            fused = self.cross[index](hidden, states[self.layer_map[index]], mask)
            return (fused, *output[1:]) if isinstance(output, tuple) else fused

        return hook

    @contextlib.contextmanager
    def _graph_states(self, states: tuple[torch.Tensor, ...], mask: torch.Tensor) -> Iterator[None]:
        self._graph = (states, mask)
        try:
            yield
        finally:
            self._graph = None

    # ------------------------------------------------------------------ forward
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled question state (with whatever graph states are active). (B, d_t)

        Mean pooling, not [CLS]: all-MiniLM-L6-v2 was trained as a mean-pooled sentence encoder,
        so its pooled state is a useful question representation from the first step.

        At inference, a graph-free batch whose rows are all one question (``ask`` reading several
        linked topics) is encoded once: the same question, the same state, and its pass can be the
        one ``ask`` started ahead (``models.onnx_encoder.OnnxBertEncoder.encode_ahead``)."""

        rows = input_ids.shape[0]
        if rows > 1 and self._graph is None and not self.training and bool((input_ids == input_ids[:1]).all()) \
                and bool((attention_mask == attention_mask[:1]).all()):
            return self.encode(input_ids[:1], attention_mask[:1]).expand(rows, -1)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, d_t)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    @torch.no_grad()
    def init_relation_head(self, relation_texts: Sequence[str], tokenizer, *, scale: float = 10.0) -> None:
        """Start the relation head from the encoder's own embeddings of the relations' names
        (``2R`` texts: each relation, then its reciprocal), so rare relations start with a
        sensible zero-shot score instead of a random one."""

        linear = self.relation_head[-1]
        if len(relation_texts) != linear.out_features:
            raise ValueError(f"need {linear.out_features} relation texts, got {len(relation_texts)}")
        rows = []
        for start in range(0, len(relation_texts), 64):
            batch = tokenizer(list(relation_texts[start : start + 64]), padding=True, truncation=True, max_length=32, return_tensors="pt")
            rows.append(self.encode(batch["input_ids"], batch["attention_mask"]))
        vectors = torch.cat(rows)
        typical_norm = vectors.norm(dim=-1).mean().clamp(min=1e-6)  # questions have norms like these texts
        # logit ~ scale * cosine(question, relation text)
        linear.weight.copy_(scale * F.normalize(vectors - vectors.mean(dim=0, keepdim=True), dim=-1) / typical_norm)
        linear.bias.zero_()

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        topics: torch.Tensor,  # (B,) HittER entity ids of the topic entities
        neighbours: NeighbourBatch | None,  # sampled context of each topic
        candidates: torch.Tensor,  # (B, C) HittER entity ids
        candidate_mask: torch.Tensor,  # (B, C) True = real candidate
        candidate_relations: torch.Tensor | None = None,  # (B, C, K) relations topic -> candidate, -1 = padding
        answers: torch.Tensor | None = None,  # (B, C) True where the candidate is a gold answer
        relation_targets: torch.Tensor | None = None,  # (B, L) distant relation labels, -1 = padding (training only)
    ) -> ReaderOutput:
        question = self.encode(input_ids, attention_mask)  # graph-free pass, (B, d_t)
        query_logits = self.relation_head(question)  # (B, 2R)
        if self.config.graph_scores:
            relation_logits, scores = self._graph_terms(question, query_logits, input_ids, attention_mask, topics, neighbours,
                                                        candidates, relation_targets)
        else:  # MiniLM alone: no HittER state, embedding or score; without relation paths every candidate ties
            relation_logits, scores = query_logits, torch.zeros(candidates.shape, dtype=question.dtype, device=question.device)
        if candidate_relations is not None:
            scores = scores + self.path_weight * self.path_scores(relation_logits, candidate_relations)
        scores = scores.masked_fill(~candidate_mask, float("-inf"))
        loss = None
        if answers is not None:
            loss = answer_loss(scores, answers & candidate_mask)
            if relation_targets is not None:
                loss = loss + relation_loss(query_logits, relation_targets)
                if self.config.use_graph:
                    loss = loss + relation_loss(relation_logits, relation_targets)
        gates = [float(torch.tanh(block.gate.detach())) for block in self.cross]
        return ReaderOutput(scores=scores, relation_logits=relation_logits, loss=loss, gates=gates)

    def _graph_terms(
        self,
        question: torch.Tensor,  # (B, d_t) graph-free encoding
        query_logits: torch.Tensor,  # (B, 2R) its relation logits
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        topics: torch.Tensor,
        neighbours: NeighbourBatch | None,
        candidates: torch.Tensor,
        relation_targets: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """HittER's part of the answer score: the relation logits the path term reads (from the fused
        encoding when cross-attention is on) and, per candidate, the entity term plus HittER's
        link-prediction score for (topic, predicted relation, candidate). ((B, 2R), (B, C))"""

        relations = query_logits.argmax(dim=-1)  # predicted, never read from the record
        if self.training and relation_targets is not None:
            relations = teacher_relations(query_logits, relation_targets, relations)
        with torch.no_grad():
            graph = self.hitter(topics, relations, neighbours, output_hidden_states=True)  # logits (B, E)
        if self.config.use_graph and graph.hidden_states is not None:
            with self._graph_states(graph.hidden_states, graph.attention_mask):
                fused = self.encode(input_ids, attention_mask)  # (B, d_t)
        else:
            fused = question
        relation_logits = self.relation_head(fused) if self.config.use_graph else query_logits  # (B, 2R)
        entity_scores = self.answer_proj(fused) @ self.hitter.entity_embeddings.weight.T  # (B, E)
        assert graph.logits is not None
        return relation_logits, torch.gather(entity_scores + self.hitter_weight * graph.logits, 1, candidates)  # (B, C)

    def path_scores(self, relation_logits: torch.Tensor, candidate_relations: torch.Tensor) -> torch.Tensor:
        """log sum over the relations linking topic and candidate of p(relation | question). (B, C)"""

        b, c, k = candidate_relations.shape
        log_p = torch.log_softmax(relation_logits, dim=-1)  # (B, 2R)
        real = candidate_relations >= 0
        picked = torch.gather(log_p, 1, candidate_relations.clamp(min=0).reshape(b, c * k)).reshape(b, c, k)
        picked = picked.masked_fill(~real, float("-inf"))
        path = torch.logsumexp(picked, dim=-1)  # (B, C); -inf where no relation links them
        return torch.where(real.any(dim=-1), path, self.indirect_score.expand_as(path))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a reader checkpoint ships: LoRA adapters, cross-attention, heads (not MiniLM, not HittER)."""

        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in keep}


def answer_loss(scores: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Cross-entropy towards the gold answers (several golds share the target mass). Rows with no
    gold candidate are skipped (the answer is not reachable from the retrieved subgraph)."""

    has_gold = answers.any(dim=1)  # (B,)
    if not bool(has_gold.any()):
        return scores.new_zeros(())
    log_probs = torch.log_softmax(scores[has_gold], dim=1)  # (b, C)
    gold = answers[has_gold].float()
    safe = torch.where(gold > 0, log_probs, torch.zeros_like(log_probs))  # avoid -inf * 0 on padding
    return -(safe * gold).sum(dim=1).div(gold.sum(dim=1)).mean()


def teacher_relations(logits: torch.Tensor, targets: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """The gold relation the model already likes most, per row (``fallback`` where there is none)."""

    real = targets >= 0
    picked = torch.gather(logits, 1, targets.clamp(min=0)).masked_fill(~real, float("-inf"))  # (B, L)
    best = torch.gather(targets, 1, picked.argmax(dim=1, keepdim=True)).squeeze(1)
    return torch.where(real.any(dim=1), best, fallback)


def relation_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log of the probability mass on the gold relations (rows without any are skipped)."""

    real = targets >= 0
    rows = real.any(dim=1)
    if not bool(rows.any()):
        return logits.new_zeros(())
    log_p = torch.log_softmax(logits[rows], dim=-1)
    picked = torch.gather(log_p, 1, targets[rows].clamp(min=0)).masked_fill(~real[rows], float("-inf"))
    return -torch.logsumexp(picked, dim=1).mean()
