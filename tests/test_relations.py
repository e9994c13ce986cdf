"""``readable_relation`` spells a relation id of any vocabulary as words (Freebase paths, Neo4j types,
camelCase properties, RDF IRIs): what people and the entailment model read for imported graphs."""

from __future__ import annotations

import pytest

from qa_system.relations import readable_relation


@pytest.mark.parametrize(
    ("relation", "words"),
    [
        ("/film/film/directed_by", "directed by"),
        ("/people/person/place_of_birth", "place of birth"),
        ("/award/award_nominee/award_nominations./award/award_nomination/award", "award nominations award"),
        ("leaderName", "leader name"),
        ("firstAppearanceInFilm", "first appearance in film"),
        ("ACTED_IN", "acted in"),
        ("DIRECTED", "directed"),
        ("born", "born"),
        ("http://schema.org/birthDate", "birth date"),
        ("https://schema.org/birthDate", "birth date"),
        ("http://www.w3.org/2000/01/rdf-schema#label", "label"),
        ("http://example.org/vocab#hasPart", "has part"),
        ("http://example.org/vocab/", "vocab"),
        ("foaf:knows", "knows"),
    ],
)
def test_readable_relation_for_any_vocabulary(relation: str, words: str) -> None:
    assert readable_relation(relation) == words


def test_readable_relation_never_empty() -> None:
    assert readable_relation("/") == "/"
    assert readable_relation("__") == "__"
