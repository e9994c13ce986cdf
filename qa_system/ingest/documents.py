"""Documents for ingest: reading ``.txt``/``.md``/``.jsonl`` files and splitting them into sentences.

Why its own module: reading and splitting are pure text work with their own failure modes (bad
encodings, binary files, malformed JSON lines, huge files); ``qa_system.ingest.ingester`` only orchestrates.

Guarantees:
- every ``Sentence`` is an exact slice of its document (``document.text[s.start:s.end] == s.text``),
  so provenance offsets always point at the words the extractor saw;
- files are read in blocks with a strict incremental UTF-8 decoder: memory stays bounded by
  ``PART_CHARS`` however large the file, and a file is checked completely (encoding, NUL bytes,
  emptiness) before any of its parts is handed out, so a bad file yields nothing at all;
- a document longer than ``PART_CHARS`` is handed out in parts cut at paragraph breaks (ids
  ``<id>#1``, ``<id>#2``..., ``Document.offset`` is where the part starts in the whole text);
- a sentence longer than ``MAX_SENTENCE_CHARS`` is cut into windows at word boundaries (logged),
  never silently truncated.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_system.errors import InputError

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".jsonl")
MAX_FILE_BYTES = 100 * 1024 * 1024  # one input file; larger ones are refused with the size in the message
MAX_LINE_BYTES = 10 * 1024 * 1024  # one .jsonl record
MAX_ID_CHARS = 200
PART_CHARS = 1_000_000  # documents longer than this are handed out in parts (bounded memory)
MAX_SENTENCE_CHARS = 1000  # longer "sentences" (tables, run-on lists) are cut into windows
_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Document:
    """One text to ingest. ``source`` is the path or upload name; ``offset`` is where this text
    starts in the source document (non-zero only for the parts of a document split for size)."""

    id: str
    text: str
    source: str
    offset: int = 0


@dataclass(frozen=True)
class Sentence:
    """A sentence with its character offsets ``[start, end)`` in its document's text."""

    document_id: str
    text: str
    start: int
    end: int


# -- reading ----------------------------------------------------------------------------------------
def read_documents(paths: Sequence[Path], *, errors: list[str] | None = None) -> list[Document]:
    """All documents of these files, in order. See ``iter_documents``."""

    return list(iter_documents(paths, errors=errors))


def iter_documents(paths: Sequence[Path], *, errors: list[str] | None = None) -> Iterator[Document]:
    """Documents of ``.txt``/``.md`` files (one each, id = file stem + content hash) and ``.jsonl``
    files (one ``{"id", "text"}`` object per line), lazily.

    Bad input raises ``InputError`` naming the file (and line). With an ``errors`` list, problems
    are appended to it instead and the rest is read: a bad file yields nothing, a bad ``.jsonl``
    line is skipped and the other lines are read.
    """

    for raw_path in paths:
        path = Path(raw_path)
        try:
            if path.suffix.lower() == ".jsonl":
                yield from _jsonl_documents(path, errors)
            else:
                yield from _text_documents(path)
        except InputError as e:
            if errors is None:
                raise
            errors.append(str(e))


def _check_file(path: Path) -> int:
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {size / 2**20:.1f} MiB is over the {MAX_FILE_BYTES // 2**20} MiB limit per file; split it")
    return size


def _decoded_blocks(path: Path) -> Iterator[str]:
    """The file's text in blocks; ``InputError`` on NUL bytes (binary) or invalid UTF-8 (with the byte offset)."""

    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    done = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(_BLOCK_BYTES)
            final = not block
            nul = block.find(b"\x00")
            if nul >= 0:
                raise InputError(f"{path}: looks binary (NUL byte at offset {done + nul}); expected UTF-8 text")
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as e:
                raise InputError(f"{path}: not UTF-8 text (invalid byte at offset {done + e.start})") from e
            done += len(block)
            if text:
                yield text
            if final:
                return


def _text_documents(path: Path) -> Iterator[Document]:
    _check_file(path)
    digest = hashlib.sha1()
    chars = 0
    visible = False
    for text in _decoded_blocks(path):  # first pass: validate everything before yielding anything
        digest.update(text.encode("utf-8"))
        chars += len(text)
        visible = visible or bool(text.strip())
    if not visible:
        raise InputError(f"{path}: empty file (no text to ingest)")
    base_id = f"{_safe_stem(path)}-{digest.hexdigest()[:10]}"
    if chars <= PART_CHARS:
        yield Document(id=base_id, text="".join(_decoded_blocks(path)), source=str(path))
        return
    yield from _parts(base_id, _decoded_blocks(path), str(path))


def _safe_stem(path: Path) -> str:
    stem = re.sub(r"[^\w.-]+", "_", path.stem).strip("_") or "document"
    return stem[:80]


def _parts(base_id: str, blocks: Iterator[str], source: str) -> Iterator[Document]:
    """Cut a long text into parts of at most ``PART_CHARS``, at a paragraph (else line, else word) break."""

    buffer, offset, number = "", 0, 0
    for block in _with_end(blocks):
        if block is not None:
            buffer += block
        while len(buffer) > PART_CHARS or (block is None and buffer):
            cut = len(buffer) if len(buffer) <= PART_CHARS else _cut_point(buffer, PART_CHARS)
            number += 1
            if buffer[:cut].strip():
                yield Document(id=f"{base_id}#{number}", text=buffer[:cut], source=source, offset=offset)
            offset += cut
            buffer = buffer[cut:]


def _with_end(blocks: Iterator[str]) -> Iterator[str | None]:
    yield from blocks
    yield None


def _cut_point(text: str, limit: int) -> int:
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, limit // 2, limit)
        if at > 0:
            return at + len(separator)
    return limit


def _jsonl_documents(path: Path, errors: list[str] | None) -> Iterator[Document]:
    _check_file(path)
    problems: list[str] = []
    documents: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    text_lines = _decoded_lines(path)
    for line_no, line in text_lines:
        if not line.strip():
            continue
        try:
            doc_id, text = _parse_record(line)
        except ValueError as e:
            problems.append(f"{path}:{line_no}: {e}")
            continue
        if doc_id in seen:
            problems.append(f"{path}:{line_no}: duplicate id {doc_id!r} (first on line {seen[doc_id]})")
            continue
        seen[doc_id] = line_no
        documents.append((line_no, doc_id, text))
    if problems and errors is None:
        raise InputError(problems[0] + (f" (and {len(problems) - 1} more bad line(s))" if len(problems) > 1 else ""))
    if not documents and not problems:
        raise InputError(f"{path}: empty file (no JSON lines)")
    if errors is not None:
        errors.extend(problems)
    for _line_no, doc_id, text in documents:
        if len(text) <= PART_CHARS:
            yield Document(id=doc_id, text=text, source=f"{path}")
        else:
            yield from _parts(doc_id, iter([text]), str(path))


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Lines of a UTF-8 file (validated as in ``_decoded_blocks``), each at most ``MAX_LINE_BYTES``."""

    pending, line_no = "", 0
    for block in _decoded_blocks(path):
        pending += block
        *complete, pending = pending.split("\n")
        for line in complete:
            line_no += 1
            yield line_no, line
        if len(pending) > MAX_LINE_BYTES:
            raise InputError(f"{path}:{line_no + 1}: line longer than {MAX_LINE_BYTES // 2**20} MiB")
    if pending:
        yield line_no + 1, pending


def _parse_record(line: str) -> tuple[str, str]:
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"line longer than {MAX_LINE_BYTES // 2**20} MiB")
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg} at column {e.colno})") from e
    if not isinstance(record, dict):
        raise ValueError(f'expected an object {{"id": ..., "text": ...}}, got {type(record).__name__}')  # noqa: TRY004 - reported as a bad line
    doc_id, text = record.get("id"), record.get("text")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise ValueError('missing or empty "id" (a string)')
    if len(doc_id) > MAX_ID_CHARS:
        raise ValueError(f'"id" longer than {MAX_ID_CHARS} characters')
    if not isinstance(text, str) or not text.strip():
        raise ValueError('missing or empty "text" (a string)')
    return doc_id.strip(), text


# -- sentence splitting -------------------------------------------------------------------------------
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+")
_QUOTE = re.compile(r"^[ \t]*>[ \t]?")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_RULE = re.compile(r"^[ \t]*([-*_=])(?:[ \t]*\1){2,}[ \t]*$")
_TRAILING_HASHES = re.compile(r"[ \t]+#+[ \t]*$")

_nlp_lock = threading.Lock()
_nlp: Any = None


def _sentencizer() -> Any:
    """spaCy's rule-based sentencizer on a blank English tokenizer (knows "Dr.", "U.S.", "A.C.")."""

    global _nlp
    with _nlp_lock:
        if _nlp is None:
            import spacy

            nlp = spacy.blank("en")
            nlp.add_pipe("sentencizer")
            _nlp = nlp
        return _nlp


def _blocks(text: str) -> list[tuple[int, int]]:
    """Paragraph-like blocks ``[start, end)``: blank lines end a block; a markdown heading or list
    item is a block of its own (its marker left out); fenced code and horizontal rules are skipped."""

    blocks: list[tuple[int, int]] = []
    start: int | None = None
    end = 0
    in_fence = False
    pos = 0
    for line in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(line)
        body = line.rstrip("\r\n")
        line_end = line_start + len(body)
        if _FENCE.match(body):
            in_fence = not in_fence
            if start is not None:
                blocks.append((start, end))
            start = None
            continue
        if in_fence or not body.strip() or _RULE.match(body):
            if start is not None:
                blocks.append((start, end))
            start = None
            continue
        marker = _HEADING.match(body) or _LIST_ITEM.match(body) or _QUOTE.match(body)
        content_start = line_start + (marker.end() if marker else 0)
        if _HEADING.match(body):
            line_end = line_start + len(_TRAILING_HASHES.sub("", body))
        if marker is not None and start is not None:
            blocks.append((start, end))
            start = None
        if start is None:
            start = content_start
        end = line_end
        if _HEADING.match(body):  # a heading never runs on into the next line
            blocks.append((start, end))
            start = None
    if start is not None:
        blocks.append((start, end))
    return [(s, e) for s, e in blocks if e > s]


def split_sentences(document: Document) -> list[Sentence]:
    """Sentences of a document with exact character offsets (see the module docstring)."""

    text = document.text
    blocks = _blocks(text)
    sentences: list[Sentence] = []
    nlp = _sentencizer()
    for (block_start, block_end), doc in zip(blocks, nlp.pipe(text[s:e] for s, e in blocks)):
        for span in doc.sents:
            start, end = block_start + span.start_char, block_start + span.end_char
            for s, e in _windows(text, start, min(end, block_end)):
                s, e = _strip(text, s, e)
                if e > s and any(ch.isalnum() for ch in text[s:e]):
                    sentences.append(Sentence(document.id, text[s:e], s, e))
    return sentences


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _windows(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into pieces of at most ``MAX_SENTENCE_CHARS`` at word boundaries."""

    if end - start <= MAX_SENTENCE_CHARS:
        return [(start, end)]
    log.warning("a %d-character sentence at offset %d is cut into windows of <= %d characters", end - start, start, MAX_SENTENCE_CHARS)
    pieces = []
    while end - start > MAX_SENTENCE_CHARS:
        limit = start + MAX_SENTENCE_CHARS
        cut = max(text.rfind(sep, start + MAX_SENTENCE_CHARS // 2, limit) for sep in ("; ", ", ", " "))
        cut = cut + 1 if cut > start else limit
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces
