"""Which extractors ingest can use, by name: the registry behind ``--extractor qidn|cascade``.

Why here and not beside the ``Extractor`` protocol in ``models.extraction``: the registry imports every
extractor model, and the models import the protocol, so keeping them apart keeps ``models`` free of cycles.
"""

from __future__ import annotations

from pathlib import Path

from qa_system.models.extraction import Extractor

EXTRACTOR_KINDS = ("qidn", "cascade")


def load_extractor(kind: str = "qidn", checkpoint: Path | None = None) -> Extractor:
    """Load a trained extractor: the shipped checkpoint of ``kind`` unless a folder is given."""

    if kind == "qidn":
        from qa_system.models.qidn import load_qidn_extractor

        return load_qidn_extractor(checkpoint)
    if kind == "cascade":
        from qa_system.models.cascade import load_cascade_extractor

        return load_cascade_extractor(checkpoint)
    from qa_system.errors import InputError

    raise InputError(f"unknown extractor {kind!r}; choose one of {', '.join(EXTRACTOR_KINDS)}")
