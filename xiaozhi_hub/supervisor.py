"""Inside the Home Assistant add-on: the Supervisor's API.

The add-on is recognised by ``SUPERVISOR_TOKEN`` in the environment (the Supervisor sets it for every
add-on); the API is at ``addon.supervisor_url`` (``http://supervisor``) with that token as bearer.

* ``GET /services/mqtt``: the broker the MQTT add-on provides (host, port, username, password, ssl),
  used by the add-on's start (addon_options.py) when the user has not set a broker.
* ``POST /discovery``: announces the hub to Home Assistant, which starts the config flow of the
  integration named like the service: ``xiaozhi`` (host, HTTP port, hub_id and the admin token, for
  the custom component's ``hassio`` step) and ``wyoming`` (``uri`` tcp://host:port, for Home
  Assistant's Wyoming integration). The add-on's config.yaml lists both under ``discovery``. The
  messages are never withdrawn on shutdown: Home Assistant removes the config entries of a withdrawn
  discovery, and a restart must not do that.

Announcing runs in the background after the listeners are up and retries with back-off while the
Supervisor is unreachable; the hub serves devices meanwhile. Tokens and passwords are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

import aiohttp

from .services.admin_token import TOKEN_FILE, AdminToken

if TYPE_CHECKING:
    from .context import HubContext
    from .settings import Settings

log = logging.getLogger(__name__)

TOKEN_ENV = "SUPERVISOR_TOKEN"
ADMIN_TOKEN_FILE = TOKEN_FILE         # in the data folder; written by the hub's API (`xiaozhi-hub token`)
RETRY_FIRST, RETRY_MAX = 2.0, 60.0     # back-off of the discovery announcements (seconds)


class SupervisorError(Exception):
    """The Supervisor could not be reached or refused a request (the message names which)."""


def supervisor_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The add-on's Supervisor token, or None outside the add-on."""
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return token or None


@dataclass(frozen=True)
class MqttService:
    """A broker as the Supervisor's services API describes it."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False

    def describe(self) -> str:
        """For logs: everything but the password."""
        user = f" as {self.username}" if self.username else ""
        return f"{self.host}:{self.port}{user}{' (TLS)' if self.ssl else ''}"


class SupervisorClient:
    """A small client of the Supervisor's REST API (JSON envelope ``{"result", "data", "message"}``)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "SupervisorClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        try:
            async with self._session.request(method, f"{self.base_url}{path}", json=body) as resp:
                try:
                    payload = await resp.json(content_type=None)
                except ValueError:
                    payload = None
                return resp.status, payload
        except (TimeoutError, aiohttp.ClientError) as err:
            raise SupervisorError(f"{method} {path}: the Supervisor is unreachable ({err.__class__.__name__})") from None

    @staticmethod
    def _data(method: str, path: str, status: int, payload: Any) -> Any:
        if status == 200 and isinstance(payload, dict) and payload.get("result") == "ok":
            return payload.get("data") or {}
        message = payload.get("message") if isinstance(payload, dict) else None
        raise SupervisorError(f"{method} {path}: HTTP {status}{f' ({message})' if message else ''}")

    async def mqtt_service(self) -> MqttService | None:
        """The MQTT broker offered by an add-on, or None when no add-on provides one."""
        status, payload = await self._request("GET", "/services/mqtt")
        if status in (400, 404):          # the Supervisor's answer when the service is not provided
            return None
        data = self._data("GET", "/services/mqtt", status, payload)
        try:
            return MqttService(host=str(data["host"]), port=int(data["port"]),
                               username=data.get("username") or None, password=data.get("password") or None,
                               ssl=bool(data.get("ssl", False)))
        except (KeyError, TypeError, ValueError):
            raise SupervisorError("GET /services/mqtt: the answer lacks host or port") from None

    async def discover(self, service: str, config: Mapping[str, Any]) -> str:
        """Announce ``service`` to Home Assistant; returns the discovery message's uuid."""
        status, payload = await self._request("POST", "/discovery", {"service": service, "config": dict(config)})
        data = self._data("POST", "/discovery", status, payload)
        return str(data.get("uuid", ""))


def admin_token(settings: "Settings") -> str | None:
    """The hub's admin token (for the component's ``hassio`` step), or None while there is none.

    The one place that knows where the token lives: the hub's API keeps it in the data folder.
    """
    return AdminToken.in_data_dir(settings.data_path).current()


def discovery_messages(ctx: "HubContext") -> dict[str, dict[str, Any]]:
    """What the hub announces: service name → config."""
    host = ctx.settings.addon.announce_host or ctx.host_ip
    xiaozhi: dict[str, Any] = {"host": host, "port": ctx.http_port or ctx.settings.server.http_port,
                               "hub_id": ctx.hub_id}
    token = admin_token(ctx.settings)
    if token:
        xiaozhi["token"] = token
    messages = {"xiaozhi": xiaozhi}
    if ctx.wyoming is not None:
        messages["wyoming"] = {"uri": ctx.wyoming.uri(host)}
    return messages


@dataclass
class SupervisorLink:
    """The hub's announcements to Home Assistant through the Supervisor (``ctx.supervisor``)."""

    ctx: "HubContext"
    client: SupervisorClient
    announced: dict[str, str] = field(default_factory=dict)     # service → discovery uuid
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._announce_all(), name="supervisor-discovery")

    async def wait_announced(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _announce_all(self) -> None:
        messages = discovery_messages(self.ctx)
        if "token" not in messages["xiaozhi"]:
            log.warning("add-on: no admin token yet; Home Assistant's xiaozhi setup will ask for it")
        for service, config in messages.items():
            delay = RETRY_FIRST
            while True:
                try:
                    self.announced[service] = await self.client.discover(service, config)
                    log.info("add-on: announced %s to Home Assistant", service)
                    break
                except SupervisorError as err:
                    log.warning("add-on: announcing %s failed: %s; retrying in %.0f s", service, err, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()


async def start(ctx: "HubContext") -> Callable[[], Awaitable[None]] | None:
    """Component hook: inside the add-on, announce the hub (unless ``addon.discovery`` is false)."""
    token = supervisor_token()
    if token is None or not ctx.settings.addon.discovery:
        return None
    link = SupervisorLink(ctx, SupervisorClient(ctx.settings.addon.supervisor_url, token))
    link.start()
    ctx.supervisor = link
    return link.close
