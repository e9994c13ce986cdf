"""Coloured notices shared by the tabs (escaped text unless the app passes its own fixed markup)."""

from __future__ import annotations

import html


def message_html(text: str, kind: str = "warning", *, markup: bool = False) -> str:
    """A coloured notice; ``text`` is escaped unless ``markup`` (only for the app's own fixed strings)."""

    colour = {"warning": ("#fffbeb", "#b45309"), "info": ("#eff6ff", "#1d4ed8"), "error": ("#fef2f2", "#b91c1c"),
              "ok": ("#f0fdf4", "#15803d")}[kind]
    return (
        f"<div class='qa-message qa-{kind}' style='padding:10px 14px;border-radius:10px;background:{colour[0]};"
        f"border-left:4px solid {colour[1]}'>{text if markup else html.escape(text)}</div>"
    )
