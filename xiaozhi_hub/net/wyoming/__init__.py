"""The hub's speech engines as a Wyoming service (Home Assistant's Assist, satellites, tools).

``describe`` → ``info`` (info.py); ``transcribe`` + ``audio-start/chunk/stop`` → ``transcript``;
``synthesize`` and ``synthesize-start/chunk/stop`` → ``audio-start/chunk/stop`` (requests.py), one
connection at a time per client (connection.py), on ``wyoming.host``:``wyoming.port`` (10300) with the
limits of the ``wyoming`` settings (server.py, framing.py). The engines are the hub's loaded
providers (``ctx.providers``) and their work goes through the same bounded compute pool
(``ctx.compute``) as the devices': a Wyoming client queues in the same per-engine FIFO and gets the
same busy answer, as an ``error`` event with code ``busy``.

Component hook for app.py: ``start(ctx)`` sets ``ctx.wyoming`` and returns the closer. A port that
cannot be bound is logged as an error and the hub serves its devices without Wyoming.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from .server import WyomingServer

if TYPE_CHECKING:
    from ...context import HubContext

__all__ = ["WyomingServer", "start"]

log = logging.getLogger(__name__)


async def start(ctx: "HubContext") -> Callable[[], Awaitable[None]] | None:
    """Serve Wyoming unless ``wyoming.enabled`` is false."""
    if not ctx.settings.wyoming.enabled:
        return None
    server = WyomingServer(ctx)
    try:
        await server.start()
    except OSError as err:
        log.error("wyoming: cannot listen on %s:%d (%s); serving devices without Wyoming",
                  server.host, ctx.settings.wyoming.port, err.strerror or err)
        return None
    ctx.wyoming = server
    return server.close
