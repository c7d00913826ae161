"""mDNS (zeroconf) advertisement, so setup tools and Home Assistant find the hub without typing an IP.

Two services are published under one instance name (``mdns.name``, default ``xiaozhi-hub-<host>``):

* ``_xiaozhi._tcp.local.`` on the WebSocket port, TXT ``ws_path``, ``ota_url`` (what to enter as the
  device's OTA URL), ``hub_id`` (stable across restarts and address changes: the unique id Home
  Assistant keys the hub on) and ``version``;
* ``_http._tcp.local.`` on the HTTP port (status page, API), TXT ``path``, ``hub_id``, ``version``;
* ``_wyoming._tcp.local.`` on the Wyoming port while the Wyoming server runs (net/wyoming/), TXT
  ``hub_id``, ``version``: Home Assistant's Wyoming integration offers the hub's ASR and TTS from it.

DHCP leases and Wi-Fi roaming change the hub's address while it runs, and records still carrying
the old one would send clients nowhere. Every ``poll_interval`` seconds (30) the advertiser
re-reads the LAN address (and the bound ports, which are only known once the servers listen) and,
if anything changed, rescans interfaces and re-announces the records. If multicast is unavailable
(no network yet, a container without it) the hub keeps running and the advertiser retries on the
same schedule. Registration runs in the background; hub start-up never waits for mDNS probing.

Off with ``mdns.enabled: false``. ``mdns.interfaces`` limits it to given IPv4 addresses (they are also
the addresses advertised); by default all interfaces are used and the LAN address is advertised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from .. import __version__
from ..context import lan_ip
from .ota import OTA_PATH

if TYPE_CHECKING:
    from ..context import HubContext

_LOGGER = logging.getLogger(__name__)

XIAOZHI_TYPE = "_xiaozhi._tcp.local."
HTTP_TYPE = "_http._tcp.local."
WYOMING_TYPE = "_wyoming._tcp.local."
POLL_SECONDS = 30.0


def instance_name(configured: str | None, hostname: str | None = None) -> str:
    """A DNS-SD instance name: the configured one, else ``xiaozhi-hub-<short host name>``.

    Dots would split the label, and labels are limited to 63 bytes.
    """
    if configured:
        name = configured
    else:
        host = (hostname or socket.gethostname()).split(".", 1)[0] or "host"
        name = f"xiaozhi-hub-{host}"
    name = name.replace(".", "-").strip() or "xiaozhi-hub"
    while len(name.encode("utf-8")) > 63:
        name = name[:-1]
    return name


def server_name(hub_id: str) -> str:
    """A host name for the SRV records that cannot collide with the machine's own (Avahi owns that)."""
    slug = re.sub(r"[^a-z0-9]+", "-", hub_id.lower()).strip("-")[:12] or "hub"
    return f"xiaozhi-hub-{slug}.local."


@dataclass(frozen=True)
class _Snapshot:
    """Everything that ends up in the records; a change means re-announcing."""

    addresses: tuple[str, ...]
    ws_port: int
    http_port: int
    wyoming_port: int | None = None


class HubAdvertiser:
    """Publishes the hub's services and keeps them current while it runs."""

    def __init__(self, ctx: "HubContext", *, interfaces: Sequence[str] | None = None,
                 address_source: Callable[[], Sequence[str]] | None = None,
                 poll_interval: float = POLL_SECONDS) -> None:
        self.ctx = ctx
        self.interfaces = list(interfaces) if interfaces else None
        if address_source is None:
            explicit = self.interfaces
            address_source = (lambda: explicit) if explicit else (lambda: [lan_ip()])
        self._address_source = address_source
        self.poll_interval = poll_interval
        self.name = instance_name(ctx.settings.mdns.name)
        self.server = server_name(ctx.hub_id)
        self._zc: AsyncZeroconf | None = None
        self._infos: list[AsyncServiceInfo] = []
        self._snapshot: _Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- what is advertised ------------------------------------------------------------------------
    def _current(self) -> _Snapshot:
        addresses = tuple(a for a in self._address_source() if a)
        ws_port = self.ctx.ws_port or self.ctx.settings.server.ws_port
        http_port = self.ctx.http_port or self.ctx.settings.server.http_port
        wyoming_port = self.ctx.wyoming.port if self.ctx.wyoming is not None else None
        return _Snapshot(addresses, ws_port, http_port, wyoming_port)

    def build_infos(self, snap: _Snapshot) -> list[AsyncServiceInfo]:
        primary = snap.addresses[0] if snap.addresses else None
        http_base = self.ctx.http_url(primary)
        common = {"hub_id": self.ctx.hub_id, "version": __version__}
        names = {i.type: i.name for i in self._infos}   # keep names zeroconf may have de-conflicted
        infos = [
            AsyncServiceInfo(
                XIAOZHI_TYPE, names.get(XIAOZHI_TYPE, f"{self.name}.{XIAOZHI_TYPE}"), port=snap.ws_port,
                properties={"ws_path": self.ctx.settings.server.ws_path,
                            "ota_url": f"{http_base}{OTA_PATH}", **common},
                server=self.server, parsed_addresses=list(snap.addresses)),
            AsyncServiceInfo(
                HTTP_TYPE, names.get(HTTP_TYPE, f"{self.name}.{HTTP_TYPE}"), port=snap.http_port,
                properties={"path": "/", **common},
                server=self.server, parsed_addresses=list(snap.addresses)),
        ]
        if snap.wyoming_port:
            infos.append(AsyncServiceInfo(
                WYOMING_TYPE, names.get(WYOMING_TYPE, f"{self.name}.{WYOMING_TYPE}"), port=snap.wyoming_port,
                properties=common, server=self.server, parsed_addresses=list(snap.addresses)))
        return infos

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin advertising in the background (never blocks or fails the hub's start-up)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mdns")

    async def close(self) -> None:
        """Say goodbye (so browsers drop the hub at once) and release the sockets."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            await self._shutdown_zc()

    async def refresh(self) -> bool:
        """Re-announce now if the address or a port changed (app.py may call it once servers listen)."""
        async with self._lock:
            return await self._sync()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                _LOGGER.exception("mDNS advertisement failed; retrying in %.0f s", self.poll_interval)
                await self._shutdown_zc()
            await asyncio.sleep(self.poll_interval)

    async def _sync(self) -> bool:
        snap = self._current()
        if self._zc is not None and snap == self._snapshot:
            return False
        if self._zc is None:
            try:
                self._zc = AsyncZeroconf(interfaces=self.interfaces) if self.interfaces \
                    else AsyncZeroconf(ip_version=IPVersion.V4Only)
            except OSError as err:
                _LOGGER.warning("mDNS unavailable (%s); retrying in %.0f s", err, self.poll_interval)
                return False
            self._infos = []
        if snap.addresses and self.interfaces is None and snap.addresses[0] != self.ctx.host_ip:
            self.ctx.host_ip = snap.addresses[0]   # URLs built without a Host header follow the new address
        moved = self._snapshot is not None and snap.addresses != self._snapshot.addresses
        if moved:
            # Browsers keep an address record until its TTL runs out even after a newer one arrives,
            # so withdraw the old records with a goodbye (TTL 0) and register afresh.
            for info in self._infos:
                await (await self._zc.async_unregister_service(info))
            if hasattr(self._zc, "async_update_interfaces") and self.interfaces is None:
                await self._zc.async_update_interfaces()  # the new address may be on a new interface
            self._infos = []
        first = not self._infos
        infos = self.build_infos(snap)
        waits: list[Awaitable[object]] = []
        for info in infos:
            if first:
                waits.append(await self._zc.async_register_service(info, allow_name_change=True))
            else:
                waits.append(await self._zc.async_update_service(info))
        self._infos = infos
        self._snapshot = snap
        await asyncio.gather(*waits)
        _LOGGER.info("mDNS: %s %s on %s (ws port %d, http port %d)",
                     "re-announced" if moved or not first else "advertising", infos[0].name,
                     ", ".join(snap.addresses) or "no address", snap.ws_port, snap.http_port)
        return True

    async def _shutdown_zc(self) -> None:
        zc, self._zc = self._zc, None
        self._infos = []
        self._snapshot = None
        if zc is None:
            return
        try:
            await zc.async_unregister_all_services()
        except Exception:  # pragma: no cover - best effort goodbye
            _LOGGER.debug("mDNS goodbye failed", exc_info=True)
        with contextlib.suppress(Exception):
            await zc.async_close()
