"""Reading knowledge graphs in the FB15k-237 / WN18RR file layout.

Layout of a dataset folder (plain or ``.gz`` files; ``valid`` is accepted for ``dev``):
``train.tsv``, ``dev.tsv``, ``test.tsv`` (``head<TAB>relation<TAB>tail``), optional
``entity2text.txt`` (``id<TAB>name``), ``relation2text.txt`` (``relation<TAB>words``) and
``entity_details.tsv`` (ours: ``mid wikidata_id type aliases description wikipedia_url`` with header).

Why one reader: the importer, HittER training and evaluation must see exactly the same triples
and splits. Malformed lines fail with file and line number before anything is written.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from qa_system.errors import DataFormatError, DatasetNotFoundError

SPLITS = ("train", "dev", "test")
_SPLIT_ALIASES = {"dev": ("dev", "valid")}
DEMO_NAMES = ("demo", "fb15k-237", "fb15k237")

Triple = tuple[str, str, str]


@dataclass
class KGDataset:
    """A KG read from disk: triples per split, names and descriptions."""

    name: str
    path: Path
    splits: dict[str, list[Triple]]
    entity_names: dict[str, str] = field(default_factory=dict)
    relation_texts: dict[str, str] = field(default_factory=dict)
    details: dict[str, dict[str, str]] = field(default_factory=dict)

    def all_triples(self) -> Iterator[tuple[str, Triple]]:
        for split in SPLITS:
            for triple in self.splits.get(split, []):
                yield split, triple

    def entity_ids(self) -> list[str]:
        """Entities in order of first appearance (head, then tail) over train, dev, test (LibKGE order)."""

        seen: dict[str, None] = {}
        for _split, (head, _rel, tail) in self.all_triples():
            seen.setdefault(head)
            seen.setdefault(tail)
        return list(seen)

    def relation_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for _split, (_head, rel, _tail) in self.all_triples():
            seen.setdefault(rel)
        return list(seen)


def demo_path() -> Path:
    """Folder of the FB15k-237 demo graph shipped inside the package."""

    return Path(str(resources.files("qa_system") / "data" / "fb15k-237"))


def default_data_dir() -> Path | None:
    """``$QA_DATA_DIR``, else ``../shared/data`` next to the working directory when present."""

    env = os.environ.get("QA_DATA_DIR")
    if env:
        return Path(env)
    for candidate in (Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def resolve_dataset(name_or_path: str, data_dir: Path | None = None) -> Path:
    """Map ``demo``/``fb15k-237`` to the shipped folder, ``wn18rr`` to ``DATA_DIR/wn18rr``, else a path."""

    if name_or_path.lower() in DEMO_NAMES:
        return demo_path()
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    base = data_dir or default_data_dir()
    if base is not None and (base / name_or_path).is_dir():
        return base / name_or_path
    known = "demo, fb15k-237, wn18rr (from QA_DATA_DIR), or a folder path"
    raise DatasetNotFoundError(f"unknown dataset or missing folder {name_or_path!r}; expected {known}")


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=str(path)) from e
    except (OSError, EOFError) as e:
        raise DataFormatError(f"cannot read file: {e}", path=str(path)) from e


def read_triples(path: Path) -> list[Triple]:
    """Read ``head<TAB>relation<TAB>tail`` lines; blank lines are skipped, anything else must have 3 fields."""

    triples: list[Triple] = []
    for number, line in _iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise DataFormatError(
                f"expected 'head<TAB>relation<TAB>tail', got {len(parts)} field(s): {line[:80]!r}",
                path=str(path),
                line=number,
            )
        triples.append((parts[0].strip(), parts[1].strip(), parts[2].strip()))
    return triples


def _read_pairs(path: Path) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for number, line in _iter_lines(path):
        if not line.strip():
            continue
        key, sep, value = line.partition("\t")
        if not sep or not key.strip():
            raise DataFormatError(f"expected 'id<TAB>text', got {line[:80]!r}", path=str(path), line=number)
        pairs[key.strip()] = " ".join(value.split())
    return pairs


def _read_details(path: Path) -> dict[str, dict[str, str]]:
    lines = _iter_lines(path)
    try:
        _, header_line = next(lines)
    except StopIteration:
        return {}
    header = header_line.split("\t")
    if "mid" not in header:
        raise DataFormatError("header must name a 'mid' column", path=str(path), line=1)
    details: dict[str, dict[str, str]] = {}
    for number, line in lines:
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(header):
            raise DataFormatError(
                f"expected {len(header)} fields, got {len(parts)}", path=str(path), line=number
            )
        row = dict(zip(header, parts))
        details[row["mid"]] = row
    return details


def load_kg(name_or_path: str, data_dir: Path | None = None) -> KGDataset:
    """Load a dataset by name or folder; every split file present is read, ``train`` is required."""

    folder = resolve_dataset(name_or_path, data_dir)
    splits: dict[str, list[Triple]] = {}
    for split in SPLITS:
        for stem in _SPLIT_ALIASES.get(split, (split,)):
            path = _find(folder, f"{stem}.tsv") or _find(folder, f"{stem}.txt")
            if path is not None:
                splits[split] = read_triples(path)
                break
    if "train" not in splits:
        raise DatasetNotFoundError(f"{folder}: no train.tsv (or train.txt, .gz) found")
    names_path = _find(folder, "entity2text.txt")
    relations_path = _find(folder, "relation2text.txt")
    details_path = _find(folder, "entity_details.tsv")
    name = "fb15k-237" if folder == demo_path() else folder.name
    return KGDataset(
        name=name,
        path=folder,
        splits=splits,
        entity_names=_read_pairs(names_path) if names_path else {},
        relation_texts=_read_pairs(relations_path) if relations_path else {},
        details=_read_details(details_path) if details_path else {},
    )
