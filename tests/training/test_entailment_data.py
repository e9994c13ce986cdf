"""NLI loaders on small files in the real formats, WebNLG pair construction, and the train/held-out wall."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from qa_system.errors import DataFormatError, DatasetNotFoundError
from qa_system.training.entailment_data import (
    CON,
    ENT,
    NEU,
    NOT_ENTAILED,
    NLIPair,
    dev_pairs,
    drop_overlap,
    load_climate_fever,
    load_evaluation_set,
    load_fever_symmetric,
    load_rte,
    load_sick,
    load_snli,
    relation_words,
    sample_training,
    selection_dev,
    training_pairs,
    verbalise,
    webnlg_pairs,
)

SICK_HEADER = ("pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB\tentailment_BA\t"
               "sentence_A_original\tsentence_B_original\tsentence_A_dataset\tsentence_B_dataset\tSemEval_set")
LEAKED = ("A dog runs in the park", "An animal is running")  # deliberately in SICK TRAIN and TEST


def _sick_row(i: int, a: str, b: str, label: str, split: str) -> str:
    return f"{i}\t{a}\t{b}\t{label}\t4.0\tA_x_B\tB_x_A\t{a}\t{b}\tFLICKR\tFLICKR\t{split}"


WEBNLG = {
    "train": [
        {"text": "Peter Stöger is manager of 1 . FC Köln which has 50000 members .",
         "triple_list": [["1 . FC Köln", "manager", "Peter Stöger"], ["1 . FC Köln", "numberOfMembers", "50000"]]},
        {"text": "Christopher Nolan directed Inception , which stars Leonardo DiCaprio .",
         "triple_list": [["Inception", "director", "Christopher Nolan"], ["Inception", "starring", "Leonardo DiCaprio"]]},
        {"text": "Titanic was directed by James Cameron .", "triple_list": [["Titanic", "director", "James Cameron"]]},
        {"text": "Aarhus Airport serves the city of Aarhus and has a runway length of 2776.0 .",
         "triple_list": [["Aarhus Airport", "cityServed", "Aarhus"], ["Aarhus Airport", "runwayLength", "2776.0"]]},
    ],
    "val": [{"text": "Memento was directed by Christopher Nolan .", "triple_list": [["Memento", "director", "Christopher Nolan"]]}],
    "test": [{"text": "Avatar , directed by James Cameron , stars Sam Worthington .",
              "triple_list": [["Avatar", "director", "James Cameron"], ["Avatar", "starring", "Sam Worthington"]]}],
}


def write_nli_fixture(root: Path) -> Path:
    """A miniature ``../shared/data`` with every NLI corpus and WebNLG, in the real file formats."""

    nli = root / "nli"
    (nli / "sick").mkdir(parents=True)
    rows = [SICK_HEADER,
            _sick_row(1, "A group of kids is playing in a yard", "A group of boys is playing", "NEUTRAL", "TRAIN"),
            _sick_row(2, "The young boys are playing outdoors", "The kids are playing outdoors", "ENTAILMENT", "TRAIN"),
            _sick_row(3, *LEAKED, "ENTAILMENT", "TRAIN"),
            _sick_row(4, "The boys are playing outdoors", "There is no boy playing outdoors", "CONTRADICTION", "TRIAL"),
            _sick_row(5, *LEAKED, "ENTAILMENT", "TEST"),
            _sick_row(6, "A man is cutting a tomato", "A woman is cutting a tomato", "CONTRADICTION", "TEST")]
    (nli / "sick" / "SICK.txt").write_bytes("\r\n".join(rows).encode("utf-8"))  # CRLF, no final newline, like the real file
    snli = nli / "snli"
    snli.mkdir()
    for split, rows3 in {
        "dev": [("Two women are embracing . ", "Two woman are holding packages . ", "entailment"),
                ("Two women are embracing . ", "The men are fighting . ", "contradiction")],
        "test": [("A man plays a guitar . ", "A person plays music . ", "entailment"),
                 ("A man plays a guitar . ", "The man is famous . ", "neutral")],
    }.items():
        for i, name in enumerate(("s1", "s2", "labels")):
            (snli / f"{name}.{split}").write_text("".join(r[i] + "\n" for r in rows3), encoding="utf-8")
    rte = nli / "rte"
    rte.mkdir()
    (rte / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n"
                                   "0\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons of Mass Destruction Found in Iraq.\tnot_entailment\n"
                                   "1\tHerceptin was approved to treat \"breast cancer\".\tHerceptin can be used to treat breast cancer.\tentailment\n",
                                   encoding="utf-8")
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tParis is the capital of France.\tParis is in France.\tentailment\n",
                                 encoding="utf-8")
    (rte / "test.tsv").write_text("index\tsentence1\tsentence2\n0\tA b.\tC d.\n", encoding="utf-8")
    fever = nli / "fever-symmetric"
    (fever / "symmetric_v0.1").mkdir(parents=True)
    (fever / "symmetric_v0.2").mkdir()
    v1 = [{"id": "1", "label": "REFUTES", "claim": "Telemundo is a English-language network .",
           "evidence_sentence": "Telemundo -LRB- Spanish -RRB- is a Spanish-language network ."},
          {"id": "2", "label": "SUPPORTS", "claim": "Colombiana is a French film .", "evidence_sentence": "Colombiana is a French film ."}]
    (fever / "symmetric_v0.1" / "fever_symmetric_full.jsonl").write_text("".join(json.dumps(r) + "\n" for r in v1), encoding="utf-8")
    v2 = lambda claim, ev, lab: {"id": "9", "claim": claim, "evidence": ev, "sentence1": ev, "sentence2": claim, "gold_label": lab, "label": lab}
    (fever / "symmetric_v0.2" / "fever_symmetric_dev.jsonl").write_text(
        json.dumps(v2("The Cretaceous ended .", "The Cretaceous ended with a mass extinction .", "SUPPORTS")) + "\n", encoding="utf-8")
    (fever / "symmetric_v0.2" / "fever_symmetric_test.jsonl").write_text(  # same claim as a v0.1 pair: kept out of training
        json.dumps(v2("Colombiana is a French film .", "Colombiana was directed by Olivier Megaton .", "SUPPORTS")) + "\n", encoding="utf-8")
    (nli / "climate-fever").mkdir()
    claim = {"claim_id": "0", "claim": "Global warming is driving polar bears toward extinction", "claim_label": "SUPPORTS",
             "evidences": [{"evidence_id": "a:1", "evidence_label": "SUPPORTS", "article": "a", "evidence": "Polar bears are endangered by warming.",
                            "entropy": 0.0, "votes": ["SUPPORTS"] * 5},
                           {"evidence_id": "b:2", "evidence_label": "NOT_ENOUGH_INFO", "article": "b", "evidence": "Bears are mammals.",
                            "entropy": 0.0, "votes": [None] * 5},
                           {"evidence_id": "c:3", "evidence_label": "REFUTES", "article": "c", "evidence": "Polar bear numbers are rising.",
                            "entropy": 0.0, "votes": [None] * 5}]}
    (nli / "climate-fever" / "climate-fever.jsonl").write_text(json.dumps(claim) + "\n", encoding="utf-8")
    web = root / "webnlg-casrel" / "WebNLG"
    web.mkdir(parents=True)
    for split, records in WEBNLG.items():
        (web / f"{split}_triples.json").write_text(json.dumps(records), encoding="utf-8")
    return root


@pytest.fixture()
def nli_data(tmp_path: Path) -> Path:
    return write_nli_fixture(tmp_path / "data")


def test_sick_splits_and_labels(nli_data: Path) -> None:
    train = load_sick(nli_data / "nli" / "sick", "TRAIN")
    assert [next(iter(p.target)) for p in train] == [NEU, ENT, ENT]
    assert [p.premise for p in load_sick(nli_data / "nli" / "sick", "trial")] == ["The boys are playing outdoors"]
    assert load_sick(nli_data / "nli" / "sick", "TEST")[1].target == frozenset({CON})  # CRLF stripped from the last column too


def test_sick_bad_row_names_line(nli_data: Path) -> None:
    path = nli_data / "nli" / "sick" / "SICK.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n7\tonly three\tcolumns", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"SICK.txt:\d+:"):
        load_sick(path.parent, "TRAIN")


def test_snli_rte_fever_climate(nli_data: Path) -> None:
    snli = load_snli(nli_data / "nli" / "snli", "test")
    assert [(p.hypothesis, p.target) for p in snli] == [("A person plays music .", frozenset({ENT})), ("The man is famous .", frozenset({NEU}))]
    rte = load_rte(nli_data / "nli" / "rte", "train")
    assert rte[0].target == NOT_ENTAILED and rte[0].two_way and rte[1].target == frozenset({ENT})
    assert '"breast cancer"' in rte[1].premise  # quotes are literal (QUOTE_NONE)
    with pytest.raises(DatasetNotFoundError, match="no labels"):
        load_rte(nli_data / "nli" / "rte", "test")
    fever = load_fever_symmetric(nli_data / "nli" / "fever-symmetric", ["symmetric_v0.1/fever_symmetric_full.jsonl"])
    assert fever[0].target == frozenset({CON}) and fever[0].premise == "Telemundo ( Spanish ) is a Spanish-language network ."
    assert fever[0].hypothesis.startswith("Telemundo is")  # premise = evidence, hypothesis = claim
    climate = load_climate_fever(nli_data / "nli" / "climate-fever")
    assert [p.target for p in climate] == [frozenset({ENT}), frozenset({NEU}), frozenset({CON})]


def test_snli_misaligned_files_fail(nli_data: Path) -> None:
    (nli_data / "nli" / "snli" / "labels.test").write_text("entailment\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line-aligned"):
        load_snli(nli_data / "nli" / "snli", "test")


def test_relation_words() -> None:
    assert relation_words("numberOfMembers") == "number of members"
    assert relation_words("3rd_runway_LengthFeet") == "3rd runway length feet"
    assert relation_words("ICAO_Location_Identifier") == "ICAO location identifier"
    assert relation_words("has to its north") == "has to its north"
    assert verbalise("Inception", "director", "Christopher Nolan") == "Inception director Christopher Nolan"


def test_webnlg_pairs_deterministic_balanced_and_never_gold() -> None:
    records = WEBNLG["train"]
    pairs = webnlg_pairs(records, seed=3)
    assert pairs == webnlg_pairs(records, seed=3)
    gold = {verbalise(*t) for r in records for t in r["triple_list"]}
    positives = [p for p in pairs if p.target == frozenset({ENT})]
    negatives = [p for p in pairs if p.target == NOT_ENTAILED]
    assert {p.hypothesis for p in positives} == gold and len(negatives) == len(positives)
    by_text = {r["text"]: {verbalise(*t) for t in r["triple_list"]} for r in records}
    assert all(p.hypothesis not in by_text[p.premise] for p in negatives)  # a corruption is never a gold triple of its sentence
    kinds = Counter(p.source.rsplit("/", 1)[1] for p in negatives)
    assert set(kinds) <= {"object-swap", "type-swap", "relation-swap", "reverse"} and len(kinds) >= 2


def test_training_keeps_held_out_pairs_out(nli_data: Path) -> None:
    parts = training_pairs(nli_data, seed=0)
    train_keys = {p.key for pairs in parts.values() for p in pairs}
    held = [p for ds in ("snli", "sick", "rte", "webnlg-pairs") for p in load_evaluation_set(ds, "test", nli_data)]
    assert held and not train_keys & {p.key for p in held}
    assert LEAKED[0] not in {p.premise for p in parts["sick"]}  # the SICK pair also in TEST was dropped
    assert {p.premise for p in parts["snli"]} == {"Two women are embracing ."}  # SNLI dev trains, test does not
    assert "Colombiana is a French film ." not in {p.hypothesis for p in parts["fever"]}  # its claim is in FEVER v0.2 test
    assert {p.premise for p in parts["webnlg"]} == {r["text"] for r in WEBNLG["train"]}
    dev = dev_pairs(nli_data)
    assert len(dev["sick-trial"]) == 1 and {p.premise for p in dev["webnlg-val"]} == {WEBNLG["val"][0]["text"]}


def test_selection_dev_is_seed_free_and_limited(nli_data: Path) -> None:
    full = dev_pairs(nli_data, seed=0)
    assert selection_dev(nli_data) == full  # the fixed dev seed, not a training seed
    limited = selection_dev(nli_data, limit=1)
    assert all(len(v) == min(1, len(full[k])) for k, v in limited.items())
    assert limited == selection_dev(nli_data, limit=1)


def test_rte_test_means_dev_file(nli_data: Path) -> None:
    assert [p.premise for p in load_evaluation_set("rte", "test", nli_data)] == ["Paris is the capital of France."]
    with pytest.raises(DatasetNotFoundError):
        load_evaluation_set("mnli", "test", nli_data)


def test_drop_overlap_normalises_case_and_space() -> None:
    a = NLIPair("A  Dog runs", "An animal", frozenset({ENT}), "x")
    b = NLIPair("a dog runs", "an  animal", frozenset({ENT}), "y")
    assert drop_overlap([a], [b]) == []


def test_sample_training_respects_cap_weights_and_small_parts() -> None:
    mk = lambda name, n: [NLIPair(f"{name} {i}", "h", frozenset({ENT}), name) for i in range(n)]
    parts = {"big": mk("big", 100), "other": mk("other", 100), "tiny": mk("tiny", 5)}
    sample = sample_training(parts, 60, seed=1, weights={"big": 0.5, "other": 0.25, "tiny": 0.25})
    counts = Counter(p.source for p in sample)
    assert len(sample) <= 60 and counts["tiny"] == 5 and counts["big"] > counts["other"] > 5
    assert sample == sample_training(parts, 60, seed=1, weights={"big": 0.5, "other": 0.25, "tiny": 0.25})
    assert len(sample_training(parts, None)) == 205


def test_webnlg_extra_negatives_keep_the_default_and_prefer_kinds() -> None:
    records = WEBNLG["train"]
    base = webnlg_pairs(records, seed=3)
    assert webnlg_pairs(records, seed=3, negatives=1, prefer=()) == base
    more = webnlg_pairs(records, seed=3, negatives=2, prefer=("object-swap", "reverse"))
    negatives = [p for p in more if p.target == NOT_ENTAILED]
    assert len(negatives) > len([p for p in base if p.target == NOT_ENTAILED])
    assert len({(p.premise, p.hypothesis) for p in negatives}) == len(negatives)
    kinds = Counter(p.source.rsplit("/", 1)[1] for p in negatives)
    assert kinds["object-swap"] + kinds["reverse"] > kinds["type-swap"] + kinds["relation-swap"]
    with pytest.raises(ValueError):
        webnlg_pairs(records, negatives=0)
