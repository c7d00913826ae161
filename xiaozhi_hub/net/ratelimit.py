"""Per-client rate limits for the unauthenticated HTTP endpoints (OTA check and activation).

Those endpoints mint tokens and write to the database for anyone who asks, so one misbehaving or
hostile client must not be able to flood them. A stock device makes one OTA request per boot and,
while waiting for activation, one ``/activate`` poll every 3 s (docs/protocol.md, Activation), far below the
default of 60 per minute. A refusal is a JSON 429 with ``Retry-After``; bounded bodies and the other
request guards are in :mod:`xiaozhi_hub.net.httputil`.

The rate-limit key is the TCP peer address (``request.remote``). ``X-Forwarded-For`` is deliberately ignored:
any client can set it, so trusting it would let a flood pick a fresh key per request. Behind a
reverse proxy all clients share the proxy's bucket; raise ``ota.rate_limit_per_minute`` there.

Memory is bounded: at most ``max_keys`` buckets are kept, least recently used first out.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from .httputil import json_error


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per key: ``capacity`` requests at once, refilled at ``per_minute`` per minute."""

    def __init__(self, per_minute: int, capacity: int | None = None, max_keys: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.rate = per_minute / 60.0                       # tokens per second
        self.capacity = float(capacity if capacity is not None else per_minute)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, key: str) -> float:
        """Take one token for ``key``. Returns 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        """``Retry-After`` takes whole seconds; round up so a client that obeys it succeeds."""
        return str(max(1, math.ceil(wait)))

    def __len__(self) -> int:
        return len(self._buckets)


def client_key(request: web.Request) -> str:
    """The rate-limit key: the TCP peer address (never a forwarded header, see module docstring)."""
    return request.remote or "unknown"


def limited(limiter: RateLimiter, request: web.Request) -> web.Response | None:
    """A 429 response if this client is over its budget, else None."""
    wait = limiter.acquire(client_key(request))
    if wait <= 0:
        return None
    return json_error(429, "too many requests from this address; slow down",
                      headers={"Retry-After": RateLimiter.retry_after_header(wait)})
