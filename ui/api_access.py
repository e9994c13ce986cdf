"""Who may call the HTTP API and how often: API keys compared in constant time, the roles of their
accounts, the client address (``X-Forwarded-For`` only from a trusted proxy), and a token bucket per
key or client address.

Keys come from ``QA_API_KEYS`` (``KEY`` or ``NAME:KEY``) and from the workspace's accounts
(``qa-system users key NAME``; ``qa_system.maintain.accounts``), each tied to a name the key's actions
are recorded under. When the workspace has accounts, every ``QA_API_KEYS`` name must be one of them
and the key gets its account's role (a reviewer's key may decide proposed facts, not ingest); without
accounts, a ``QA_API_KEYS`` key is a curator's, as the single maintainer login is.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qa_system.errors import ConfigError, InputError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → networks (``QA_TRUSTED_PROXIES``; the settings checked the syntax)."""

    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in (text or "").split(",") if item.strip())


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str | list[str] | None, proxies: tuple[Network, ...]) -> str:
    """The client a request comes from: the direct peer, unless the peer is a trusted proxy; then the
    last ``X-Forwarded-For`` hop that is not itself a trusted proxy (earlier hops are whatever the
    client wrote, so they are never believed)."""

    peer = (peer or "").strip() or "unknown"
    if not proxies or not forwarded_for or not _trusted(peer, proxies):
        return peer
    text = ",".join(forwarded_for) if isinstance(forwarded_for, list) else forwarded_for
    hops = [h.strip() for h in text.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    return hops[0][:64] if hops else peer


def request_client(request: Any, proxies: tuple[Network, ...]) -> str:
    """``client_address`` of a Starlette/FastAPI request or a ``gr.Request``."""

    if request is None:
        return "unknown"
    peer = getattr(getattr(request, "client", None), "host", None)
    headers = getattr(request, "headers", None)
    forwarded = None
    if proxies and headers is not None:
        getlist = getattr(headers, "getlist", None)
        forwarded = getlist("x-forwarded-for") if getlist else headers.get("x-forwarded-for")
    return client_address(peer, forwarded, proxies)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKeys:
    """Named keys (digests, constant-time), the accounts file for account keys and roles, and the
    trusted proxies for the client address."""

    keys: tuple[tuple[str, bytes], ...] = ()
    accounts: Any = None  # a qa_system.maintain.accounts.AccountStore, or None
    proxies: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str, *, default_name: str = "maintainer", accounts: Any = None, proxies: str = "") -> ApiKeys:
        """``"KEY1,alice:KEY2"`` → keys named ``default_name`` and ``alice``."""

        out = []
        for item in (text or "").split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, key = item.partition(":")
            name, key = (name.strip() or default_name, key.strip()) if sep else (default_name, item)
            if not key:
                raise InputError("QA_API_KEYS holds an empty key (entries are KEY or NAME:KEY, comma-separated)")
            out.append((name, _digest(key)))
        if accounts is not None and accounts.configured():
            strangers = sorted({n for n, _ in out if accounts.get(n) is None})
            if strangers:
                raise ConfigError(
                    f"QA_API_KEYS names {', '.join(repr(n) for n in strangers)}, who have no account in {accounts.path}: "
                    "add them (`qa-system users add NAME --role ROLE`) or use `qa-system users key NAME`"
                )
        return cls(tuple(out), accounts, parse_proxies(proxies))

    @classmethod
    def from_settings(cls, settings: Any) -> ApiKeys:
        from qa_system.maintain.accounts import AccountStore

        return cls.parse(settings.api_keys.get_secret_value(), default_name=settings.maintainer_user,
                         accounts=AccountStore(settings.workspace), proxies=settings.trusted_proxies)  # fmt: skip

    @property
    def enabled(self) -> bool:
        return bool(self.keys) or bool(self.accounts is not None and any(a.key_digests for a in self.accounts.list()))

    def match(self, key: str) -> str | None:
        """The name of ``key``, or None when it is not one of the keys."""

        digest, found = _digest(key), None
        for name, known in self.keys:
            if hmac.compare_digest(digest, known):
                found = name
        if self.accounts is None:
            return found
        if found is not None:  # a QA_API_KEYS key: dead once its account is removed
            return None if self.accounts.configured() and self.accounts.get(found) is None else found
        owner = self.accounts.key_owner(key)
        return owner.name if owner is not None else None

    def role_of(self, name: str) -> str:
        """The role of a key's name: its account's; a ``QA_API_KEYS`` key without accounts is a curator's."""

        account = self.accounts.get(name) if self.accounts is not None else None
        return account.role if account is not None else "curator"

    def require(self, name: str, action: str) -> None:
        """Refuse (``AccessDeniedError``: HTTP 403) when the key's account may not do ``action``."""

        from qa_system.maintain.accounts import require

        require(self.role_of(name), action, name)

    def client(self, request: Any) -> str:
        return request_client(request, self.proxies)


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute, bursts up to ``burst``."""

    MAX_BUCKETS = 10_000

    def __init__(self, per_minute: int, *, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, per_minute // 10))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when the request may go ahead (a token taken), else the seconds until one is free."""

        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                if len(self._buckets) > self.MAX_BUCKETS:
                    self._forget_full(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing a new bucket would not)."""

        for client, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[client]
