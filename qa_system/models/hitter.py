"""HittER: a hierarchical Transformer over a knowledge graph (Chen et al., 2021).

Written the transformers/nanoGPT way: one config dataclass, one modeling file, typed outputs.

* Entity Transformer: each (entity, relation) pair becomes ``[CLS] e r`` (+ type embeddings);
  the ``[CLS]`` output is the pair vector.
* Context Transformer: ``[GCLS]``, the source pair (source entity, query relation) and the
  sampled neighbour pairs (+ type embeddings). The ``[GCLS]`` output scores every entity (1vsAll,
  dot product + bias, cross-entropy with label smoothing).
* Reciprocal relations: relation ``r`` has id ``r`` and its inverse ``r + R``, so a query
  ``(s, r, ?)`` and a subject query ``(o, r_inv, ?)`` are the same kind of object.
* Masked entity prediction (MEP): the source entity is masked / replaced / kept and its context
  output predicts it with the same entity embedding matrix. The same path gives a vector for an
  entity unknown to the vocabulary from its neighbours (:meth:`HittER.embed_unseen`).
* ``use_context=False`` is the paper's context-free baseline: only the source pair, no neighbours.

Neighbourhoods (:class:`Neighbourhoods`) are built from training facts only and kept as CSR
numpy arrays; sampling returns padded index tensors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class HittERConfig:
    """Hyper-parameters of HittER. Defaults are the paper's FB15k-237 setting."""

    num_entities: int = 0  # size of the entity vocabulary (set from the dataset)
    num_relations: int = 0  # base relations R; the model holds 2R (reciprocals)
    dim: int = 320  # width of both Transformers and of the entity/relation embeddings
    entity_layers: int = 3  # layers of the entity Transformer (over [CLS] e r)
    context_layers: int = 6  # layers of the context Transformer (over [GCLS], source, neighbours)
    heads: int = 8  # attention heads in both Transformers
    ffn_dim: int = 1280  # feed-forward width
    dropout: float = 0.1  # dropout inside the Transformer layers
    embedding_dropout: float = 0.1  # dropout on the token embeddings (entity/relation/type sums)
    output_dropout: float = 0.1  # dropout on [GCLS]/source outputs before scoring
    max_neighbours: int = 50  # neighbours sampled per source entity (uniform); 12 on WN18RR
    neighbour_drop: float = 0.3  # share of sampled neighbours dropped in training
    mep_prob: float = 0.5  # share of source entities chosen for masked entity prediction in training
    mep_mask: float = 0.8  # of those: replaced by [MASK]
    mep_replace: float = 0.1  # of those: replaced by a random entity (the rest keep the true entity)
    mep_weight: float = 1.0  # weight of the MEP loss next to the link-prediction loss
    label_smoothing: float = 0.1  # cross-entropy label smoothing over all entities
    use_context: bool = True  # False: the context-free baseline (source pair only)
    score_bias: bool = True  # add a learned per-entity bias to the dot-product scores
    gcls_from_source: bool = False  # [GCLS] input = learned token + source pair vector (not in the paper;
    # it lets the context model start where the context-free one is and learn in a few CPU epochs)
    remove_target: str = "fact"  # training: drop the query fact ("fact") or every pair with the target ("entity")
    init_std: float = 0.02  # std of the normal initialisation of embeddings

    def __post_init__(self) -> None:
        checks = {
            "dim": self.dim > 0 and self.dim % max(self.heads, 1) == 0,
            "heads": self.heads > 0,
            "entity_layers": self.entity_layers >= 1,
            "context_layers": self.context_layers >= 1,
            "ffn_dim": self.ffn_dim > 0,
            "max_neighbours": self.max_neighbours >= 0,
            "neighbour_drop": 0.0 <= self.neighbour_drop < 1.0,
            "mep_prob": 0.0 <= self.mep_prob <= 1.0,
            "mep_mask": 0.0 <= self.mep_mask and self.mep_mask + self.mep_replace <= 1.0,
            "mep_replace": 0.0 <= self.mep_replace <= 1.0,
            "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
            "remove_target": self.remove_target in ("fact", "entity"),
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid HittER config: {', '.join(bad)} (dim must divide by heads)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> HittERConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown HittER config keys: {unknown}")
        return cls(**values)


@dataclass
class HittEROutput:
    """What :meth:`HittER.forward` returns. B = batch, N = neighbour slots, E = entities."""

    gcls: torch.Tensor  # (B, d) [GCLS] output (context mode) or the source pair vector (context-free)
    source_output: torch.Tensor  # (B, d) context output at the source position (MEP head input)
    logits: torch.Tensor | None = None  # (B, E) scores for the missing entity
    loss: torch.Tensor | None = None  # scalar: link-prediction CE (+ weighted MEP CE)
    mep_loss: torch.Tensor | None = None  # scalar MEP part of the loss (training with context only)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # context_layers x (B, 2+N, d)
    attention_mask: torch.Tensor | None = None  # (B, 2+N) bool, True = real token (not padding)


@dataclass
class NeighbourBatch:
    """Padded neighbour pairs of a batch of sources. ``mask`` is True for real neighbours."""

    entities: torch.Tensor  # (B, N) long
    relations: torch.Tensor  # (B, N) long, in the reciprocal space [0, 2R)
    mask: torch.Tensor  # (B, N) bool


@dataclass
class Neighbourhoods:
    """Training-fact neighbourhoods in CSR form: entity ``e`` has pairs ``offsets[e]:offsets[e+1]``.

    A fact (h, r, t) gives h the pair (t, r) and t the pair (h, r + R).
    """

    offsets: np.ndarray  # (E+1,) int64
    entities: np.ndarray  # (nnz,) int64
    relations: np.ndarray  # (nnz,) int64
    num_relations: int  # base relations R
    degree: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.degree = np.diff(self.offsets)

    @classmethod
    def from_triples(cls, triples: np.ndarray, num_entities: int, num_relations: int) -> Neighbourhoods:
        """``triples``: (M, 3) int array of training (head, relation, tail) ids."""

        triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        src = np.concatenate([triples[:, 0], triples[:, 2]])
        ent = np.concatenate([triples[:, 2], triples[:, 0]])
        rel = np.concatenate([triples[:, 1], triples[:, 1] + num_relations])
        order = np.argsort(src, kind="stable")
        counts = np.bincount(src, minlength=num_entities)
        offsets = np.zeros(num_entities + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(offsets, ent[order], rel[order], num_relations)

    def sample(
        self,
        sources: np.ndarray,
        max_neighbours: int,
        rng: np.random.Generator,
        *,
        drop: float = 0.0,
        targets: np.ndarray | None = None,
        query_relations: np.ndarray | None = None,
        remove_target: str = "fact",
    ) -> NeighbourBatch:
        """Sample up to ``max_neighbours`` pairs per source uniformly without replacement.

        ``drop`` masks each sampled pair with that probability (training). With ``targets``
        (training), the query fact (target reached by the query relation; or, with
        ``remove_target="entity"``, every pair holding the target) is removed before sampling.
        """

        sources = np.asarray(sources, dtype=np.int64)
        batch = len(sources)
        width = max(int(max_neighbours), 1)
        ents = np.zeros((batch, width), dtype=np.int64)
        rels = np.zeros((batch, width), dtype=np.int64)
        mask = np.zeros((batch, width), dtype=bool)
        if max_neighbours > 0:
            starts, degrees = self.offsets[sources], self.degree[sources]
            for i in range(batch):
                lo, deg = starts[i], degrees[i]
                if deg == 0:
                    continue
                cand_e = self.entities[lo : lo + deg]
                cand_r = self.relations[lo : lo + deg]
                if targets is not None:
                    hit = cand_e == targets[i]
                    if remove_target == "fact" and query_relations is not None:
                        hit &= cand_r == query_relations[i]
                    if hit.any():
                        keep = ~hit
                        cand_e, cand_r = cand_e[keep], cand_r[keep]
                        deg = len(cand_e)
                if deg > max_neighbours:
                    pick = rng.choice(deg, max_neighbours, replace=False)
                    cand_e, cand_r = cand_e[pick], cand_r[pick]
                    deg = max_neighbours
                ents[i, :deg], rels[i, :deg], mask[i, :deg] = cand_e, cand_r, True
            if drop > 0.0:
                mask &= rng.random(mask.shape) >= drop
        return NeighbourBatch(torch.from_numpy(ents), torch.from_numpy(rels), torch.from_numpy(mask))


def _encoder(cfg: HittERConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model=cfg.dim,
        nhead=cfg.heads,
        dim_feedforward=cfg.ffn_dim,
        dropout=cfg.dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(layer, num_layers=layers, norm=nn.LayerNorm(cfg.dim), enable_nested_tensor=False)


class HittER(nn.Module):
    """Hierarchical Transformer for link prediction; see the module docstring."""

    # special rows of the token table
    CLS, GCLS, MASK = 0, 1, 2

    def __init__(self, config: HittERConfig) -> None:
        super().__init__()
        if config.num_entities <= 0 or config.num_relations <= 0:
            raise ValueError(
                f"num_entities and num_relations must be > 0; got {config.num_entities}, {config.num_relations}"
            )
        self.config = config
        d = config.dim
        self.entity_embeddings = nn.Embedding(config.num_entities, d)  # shared by inputs, scoring and MEP
        self.relation_embeddings = nn.Embedding(2 * config.num_relations, d)  # r and r_inverse = r + R
        self.special = nn.Embedding(3, d)  # [CLS], [GCLS], [MASK]
        self.entity_types = nn.Embedding(3, d)  # [CLS], entity, relation (entity Transformer)
        self.context_types = nn.Embedding(3, d)  # [GCLS], source pair, neighbour pair
        self.entity_norm = nn.LayerNorm(d)
        self.context_norm = nn.LayerNorm(d)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.output_dropout = nn.Dropout(config.output_dropout)
        self.entity_encoder = _encoder(config, config.entity_layers)
        self.context_encoder = _encoder(config, config.context_layers) if config.use_context else None
        self.score_bias = nn.Parameter(torch.zeros(config.num_entities)) if config.score_bias else None
        self.post_init()

    def post_init(self) -> None:
        std = self.config.init_std
        for emb in (self.entity_embeddings, self.relation_embeddings, self.special, self.entity_types, self.context_types):
            nn.init.normal_(emb.weight, std=std)

    # ------------------------------------------------------------------ encoders
    def encode_pairs(self, entity_vectors: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Entity Transformer over ``[CLS] e r``. (P, d) entity vectors + (P,) relation ids -> (P, d)."""

        n = entity_vectors.shape[0]
        types = self.entity_types.weight  # (3, d)
        cls = self.special.weight[self.CLS].expand(n, -1)  # (P, d)
        tokens = torch.stack([cls, entity_vectors, self.relation_embeddings(relations)], dim=1) + types  # (P, 3, d)
        tokens = self.embedding_dropout(self.entity_norm(tokens))
        return self.entity_encoder(tokens)[:, 0]  # (P, d)

    def _context(
        self, source_vec: torch.Tensor, neighbours: NeighbourBatch
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
        """Context Transformer. source_vec (B, d) -> final (B, 2+N, d), per-layer states, mask (B, 2+N)."""

        assert self.context_encoder is not None
        b, n = neighbours.entities.shape
        d = self.config.dim
        pair_vecs = source_vec.new_zeros(b, n, d)  # (B, N, d)
        valid = neighbours.mask
        if valid.any():  # run the entity Transformer on real neighbours only
            ents, rels = neighbours.entities[valid], neighbours.relations[valid]
            if self.training:
                pair_vecs[valid] = self.encode_pairs(self.entity_embeddings(ents), rels)
            else:  # deterministic: encode each distinct (entity, relation) pair once
                keys, inverse = torch.unique(ents * (2 * self.config.num_relations) + rels, return_inverse=True)
                width = 2 * self.config.num_relations
                unique_vecs = self.encode_pairs(self.entity_embeddings(keys // width), keys % width)  # (U, d)
                pair_vecs[valid] = unique_vecs[inverse]
        gcls = self.special.weight[self.GCLS].expand(b, 1, d)  # (B, 1, d)
        if self.config.gcls_from_source:
            gcls = gcls + source_vec.unsqueeze(1)
        seq = torch.cat([gcls, source_vec.unsqueeze(1), pair_vecs], dim=1)  # (B, 2+N, d)
        type_ids = torch.full((2 + n,), 2, dtype=torch.long, device=seq.device)
        type_ids[0], type_ids[1] = 0, 1
        seq = self.embedding_dropout(self.context_norm(seq + self.context_types(type_ids)))
        attention_mask = torch.cat([valid.new_ones(b, 2), valid], dim=1)  # (B, 2+N) True = real
        padding = ~attention_mask
        hidden: list[torch.Tensor] = []
        x = seq
        for layer in self.context_encoder.layers:
            x = layer(x, src_key_padding_mask=padding)  # (B, 2+N, d)
            hidden.append(x)
        x = self.context_encoder.norm(x)
        hidden[-1] = x
        return x, tuple(hidden), attention_mask

    def score(self, vectors: torch.Tensor) -> torch.Tensor:
        """1vsAll scores: (B, d) -> (B, E) dot products with every entity embedding (+ bias)."""

        logits = vectors @ self.entity_embeddings.weight.T  # (B, E)
        if self.score_bias is not None:
            logits = logits + self.score_bias
        return logits

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        sources: torch.Tensor,
        relations: torch.Tensor,
        neighbours: NeighbourBatch | None = None,
        targets: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        compute_logits: bool = True,
    ) -> HittEROutput:
        """Score queries ``(sources, relations, ?)``; relations in [0, 2R) (reciprocals for subjects).

        With ``targets`` the loss is computed (and, in training with context, the MEP loss).
        """

        cfg = self.config
        b = sources.shape[0]
        source_ent = self.entity_embeddings(sources)  # (B, d)
        mep_selected = None
        if self.training and cfg.use_context and cfg.mep_prob > 0:
            source_ent, mep_selected = self._mep_corrupt(sources, source_ent)
        source_vec = self.encode_pairs(source_ent, relations)  # (B, d)
        hidden, attention_mask = None, None
        if cfg.use_context:
            if neighbours is None:
                empty = torch.zeros(b, 1, dtype=torch.long, device=sources.device)
                neighbours = NeighbourBatch(empty, empty, empty.bool())
            neighbours = NeighbourBatch(*(t.to(sources.device) for t in (neighbours.entities, neighbours.relations, neighbours.mask)))
            out, hidden, attention_mask = self._context(source_vec, neighbours)
            gcls, source_out = out[:, 0], out[:, 1]  # (B, d), (B, d)
        else:
            gcls, source_out = source_vec, source_vec
        logits = self.score(self.output_dropout(gcls)) if compute_logits or targets is not None else None
        loss = mep_loss = None
        if targets is not None:
            assert logits is not None
            loss = F.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing)
            if mep_selected is not None and bool(mep_selected.any()):
                mep_logits = self.score(self.output_dropout(source_out[mep_selected]))  # (b', E)
                mep_loss = F.cross_entropy(mep_logits, sources[mep_selected], label_smoothing=cfg.label_smoothing)
                loss = loss + cfg.mep_weight * mep_loss
        return HittEROutput(
            gcls=gcls,
            source_output=source_out,
            logits=logits,
            loss=loss,
            mep_loss=mep_loss,
            hidden_states=hidden if output_hidden_states else None,
            attention_mask=attention_mask if output_hidden_states else None,
        )

    def _mep_corrupt(self, sources: torch.Tensor, source_ent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick ``mep_prob`` of the sources; mask / replace / keep them. Returns new (B, d) and the pick."""

        cfg = self.config
        device = sources.device
        selected = torch.rand(sources.shape, device=device) < cfg.mep_prob  # (B,)
        action = torch.rand(sources.shape, device=device)
        masked = selected & (action < cfg.mep_mask)
        replaced = selected & (action >= cfg.mep_mask) & (action < cfg.mep_mask + cfg.mep_replace)
        out = source_ent
        if masked.any():
            out = torch.where(masked.unsqueeze(1), self.special.weight[self.MASK].expand_as(out), out)
        if replaced.any():
            random_ids = torch.randint(0, cfg.num_entities, sources.shape, device=device)
            out = torch.where(replaced.unsqueeze(1), self.entity_embeddings(random_ids), out)
        return out, selected

    @torch.no_grad()
    def embed_unseen(self, neighbours: NeighbourBatch, relations: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors for entities missing from the vocabulary, from their neighbour pairs (MEP path).

        The source is the ``[MASK]`` token; its context output lives in the entity-embedding space
        (MEP scores it against the entity matrix). ``relations`` (B,) is the query relation of the
        source pair; by default the relation of each entity's first neighbour. Returns (B, d).
        """

        if not self.config.use_context:
            raise ValueError("embed_unseen needs the context Transformer; this model has use_context=False")
        device = self.entity_embeddings.weight.device
        neighbours = NeighbourBatch(*(t.to(device) for t in (neighbours.entities, neighbours.relations, neighbours.mask)))
        b = neighbours.entities.shape[0]
        if relations is None:
            first = neighbours.mask.float().argmax(dim=1)  # (B,)
            relations = neighbours.relations[torch.arange(b, device=device), first]
        source = self.special.weight[self.MASK].expand(b, -1)  # (B, d)
        source_vec = self.encode_pairs(source, relations.to(device))
        out, _, _ = self._context(source_vec, neighbours)
        return out[:, 1]  # (B, d)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def neighbour_batch_from_pairs(pairs: Sequence[Sequence[tuple[int, int]]]) -> NeighbourBatch:
    """Pad lists of (entity id, relation id) pairs into a :class:`NeighbourBatch`."""

    width = max([len(p) for p in pairs] + [1])
    ents = torch.zeros(len(pairs), width, dtype=torch.long)
    rels = torch.zeros(len(pairs), width, dtype=torch.long)
    mask = torch.zeros(len(pairs), width, dtype=torch.bool)
    for i, row in enumerate(pairs):
        for j, (e, r) in enumerate(row):
            ents[i, j], rels[i, j], mask[i, j] = e, r, True
    return NeighbourBatch(ents, rels, mask)
