"""Named maintainer accounts: who may log in to the app (and use an API key), and what each may do.

Accounts live in the workspace, in ``<workspace>/accounts/users.json`` (mode 0600): a name, a role,
an argon2id hash of the password (``argon2-cffi``; never the password) and the digests of the API
keys tied to the account. ``qa-system users add|list|remove|key`` manages them; the app's login
(``ui.auth``) and the HTTP API's keys (``ui.api_access``) read them, re-reading the file when it
changes, so an account added or removed while the server runs counts at once.

Roles (``ROLE_ACTIONS``): a *reviewer* decides proposed facts (and may undo their own decisions); a
*curator* does everything a maintainer can (review, forget a document, merge entities, undo any
action, curate by hand, ingest). The read-only Cypher workbench is open to every maintainer.
``require(role, action, name)`` refuses with an ``AccessDeniedError`` naming who and what.

API keys are random (``qa_`` + 32 URL-safe bytes), shown once when made, stored as SHA-256 digests
(high-entropy keys need no slow hash) and compared in constant time.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa_system.errors import InputError
from qa_system.types import utc_now

ACCOUNTS_FILE = Path("accounts") / "users.json"
ROLES = ("reviewer", "curator")
# What each role may do; every maintainer action in the CLI, the app and the API names one of these.
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "reviewer": frozenset({"review"}),
    "curator": frozenset({"review", "forget", "merge", "undo", "curate", "ingest"}),
}
ACTION_WORDS = {
    "review": "decide proposed facts", "forget": "forget a document", "merge": "merge entities",
    "undo": "undo other maintainers' actions", "curate": "edit the graph by hand", "ingest": "ingest documents",
}  # fmt: skip
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 256
KEY_PREFIX = "qa_"
PASSWORD_ENV = "QA_NEW_USER_PASSWORD"


class AccessDeniedError(InputError):
    """A logged-in maintainer (or an API key's account) tried an action their role does not allow."""

    exit_code = 4
    http_status = 403


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id, the library's current recommended cost


_DUMMY_HASH: list[str] = []  # hashed once: an unknown user costs the same time as a known one


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_hasher().hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"bad account name {name[:80]!r}: 1-64 characters, letters, digits and . _ @ - (starting with a letter or digit)"
        )
    return name


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD_CHARS:
        raise InputError(f"the password is too short: at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(f"the password is too long: at most {MAX_PASSWORD_CHARS} characters")
    return password


def allowed(role: str, action: str) -> bool:
    return action in ROLE_ACTIONS.get(role, frozenset())


def require(role: str, action: str, name: str = "") -> None:
    """Refuse (``AccessDeniedError``, one line) when ``role`` may not do ``action``."""

    if action not in ACTION_WORDS:
        raise ValueError(f"unknown maintainer action {action!r}")
    if not allowed(role, action):
        needs = " or ".join(sorted(r for r, acts in ROLE_ACTIONS.items() if action in acts))
        who = f"{name} is a {role}" if name else f"this is a {role}'s login"
        raise AccessDeniedError(f"only a {needs} may {ACTION_WORDS[action]}; {who} (nothing changed)")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str = field(repr=False)
    created_at: str = ""
    key_digests: tuple[str, ...] = field(default=(), repr=False)

    def public(self) -> dict[str, Any]:
        """What ``users list`` shows: never the hash or the key digests."""

        return {"name": self.name, "role": self.role, "created_at": self.created_at, "api_keys": len(self.key_digests)}


_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class AccountStore:
    """The accounts file of a workspace. Reads are cached until the file changes (mtime and size)."""

    def __init__(self, workspace: Path | str) -> None:
        self.path = Path(workspace) / ACCOUNTS_FILE
        self._cache: tuple[tuple[int, int], dict[str, Account]] | None = None

    # -- reading ----------------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def accounts(self) -> dict[str, Account]:
        stamp = self._stamp()
        if stamp is None:
            return {}
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            found = {
                u["name"]: Account(u["name"], u["role"], u["password_hash"], u.get("created_at", ""), tuple(u.get("api_keys", ())))
                for u in data.get("users", [])
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{self.path}: unreadable accounts file ({e}); fix or remove it") from e
        self._cache = (stamp, found)
        return found

    def configured(self) -> bool:
        return bool(self.accounts())

    def get(self, name: str) -> Account | None:
        return self.accounts().get((name or "").strip())

    def list(self) -> list[Account]:
        return sorted(self.accounts().values(), key=lambda a: a.name)

    def verify(self, name: str, password: str) -> Account | None:
        """The account when ``password`` is its password, else None; the same work either way."""

        from argon2.exceptions import InvalidHashError, VerificationError

        account = self.get(name)
        hasher = _hasher()
        try:
            hasher.verify(account.password_hash if account else _dummy_hash(), password or "")
        except (VerificationError, InvalidHashError):
            return None
        if account is None:
            return None
        if hasher.check_needs_rehash(account.password_hash):  # the library's cost went up: store the stronger hash
            self._update(account.name, lambda u: u.update(password_hash=hasher.hash(password)))
        return account

    def key_owner(self, key: str) -> Account | None:
        """The account an API key is tied to (constant-time comparison over every key)."""

        if not key:
            return None
        digest, found = key_digest(key).encode(), None
        for account in self.accounts().values():
            for known in account.key_digests:
                if hmac.compare_digest(digest, known.encode()):
                    found = account
        return found

    # -- writing ----------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[list[dict[str, Any]]]:
        """The users list, read under an exclusive lock and written back atomically (mode 0600)."""

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(lock_path.resolve(), threading.Lock())
        with thread_lock, open(lock_path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                users = json.loads(self.path.read_text(encoding="utf-8")).get("users", []) if self.path.exists() else []
                yield users
                tmp = self.path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump({"version": 1, "users": users}, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
                self._cache = None
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _update(self, name: str, change: Any) -> None:
        with self._locked() as users:
            for user in users:
                if user["name"] == name:
                    change(user)
                    return
            raise InputError(f"no account named {name!r} (see `qa-system users list`)")

    def add(self, name: str, role: str, password: str) -> Account:
        name, role, password = check_name(name), check_role(role), check_password(password)
        password_hash = _hasher().hash(password)
        with self._locked() as users:
            if any(u["name"] == name for u in users):
                raise InputError(f"an account named {name!r} already exists (remove it first to change it)")
            record = {"name": name, "role": role, "password_hash": password_hash, "created_at": utc_now().isoformat(), "api_keys": []}
            users.append(record)
        return Account(name, role, password_hash, record["created_at"])

    def remove(self, name: str) -> Account:
        name = (name or "").strip()
        with self._locked() as users:
            for i, user in enumerate(users):
                if user["name"] == name:
                    del users[i]
                    return Account(user["name"], user["role"], user["password_hash"], user.get("created_at", ""))
            raise InputError(f"no account named {name!r} (see `qa-system users list`)")

    def set_password(self, name: str, password: str) -> None:
        password_hash = _hasher().hash(check_password(password))
        self._update((name or "").strip(), lambda u: u.update(password_hash=password_hash))

    def new_key(self, name: str) -> str:
        """A new API key tied to ``name``; returned once, only its digest is kept."""

        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._update((name or "").strip(), lambda u: u.setdefault("api_keys", []).append(key_digest(key)))
        return key

    def revoke_keys(self, name: str) -> int:
        count: list[int] = []

        def clear(user: dict[str, Any]) -> None:
            count.append(len(user.get("api_keys", [])))
            user["api_keys"] = []

        self._update((name or "").strip(), clear)
        return count[0]


def new_password_from_env_or_prompt(name: str) -> str:
    """``QA_NEW_USER_PASSWORD`` (scripts, tests) or a twice-typed ``getpass`` prompt; never an argument."""

    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return check_password(from_env)
    import getpass
    import sys

    if not sys.stdin.isatty():
        raise InputError(f"no terminal to ask {name}'s password on: set {PASSWORD_ENV} for scripts")
    first = check_password(getpass.getpass(f"password for {name}: "))
    if getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ; nothing changed")
    return first
