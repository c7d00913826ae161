"""The Wyoming TCP server: accepts clients, tracks them, and stops them on shutdown.

The ``wyoming`` library's own ``AsyncServer`` is not used: it installs a process-wide SIGTERM handler
(library 1.10) that would replace the hub's, and its reader trusts every length a client announces.
This server keeps the library's event classes and writer and adds the limits (framing.py), a cap on
clients (``wyoming.max_clients``; one more is still answered ``describe``, then told "busy") and a
graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .connection import Connection
from .info import Offer, build_offer

if TYPE_CHECKING:
    from ...context import HubContext

log = logging.getLogger(__name__)

STOP_GRACE = 2.0        # seconds connections get to finish on shutdown before they are cancelled


class WyomingServer:
    """The hub's ASR and TTS for Wyoming clients (Home Assistant's Assist, satellites, tools)."""

    def __init__(self, ctx: "HubContext") -> None:
        self.ctx = ctx
        self.settings = ctx.settings.wyoming
        self.offer: Offer = build_offer(ctx.settings, ctx.providers)
        self.host = self.settings.host or ctx.settings.server.host
        self.port = 0                       # bound port, known after start()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> int:
        return len(self._tasks)

    def uri(self, host: str | None = None) -> str:
        return f"tcp://{host or self.ctx.host_ip}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.settings.port, limit=self.settings.max_event_bytes, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("wyoming: serving ASR %s and TTS %s on %s:%d", self.offer.asr_model, self.offer.tts_voice,
                 self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            over = len(self._tasks) > self.settings.max_clients
            await Connection(self, reader, writer, over_limit=over).run()
        except Exception:   # one client's failure is logged and ends only that client
            log.exception("wyoming: connection from %s failed", writer.get_extra_info("peername"))
        finally:
            self._tasks.discard(task)

    async def close(self) -> None:
        """Stop listening, give connections ``STOP_GRACE`` seconds, then cancel the rest."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
