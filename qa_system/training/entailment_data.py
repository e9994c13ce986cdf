"""NLI data for the entailment model: loaders for ``data/nli`` and WebNLG-derived domain pairs.

Every loader returns :class:`NLIPair` records whose ``target`` is a set of acceptable label indices in
:data:`~qa_system.models.entailment.LABELS` order. Three-way data has one index; two-way data says
"not entailment" as ``{neutral, contradiction}``, and the training loss is ``-log(p_neutral +
p_contradiction)`` for it, so no one has to guess whether a non-entailed RTE pair or a corrupted
WebNLG triple is neutral or contradictory. Two-way sets are evaluated two-way (entailment vs not,
the prediction being "entailment" when it is the arg-max of the three probabilities).

Label mappings: SICK ENTAILMENT/NEUTRAL/CONTRADICTION as is; SNLI as is; RTE entailment ->
entailment, not_entailment -> {neutral, contradiction}; FEVER-symmetric SUPPORTS -> entailment,
REFUTES -> contradiction; Climate-FEVER per evidence SUPPORTS -> entailment, REFUTES ->
contradiction, NOT_ENOUGH_INFO -> neutral (claim-level labels, incl. DISPUTED, are not used).

Splits (what may train, what is held out), see :data:`TRAINING_PARTS` / :data:`EVALUATION_SETS`:
SICK TRAIN trains and TRIAL is dev, TEST is held out; RTE train trains, dev is the held-out
evaluation (RTE test has no labels); SNLI dev trains (SNLI train is not available here), test is
held out; FEVER-symmetric v0.1 full + v0.2 dev train (v0.2 test, the benchmark's test, is kept out);
Climate-FEVER (no splits) trains; WebNLG train sentences train, val is dev, test is held out.
:func:`drop_overlap` removes any training pair that also occurs in a held-out set.

WebNLG pairs: premise = the sentence, hypothesis = ``"{subject} {relation in words} {object}"``
(camelCase and underscores -> words). Every gold triple gives an entailed pair; for each gold
triple one corrupted triple (seeded choice of: object swapped for another entity of the sentence,
object swapped for another object of the same relation elsewhere in the split, relation swapped,
subject and object exchanged) gives a "not entailment" pair. A corruption equal to any gold triple
of the sentence is skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa_system.errors import DataFormatError, DatasetNotFoundError
from qa_system.models.entailment import LABEL_INDEX
from qa_system.relations import (
    relation_words,  # the one spelling the validator's hypotheses use too
)

log = logging.getLogger(__name__)

ENT, NEU, CON = (LABEL_INDEX[k] for k in ("entailment", "neutral", "contradiction"))
NOT_ENTAILED: frozenset[int] = frozenset({NEU, CON})

DATASETS = ("snli", "rte", "sick", "webnlg-pairs")
TWO_WAY = ("rte", "webnlg-pairs")  # evaluated as entailment vs not
# Held-out evaluation sets: (dataset, split) -> the file split actually read.
EVALUATION_SETS = {("snli", "test"): "test", ("sick", "test"): "TEST", ("rte", "test"): "dev", ("webnlg-pairs", "test"): "test"}
TRAINING_PARTS = ("sick", "rte", "snli", "fever", "climate-fever", "webnlg")


@dataclass(frozen=True)
class NLIPair:
    """One (premise, hypothesis) pair; ``target`` holds the acceptable label indices."""

    premise: str
    hypothesis: str
    target: frozenset[int]
    source: str  # e.g. "sick/TRAIN", "webnlg/train/object-swap"

    @property
    def two_way(self) -> bool:
        return self.target == NOT_ENTAILED

    @property
    def key(self) -> tuple[str, str]:
        return (_norm(self.premise), _norm(self.hypothesis))


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def nli_dir(data_dir: Path | None) -> Path:
    """``<data>/nli`` (data dir default: ``$QA_DATA_DIR`` or ``../shared/data``)."""

    from graph.kg_files import default_data_dir

    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if base is None:
        raise DatasetNotFoundError("data folder not found; set QA_DATA_DIR or pass --data-dir")
    return base / "nli" if (base / "nli").is_dir() else base


def webnlg_dir(data_dir: Path | None) -> Path:
    from graph.kg_files import default_data_dir

    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if base is None:
        raise DatasetNotFoundError("data folder not found; set QA_DATA_DIR or pass --data-dir")
    for candidate in (base / "webnlg-casrel" / "WebNLG", base / "WebNLG", base):
        if (candidate / "train_triples.json").is_file() or (candidate / "test_triples.json").is_file():
            return candidate
    raise DatasetNotFoundError(f"no WebNLG triples (webnlg-casrel/WebNLG/*_triples.json) under {base}")


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetNotFoundError(f"missing NLI data file {path}")
    return path


# -- the NLI corpora ---------------------------------------------------------------------------
_THREE_WAY = {"entailment": ENT, "neutral": NEU, "contradiction": CON}


def load_sick(folder: Path, split: str) -> list[NLIPair]:
    """SICK.txt rows whose ``SemEval_set`` is ``split`` (TRAIN, TRIAL or TEST)."""

    path = _require(folder / "SICK.txt")
    split = split.upper()
    if split not in ("TRAIN", "TRIAL", "TEST"):
        raise DatasetNotFoundError(f"SICK split must be TRAIN, TRIAL or TEST; got {split!r}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise DataFormatError("empty file", path=str(path))
    header = lines[0].split("\t")
    try:
        a, b, lab, sem = (header.index(c) for c in ("sentence_A", "sentence_B", "entailment_label", "SemEval_set"))
    except ValueError as e:
        raise DataFormatError(f"SICK header lacks a column: {e}", path=str(path), line=1) from e
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < len(header):
            raise DataFormatError(f"expected {len(header)} tab-separated columns, got {len(cols)}", path=str(path), line=number)
        if cols[sem].strip().upper() != split:
            continue
        label = cols[lab].strip().lower()
        if label not in _THREE_WAY:
            raise DataFormatError(f"unknown SICK label {cols[lab]!r}", path=str(path), line=number)
        pairs.append(NLIPair(cols[a].strip(), cols[b].strip(), frozenset({_THREE_WAY[label]}), f"sick/{split}"))
    return pairs


def load_snli(folder: Path, split: str) -> list[NLIPair]:
    """Line-aligned ``s1.X``/``s2.X``/``labels.X`` (e-SNLI layout), X = dev or test."""

    files = [_require(folder / f"{name}.{split}") for name in ("s1", "s2", "labels")]
    columns = [f.read_text(encoding="utf-8").rstrip("\n").split("\n") for f in files]
    if len({len(c) for c in columns}) != 1:
        raise DataFormatError(f"s1/s2/labels have {[len(c) for c in columns]} lines; they must be line-aligned", path=str(folder))
    pairs = []
    for number, (premise, hypothesis, label) in enumerate(zip(*columns), start=1):
        label = label.strip().lower()
        if label not in _THREE_WAY:
            raise DataFormatError(f"unknown SNLI label {label!r}", path=str(files[2]), line=number)
        pairs.append(NLIPair(premise.strip(), hypothesis.strip(), frozenset({_THREE_WAY[label]}), f"snli/{split}"))
    return pairs


def load_rte(folder: Path, split: str) -> list[NLIPair]:
    """GLUE RTE tsv (``index sentence1 sentence2 label``); ``test.tsv`` has no labels and is refused."""

    path = _require(folder / f"{split}.tsv")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0][:3] != ["index", "sentence1", "sentence2"]:
        raise DataFormatError("expected header 'index\\tsentence1\\tsentence2\\tlabel'", path=str(path), line=1)
    if "label" not in rows[0]:
        raise DatasetNotFoundError(f"{path} has no labels (RTE test is unlabelled; evaluate on dev.tsv)")
    pairs = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 4:
            raise DataFormatError(f"expected 4 tab-separated fields, got {len(row)}", path=str(path), line=number)
        label = row[3].strip()
        if label == "entailment":
            target = frozenset({ENT})
        elif label == "not_entailment":
            target = NOT_ENTAILED
        else:
            raise DataFormatError(f"unknown RTE label {label!r}", path=str(path), line=number)
        pairs.append(NLIPair(row[1].strip(), row[2].strip(), target, f"rte/{split}"))
    return pairs


_FEVER = {"SUPPORTS": frozenset({ENT}), "REFUTES": frozenset({CON}), "NOT_ENOUGH_INFO": frozenset({NEU}),
          "NOT ENOUGH INFO": frozenset({NEU})}
_PTB = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}", "-COLON-": ":"}


def _detok_fever(text: str) -> str:
    for token, char in _PTB.items():
        text = text.replace(token, char)
    return text


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    with open(_require(path), encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"not JSON: {e}", path=str(path), line=number) from e


def load_fever_symmetric(folder: Path, files: Sequence[str]) -> list[NLIPair]:
    """FEVER-symmetric jsonl files (v0.1: ``claim``/``evidence_sentence``/``label``; v0.2:
    ``claim``/``evidence``/``gold_label``); premise = the evidence sentence, hypothesis = the claim."""

    pairs = []
    for name in files:
        path = folder / name
        for number, row in _read_jsonl(path):
            evidence = row.get("evidence_sentence", row.get("evidence"))
            label = row.get("gold_label", row.get("label"))
            if not isinstance(evidence, str) or not isinstance(row.get("claim"), str) or label not in _FEVER:
                raise DataFormatError("expected claim, evidence(_sentence) and a SUPPORTS/REFUTES label", path=str(path), line=number)
            pairs.append(NLIPair(_detok_fever(evidence), _detok_fever(row["claim"]), _FEVER[label], f"fever/{Path(name).stem}"))
    return pairs


def load_climate_fever(folder: Path) -> list[NLIPair]:
    """Every (evidence sentence, claim) pair of ``climate-fever.jsonl`` with its evidence label."""

    path = folder / "climate-fever.jsonl"
    pairs = []
    for number, row in _read_jsonl(path):
        try:
            claim, evidences = row["claim"], row["evidences"]
            for ev in evidences:
                pairs.append(NLIPair(ev["evidence"], claim, _FEVER[ev["evidence_label"]], "climate-fever"))
        except (KeyError, TypeError) as e:
            raise DataFormatError(f"expected claim and evidences with evidence/evidence_label: {e!r}", path=str(path), line=number) from e
    return pairs


# -- WebNLG-derived pairs ----------------------------------------------------------------------
def verbalise(subject: str, relation: str, obj: str) -> str:
    return f"{subject} {relation_words(relation)} {obj}"


def load_webnlg(folder: Path, split: str) -> list[dict]:
    path = _require(folder / f"{split}_triples.json")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataFormatError(f"not JSON: {e}", path=str(path)) from e
    if not isinstance(records, list):
        raise DataFormatError("expected a JSON list of {text, triple_list}", path=str(path))
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not isinstance(r.get("text"), str) or not isinstance(r.get("triple_list"), list) \
                or any(not isinstance(t, list) or len(t) != 3 for t in r["triple_list"]):
            raise DataFormatError(f"record {i} is not {{text, triple_list: [[s, r, o], ...]}}", path=str(path))
    return records


CORRUPTIONS = ("object-swap", "type-swap", "relation-swap", "reverse")


def webnlg_pairs(records: Sequence[dict], *, seed: int = 0, split: str = "train", negatives: int = 1,
                 prefer: Sequence[str] = ()) -> list[NLIPair]:
    """Entailed and corrupted pairs of WebNLG records, deterministic for a seed (see module doc).

    ``negatives`` corruptions of distinct kinds per gold triple (evaluation sets always use 1);
    kinds in ``prefer`` are tried first (a training option for the hard, role-swapping kinds).
    """

    unknown = sorted(set(prefer) - set(CORRUPTIONS))
    if unknown or negatives < 1:
        raise ValueError(f"negatives must be >= 1 and prefer a subset of {CORRUPTIONS}; got {negatives}, {unknown}")

    rng = random.Random(seed)
    relations = sorted({t[1] for r in records for t in r["triple_list"]})
    object_sets: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for _s, rel, o in r["triple_list"]:
            object_sets[rel].add(o)
    objects_by_relation = {k: sorted(v) for k, v in object_sets.items()}
    pairs: list[NLIPair] = []
    for record in records:
        text, gold = record["text"], [tuple(t) for t in record["triple_list"]]
        gold_set = set(gold)
        entities = sorted({t[0] for t in gold} | {t[2] for t in gold})
        seen = set()
        for s, rel, o in gold:
            hyp = verbalise(s, rel, o)
            if hyp in seen:
                continue
            seen.add(hyp)
            pairs.append(NLIPair(text, hyp, frozenset({ENT}), f"webnlg/{split}/gold"))
        for s, rel, o in gold:
            candidates = {
                "object-swap": [(s, rel, e) for e in entities if e not in (s, o)],
                "type-swap": [(s, rel, e) for e in objects_by_relation.get(rel, []) if e not in entities],
                "relation-swap": [(s, r2, o) for r2 in rng.sample(relations, min(8, len(relations))) if r2 != rel],
                "reverse": [(o, rel, s)] if o != s else [],
            }
            kinds = [k for k, v in candidates.items() if v]
            rng.shuffle(kinds)
            kinds.sort(key=lambda k: k not in prefer)  # stable: no extra draws, so the default stays as it was
            made = 0
            for kind in kinds:
                options = [c for c in candidates[kind] if c not in gold_set and verbalise(*c) not in seen
                           and relation_words(c[1]) not in {relation_words(g[1]) for g in gold if (g[0], g[2]) == (c[0], c[2])}]
                if options:
                    corrupt = options[rng.randrange(len(options))]
                    seen.add(verbalise(*corrupt))
                    pairs.append(NLIPair(text, verbalise(*corrupt), NOT_ENTAILED, f"webnlg/{split}/{kind}"))
                    made += 1
                    if made == negatives:
                        break
    return pairs


# -- putting it together -----------------------------------------------------------------------
def load_evaluation_set(dataset: str, split: str, data_dir: Path | None = None, *, seed: int = 0) -> list[NLIPair]:
    """A held-out set by CLI name; ``rte``'s ``test`` is its labelled dev file (RTE test is unlabelled)."""

    if dataset not in DATASETS:
        raise DatasetNotFoundError(f"unknown entailment dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    file_split = EVALUATION_SETS.get((dataset, split), split)
    if dataset == "snli":
        return load_snli(nli_dir(data_dir) / "snli", file_split)
    if dataset == "sick":
        return load_sick(nli_dir(data_dir) / "sick", file_split)
    if dataset == "rte":
        return load_rte(nli_dir(data_dir) / "rte", file_split)
    if split not in ("train", "val", "test"):
        raise DatasetNotFoundError(f"webnlg-pairs split must be train, val or test; got {split!r}")
    return webnlg_pairs(load_webnlg(webnlg_dir(data_dir), split), seed=seed, split=split)


def held_out_pairs(data_dir: Path | None = None, *, seed: int = 0) -> list[NLIPair]:
    """Every pair of every held-out evaluation set that exists under ``data_dir``."""

    pairs: list[NLIPair] = []
    for dataset, split in EVALUATION_SETS:
        try:
            pairs += load_evaluation_set(dataset, split, data_dir, seed=seed)
        except DatasetNotFoundError:
            log.warning("held-out set %s/%s not found; cannot check it for overlap", dataset, split)
    return pairs


def drop_overlap(train: Sequence[NLIPair], held_out: Iterable[NLIPair]) -> list[NLIPair]:
    """Training pairs minus those whose normalised (premise, hypothesis) occurs in a held-out set."""

    banned = {p.key for p in held_out}
    kept = [p for p in train if p.key not in banned]
    if len(kept) < len(train):
        log.info("dropped %d training pairs that also occur in held-out sets", len(train) - len(kept))
    return kept


def training_pairs(data_dir: Path | None = None, *, seed: int = 0, parts: Sequence[str] = TRAINING_PARTS,
                   webnlg_negatives: int = 1, webnlg_prefer: Sequence[str] = ()) -> dict[str, list[NLIPair]]:
    """Training pairs per part (see module doc), held-out pairs removed."""

    nli = nli_dir(data_dir)
    loaders = {
        "sick": lambda: load_sick(nli / "sick", "TRAIN"),
        "rte": lambda: load_rte(nli / "rte", "train"),
        "snli": lambda: load_snli(nli / "snli", "dev"),
        "fever": lambda: _fever_training(nli / "fever-symmetric"),
        "climate-fever": lambda: load_climate_fever(nli / "climate-fever"),
        "webnlg": lambda: webnlg_pairs(load_webnlg(webnlg_dir(data_dir), "train"), seed=seed, split="train",
                                       negatives=webnlg_negatives, prefer=webnlg_prefer),
    }
    unknown = sorted(set(parts) - set(loaders))
    if unknown:
        raise DatasetNotFoundError(f"unknown training parts {unknown}; choose from {', '.join(loaders)}")
    held = held_out_pairs(data_dir, seed=seed)
    return {name: drop_overlap(loaders[name](), held) for name in parts}


def _fever_training(folder: Path) -> list[NLIPair]:
    """v0.1 full + v0.2 dev, deduplicated, without any pair whose claim is in v0.2 test."""

    pairs = load_fever_symmetric(folder, ["symmetric_v0.1/fever_symmetric_full.jsonl", "symmetric_v0.2/fever_symmetric_dev.jsonl"])
    test_path = folder / "symmetric_v0.2/fever_symmetric_test.jsonl"
    test_claims = {_norm(p.hypothesis) for p in load_fever_symmetric(folder, ["symmetric_v0.2/fever_symmetric_test.jsonl"])} \
        if test_path.is_file() else set()
    unique: dict[tuple[str, str], NLIPair] = {}
    for p in pairs:
        if _norm(p.hypothesis) not in test_claims:
            unique.setdefault(p.key, p)
    return list(unique.values())


DEV_SEED = 0  # the dev pairs of every training run, whatever its --seed (see selection_dev)


def dev_pairs(data_dir: Path | None = None, *, seed: int = 0) -> dict[str, list[NLIPair]]:
    """Development sets for model selection: SICK TRIAL (3-way) and WebNLG val pairs (2-way)."""

    return {
        "sick-trial": load_sick(nli_dir(data_dir) / "sick", "TRIAL"),
        "webnlg-val": webnlg_pairs(load_webnlg(webnlg_dir(data_dir), "val"), seed=seed, split="val"),
    }


def selection_dev(data_dir: Path | None = None, limit: int | None = None) -> dict[str, list[NLIPair]]:
    """The dev pairs a training run selects its best epoch on: :func:`dev_pairs` with at most
    ``limit`` pairs a set. Both the WebNLG-val corruptions and the sample use :data:`DEV_SEED`, never
    the training seed, so stages trained with different seeds are compared on the same pairs (until
    session 8 they were not, and differences of a few tenths between stages were partly dev noise)."""

    dev = dev_pairs(data_dir, seed=DEV_SEED)
    if limit is None:
        return dev
    return {k: random.Random(DEV_SEED).sample(v, min(len(v), limit)) for k, v in dev.items()}


def sample_training(parts: dict[str, list[NLIPair]], max_train: int | None, *, seed: int = 0,
                    weights: dict[str, float] | None = None) -> list[NLIPair]:
    """Up to ``max_train`` pairs, each part contributing in proportion to ``weights`` (default: its
    size, i.e. everything when it fits); a part smaller than its share gives all it has and the rest
    is shared among the others. Deterministic for a seed; the result is shuffled."""

    rng = random.Random(seed)
    pools = {name: list(pairs) for name, pairs in parts.items() if pairs}
    for name in sorted(pools):
        rng.shuffle(pools[name])
    total = sum(len(p) for p in pools.values())
    if max_train is None or max_train >= total:
        chosen = [p for name in sorted(pools) for p in pools[name]]
    else:
        w = {name: float((weights or {}).get(name, len(pools[name]))) for name in pools}
        quota: dict[str, int] = {}
        remaining, open_parts = max_train, set(pools)
        while open_parts and remaining > 0:
            scale = sum(w[n] for n in open_parts)
            share = {n: int(remaining * w[n] / scale) if scale else 0 for n in open_parts}
            full = {n for n in open_parts if share[n] >= len(pools[n]) - quota.get(n, 0)}
            if not full:
                for n in open_parts:
                    quota[n] = quota.get(n, 0) + share[n]
                break
            for n in full:
                remaining -= len(pools[n]) - quota.get(n, 0)
                quota[n] = len(pools[n])
            open_parts -= full
        chosen = [p for name in sorted(pools) for p in pools[name][: quota.get(name, 0)]]
    rng.shuffle(chosen)
    return chosen
