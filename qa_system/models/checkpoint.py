"""HittER checkpoints: ``model.safetensors`` + ``vocab.json`` + ``card.json`` in one folder.

The card holds the config, the dataset, the command that produced it, the git commit, the
metrics and the SHA-256 of the vocabulary (entity and relation ids in order). Loading checks that
vocabulary against the dataset it is used with and raises :class:`CheckpointError` naming the
difference, because a silently shifted id table gives plausible-looking garbage.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from qa_system.errors import CheckpointError
from qa_system.models.hitter import HittER, HittERConfig

log = logging.getLogger(__name__)

WEIGHTS, VOCAB, CARD = "model.safetensors", "vocab.json", "card.json"
FORMAT_VERSION = 1


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True,
                             text=True, timeout=10, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def vocab_hash(entities: list[str], relations: list[str]) -> str:
    """A checkpoint's vocabulary fingerprint: loading refuses weights trained on another id order."""

    import hashlib
    import json

    payload = json.dumps({"entities": entities, "relations": relations}, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def save_checkpoint(folder: Path, model: HittER, *, entities: list[str], relations: list[str],
                    card: dict[str, Any] | None = None, fp16: bool = False) -> Path:
    """Write weights, vocabulary and card to ``folder`` (created). Returns the folder."""

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if len(entities) != model.config.num_entities or len(relations) != model.config.num_relations:
        raise CheckpointError(
            f"vocabulary size {len(entities)}/{len(relations)} does not match the model "
            f"({model.config.num_entities} entities / {model.config.num_relations} relations)"
        )
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "dtype": "float16" if fp16 else "float32"})
    os.replace(tmp, folder / WEIGHTS)
    (folder / VOCAB).write_text(json.dumps({"entities": entities, "relations": relations}, ensure_ascii=False))
    full_card = {
        "format_version": FORMAT_VERSION,
        "model": "hitter",
        "config": model.config.to_dict(),
        "vocab_file": VOCAB,
        "vocab_sha256": vocab_hash(entities, relations),
        "num_entities": len(entities),
        "num_relations": len(relations),
        "dtype": "float16" if fp16 else "float32",
        "num_parameters": model.num_parameters(),
        **(card or {}),
    }
    full_card.setdefault("git_commit", git_commit())
    (folder / CARD).write_text(json.dumps(full_card, indent=2, ensure_ascii=False) + "\n")
    return folder


def read_card(folder: Path) -> dict[str, Any]:
    path = Path(folder) / CARD
    if not path.is_file():
        raise CheckpointError(f"no {CARD} in checkpoint folder {folder}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e


def check_vocabulary(card: dict[str, Any], folder: Path, entities: list[str], relations: list[str]) -> None:
    """Raise :class:`CheckpointError` naming the first difference between checkpoint and dataset vocabularies."""

    if card.get("vocab_sha256") == vocab_hash(entities, relations):
        return
    vocab_path = Path(folder) / card.get("vocab_file", VOCAB)
    problem = "vocabulary hash differs"
    if vocab_path.is_file():
        saved = json.loads(vocab_path.read_text())
        for kind, mine, theirs in (("entities", saved["entities"], entities), ("relations", saved["relations"], relations)):
            if len(mine) != len(theirs):
                problem = f"checkpoint has {len(mine)} {kind}, dataset has {len(theirs)}"
                break
            diff = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), None)
            if diff is not None:
                problem = f"{kind} differ at id {diff}: checkpoint {mine[diff]!r}, dataset {theirs[diff]!r}"
                break
    raise CheckpointError(
        f"checkpoint {folder} (trained on {card.get('dataset', '?')!r}) does not match this dataset's vocabulary: {problem}"
    )


def load_checkpoint(folder: Path, *, entities: list[str] | None = None, relations: list[str] | None = None,
                    device: str | torch.device = "cpu") -> tuple[HittER, dict[str, Any]]:
    """Load a model (float32) and its card; with ``entities``/``relations``, check the vocabulary first."""

    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {folder}")
    card = read_card(folder)
    if entities is not None and relations is not None:
        check_vocabulary(card, folder, entities, relations)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"no {WEIGHTS} in checkpoint folder {folder}")
    try:
        config = HittERConfig.from_dict(card["config"])
        model = HittER(config)
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        model.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {folder} cannot be loaded: {e}") from e
    return model.to(device).eval(), card
