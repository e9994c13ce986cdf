"""WebNLG extraction data: loading the CasRel-format files and turning sentences into token batches.

This is the contract shared by every span extractor (QIDN, the subject-guided cascade): both
train on :class:`ExtractionBatch` and decode to :class:`TokenTriple` word-piece spans, so one
training loop, one evaluator and one :class:`~qa_system.models.span_extractor.TokenSpanExtractor`
serve both.

Gold strings become token spans the CasRel way: the entity is tokenised on its own and its
word-piece ids are searched as a sub-sequence of the sentence's ids (first occurrence). An entity
that cannot be located (truncated away, or tokenised differently inside a longer word) is counted
and logged, never silently mapped to a wrong span.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch

from qa_system.errors import DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

DATASET_FOLDERS = {"webnlg": "WebNLG", "webnlg-star": "WebNLG-star"}
SPLIT_FILES = {"train": "train_triples.json", "dev": "val_triples.json", "test": "test_triples.json"}


class TokenTriple(NamedTuple):
    """A triple as word-piece indices in the encoded sequence ([CLS] at 0); ends are inclusive."""

    sub_start: int
    sub_end: int
    relation: int
    obj_start: int
    obj_end: int


@dataclass
class ExtractionExample:
    """One sentence and its gold (subject, relation, object) strings (empty at inference)."""

    text: str
    triples: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class ExtractionBatch:
    """Encoded sentences with gold token triples (empty lists at inference).

    ``offsets[b][t]`` is the character span ``[start, end)`` of token ``t`` in ``texts[b]``
    ((0, 0) for special and padding tokens); ``examples`` keeps the source examples (gold strings).
    """

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    offsets: list[list[tuple[int, int]]]
    triples: list[list[TokenTriple]]
    texts: list[str]
    examples: list[ExtractionExample] = field(default_factory=list)
    case_ids: torch.Tensor | None = None  # (B, T) long: :func:`case_shapes` of each word piece

    def to(self, device: str | torch.device) -> ExtractionBatch:
        """The same batch with its tensors on ``device``."""

        return ExtractionBatch(self.input_ids.to(device), self.attention_mask.to(device), self.offsets,
                               self.triples, self.texts, self.examples,
                               None if self.case_ids is None else self.case_ids.to(device))


@runtime_checkable
class SpanExtractionModel(Protocol):
    """What QIDN and the cascade both implement (as ``nn.Module`` subclasses)."""

    def loss(self, batch: ExtractionBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its named parts (floats, for logging)."""
        ...

    def decode(self, batch: ExtractionBatch) -> list[list[tuple[TokenTriple, float]]]:
        """Predicted triples per sentence with scores in [0, 1]."""
        ...


# ----------------------------------------------------------------------------------------------
# loading


def dataset_folder(data_dir: Path, dataset: str) -> Path:
    """``data_dir/webnlg-casrel/<WebNLG|WebNLG-star>``; also accepts ``data_dir`` = the webnlg-casrel folder."""

    if dataset not in DATASET_FOLDERS:
        raise DatasetNotFoundError(f"unknown extraction dataset {dataset!r}; choose one of {', '.join(DATASET_FOLDERS)}")
    data_dir = Path(data_dir)
    for candidate in (data_dir / "webnlg-casrel" / DATASET_FOLDERS[dataset], data_dir / DATASET_FOLDERS[dataset]):
        if candidate.is_dir():
            return candidate
    raise DatasetNotFoundError(
        f"dataset {dataset!r} not found: expected folder {data_dir / 'webnlg-casrel' / DATASET_FOLDERS[dataset]}"
    )


def load_relations(folder: Path) -> list[str]:
    """Relation names in rel2id order; accepts ``[id2rel, rel2id]`` (CasRel) or a bare ``rel2id`` dict."""

    path = Path(folder) / "rel2id.json"
    if not path.is_file():
        raise DatasetNotFoundError(f"missing {path}")
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"not valid JSON ({e})", path=str(path)) from e
    rel2id = None
    candidates = raw if isinstance(raw, list) else [raw]
    for part in candidates:
        if isinstance(part, dict) and part and all(isinstance(v, int) for v in part.values()):
            rel2id = part
    if rel2id is None:
        raise DataFormatError("expected a rel2id mapping {name: id} (or [id2rel, rel2id])", path=str(path))
    names = sorted(rel2id, key=rel2id.__getitem__)
    if [rel2id[n] for n in names] != list(range(len(names))):
        raise DataFormatError("relation ids are not 0..N-1", path=str(path))
    return names


def load_webnlg(data_dir: Path, dataset: Literal["webnlg", "webnlg-star"],
                split: Literal["train", "dev", "test"]) -> tuple[list[ExtractionExample], list[str]]:
    """Examples of one split and the relation names in rel2id order (``dev`` = ``val_triples.json``)."""

    if split not in SPLIT_FILES:
        raise DatasetNotFoundError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_FILES)}")
    folder = dataset_folder(data_dir, dataset)
    relations = load_relations(folder)
    return load_examples(folder / SPLIT_FILES[split], relations), relations


def load_examples(path: Path, relations: list[str] | None = None) -> list[ExtractionExample]:
    """Read a CasRel JSON list of ``{"text", "triple_list"}``; unknown relations are a format error."""

    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"missing {path}")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"not valid JSON ({e})", path=str(path)) from e
    if not isinstance(records, list):
        raise DataFormatError("expected a JSON list of {text, triple_list} records", path=str(path))
    known = set(relations) if relations is not None else None
    examples = []
    for i, record in enumerate(records):
        try:
            text = record["text"]
            triples = [(str(s), str(r), str(o)) for s, r, o in record["triple_list"]]
        except (KeyError, TypeError, ValueError) as e:
            raise DataFormatError(f"record {i} is not {{text, triple_list: [[s, r, o], ...]}} ({e})", path=str(path)) from e
        if known is not None:
            for t in triples:
                if t[1] not in known:
                    raise DataFormatError(f"record {i}: relation {t[1]!r} is not in rel2id.json", path=str(path))
        examples.append(ExtractionExample(text=str(text), triples=triples))
    return examples


# ----------------------------------------------------------------------------------------------
# collation

CASE_SHAPES = 13  # 0 = special/padding; 1 + 2 * shape + continued, shape in lower/Capital/UPPER/digit/other/mixed


def case_shapes(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """The casing class of each word piece, from the sentence's own characters.

    Why: the shared MiniLM is uncased, so "Agra airport" and "Agra Airport" reach it as the same
    pieces, yet WebNLG's gold entities follow the sentence's casing (CasRel's files drop a triple
    whose entity's "Airport" is written "airport"). Classic NER systems feed such a word-shape
    feature beside the embeddings; QIDN's ``case_dim`` does. A piece is lower-case, Capitalised,
    UPPER, a digit, other (punctuation) or mixed, and either starts a word or continues one
    (no space before it)."""

    out: list[int] = []
    previous_end = -1
    for a, b in offsets:
        if b <= a:
            out.append(0)
            continue
        piece = text[a:b]
        if piece.isdigit() or piece[0].isdigit():
            shape = 3
        elif not any(ch.isalpha() for ch in piece):
            shape = 4
        elif piece.islower():
            shape = 0
        elif piece.isupper():
            shape = 2 if len(piece) > 1 else 1
        elif piece[0].isupper() and (len(piece) == 1 or piece[1:].islower()):
            shape = 1
        else:
            shape = 5
        continued = int(a == previous_end)
        out.append(1 + 2 * shape + continued)
        previous_end = b
    return out


def find_sublist(haystack: list[int], needle: list[int], start: int = 0) -> int:
    """Index of the first occurrence of ``needle`` in ``haystack`` at or after ``start``; -1 if absent."""

    n = len(needle)
    if n == 0:
        return -1
    for i in range(start, len(haystack) - n + 1):
        if haystack[i:i + n] == needle:
            return i
    return -1


@dataclass
class CollatorStats:
    """Running counts of gold triples the collator placed or could not place (logged, reported)."""

    triples: int = 0
    located: int = 0
    unlocated: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (entity, text) samples of misses

    def as_dict(self) -> dict[str, int]:
        return {"triples": self.triples, "located": self.located, "unlocated": self.unlocated}


class ExtractionCollator:
    """Tokenise sentences (MiniLM fast tokenizer) and place gold triples on word-piece spans.

    ``relation_to_id`` maps relation names to ids; ``max_length`` truncates (entities beyond it are
    counted as unlocated). Gold triples with an unknown relation raise a :class:`DataFormatError`.
    """

    def __init__(self, tokenizer: Any, relation_to_id: dict[str, int], max_length: int = 128) -> None:
        if max_length < 8:
            raise ValueError(f"max_length must be at least 8. Currently, max_length is {max_length}")
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("ExtractionCollator needs a fast tokenizer (for character offsets)")
        self.tokenizer = tokenizer
        self.relation_to_id = dict(relation_to_id)
        self.max_length = max_length
        self.stats = CollatorStats()
        self._entity_cache: dict[str, list[int]] = {}

    def entity_ids(self, entity: str) -> list[int]:
        ids = self._entity_cache.get(entity)
        if ids is None:
            ids = self.tokenizer(entity, add_special_tokens=False)["input_ids"]
            self._entity_cache[entity] = ids
        return ids

    def locate(self, sentence_ids: list[int], entity: str) -> tuple[int, int] | None:
        """Inclusive token span of the first occurrence of ``entity`` in ``sentence_ids``, or None."""

        needle = self.entity_ids(entity)
        i = find_sublist(sentence_ids, needle)
        return None if i < 0 else (i, i + len(needle) - 1)

    def token_triples(self, sentence_ids: list[int], example: ExtractionExample) -> list[TokenTriple]:
        found: list[TokenTriple] = []
        for subject, relation, obj in example.triples:
            if relation not in self.relation_to_id:
                raise DataFormatError(f"relation {relation!r} is not in the model's relation vocabulary")
            self.stats.triples += 1
            s, o = self.locate(sentence_ids, subject), self.locate(sentence_ids, obj)
            if s is None or o is None:
                self.stats.unlocated += 1
                missing = subject if s is None else obj
                if len(self.stats.examples) < 20:
                    self.stats.examples.append((missing, example.text))
                log.debug("cannot locate %r in %r", missing, example.text)
                continue
            self.stats.located += 1
            triple = TokenTriple(s[0], s[1], self.relation_to_id[relation], o[0], o[1])
            if triple not in found:
                found.append(triple)
        return found

    def __call__(self, examples: list[ExtractionExample]) -> ExtractionBatch:
        texts = [e.text for e in examples]
        enc = self.tokenizer(texts, max_length=self.max_length, truncation=True, padding=True,
                             return_offsets_mapping=True, return_tensors="pt")
        offsets = [[(int(a), int(b)) for a, b in row] for row in enc["offset_mapping"].tolist()]
        triples = []
        for b, example in enumerate(examples):
            length = int(enc["attention_mask"][b].sum())
            ids = enc["input_ids"][b, :length].tolist()
            triples.append(self.token_triples(ids, example) if example.triples else [])
        case_ids = torch.tensor([case_shapes(text, row) for text, row in zip(texts, offsets)], dtype=torch.long)
        return ExtractionBatch(enc["input_ids"].long(), enc["attention_mask"].long(), offsets, triples, texts,
                               list(examples), case_ids)

    def log_stats(self) -> None:
        """One line on how many gold triples could not be placed on tokens."""

        s = self.stats
        if s.triples:
            log.info("gold triples located on tokens: %d/%d (%d unlocatable, %.2f%%)", s.located, s.triples,
                     s.unlocated, 100.0 * s.unlocated / s.triples)


def span_text(text: str, offsets: list[tuple[int, int]], start: int, end: int) -> tuple[str, int, int]:
    """The surface text and character span ``[a, b)`` covered by tokens ``start..end`` (inclusive)."""

    a, b = offsets[start][0], offsets[end][1]
    return text[a:b], a, b
