"""A reviewer that drives the Review tab over HTTP exactly as a browser does.

Why not ``gradio_client``: the Review tab's events are ``api_visibility="private"`` (closed to the
Gradio client libraries on purpose), but the page itself calls them through Gradio's HTTP queue
(``POST /gradio_api/queue/join`` with the event's ``fn_index`` and the browser session's
``session_hash``, results streamed from ``GET /gradio_api/queue/data``). This client speaks that
protocol, so the load test's reviewer logs in and accepts through the same server-side checks
(``maintainer_only``, the session's login state) as a person in the browser.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from qa_system.errors import ReviewConflictError


class GradioHTTPError(RuntimeError):
    pass


class BrowserSession:
    """One browser session (``session_hash``) of a Gradio app; events are named by elem_id and event."""

    def __init__(self, url: str, *, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.session_hash = uuid.uuid4().hex[:11]
        self.http = httpx.Client(timeout=timeout_s)
        config = self.http.get(f"{self.url}/config").raise_for_status().json()
        ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
        self.events: dict[tuple[str, str], tuple[int, int]] = {}
        for dep in config["dependencies"]:
            for target, event in dep["targets"]:
                if ids.get(target):
                    self.events[(ids[target], event)] = (dep["id"], target)

    def call(self, elem_id: str, event: str, data: list[Any]) -> list[Any]:
        """Run one event (``None`` for ``gr.State`` inputs: the server fills them from the session)."""

        try:
            fn_index, trigger = self.events[(elem_id, event)]
        except KeyError as e:
            raise GradioHTTPError(f"the page has no {event} event on #{elem_id}") from e
        joined = self.http.post(
            f"{self.url}/gradio_api/queue/join",
            json={"data": data, "event_data": None, "fn_index": fn_index, "trigger_id": trigger, "session_hash": self.session_hash},
        ).raise_for_status().json()
        event_id = joined["event_id"]
        with self.http.stream("GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id or message.get("msg") != "process_completed":
                    continue
                output = message.get("output") or {}
                if not message.get("success", True):
                    raise GradioHTTPError(str(output.get("error") or output))
                return list(output.get("data", []))
        raise GradioHTTPError(f"the stream ended before event {event_id} completed")

    def upload(self, paths: list[Path]) -> list[dict[str, Any]]:
        """Upload files as the page's file input does; the values to pass for a ``gr.File`` input."""

        files = [("files", (p.name, p.read_bytes())) for p in paths]
        stored = self.http.post(f"{self.url}/gradio_api/upload", files=files).raise_for_status().json()
        return [{"path": s, "orig_name": p.name, "meta": {"_type": "gradio.FileData"}} for s, p in zip(stored, paths)]

    def close(self) -> None:
        self.http.close()


def _value(update: Any) -> Any:
    return update.get("value") if isinstance(update, dict) else update


class ReviewClient:
    """Log in on the Maintainer login tab, then accept facts with the Review tab's buttons."""

    FILTERS = ("(any relation)", 0, "any age")

    def __init__(self, url: str) -> None:
        self.page = BrowserSession(url)
        self._next: str | None = None

    def login(self, user: str, password: str) -> None:
        message = self.page.call("login-button", "click", [None, user, password])[1]
        if "Logged in" not in str(message):
            raise GradioHTTPError(f"login refused: {message}")

    def refresh(self) -> str | None:
        outputs = self.page.call("review-refresh", "click", [None, *self.FILTERS, None])
        self._next = _value(outputs[1])
        return self._next

    def accept_next(self) -> str | None:
        """Accept the fact the page has selected; its id, or None when the queue is empty."""

        fact = self._next or self.refresh()
        if not fact:
            return None
        outputs = self.page.call("review-accept", "click", [None, fact, "load test", "", "", "", *self.FILTERS])
        message = str(outputs[6])
        self._next = _value(outputs[1])
        if "qa-ok" in message:
            return fact
        if "Not applied" in message:
            raise ReviewConflictError(message)
        raise GradioHTTPError(f"accept of {fact} failed: {message}")

    def close(self) -> None:
        self.page.close()
