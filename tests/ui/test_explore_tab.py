"""The Explore page's entity card: values from data or users are rendered as text, never markup."""

from __future__ import annotations

from qa_system.types import Entity
from ui.explore_tab import card_html


def test_card_escapes_every_value() -> None:
    entity = Entity(
        id="/m/x<y>",
        name="<script>alert(1)</script>",
        description='"><img src=x onerror=alert(1)>',
        aliases=("<b>bold</b>",),
        url="javascript:alert(1)",
        image_url='https://img.example/a.png" onerror="alert(1)',
    )
    html = card_html(entity)
    assert "<script>" not in html and "<b>bold</b>" not in html and "<img src=x" not in html
    assert "javascript:" not in html  # only http(s) links are rendered
    assert 'onerror="alert(1)"' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_card_shows_link_and_image_when_present() -> None:
    entity = Entity(id="/m/1", name="Inception", url="https://en.wikipedia.org/wiki/Inception", image_url="https://img.example/i.png")
    html = card_html(entity)
    assert 'href="https://en.wikipedia.org/wiki/Inception"' in html and 'src="https://img.example/i.png"' in html
