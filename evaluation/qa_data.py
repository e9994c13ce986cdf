"""Loaders for the KGQA benchmarks (FreebaseQA, WebQSP) in the layout of ``../shared/data``.

Two settings, as in HittER:

- ``filtered``: HittER's FB15k-237-filtered files (``hitter-processed/relphormer-filtered/*.json``): every
  question has one topic entity and one answer entity in FB15k-237 (ids are LibKGE indices, mapped to MIDs
  through ``fb15k-237/hitter_libkge_entity_index.tsv``).
- ``full``: every question of the official split. Topic and answer MIDs (``m.xxx`` → ``/m/xxx``) are kept only
  when they are FB15k-237 entities; a question with none keeps empty lists (it counts as a miss later).

WebQSP has no dev split: ``dev`` is a deterministic 10% carve of train by hashed question id, and ``train``
excludes it (in both settings, so filtered dev ⊂ full dev). FreebaseQA's full train file is not available
here (see ``freebaseqa/SOURCE.md``), so ``load_qa("freebaseqa", "train", "full")`` fails clearly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from graph.kg_files import default_data_dir
from qa_system.errors import DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

Dataset = Literal["freebaseqa", "webqsp"]
Split = Literal["train", "dev", "test"]
Setting = Literal["filtered", "full"]

DATASETS: tuple[str, ...] = ("freebaseqa", "webqsp")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
SETTINGS: tuple[str, ...] = ("filtered", "full")
DEV_PERCENT = 10  # WebQSP dev carve, percent of train question ids


@dataclass(frozen=True)
class QAExample:
    """One benchmark question with its gold topic entities and answers restricted to FB15k-237."""

    id: str
    question: str
    topic_ids: list[str]  # FB15k-237 MIDs ("/m/03_r3"); empty when the gold topic is not in the graph
    answer_ids: list[str]  # gold answers that are FB15k-237 entities
    answer_names: list[str]  # names of the gold answers (all of them, in the graph or not)
    inferential_chain: list[str] | None = None  # Freebase predicates from topic to answer, when known


# -- helpers ---------------------------------------------------------------------------------
def _data_dir(data_dir: Path | str | None) -> Path:
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if base is None or not base.is_dir():
        raise DatasetNotFoundError(
            f"QA data folder not found ({base or 'set QA_DATA_DIR or place it at ../shared/data'})"
        )
    return base


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetNotFoundError(f"missing QA data file {path}")
    return path


def _read_json(path: Path) -> object:
    try:
        with open(_require(path), encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"not valid JSON: {e.msg}", path=str(path), line=e.lineno) from e


def to_mid(freebase_id: str | None) -> str | None:
    """``m.03_r3`` → ``/m/03_r3`` (``/m/...`` is returned as is; anything else → None)."""

    if not freebase_id:
        return None
    if freebase_id.startswith("/m/") or freebase_id.startswith("/g/"):
        return freebase_id
    if freebase_id[:2] in ("m.", "g."):
        return f"/{freebase_id[0]}/{freebase_id[2:]}"
    return None


def question_key(text: str) -> str:
    """Lower-case alphanumerics only: how v1.1 FreebaseQA rows are matched to the final question ids."""

    return re.sub(r"[^0-9a-z]", "", text.lower())


def in_dev_carve(question_id: str) -> bool:
    """Deterministic 10% of ids (sha1 of the id), stable across machines and Python versions."""

    digest = hashlib.sha1(question_id.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 100 < DEV_PERCENT


@lru_cache(maxsize=4)
def _entity_index(path: Path) -> tuple[dict[int, str], frozenset[str]]:
    """LibKGE index → MID, and the set of FB15k-237 MIDs."""

    by_index: dict[int, str] = {}
    with open(_require(path), encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").split("\t")
            if number == 1 and parts[0] == "index":
                continue
            if len(parts) < 2 or not parts[0].isdigit():
                raise DataFormatError(f"expected 'index<TAB>mid<TAB>name', got {line[:80]!r}", path=str(path), line=number)
            by_index[int(parts[0])] = parts[1]
    return by_index, frozenset(by_index.values())


def _dedupe(values: list[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


# -- full setting ------------------------------------------------------------------------------
def _webqsp_full(base: Path, split: str, kg: frozenset[str]) -> list[QAExample]:
    raw = _read_json(base / "webqsp" / f"WebQSP.{'test' if split == 'test' else 'train'}.json")
    examples = []
    for q in raw["Questions"]:  # type: ignore[index]
        topics, answers, names, chain = [], [], [], None
        for parse in q.get("Parses") or []:
            topic = to_mid(parse.get("TopicEntityMid"))
            if topic in kg:
                topics.append(topic)
                if chain is None and parse.get("InferentialChain"):
                    chain = list(parse["InferentialChain"])
            for answer in parse.get("Answers") or []:
                names.append(answer.get("EntityName") or answer.get("AnswerArgument"))
                mid = to_mid(answer.get("AnswerArgument")) if answer.get("AnswerType") == "Entity" else None
                if mid in kg:
                    answers.append(mid)
        if chain is None:
            chain = next((list(p["InferentialChain"]) for p in q.get("Parses") or [] if p.get("InferentialChain")), None)
        examples.append(
            QAExample(q["QuestionId"], q["RawQuestion"], _dedupe(topics), _dedupe(answers), _dedupe(names), chain)
        )
    return examples


def _freebaseqa_rows(base: Path, split: str) -> dict[str, list[list[str]]]:
    """v1.1 ``.tab`` rows grouped by question key (several rows per question: parses, answer aliases)."""

    path = _require(base / "freebaseqa" / "v1.1-2017" / f"FreebaseQA-{'eval' if split == 'test' else 'dev'}.tab")
    grouped: dict[str, list[list[str]]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row:
                continue
            if len(row) != 8:
                raise DataFormatError(f"expected 8 tab-separated fields, got {len(row)}", path=str(path), line=number)
            grouped.setdefault(question_key(row[7]), []).append(row)
    return grouped


def _freebaseqa_full(base: Path, split: str, kg: frozenset[str]) -> list[QAExample]:
    if split == "train":
        raise DatasetNotFoundError(
            "FreebaseQA full train is not available (only the v1.1 dev/eval files and the filtered train file "
            "are in the data folder; see freebaseqa/SOURCE.md); use setting='filtered' for train"
        )
    # Question ids and texts of the final v1.0 split; MIDs from the v1.1 rows of the same question.
    finals = _read_json(base / "freebaseqa" / "hitter-processed" / "relphormer" / f"{split}.json")
    rows = _freebaseqa_rows(base, split)
    examples = []
    for record in finals:  # type: ignore[union-attr]
        matched = rows.get(question_key(record["RawQuestion"]), [])
        topics = [to_mid(r[2]) for r in matched]
        answers = [to_mid(r[5]) for r in matched]
        chain = None
        if matched:
            first = matched[0]
            chain = [first[3]] + ([first[4]] if first[4] and first[4] != "null" else [])
        names = [r[6] for r in matched] or [record.get("AnswerEntityName", "")]
        examples.append(
            QAExample(
                record["QuestionID"],
                record["RawQuestion"],
                _dedupe([t for t in topics if t in kg]),
                _dedupe([a for a in answers if a in kg]),
                _dedupe(names),
                chain,
            )
        )
    return examples


# -- filtered setting --------------------------------------------------------------------------
def _filtered(base: Path, dataset: str, split: str, by_index: dict[int, str], kg: frozenset[str]) -> list[QAExample]:
    file_split = "train" if dataset == "webqsp" and split == "dev" else split
    path = base / dataset / "hitter-processed" / "relphormer-filtered" / f"{file_split}.json"
    records = _read_json(path)
    chains = _chains(base, dataset, split, kg)
    examples = []
    for number, record in enumerate(records, start=1):  # type: ignore[arg-type]
        try:
            topic, answer = by_index[int(record["TopicEntityID"])], by_index[int(record["AnswerEntityID"])]
        except (KeyError, ValueError, TypeError) as e:
            raise DataFormatError(f"record {number}: entity id not in the FB15k-237 index ({e})", path=str(path)) from e
        qid = record["QuestionID"]
        examples.append(
            QAExample(qid, record["RawQuestion"], [topic], [answer], [record["AnswerEntityName"]], chains.get(qid))
        )
    return examples


def _chains(base: Path, dataset: str, split: str, kg: frozenset[str]) -> dict[str, list[str]]:
    """Inferential chains for the filtered records, taken from the full records when those exist."""

    if dataset == "freebaseqa" and split == "train":
        return {}
    try:
        full = _webqsp_full(base, split, kg) if dataset == "webqsp" else _freebaseqa_full(base, split, kg)
    except DatasetNotFoundError:
        return {}
    return {e.id: e.inferential_chain for e in full if e.inferential_chain}


# -- public ------------------------------------------------------------------------------------
def load_qa(
    dataset: str,
    split: str = "test",
    setting: str = "filtered",
    data_dir: Path | str | None = None,
) -> list[QAExample]:
    """Questions of ``dataset``/``split`` in ``setting`` (see the module docstring)."""

    for value, allowed, what in ((dataset, DATASETS, "dataset"), (split, SPLITS, "split"), (setting, SETTINGS, "setting")):
        if value not in allowed:
            raise DatasetNotFoundError(f"unknown QA {what} {value!r}; expected one of {', '.join(allowed)}")
    base = _data_dir(data_dir)
    if not (base / dataset).is_dir():
        raise DatasetNotFoundError(f"QA dataset folder {base / dataset} is missing")
    by_index, kg = _entity_index((base / "fb15k-237" / "hitter_libkge_entity_index.tsv").resolve())
    if setting == "filtered":
        examples = _filtered(base, dataset, split, by_index, kg)
    elif dataset == "webqsp":
        examples = _webqsp_full(base, split, kg)
    else:
        examples = _freebaseqa_full(base, split, kg)
    if dataset == "webqsp" and split != "test":
        examples = [e for e in examples if in_dev_carve(e.id) == (split == "dev")]
    log.info("loaded %s %s/%s: %d questions", dataset, split, setting, len(examples))
    return examples


def training_questions(dataset: str, data_dir: Path | None, *, extra: bool = True) -> list[QAExample]:
    """The HittER-filtered training questions, plus (``extra``) the other questions of the official
    training split whose topic and at least one answer are in the graph. Dev and test never enter."""

    examples = {e.id: e for e in load_qa(dataset, "train", "filtered", data_dir)}
    if extra:
        try:
            full = load_qa(dataset, "train", "full", data_dir)
        except DatasetNotFoundError:  # FreebaseQA's full training file is not distributed here
            full = []
        for e in full:
            if e.topic_ids and e.answer_ids:
                examples.setdefault(e.id, e)
    return list(examples.values())
