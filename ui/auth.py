"""Maintainer access for the app: an in-app login that unlocks the maintainer tabs.

Asking, exploring and the dashboard are open. The Cypher workbench (and the Review and Ingest
tabs) need a maintainer login. Gradio's global ``launch(auth=...)`` would lock askers out too, so
the login is a small form whose result lives in a per-browser-session ``gr.State``.

Two locks, both needed:

* the maintainer tabs are hidden until the session logs in (``MaintainerGate.tab``), and
* every maintainer handler is wrapped in ``maintainer_only``, which re-checks the session on the
  server: a hidden tab's events can still be called through Gradio's HTTP API.

Credentials come from settings (``QA_MAINTAINER_USER`` / ``QA_MAINTAINER_PASSWORD``). In
production mode (``QA_PRODUCTION=1``) there is no default password: with none set, logins are
disabled. Otherwise ``qa-system serve`` generates one for the run and prints it once.

Wrong passwords are rate-limited per client address (so a page reload does not reset the count):
the first ``free_attempts`` failures cost nothing, each later one doubles a cool-down
(1 s, 2 s, 4 s, ... capped at ``max_delay_s``) during which every attempt is refused unread.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ui.messages import message_html

log = logging.getLogger(__name__)

MAX_CREDENTIAL_CHARS = 256
LOGIN_REQUIRED = "Maintainer login required: log in on the **Maintainer login** tab."


@dataclass
class Session:
    """One browser session's access (the value of the ``gr.State``)."""

    maintainer: bool = False
    user: str = ""


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class MaintainerAuth:
    """Checks maintainer credentials with a per-client exponential cool-down after failures."""

    user: str
    password: str  # "" disables maintainer logins
    free_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, _Failures] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Any, *, generated_password: str = "") -> MaintainerAuth:
        password = settings.maintainer_password.get_secret_value() or ("" if settings.production else generated_password)
        return cls(user=settings.maintainer_user, password=password)

    @property
    def enabled(self) -> bool:
        return bool(self.password)

    def login(self, client: str, user: str, password: str) -> tuple[bool, str]:
        """(ok, message for the page). Never says which of user or password was wrong."""

        if not self.enabled:
            return False, "Maintainer logins are disabled: no maintainer password is configured (set QA_MAINTAINER_PASSWORD)."
        user, password = (user or "").strip(), password or ""
        if not user or not password:
            return False, "Enter a user name and a password."
        if len(user) > MAX_CREDENTIAL_CHARS or len(password) > MAX_CREDENTIAL_CHARS:
            return False, "Wrong user name or password."
        with self._lock:
            state = self._failures.setdefault(client, _Failures())
            now = self.clock()
            if now < state.locked_until:
                return False, f"Too many wrong passwords: try again in {state.locked_until - now:.0f} s."
            ok = hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
                password.encode(), self.password.encode()
            )
            if ok:
                self._failures.pop(client, None)
                return True, f"Logged in as {user}."
            state.count += 1
            over = state.count - self.free_attempts
            if over >= 0:
                delay = min(self.max_delay_s, self.base_delay_s * 2**over)
                state.locked_until = now + delay
                log.warning("maintainer login: %d wrong attempts from %s; locked for %.0f s", state.count, client, delay)
                return False, f"Wrong user name or password. Too many attempts: wait {delay:.0f} s before trying again."
            return False, "Wrong user name or password."


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def client_of(request: gr.Request | None) -> str:
    host = getattr(getattr(request, "client", None), "host", None) if request is not None else None
    return str(host or "unknown")


def is_maintainer(session: Any) -> bool:
    return isinstance(session, Session) and session.maintainer


def maintainer_only(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an event handler whose FIRST input is the session ``gr.State``; refuse non-maintainers.

    The refusal is a ``gr.Error`` (a toast in the page, nothing run). Use it on every handler of a
    maintainer tab, whatever its visibility::

        run.click(maintainer_only(run_query), inputs=[gate.session, query], outputs=[...])
    """

    @functools.wraps(handler)
    def guarded(session: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_maintainer(session):
            raise gr.Error(LOGIN_REQUIRED.replace("**", ""))
        return handler(session, *args, **kwargs)

    return guarded


class MaintainerGate:
    """The login form plus the maintainer tabs it reveals. Build it inside the ``gr.Blocks``.

    ``gate.session`` is the ``gr.State`` to pass as first input to ``maintainer_only`` handlers;
    ``with gate.tab("Review"):`` opens a tab that is hidden until the session logs in.
    Call ``gate.build_login_tab()`` once, after every maintainer tab was declared.
    """

    def __init__(self, auth: MaintainerAuth) -> None:
        self.auth = auth
        self.session = gr.State(Session())
        self._tabs: list[gr.Tab] = []
        self._badges: list[gr.Markdown] = []

    @contextmanager
    def tab(self, label: str, **kwargs: Any) -> Iterator[gr.Tab]:
        with gr.Tab(label, visible=False, **kwargs) as tab:
            self._tabs.append(tab)
            yield tab

    def build_login_tab(self) -> None:
        with gr.Tab("Maintainer login", elem_id="login-tab"):
            if not self.auth.enabled:
                gr.Markdown(
                    "Maintainer logins are **disabled**: no maintainer password is configured "
                    "(set `QA_MAINTAINER_PASSWORD`)."
                )
            gr.Markdown(
                "Review, Ingest and the Cypher workbench are for maintainers. Asking, Explore and the "
                "Dashboard are open to everyone."
            )
            with gr.Column(elem_id="login-form", elem_classes="login-form"):
                user = gr.Textbox(label="User", value="", elem_id="login-user", max_lines=1)
                password = gr.Textbox(label="Password", type="password", elem_id="login-password", max_lines=1)
                with gr.Row():
                    login = gr.Button("Log in", variant="primary", elem_id="login-button")
                    logout = gr.Button("Log out", elem_id="logout-button", visible=False)
                message = gr.HTML(elem_id="login-message")

        def do_login(session: Session, user_text: str, password_text: str, request: gr.Request) -> tuple[Any, ...]:
            ok, text = self.auth.login(client_of(request), user_text, password_text)
            new = Session(maintainer=True, user=user_text.strip()) if ok else session
            shown = is_maintainer(new)
            return (
                new,
                message_html(text, "ok" if ok else "warning"),
                gr.update(value=""),
                gr.update(visible=not shown),
                gr.update(visible=shown),
                *[gr.update(visible=shown) for _ in self._tabs],
            )

        def do_logout(session: Session) -> tuple[Any, ...]:
            return (
                Session(),
                message_html("Logged out.", "info"),
                gr.update(value=""),
                gr.update(visible=True),
                gr.update(visible=False),
                *[gr.update(visible=False) for _ in self._tabs],
            )

        outputs = [self.session, message, password, login, logout, *self._tabs]
        login.click(do_login, inputs=[self.session, user, password], outputs=outputs, api_visibility="private")
        password.submit(do_login, inputs=[self.session, user, password], outputs=outputs, api_visibility="private")
        logout.click(do_logout, inputs=[self.session], outputs=outputs, api_visibility="private")
