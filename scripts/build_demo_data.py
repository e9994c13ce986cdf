"""Build the demo graph shipped inside the package from ``../shared/data/fb15k-237``.

Why a script: the shipped files must be reproducible from the public sources; this is the one
place that knows how the shared folder is laid out. The output keeps the FB15k-237 file layout
(``train.tsv``, ``dev.tsv``, ``test.tsv``, ``entity2text.txt``, ``relation2text.txt``), gzipped, plus
``entity_details.tsv.gz`` (Wikidata id, aliases, description, Wikipedia URL, derived type).

    python scripts/build_demo_data.py ../shared/data/fb15k-237 qa_system/data/fb15k-237
"""

from __future__ import annotations

import collections
import csv
import gzip
import json
import sys
from pathlib import Path


def _read_triples(path: Path) -> list[tuple[str, str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return [tuple(line.rstrip("\r\n").split("\t")) for line in handle if line.strip()]  # type: ignore[misc]


def _write_gz(path: Path, lines: list[str]) -> None:
    # mtime=0 keeps the archive byte-identical across rebuilds.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write("".join(line + "\n" for line in lines).encode("utf-8"))


def _clean(text: str) -> str:
    return " ".join(str(text).split())


# Relation domains that say little about what an entity is; used only when nothing better exists.
_GENERIC_TYPES = ("/common/", "/award/award_", "/base/", "/user/", "/dataworld/", "/freebase/")


def _pick_type(counts: collections.Counter) -> str:
    ranked = [t for t, _ in counts.most_common()]
    specific = [t for t in ranked if not t.startswith(_GENERIC_TYPES)]
    return (specific or ranked or [""])[0]


def main(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": _read_triples(source / "train.tsv.gz"),
        "dev": _read_triples(source / "dev.tsv"),
        "test": _read_triples(source / "test.tsv"),
    }
    for split, triples in splits.items():
        _write_gz(target / f"{split}.tsv.gz", ["\t".join(t) for t in triples])
    entities = [line.strip() for line in (source / "entities.txt").read_text().splitlines() if line.strip()]
    wanted = set(entities)
    names = {}
    for line in (source / "entity2text.txt").read_text(encoding="utf-8").splitlines():
        mid, _, name = line.partition("\t")
        if mid in wanted:
            names[mid] = _clean(name)
    _write_gz(target / "entity2text.txt.gz", [f"{mid}\t{names[mid]}" for mid in entities])
    relations = (source / "relation2text.txt").read_text(encoding="utf-8").splitlines()
    _write_gz(target / "relation2text.txt.gz", [line.rstrip("\r") for line in relations if line.strip()])

    # Entity type = the most frequent "/domain/type" of the relations the entity is subject of
    # (FB15k-237 ships no type file; Freebase relation paths start with the subject's type).
    type_counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for head, relation, _tail in splits["train"]:
        parts = relation.strip("/").split("/")
        if len(parts) >= 2:
            type_counts[head]["/" + "/".join(parts[:2])] += 1
    wikidata = json.loads((source / "descriptions" / "entity2wikidata.json").read_text(encoding="utf-8"))
    details = {}
    with open(source / "descriptions" / "fb15k237_wikidata_descriptions.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            details[row["mid"]] = row
    rows = ["mid\twikidata_id\ttype\taliases\tdescription\twikipedia_url"]
    for mid in entities:
        row = details.get(mid, {})
        record = wikidata.get(mid, {})
        aliases = [_clean(a) for a in [record.get("label", "")] + list(record.get("alternatives", []))]
        aliases = [a for a in dict.fromkeys(aliases) if a and a.lower() != names[mid].lower() and "|" not in a]
        entity_type = _pick_type(type_counts[mid])
        rows.append(
            "\t".join(
                [
                    mid,
                    _clean(row.get("wikidata_id", "")),
                    entity_type,
                    "|".join(aliases),
                    _clean(row.get("description", "")),
                    _clean(row.get("wikipedia_url", "")),
                ]
            )
        )
    _write_gz(target / "entity_details.tsv.gz", rows)
    (target / "SOURCE.md").write_text(
        "FB15k-237 demo graph (Toutanova & Chen 2015; names from KG-BERT, Apache-2.0; Wikidata labels,\n"
        "aliases, descriptions and Wikipedia URLs from villmow/datasets_knowledge_embedding, MIT, and\n"
        "TriadKGC; Wikidata content CC0). Built by `python scripts/build_demo_data.py "
        "../shared/data/fb15k-237 qa_system/data/fb15k-237`.\n"
        f"train {len(splits['train'])}, dev {len(splits['dev'])}, test {len(splits['test'])} triples; "
        f"{len(entities)} entities; {len(relations)} relations.\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
