"""Per-endpoint, per-client rate limiting, and finding the client's address.

The limiter keeps its counts in this process's memory. With several server
processes (or machines) each keeps its own, so a client can get up to the
limit from each of them; a shared limit would need a shared counter (for
example in PostgreSQL or Redis) on every request.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

MAX_TRACKED: Final = 100_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled continuously."""

    def __init__(
        self, per_minute: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = float(per_minute)
        self._refill = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._capacity > 0

    def take(self, endpoint: str, client: str) -> float | None:
        """None if allowed; else the seconds until the next request may pass."""
        if not self.enabled:
            return None
        key = (endpoint, client)
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.pop(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - updated) * self._refill)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / self._refill
            self._buckets[key] = (tokens - 1, now)
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)
        return None

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The client's IP: the connection's, or from `X-Forwarded-For` when the
    connection (and each hop after it) is a trusted proxy."""
    if peer is None or not trusted or not forwarded_for:
        return peer
    if not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def parse_networks(values: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(value: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in network for network in trusted)
