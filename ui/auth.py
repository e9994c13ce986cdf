"""Maintainer access for the app: an in-app login that unlocks the maintainer tabs.

Asking, exploring and the dashboard are open. The Review, Ingest and Cypher tabs need a maintainer
login. Gradio's global ``launch(auth=...)`` would lock askers out too, so the login is a small form
whose result lives in a per-browser-session ``gr.State``.

Two locks, both needed:

* the maintainer tabs are hidden until the session logs in (``MaintainerGate.tab``; a tab given an
  ``action`` shows only to roles that may do it), and
* every maintainer handler is wrapped in ``maintainer_only`` (any maintainer) or ``requires(action)``
  (a role that may do ``action``), which re-check the session on the server: a hidden tab's events can
  still be called through Gradio's HTTP API.

Who logs in:

* **named accounts** (``qa-system users add NAME --role reviewer|curator``; ``qa_system.maintain.accounts``,
  argon2id hashes in the workspace): when the workspace has any, only they log in, each under their
  own name and role; the file is re-read when it changes, and every action re-checks that the
  session's account still exists with the same role (a removed account is logged out at its next click);
* otherwise the **single maintainer login** from settings (``QA_MAINTAINER_USER`` /
  ``QA_MAINTAINER_PASSWORD``), a curator. In production mode (``QA_PRODUCTION=1``) there is no
  default password: with no account and none set, logins are disabled. Otherwise ``qa-system serve``
  generates one for the run and prints it once.

Wrong passwords are rate-limited per client address (so a page reload does not reset the count;
``X-Forwarded-For`` counts only from a ``QA_TRUSTED_PROXIES`` peer): the first ``free_attempts``
failures cost nothing, each later one doubles a cool-down (1 s, 2 s, 4 s, ... capped at
``max_delay_s``) during which every attempt is refused unread.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from qa_system.errors import QAError
from qa_system.maintain.accounts import AccessDeniedError, allowed, require
from ui.api_access import Network, parse_proxies, request_client
from ui.messages import message_html

log = logging.getLogger(__name__)

MAX_CREDENTIAL_CHARS = 256
LOGIN_REQUIRED = "Maintainer login required: log in on the **Maintainer login** tab."
SESSION_STALE = "Your account was removed or its role changed since you logged in: log in again."
SINGLE_LOGIN_ROLE = "curator"
_LIVE: weakref.WeakValueDictionary[str, MaintainerAuth] = weakref.WeakValueDictionary()


@dataclass
class Session:
    """One browser session's access (the value of the ``gr.State``)."""

    maintainer: bool = False
    user: str = ""
    role: str = SINGLE_LOGIN_ROLE  # "reviewer" or "curator" (the single maintainer login is a curator)
    auth_key: str = ""  # which MaintainerAuth let it in: it re-checks the account on every action


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class MaintainerAuth:
    """Checks maintainer credentials (named accounts, else the single login) with a per-client
    exponential cool-down after failures."""

    user: str
    password: str  # the single login's; "" disables it
    accounts: Any = None  # a qa_system.maintain.accounts.AccountStore; its accounts win when it has any
    production: bool = False
    proxies: tuple[Network, ...] = ()
    free_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, _Failures] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    key: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)

    def __post_init__(self) -> None:
        _LIVE[self.key] = self

    @classmethod
    def from_settings(cls, settings: Any, *, generated_password: str = "", workspace: Any = None) -> MaintainerAuth:
        from qa_system.maintain.accounts import AccountStore

        workspace = workspace if workspace is not None else getattr(settings, "workspace", None)
        password = settings.maintainer_password.get_secret_value() or ("" if settings.production else generated_password)
        return cls(user=settings.maintainer_user, password=password, production=bool(settings.production),
                   accounts=AccountStore(workspace) if workspace is not None else None,
                   proxies=parse_proxies(getattr(settings, "trusted_proxies", "")))  # fmt: skip

    def uses_accounts(self) -> bool:
        return self.accounts is not None and self.accounts.configured()

    @property
    def enabled(self) -> bool:
        return self.uses_accounts() or bool(self.password)

    def disabled_reason(self) -> str:
        if self.production:
            return ("Maintainer logins are disabled: production mode and no account is configured "
                    "(add one with `qa-system users add NAME --role curator`, or set QA_MAINTAINER_PASSWORD).")  # fmt: skip
        return "Maintainer logins are disabled: no maintainer password is configured (set QA_MAINTAINER_PASSWORD)."

    def client(self, request: Any) -> str:
        return request_client(request, self.proxies)

    def login(self, client: str, user: str, password: str) -> tuple[bool, str]:
        """(ok, message for the page). Never says which of user or password was wrong."""

        session, text = self.authenticate(client, user, password)
        return session is not None, text

    def authenticate(self, client: str, user: str, password: str) -> tuple[Session | None, str]:
        """(the logged-in session, message) or (None, why not, in one line)."""

        if not self.enabled:
            return None, self.disabled_reason()
        user, password = (user or "").strip(), password or ""
        if not user or not password:
            return None, "Enter a user name and a password."
        if len(user) > MAX_CREDENTIAL_CHARS or len(password) > MAX_CREDENTIAL_CHARS:
            return None, "Wrong user name or password."
        with self._lock:
            state = self._failures.setdefault(client, _Failures())
            now = self.clock()
            if now < state.locked_until:
                return None, f"Too many wrong passwords: try again in {state.locked_until - now:.0f} s."
        role = self._check(user, password)  # outside the lock: an argon2 check takes a while
        with self._lock:
            state = self._failures.setdefault(client, _Failures())
            if role:
                self._failures.pop(client, None)
                log.info("maintainer login: %s (%s) from %s", user, role, client)
                return Session(maintainer=True, user=user, role=role, auth_key=self.key), f"Logged in as {user}" + (
                    f" ({role})." if self.uses_accounts() else ".")
            state.count += 1
            over = state.count - self.free_attempts
            if over >= 0:
                delay = min(self.max_delay_s, self.base_delay_s * 2**over)
                state.locked_until = self.clock() + delay
                log.warning("maintainer login: %d wrong attempts from %s; locked for %.0f s", state.count, client, delay)
                return None, f"Wrong user name or password. Too many attempts: wait {delay:.0f} s before trying again."
            return None, "Wrong user name or password."

    def _check(self, user: str, password: str) -> str:
        """The role of (user, password), or "" when they are wrong."""

        if self.uses_accounts():
            try:
                account = self.accounts.verify(user, password)
            except QAError as e:  # an unreadable accounts file: nobody logs in, the page says why
                log.error("maintainer login: %s", e)
                return ""
            return account.role if account is not None else ""
        ok = hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
            password.encode(), self.password.encode()
        )
        return SINGLE_LOGIN_ROLE if ok else ""

    def still_valid(self, session: Session) -> bool:
        """The session's account still exists with the same role (named accounts), or the single
        login is still the way in."""

        if self.uses_accounts():
            try:
                account = self.accounts.get(session.user)
            except QAError:
                return False
            return account is not None and account.role == session.role
        return bool(self.password) and session.user == self.user


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def client_of(request: gr.Request | None, proxies: tuple[Network, ...] = ()) -> str:
    return request_client(request, proxies)


def is_maintainer(session: Any) -> bool:
    return isinstance(session, Session) and session.maintainer


def check_session(session: Any, action: str | None = None) -> Session:
    """The session when it is a live maintainer's allowed ``action`` (None: any maintainer action);
    else ``gr.Error`` (not logged in, account gone) or ``AccessDeniedError`` (role), one line each."""

    if not is_maintainer(session):
        raise gr.Error(LOGIN_REQUIRED.replace("**", ""))
    auth = _LIVE.get(session.auth_key) if session.auth_key else None
    if auth is not None and not auth.still_valid(session):
        raise gr.Error(SESSION_STALE)
    if action is not None:
        require(session.role, action, session.user)
    return session


def maintainer_only(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an event handler whose FIRST input is the session ``gr.State``; refuse non-maintainers.

    The refusal is a ``gr.Error`` (a toast in the page, nothing run). Use it on every handler of a
    maintainer tab, whatever its visibility::

        run.click(maintainer_only(run_query), inputs=[gate.session, query], outputs=[...])
    """

    @functools.wraps(handler)
    def guarded(session: Any, *args: Any, **kwargs: Any) -> Any:
        check_session(session)
        return handler(session, *args, **kwargs)

    return guarded


def requires(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``maintainer_only`` that also needs a role allowed ``action`` (``qa_system.maintain.accounts``):
    a reviewer pressing a curator's button gets a one-line ``gr.Error`` and nothing runs."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def guarded(session: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                check_session(session, action)
            except AccessDeniedError as e:
                raise gr.Error(str(e)) from e
            return handler(session, *args, **kwargs)

        return guarded

    return wrap


class MaintainerGate:
    """The login form plus the maintainer tabs it reveals. Build it inside the ``gr.Blocks``.

    ``gate.session`` is the ``gr.State`` to pass as first input to ``maintainer_only`` handlers;
    ``with gate.tab("Review"):`` opens a tab that is hidden until the session logs in
    (``gate.tab("Ingest", action="ingest")``: shown only to roles that may ingest).
    Call ``gate.build_login_tab()`` once, after every maintainer tab was declared.
    """

    def __init__(self, auth: MaintainerAuth) -> None:
        self.auth = auth
        self.session = gr.State(Session())
        self._tabs: list[tuple[Any, str | None]] = []  # tabs and panels shown at login

    @contextmanager
    def tab(self, label: str, *, action: str | None = None, **kwargs: Any) -> Iterator[gr.Tab]:
        with gr.Tab(label, visible=False, **kwargs) as tab:
            self._tabs.append((tab, action))
            yield tab

    def reveal(self, component: Any, action: str | None = None) -> None:
        """Show ``component`` (built hidden) once a maintainer allowed ``action`` logs in; hide it at logout."""

        self._tabs.append((component, action))

    def _shown(self, session: Session, action: str | None) -> bool:
        return is_maintainer(session) and (action is None or allowed(session.role, action))

    def build_login_tab(self) -> None:
        with gr.Tab("Maintainer login", elem_id="login-tab"):
            if not self.auth.enabled:
                gr.Markdown(self.auth.disabled_reason())
            gr.Markdown(
                "Review, Ingest and the Cypher workbench are for maintainers (a *reviewer* decides proposed facts; "
                "a *curator* may also ingest, forget documents and merge entities). Asking, Explore and the "
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
            found, text = self.auth.authenticate(self.auth.client(request), user_text, password_text)
            new = found if found is not None else session
            shown = is_maintainer(new)
            return (
                new,
                message_html(text, "ok" if found is not None else "warning"),
                gr.update(value=""),
                gr.update(visible=not shown),
                gr.update(visible=shown),
                *[gr.update(visible=self._shown(new, action)) for _, action in self._tabs],
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

        outputs = [self.session, message, password, login, logout, *[tab for tab, _ in self._tabs]]
        login.click(do_login, inputs=[self.session, user, password], outputs=outputs, api_visibility="private")
        password.submit(do_login, inputs=[self.session, user, password], outputs=outputs, api_visibility="private")
        logout.click(do_logout, inputs=[self.session], outputs=outputs, api_visibility="private")
