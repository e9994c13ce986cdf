"""Reading ingest inputs (.txt/.md/.jsonl and bad files) and splitting them into exact-offset sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qa_system.ingest.documents as D
from qa_system.errors import InputError
from qa_system.ingest.documents import (
    Document,
    iter_documents,
    read_documents,
    split_sentences,
)
from tests.ingest_support import FIXTURES


# -- reading --------------------------------------------------------------------------------------------
def test_text_and_markdown_files_become_one_document_with_a_stable_content_id(tmp_path: Path):
    txt = tmp_path / "notes.txt"
    txt.write_text("Alan Bean was born in Wheeler, Texas.\n", encoding="utf-8")
    first, md = read_documents([txt, FIXTURES / "apollo.md"])
    assert first.text == "Alan Bean was born in Wheeler, Texas.\n" and first.source == str(txt)
    assert first.id.startswith("notes-") and len(first.id) == len("notes-") + 10
    assert read_documents([txt])[0].id == first.id  # same content, same id
    txt.write_text("Alan Bean was born in Texas.\n", encoding="utf-8")
    assert read_documents([txt])[0].id != first.id  # edited content is a new document
    assert md.id.startswith("apollo-") and md.text.startswith("# Apollo 12")


def test_jsonl_one_document_per_line_with_its_id():
    docs = read_documents([FIXTURES / "films.jsonl"])
    assert [d.id for d in docs] == ["films-1", "films-2", "films-3"]
    assert docs[2].text == "Titanic is rumoured to be filmed in Halifax."


def test_utf8_bom_and_crlf_are_accepted(tmp_path: Path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": 7, "text": "Caf\u00e9 Nero is in London."}).encode() + b"\r\n")
    (doc,) = read_documents([path])
    assert doc.id == "7" and doc.text == "Café Nero is in London."


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("report.pdf", b"%PDF-1.4", "unsupported file type '.pdf'"),
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n\t\n", "empty file"),
        ("image.txt", b"GIF89a\x00\x01\x02", "looks binary (NUL byte at offset 6)"),
        ("latin1.txt", "Caf\u00e9 au lait".encode("latin-1"), "not UTF-8 text (invalid byte at offset 3)"),
        ("empty.jsonl", b"\n\n", "empty file"),
    ],
)
def test_bad_files_are_refused_with_the_file_named(tmp_path: Path, name: str, content: bytes, message: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_documents([path])
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        read_documents([tmp_path / "nope.txt"])


def test_oversized_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(D, "MAX_FILE_BYTES", 10)
    path = tmp_path / "big.txt"
    path.write_text("x" * 11, encoding="utf-8")
    with pytest.raises(InputError, match="limit per file"):
        read_documents([path])


BAD_JSONL = "\n".join(
    [
        json.dumps({"id": "a", "text": "Alan Bean was born in Wheeler."}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "", "text": "no id"}),
        json.dumps({"id": "c"}),
        json.dumps({"id": "a", "text": "same id again"}),
        json.dumps({"id": "b", "text": "Pete Conrad was born in Philadelphia."}),
    ]
)


def test_bad_jsonl_line_is_an_error_naming_file_and_line(tmp_path: Path):
    path = tmp_path / "docs.jsonl"
    path.write_text(BAD_JSONL, encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_documents([path])
    assert f"{path}:2: not JSON" in str(err.value) and "4 more bad line(s)" in str(err.value)


def test_bad_jsonl_lines_are_collected_and_the_rest_is_read(tmp_path: Path):
    path = tmp_path / "docs.jsonl"
    path.write_text(BAD_JSONL, encoding="utf-8")
    other = tmp_path / "other.bin"
    other.write_bytes(b"\x00")
    problems: list[str] = []
    docs = read_documents([other, path], errors=problems)
    assert [d.id for d in docs] == ["a", "b"]
    assert [p.split(": ", 1)[0] for p in problems] == [str(other), *(f"{path}:{n}" for n in (2, 3, 4, 5, 6))]
    assert "expected an object" in problems[2] and 'empty "id"' in problems[3] and 'empty "text"' in problems[4]
    assert "duplicate id 'a' (first on line 1)" in problems[5]


def test_a_long_document_comes_in_parts_cut_at_paragraphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(D, "PART_CHARS", 100)
    monkeypatch.setattr(D, "_BLOCK_BYTES", 37)  # blocks smaller than parts: exercise the streaming path
    paragraphs = [f"Paragraph {i} says that Alan Bean was born in Wheeler, Texas." for i in range(10)]
    text = "\n\n".join(paragraphs) + "\n"
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    parts = list(iter_documents([path]))
    assert len(parts) > 3 and all(len(p.text) <= 100 for p in parts)
    assert "".join(p.text for p in parts) == text
    assert [p.offset for p in parts] == [sum(len(q.text) for q in parts[:i]) for i in range(len(parts))]
    base = parts[0].id.rsplit("#", 1)[0]
    assert [p.id for p in parts] == [f"{base}#{i}" for i in range(1, len(parts) + 1)]
    assert all(p.text.endswith("\n") for p in parts)  # cut after a paragraph break, never mid-sentence


# -- sentences ------------------------------------------------------------------------------------------
def _split(text: str) -> list[str]:
    return [s.text for s in split_sentences(Document("d", text, "test"))]


def test_sentences_of_the_demo_markdown():
    (doc,) = read_documents([FIXTURES / "apollo.md"])
    sentences = split_sentences(doc)
    assert [s.text for s in sentences] == [
        "Apollo 12 and its crew",
        "Alan Bean was born in Wheeler, Texas.",
        "Alan Bean was a crew member of Apollo 12.",
        "Apollo 12 was operated by NASA.",
        "Pete Conrad was the commander of Apollo 12.",
        "NASA is headquartered in Washington, D.C.",
    ]
    assert all(doc.text[s.start : s.end] == s.text and s.document_id == doc.id for s in sentences)


def test_abbreviations_do_not_end_sentences():
    assert _split("Dr. Smith moved to the U.S. in 1950. A.C. Cesena has 23900 members!") == [
        "Dr. Smith moved to the U.S. in 1950.",
        "A.C. Cesena has 23900 members!",
    ]


def test_markdown_structure_headings_lists_quotes_code_rules():
    text = "## Crew ##\n* Pete Conrad\n* Alan Bean\n2) Richard Gordon\n\n> Quoted line.\n\n```\nx = 1. Not prose.\n```\n---\nEnd."
    assert _split(text) == ["Crew", "Pete Conrad", "Alan Bean", "Richard Gordon", "Quoted line.", "End."]


def test_wrapped_lines_of_a_paragraph_stay_one_sentence():
    assert _split("Alan Bean was a crew member\nof Apollo 12.\n\nNew paragraph") == [
        "Alan Bean was a crew member\nof Apollo 12.",
        "New paragraph",
    ]


def test_an_over_long_sentence_is_cut_into_windows_not_truncated(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(D, "MAX_SENTENCE_CHARS", 40)
    text = "Alan Bean, Pete Conrad, Richard Gordon, Charles Duke, John Young and Ken Mattingly flew."
    pieces = split_sentences(Document("d", text, "t"))
    assert len(pieces) > 1 and all(len(p.text) <= 40 for p in pieces)
    assert " ".join(p.text for p in pieces) == text  # every word kept, in order


def test_empty_and_punctuation_only_text_has_no_sentences():
    assert _split("") == [] and _split("...\n\n- \n#\n") == []


_ALPHABET = st.sampled_from(list("ab C.!?\n\n#->*`1) \t,;\r") + ["Dr.", "U.S.", "```", "\u00e9", "  "])


@settings(max_examples=200, deadline=None)
@given(st.lists(_ALPHABET, max_size=80).map("".join))
def test_property_every_sentence_is_an_exact_ordered_slice(text: str):
    sentences = split_sentences(Document("d", text, "t"))
    previous_end = 0
    for s in sentences:
        assert text[s.start : s.end] == s.text
        assert s.text == s.text.strip() and s.text
        assert s.start >= previous_end  # in order, never overlapping
        previous_end = s.end
