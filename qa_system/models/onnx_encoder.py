"""Short MiniLM passes through ONNX Runtime instead of eager PyTorch.

Why: ``ask`` runs the shared MiniLM-L6 on a handful of short texts per question: the question and
its fuzzy mentions for linking (``retrievers.name_embeddings``) and the question again through the
reader's fine-tuned copy (``models.reader``). On 2 CPU cores a 15-token question costs 8.6 ms in
eager PyTorch (transformers' Python wrappers and per-op dispatch, around 0.3 GFLOP of real work)
and 2.9 ms through ONNX Runtime, with the same hidden states to ~1e-5. Long batches are
compute-bound and gain nothing (the answer reranker's five ~48-token pairs: 25 ms in ORT float32
against 20 ms in PyTorch bfloat16), so only short passes come here.

The graph is exported from the loaded (LoRA-merged) ``BertModel`` with ``torch.onnx.export`` and
cached as ``<cache dir>/<name>-<digest>.onnx``, the digest taken over the weights, so a retrained
checkpoint gets a fresh export and an unchanged one is exported once per cache dir (about 2 s).
Without ``onnxruntime`` (or when export fails) :func:`onnx_encoder` returns None and callers keep
PyTorch: the answers are the same either way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17
_sessions: dict[str, tuple[Any, Path]] = {}  # file name (model name + weights digest) @ threads -> (ORT session, file); one per process
_sessions_lock = threading.Lock()


def onnx_runtime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def weights_digest(model: nn.Module) -> str:
    """A short hex digest of every parameter and buffer (names, shapes and values): the cache key."""

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:16]


class _HiddenStates(nn.Module):
    """``BertModel`` with positional inputs and its last hidden state as the only output (what is exported)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state


def export_encoder(bert: nn.Module, path: Path) -> Path:
    """Write ``bert`` (a transformers ``BertModel``, eval mode, no hooks that matter) to ``path``
    as ONNX with dynamic batch and sequence axes; atomic (a temporary file, then a rename)."""

    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _HiddenStates(bert).eval()
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "hidden")}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter from the TorchScript exporter
            torch.onnx.export(wrapper, example, tmp, input_names=list(INPUTS), output_names=["hidden"], dynamic_axes=axes,
                              opset_version=_OPSET, dynamo=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxBertEncoder(nn.Module):
    """Stands in for a ``BertModel`` at inference: ``encoder(input_ids=..., attention_mask=...,
    token_type_ids=...)`` returns an object with ``last_hidden_state`` (a float32 tensor), as
    the PyTorch model would. Thread-safe (ORT sessions are)."""

    AHEAD_KEPT = 8  # passes started ahead and not yet taken; older ones are dropped (a question nobody read)

    def __init__(self, session: Any, path: Path) -> None:
        super().__init__()
        self.session = session
        self.path = path
        self._ahead: OrderedDict[bytes, Future[np.ndarray]] = OrderedDict()  # input -> its pass, started by encode_ahead
        self._ahead_lock = threading.Lock()

    def encode_ahead(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None) -> None:
        """Start this input's pass on a worker thread; the :meth:`forward` that gets the same input
        takes its result instead of running it again.

        Why: ``ask`` knows the question before it links it, and the reader encodes nothing but the
        question; ONNX Runtime releases the GIL, so the reader's pass (~5 ms) runs while spaCy and
        the name search link the question on the other core."""

        feed = _feed(input_ids, attention_mask, token_type_ids)
        key = _key(feed)
        with self._ahead_lock:
            if key in self._ahead:
                return
            self._ahead[key] = _ahead_pool().submit(self._run, feed)
            while len(self._ahead) > self.AHEAD_KEPT:
                self._ahead.popitem(last=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                **_: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        feed = _feed(input_ids, attention_mask, token_type_ids)
        hidden = None
        if self._ahead:
            with self._ahead_lock:
                started = self._ahead.pop(_key(feed), None)
            if started is not None:
                try:
                    hidden = started.result()
                except Exception as e:  # noqa: BLE001 - run it here instead; the error, if real, repeats below
                    log.debug("a pass started ahead failed (%s); running it again", e)
        if hidden is None:
            hidden = self._run(feed)
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        (hidden,) = self.session.run(None, feed)
        return hidden


def _feed(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None) -> dict[str, np.ndarray]:
    ids = input_ids.detach().to(torch.long).numpy()
    mask = np.ones_like(ids) if attention_mask is None else attention_mask.detach().to(torch.long).numpy()
    types = np.zeros_like(ids) if token_type_ids is None else token_type_ids.detach().to(torch.long).numpy()
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _key(feed: dict[str, np.ndarray]) -> bytes:
    return b"|".join(repr(feed[name].shape).encode() + feed[name].tobytes() for name in INPUTS)


_ahead_executor: ThreadPoolExecutor | None = None


def _ahead_pool() -> ThreadPoolExecutor:
    """One worker thread per process for :meth:`OnnxBertEncoder.encode_ahead` (started on first use)."""

    global _ahead_executor
    with _sessions_lock:
        if _ahead_executor is None:
            _ahead_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-ahead")
        return _ahead_executor


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # ORT's pool threads spin after each run by default; on 2 cores that steals the CPU from the
    # PyTorch models that run next (the reranker ran ~40 ms slower a question)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_encoder(bert: nn.Module, cache_dir: Path, name: str, *, threads: int | None = None) -> OnnxBertEncoder | None:
    """``bert`` as an ONNX Runtime encoder (exported once into ``cache_dir``), or None when
    onnxruntime is missing or the export or load fails (logged; the caller keeps PyTorch).
    ``threads``: ORT's intra-op threads (default: torch's); 1 for an encoder whose passes mostly
    run ahead, beside other work (:meth:`OnnxBertEncoder.encode_ahead`)."""

    if not onnx_runtime_available():
        return None
    file_name = f"{name}-{weights_digest(bert)}.onnx"
    path = Path(cache_dir) / file_name
    threads = torch.get_num_threads() if threads is None else max(1, int(threads))
    session_key = f"{file_name}@{threads}"
    with _sessions_lock:  # the same weights loaded again in this process (tests, a reloaded pipeline): no second export
        if session_key in _sessions:
            return OnnxBertEncoder(*_sessions[session_key])
    for attempt in (1, 2):
        try:
            if not path.is_file():
                export_encoder(bert, path)
            session = _session(path, threads)
            with _sessions_lock:
                _sessions[session_key] = (session, path)
            return OnnxBertEncoder(session, path)
        except Exception as e:  # noqa: BLE001 - any exporter or runtime failure means: stay on PyTorch
            if attempt == 1 and path.is_file():  # a damaged cache file: export again once
                log.warning("ONNX encoder %s unreadable (%s); exporting it again", path, e)
                path.unlink(missing_ok=True)
                continue
            log.warning("ONNX Runtime encoder unavailable for %s (%s); using PyTorch", name, e)
            return None
    return None


def default_cache_dir(settings: Any = None) -> Path | None:
    """Where exported encoders live (``Settings.onnx_cache_dir``: ``<workspace>/cache/onnx``) under
    ``settings`` (default: the environment's), or None when they turn ONNX Runtime off
    (``QA_ONNX_RUNTIME=false``)."""

    if settings is None:
        from qa_system.config import load_settings

        settings = load_settings()
    return settings.onnx_cache_dir if getattr(settings, "onnx_runtime", False) else None


def swap_in_onnx_encoder(model: nn.Module, cache_dir: Path | None, name: str, attribute: str = "encoder", *,
                         threads: int | None = None) -> bool:
    """Replace ``model.<attribute>`` (an inference-only, LoRA-merged ``BertModel``) by its ONNX
    Runtime twin (``threads`` as in :func:`onnx_encoder`); True when it was replaced. ``cache_dir``
    None (ONNX Runtime turned off) or an unavailable runtime leave the model as it is."""

    bert = getattr(model, attribute, None)
    if cache_dir is None or bert is None or isinstance(bert, OnnxBertEncoder) or hasattr(bert, "merge_and_unload"):
        return False  # off, nothing there, done already, or adapters not merged (the weights would differ)
    encoder = onnx_encoder(bert, cache_dir, name, threads=threads)
    if encoder is None:
        return False
    setattr(model, attribute, encoder)
    return True
