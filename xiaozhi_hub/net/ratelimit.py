"""Request guards for the unauthenticated HTTP endpoints: per-client rate limits and bounded bodies.

Those endpoints mint tokens and write to the database for anyone who asks, so one misbehaving or
hostile client must not be able to flood them. A stock device makes one OTA request per boot and,
while waiting for activation, one ``/activate`` poll every 3 s (PROTOCOL.md 5.4), far below the
default of 60 per minute. Bodies are read with a hard size limit before anything parses them, and
every refusal is a JSON ``{"error": reason}`` with a 4xx status, never a 500.

The rate-limit key is the TCP peer address (``request.remote``). ``X-Forwarded-For`` is deliberately ignored:
any client can set it, so trusting it would let a flood pick a fresh key per request. Behind a
reverse proxy all clients share the proxy's bucket; raise ``ota.rate_limit_per_minute`` there.

Memory is bounded: at most ``max_keys`` buckets are kept, least recently used first out.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web


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


# ---------------------------------------------------------------------------- request guards
# Small helpers shared by the OTA, activation and device-API handlers: every refusal is a JSON body
# with a reason, and request bodies are read with a hard size limit before anything parses them.

class BadRequest(Exception):
    """A client error with an HTTP status and a one-line reason for the JSON body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> web.Response:
        return json_error(self.status, self.reason)


def json_error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


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


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without buffering it all."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"request body too large ({request.content_length} bytes, limit {limit})")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: web.Request, limit: int, *, allow_empty: bool = False) -> dict[str, Any]:
    """Read and parse a JSON object body; anything else is a 400 with the reason."""
    raw = await read_body(request, limit)
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest(400, "request body is empty; expected a JSON object")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest(400, "request body is nested too deeply") from None
    except ValueError as err:
        raise BadRequest(400, f"request body is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise BadRequest(400, f"request body must be a JSON object, not {type(value).__name__}")
    return value
