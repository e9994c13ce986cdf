"""LangChain ``Document``s into ingest, so LangChain's loaders (PDF, HTML, web pages...) feed the graph.

``from_langchain`` turns each LangChain ``Document`` (``page_content`` + ``metadata["source"]``) into
an ingest :class:`~qa_system.ingest.documents.Document`; ``ingest_langchain_documents`` hands them to
an :class:`~qa_system.ingest.ingester.Ingester`, which extracts, resolves and writes facts as
``extracted`` with the document id in their provenance (so ``qa-system forget DOCUMENT_ID`` takes
them back), exactly as ``qa-system ingest`` does for files.

Document ids: the LangChain document's own ``id`` (or ``metadata["id"]``) when it has one; else the
stem of its ``source`` and a hash of its text, the scheme ``qa-system ingest`` uses for files, so a
``TextLoader`` over ``notes.md`` and ``qa-system ingest notes.md`` name the same document (ingesting
both adds nothing twice). Chunks of one source (PDF pages, splitter chunks) differ in text, hence in
id. A text longer than ``PART_CHARS`` is handed out in parts, as files are.

Needs only ``langchain-core`` (a default dependency); the loaders come from ``langchain-community``
(``pip install 'qa-system[langchain]'``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from qa_system.errors import InputError
from qa_system.ingest.documents import MAX_ID_CHARS, PART_CHARS, Document, _parts, _safe_stem

DEFAULT_SOURCE = "langchain"


def source_of(document: Any) -> str:
    """Where a LangChain document came from: ``metadata["source"]`` (with its page, when a PDF loader set one)."""

    metadata = getattr(document, "metadata", None) or {}
    source = str(metadata.get("source") or metadata.get("file_path") or metadata.get("url") or DEFAULT_SOURCE)
    page = metadata.get("page")
    return f"{source}#page={page}" if isinstance(page, int) and not isinstance(page, bool) else source


def document_id(document: Any) -> str:
    """The ingest id of a LangChain document (see the module docstring)."""

    metadata = getattr(document, "metadata", None) or {}
    explicit = getattr(document, "id", None) or metadata.get("id")
    if isinstance(explicit, int) and not isinstance(explicit, bool):
        explicit = str(explicit)
    if isinstance(explicit, str) and explicit.strip():
        if len(explicit.strip()) > MAX_ID_CHARS:
            raise InputError(f"LangChain document id {explicit[:40]!r}... is longer than {MAX_ID_CHARS} characters")
        return explicit.strip()
    raw_source = str(metadata.get("source") or metadata.get("file_path") or metadata.get("url") or DEFAULT_SOURCE)
    digest = hashlib.sha1(_text(document).encode("utf-8")).hexdigest()[:10]
    return f"{_safe_stem(Path(raw_source.rstrip('/')))}-{digest}"


def _text(document: Any) -> str:
    text = getattr(document, "page_content", None)
    if not isinstance(text, str):
        raise InputError(f"expected a LangChain Document with page_content text; got {type(document).__name__}")
    return text


def from_langchain(documents: Iterable[Any]) -> Iterator[Document]:
    """Ingest documents of LangChain ``Document``s, lazily; one without text is an ``InputError``
    naming its source (nothing after it is handed out)."""

    for number, item in enumerate(documents):
        text = _text(item)
        source = source_of(item)
        if not text.strip():
            raise InputError(f"LangChain document {number} ({source}) has no text to ingest")
        if "\x00" in text:
            raise InputError(f"LangChain document {number} ({source}) contains a NUL byte; expected text")
        doc_id = document_id(item)
        if len(text) <= PART_CHARS:
            yield Document(id=doc_id, text=text, source=source)
        else:
            yield from _parts(doc_id, iter([text]), source)


def ingest_langchain_documents(ingester: Any, documents: Iterable[Any], *, progress: Any = None) -> Any:
    """Ingest LangChain documents with ``ingester`` (an ``Ingester``); returns its ``IngestSummary``."""

    return ingester.ingest(list(from_langchain(documents)), progress=progress)


def preview_langchain_documents(ingester: Any, documents: Iterable[Any]) -> Any:
    """What ``ingest_langchain_documents`` would write (an ``IngestPreview``); writes nothing."""

    return ingester.preview(list(from_langchain(documents)))
