"""Composition root: builds every service from the settings, serves, and owns shutdown.

Start order: data folder and database → secrets and hub id → compute pool → providers (models load
once) → components (devices, OTA, firmware, mDNS) → HTTP and WebSocket listeners → "ready".
Shutdown (SIGINT/SIGTERM) runs in reverse: stop listening, close sessions with 1001, give turns
``shutdown_grace`` seconds, stop components, close providers, checkpoint the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from . import __version__
from .auth import Authenticator, load_or_create_secret
from .compute import ComputePool
from .context import HubContext
from .metrics import Metrics
from .net.http import create_http_app
from .pipeline.agent import create_agent
from .pipeline.speaker import PhraseCache
from .providers.base import Providers
from .settings import ConfigError, Settings
from .store.db import Database
from .transport.registry import SessionRegistry
from .transport.ws_server import WebSocketServer

log = logging.getLogger(__name__)

# Optional components: each may define `async start(ctx) -> closer | None` and `setup_http(app, ctx)`.
COMPONENTS = (
    "xiaozhi_hub.net.devices",
    "xiaozhi_hub.net.ota",
    "xiaozhi_hub.net.firmware",
    "xiaozhi_hub.net.wyoming",      # before mdns, which advertises its port
    "xiaozhi_hub.net.mdns",
    "xiaozhi_hub.tools.timers",
    "xiaozhi_hub.supervisor",       # last: announces the ports the others bound (add-on only)
)


def load_or_create_hub_id(data_dir: Path) -> str:
    path = data_dir / "hub_id"
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text().strip()
        if value:
            return value
    value = uuid.uuid4().hex[:12]
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    tmp.replace(path)
    return value


async def watch_loop_lag(metrics: Metrics, period: float = 0.05) -> None:
    """Record how late the event loop wakes up: the hub's own contribution to audio jitter."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(period)
        metrics.observe("loop_lag", max(0.0, loop.time() - t - period))


def configure_compute(settings: Settings) -> ComputePool:
    cores = os.cpu_count() or 2
    pool = ComputePool(workers=max(4, cores * 2))
    pool.set_limit("opus", cores)
    pool.set_limit("asr", settings.asr.concurrency)
    pool.set_limit("tts", settings.tts.concurrency)
    pool.set_limit("llm", 1, max_wait=settings.llm.max_wait)
    return pool


@dataclass
class Hub:
    """A running hub (used by `serve` and by tests that start one in-process)."""

    settings: Settings
    ctx: HubContext | None = None
    ws_server: WebSocketServer | None = None
    _runners: list[web.AppRunner] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self, providers: Providers | None = None) -> HubContext:
        t0 = time.monotonic()
        settings = self.settings
        data_dir = settings.data_path
        data_dir.mkdir(parents=True, exist_ok=True)
        db = await Database(data_dir / "hub.db").open()
        self._closers.append(db.close)
        secret = settings.auth.secret or load_or_create_secret(data_dir)
        compute = configure_compute(settings)
        self._closers.append(self._async(compute.shutdown))
        if providers is None:
            from .providers.registry import close_providers, create_providers

            providers = await create_providers(settings, compute)
            self._closers.append(lambda: close_providers(providers))
        ctx = HubContext(settings=settings, db=db, auth=Authenticator(settings.auth, secret), compute=compute,
                         registry=SessionRegistry(), providers=providers, hub_id=load_or_create_hub_id(data_dir))
        ctx.metrics = Metrics()
        ctx.phrases = PhraseCache(providers.tts, settings.audio.downlink_sample_rate,
                                            settings.audio.frame_duration_ms, compute)
        lag = asyncio.create_task(watch_loop_lag(ctx.metrics), name="loop-lag")
        self._closers.append(self._async(lag.cancel))
        try:
            ctx.agent = await create_agent(ctx)
        except ValueError as err:  # e.g. a broken intents.sentences_file
            raise ConfigError(str(err)) from None
        self.ctx = ctx

        modules = []
        for name in COMPONENTS:
            try:
                modules.append(importlib.import_module(name))
            except ModuleNotFoundError as err:
                if err.name != name:
                    raise
                log.debug("component %s not present", name)
        await db.migrate()  # tables of components imported after open

        # Listeners first, so the bound ports are known to components (OTA reply, mDNS).
        http_app = create_http_app(ctx)
        for module in modules:
            if hasattr(module, "setup_http"):
                module.setup_http(http_app, ctx)
        self.ws_server = WebSocketServer(ctx)
        host = settings.server.host
        ctx.ws_port = await self._serve(self.ws_server.app, host, settings.server.ws_port)
        ctx.http_port = await self._serve(http_app, host, settings.server.http_port)
        await self.ws_server.start()
        for module in modules:
            if hasattr(module, "start"):
                closer = await module.start(ctx)
                if closer is not None:
                    self._closers.append(closer)
        ctx.startup_seconds = time.monotonic() - t0
        # Fixed phrases are synthesized in the background after "ready", before anyone needs them.
        from .session.turn import BUSY_TEXT, FILLER_TEXT, phrase

        async def warm_phrases() -> None:
            for text in (FILLER_TEXT, BUSY_TEXT):
                with contextlib.suppress(Exception):
                    await ctx.phrases.frames(phrase(settings, text))

        warm = asyncio.create_task(warm_phrases(), name="phrases")
        self._closers.append(self._async(warm.cancel))
        return ctx

    @staticmethod
    def _async(fn: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            fn()
        return run

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        self._runners.insert(0, runner)
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        return sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self.ws_server is not None:
            grace = self.settings.server.shutdown_grace
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ws_server.shutdown(), timeout=grace + 1)
        for runner in self._runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                log.exception("error during shutdown")
        self._closers.clear()


async def serve(settings: Settings) -> int:
    hub = Hub(settings)
    try:
        ctx = await hub.start()
    except OSError as err:
        log.error("cannot start: %s", err)
        await hub.stop()
        return 1
    except BaseException:
        await hub.stop()  # release what was opened (database, models, ports) before reporting
        raise
    print(f"xiaozhi-hub {__version__} ready in {ctx.startup_seconds:.1f}s\n"
          f"  give devices the OTA URL:  {ctx.http_url()}/xiaozhi/ota/\n"
          f"  WebSocket URL:             {ctx.ws_url()}\n"
          f"  status page:               {ctx.http_url()}/"
          + (f"\n  Wyoming (Assist STT/TTS):  {ctx.wyoming.uri()}" if ctx.wyoming is not None else ""), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await hub.stop()
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from .providers.base import ProviderError

    try:
        return asyncio.run(serve(settings))
    except ProviderError as err:
        print(f"xiaozhi-hub: {err}", file=sys.stderr)
        return 2


def register(subparsers: argparse._SubParsersAction) -> None:
    from .__main__ import add_common_flags

    p = subparsers.add_parser("serve", help="run the hub (the default)",
                              description="Serve devices over WebSocket and the HTTP API.")
    add_common_flags(p, suppress=True)
    p.set_defaults(func=_run)
