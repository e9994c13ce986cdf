"""Who may call the HTTP API and how often: API keys (``QA_API_KEYS``) compared in constant time,
and a token bucket per key or client address."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from qa_system.errors import InputError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKeys:
    """Named keys, kept as digests and compared in constant time."""

    keys: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def parse(cls, text: str, *, default_name: str = "maintainer") -> ApiKeys:
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
        return cls(tuple(out))

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def match(self, key: str) -> str | None:
        """The name of ``key``, or None when it is not one of the keys."""

        digest, found = _digest(key), None
        for name, known in self.keys:
            if hmac.compare_digest(digest, known):
                found = name
        return found


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
