"""Composition root: builds every service from the settings, serves, and owns shutdown.

Start order: data folder and database → secrets and hub id → compute pool → providers (models load
once) → device store (revocation cache loaded, kept fresh) and firmware store (crash leftovers
swept) → metrics, fixed phrases, the hub context, the loop-lag watcher → the API's services (admin
token, Home Assistant component link, announcements with their expiry timer) → agent → WebSocket
listener → OTA endpoint, HTTP routes and listener → mDNS (it advertises the bound ports) → the
agent's background services (timers, memory retention) → the MQTT bridge (when ``mqtt.host`` is
set; it connects in the background) → "ready"; the fixed phrases are then
synthesized in the background.
Shutdown (SIGINT/SIGTERM, :meth:`Hub.stop`): close every session with 1001 (within
``shutdown_grace`` + 1 s), stop the listeners, then close the rest in reverse start order: phrase
warm-up, the MQTT bridge (the hub's availability goes ``offline``), the agent, mDNS, announcements,
the loop-lag watcher, the device store, providers, the compute pool, and last the database, which checkpoints its WAL.

:func:`open_stores`, :func:`open_api_services` and :func:`serve_http` make up the HTTP side; the hub
uses them, and so do the HTTP tests, which build the HTTP side alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
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

from . import __version__, heap, supervisor
from .auth import Authenticator, load_or_create_secret
from .compute import ComputePool
from .context import HubContext, lan_ip
from .metrics import Metrics
from .net.devices import disconnect
from .net import wyoming
from . import mqtt
from .net.http import create_http_app

from .net.mdns import HubAdvertiser
from .net.ota import OTAEndpoint
from .pipeline.agent import create_agent
from .pipeline.phrases import BUSY_TEXT, FILLER_TEXT, phrase
from .pipeline.speaker import PhraseCache
from .providers.base import ProviderError, Providers
from .providers.registry import close_providers, create_providers
from .services.admin_token import AdminToken
from .services.announce import Announcements
from .services.component import ComponentLink
from .session.announcing import Announcing
from .settings import ConfigError, Settings, add_common_flags
from .store.db import Database
from .store.device_store import DeviceStore
from .store.firmware import FirmwareStore
from .tools.home_assistant import set_home_control

from .transport.mqtt import service as mqtt_udp
from .transport.registry import SessionRegistry
from .transport.ws_server import WebSocketServer
from .vision import VisionModel, public_url

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]
Listen = Callable[[web.Application], Awaitable[int]]   # serve an app, return the bound port

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

async def _warmed(ctx: HubContext) -> None:
    """ "ready" means the first question is answered like any other: wait up to ``llm.ready_wait``
    for the LLM's prompt-cache warm-up, which that question would otherwise wait for (issue 13;
    seconds on 2 cores). Past it the hub is ready anyway, and a first question waits for the rest."""
    if ctx.settings.llm.ready_wait <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ctx.settings.llm.ready_wait):
            await ctx.agent.llm_warmed()


def _call(fn: Callable[[], Any]) -> Closer:
    """A closer for a synchronous release (cancel a task, shut a pool down)."""
    async def run() -> None:
        fn()
    return run

# ---------------------------------------------------------------------------- the HTTP side

@dataclass(frozen=True)
class Stores:
    devices: DeviceStore
    firmware: FirmwareStore

async def open_stores(settings: Settings, db: Database, registry: SessionRegistry,
                      closers: list[Closer]) -> Stores:
    """The device records, with their revocation cache loaded and kept fresh, wired to close the live
    session of a device that gets blocked or revoked; and the firmware store, crash leftovers swept."""
    devices = DeviceStore(db, approve_new=not settings.ota.activation,
                          on_shut_out=functools.partial(disconnect, registry))
    await devices.load()
    devices.start_refresh()
    closers.append(devices.close)
    firmware = FirmwareStore(settings.data_path / "firmware", db)
    for path in await firmware.sweep_async():
        log.info("removed unindexed firmware leftover %s", path.name)
    return Stores(devices, firmware)

def advertised_host(settings: Settings) -> str:
    """The address URLs name when no request says which one the client used (the vision URL in MCP
    initialize, the ready banner): ``server.host`` when the hub listens on one address, else the LAN's."""
    host = settings.server.host
    return lan_ip() if host in ("", "0.0.0.0", "::") else host

def open_vision(settings: Settings, closers: list[Closer]) -> VisionModel | None:
    """The camera's vision model, when ``vision.base_url`` is set (else devices are offered no camera upload)."""
    if not settings.vision.configured:
        return None
    vision = VisionModel(settings.vision)
    closers.append(vision.aclose)
    log.info("vision model: %s (%s)", public_url(vision.url), settings.vision.model or "the server's model")
    return vision

def device_authenticator(settings: Settings, secret: str, devices: DeviceStore) -> Authenticator:
    """Who may open the WebSocket: tokens checked against the secret, revocation and approval from the store."""
    return Authenticator(settings.auth, secret, revoked_before=devices.revoked_before,
                         not_admitted=devices.not_admitted)

def _announce_target(registry: SessionRegistry, device_id: str) -> Announcing | None:
    """The device's connected session as the announcement rules see it."""
    session = registry.by_device(device_id)
    return session.announcing if session is not None else None


async def open_api_services(ctx: HubContext, closers: list[Closer]) -> None:
    """The admin token (created on first start), the Home Assistant component link (its home becomes
    ``ctx.home_control``), announcements (the queue's expiry timer starts), and device record changes
    reported as events."""
    ctx.admin = AdminToken.in_data_dir(ctx.settings.data_path)
    ctx.admin.ensure()
    ctx.component = ComponentLink(functools.partial(set_home_control, ctx))
    ctx.announcements = Announcements(ctx.db, ctx.settings.announce, ctx.live,
                                      functools.partial(_announce_target, ctx.registry))
    ctx.announcements.alert = functools.partial(_alert_idle, ctx)
    await ctx.announcements.start()
    closers.append(ctx.announcements.close)
    ctx.devices.on_change = ctx.live.record_changed


async def _alert_idle(ctx: HubContext, device_id: str, text: str) -> bool:
    """An announcement queued for a device connected over MQTT shows on its screen now."""
    return ctx.mqtt_udp is not None and await ctx.mqtt_udp.alert(device_id, text)


async def serve_http(ctx: HubContext, listen: Listen, closers: list[Closer]) -> None:
    """The OTA endpoint (unless ``ota.enabled`` is false), every HTTP route, the listener, then mDNS
    (unless ``mdns.enabled`` is false), which advertises the ports bound by then."""
    if ctx.settings.ota.enabled:
        ctx.ota = OTAEndpoint(ctx)
    else:
        log.info("OTA endpoint disabled (ota.enabled: false)")
    ctx.http_port = await listen(create_http_app(ctx))
    if ctx.settings.mdns.enabled:
        advertiser = HubAdvertiser(ctx, interfaces=ctx.settings.mdns.interfaces or None)
        await advertiser.start()
        ctx.mdns = advertiser
        closers.append(advertiser.close)

# ---------------------------------------------------------------------------- the hub

@dataclass
class Hub:
    """A running hub (used by `serve` and by tests that start one in-process)."""

    settings: Settings
    ctx: HubContext | None = None
    ws_server: WebSocketServer | None = None
    _runners: list[web.AppRunner] = field(default_factory=list)
    _closers: list[Closer] = field(default_factory=list)

    async def start(self, providers: Providers | None = None) -> HubContext:
        t0 = time.monotonic()
        ctx = await self._build(providers)
        self.ctx = ctx
        host = self.settings.server.host
        self.ws_server = WebSocketServer(ctx)
        ctx.ws_port = await self._serve(self.ws_server.app, host, self.settings.server.ws_port)
        await self.ws_server.start()
        ctx.mqtt_udp = await mqtt_udp.start(ctx)   # before the OTA endpoint, whose replies name its ports
        await self._add_closer(wyoming.start(ctx))   # before mDNS, which advertises its port
        await serve_http(ctx, functools.partial(self._serve, host=host, port=self.settings.server.http_port),
                         self._closers)
        await ctx.agent.start()
        await _warmed(ctx)
        self._closers.append(ctx.agent.close)
        await self._add_closer(mqtt.start(ctx))        # after the agent: commands may speak at once
        await self._add_closer(supervisor.start(ctx))  # last: announces the ports bound above (add-on only)
        ctx.startup_seconds = time.monotonic() - t0
        warm = asyncio.create_task(self._warm_phrases(ctx), name="phrases")
        self._closers.append(_call(warm.cancel))
        return ctx

    async def _build(self, providers: Providers | None) -> HubContext:
        """Every service the context holds, in start order; each registers its closer as it opens."""
        settings = self.settings
        data_dir = settings.data_path
        data_dir.mkdir(parents=True, exist_ok=True)
        db = await Database(data_dir / "hub.db").open()
        self._closers.append(db.close)
        secret = settings.auth.secret or load_or_create_secret(data_dir)
        hub_id = load_or_create_hub_id(data_dir)
        compute = configure_compute(settings)
        self._closers.append(_call(compute.shutdown))
        if providers is None:
            loaded = providers = await create_providers(settings, compute)
            self._closers.append(lambda: close_providers(loaded))
        registry = SessionRegistry()
        stores = await open_stores(settings, db, registry, self._closers)
        metrics = Metrics()
        compute.metrics = metrics       # the busy estimate, checked against the real waits (/metrics)
        phrases = PhraseCache(providers.tts, settings.audio.downlink_sample_rate, settings.audio.frame_duration_ms,
                              compute)
        auth = device_authenticator(settings, secret, stores.devices)
        ctx = HubContext(settings=settings, db=db, auth=auth, compute=compute, registry=registry,
                         providers=providers, hub_id=hub_id, devices=stores.devices,
                         firmware=stores.firmware, phrases=phrases, metrics=metrics,
                         host_ip=advertised_host(settings))
        ctx.vision = open_vision(settings, self._closers)
        lag = asyncio.create_task(watch_loop_lag(metrics), name="loop-lag")
        self._closers.append(_call(lag.cancel))
        trim = asyncio.create_task(heap.trim_when_quiet(compute, metrics), name="heap-trim")
        self._closers.append(_call(trim.cancel))
        await open_api_services(ctx, self._closers)
        try:
            ctx.agent = await create_agent(ctx)
        except ValueError as err:  # e.g. a broken intents.sentences_file
            raise ConfigError(str(err)) from None
        return ctx

    async def _add_closer(self, started: Awaitable[Closer | None]) -> None:
        closer = await started
        if closer is not None:
            self._closers.append(closer)

    @staticmethod
    async def _warm_phrases(ctx: HubContext) -> None:
        """Synthesize the fixed phrases after "ready", before anyone needs them."""
        for text in (FILLER_TEXT, BUSY_TEXT):
            with contextlib.suppress(Exception):
                await ctx.phrases.frames(phrase(ctx.settings, text))

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        self._runners.insert(0, runner)
        addresses = runner.addresses
        return int(addresses[0][1]) if addresses else port

    async def stop(self) -> None:
        if self.ctx is not None and self.ctx.mqtt_udp is not None:
            # First: its open channels hear goodbye, and no device gets a new session while going down.
            await self.ctx.mqtt_udp.stop()
            self.ctx.mqtt_udp = None
        if self.ws_server is not None:
            grace = self.settings.server.shutdown_grace
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace + 1):
                    await self.ws_server.shutdown()
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

# ---------------------------------------------------------------------------- `xiaozhi-hub serve`

def _data_folder(settings: Settings) -> str:
    """The data folder as the banner shows it, with its origin when an environment variable chose it."""
    origin = " (from XIAOZHI_DATA_DIR)" if settings.data_dir_origin == "XIAOZHI_DATA_DIR" else ""
    return f"{settings.data_path.resolve()}{origin}"


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
    mqtt_line = ""
    if ctx.mqtt_udp is not None:
        mqtt_line = (f"  device MQTT (TCP) / UDP:   {ctx.mqtt_udp.mqtt_endpoint(None)} / "
                     f"port {ctx.mqtt_udp.udp_public_port()}\n")
    print(f"xiaozhi-hub {__version__} ready in {ctx.startup_seconds:.1f}s\n"
          f"  give devices the OTA URL:  {ctx.http_url()}/xiaozhi/ota/\n"
          f"  WebSocket URL:             {ctx.ws_url()}\n" + mqtt_line +
          f"  status page:               {ctx.http_url()}/\n"
          f"  data folder:               {_data_folder(settings)}"
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
    heap.limit_arenas()   # before the engines start their threads (xiaozhi_hub/heap.py)
    try:
        return asyncio.run(serve(settings))
    except ProviderError as err:
        print(f"xiaozhi-hub: {err}", file=sys.stderr)
        return 2

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the hub (the default)",
                              description="Serve devices over WebSocket and the HTTP API.")
    add_common_flags(p, suppress=True)
    p.set_defaults(func=_run)
