"""The runtime of one configured hub (``entry.runtime_data``).

It keeps the hub's event stream open (reconnecting with backoff), holds the devices the hub reports,
keeps one Home Assistant device per ESP32 linked to the hub device, and tells entities when
something changed. Entities never poll: every change arrives as an event on the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .announce import async_outcome
from .api import CannotConnect, HubDevice, HubInfo, InvalidAuth, XiaozhiApi, normalize_device_id
from .const import (
    CONF_CONVERSATION_FIRST,
    CONF_HOME_CONTROL,
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_TURN_FINISHED,
    EVENT_WAKE,
)
from .devices import (
    ensure_device,
    ha_device_id,
    hub_device_of,
    register_hub_device,
    remove_device,
    remove_stale_devices,
)

if TYPE_CHECKING:
    from .home import HomeBridge

_LOGGER = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
STABLE_SECONDS = 30.0

type XiaozhiConfigEntry = ConfigEntry[XiaozhiHub]
type DeviceEventListener = Callable[[str, dict[str, Any]], None]
type MessageHandler = Callable[[dict[str, Any]], None]


class XiaozhiHub:
    """One hub: its devices, its event stream, and the listeners of entities and bridges."""

    def __init__(self, hass: HomeAssistant, entry: XiaozhiConfigEntry, api: XiaozhiApi, info: HubInfo) -> None:
        self.hass = hass
        self.entry = entry
        self.api = api
        self.info = info
        self.devices: dict[str, HubDevice] = {}
        self.connected = False
        self.last_error: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._added: set[str] = set()      # devices whose entities exist
        self.removing: set[str] = set()    # being removed by the user (Home Assistant removes the device)
        self._platforms: list[Callable[[HubDevice], None]] = []
        self._device_listeners: dict[str, list[Callable[[], None]]] = {}
        self._event_listeners: dict[str, list[DeviceEventListener]] = {}
        self._connection_listeners: list[Callable[[], None]] = []
        self._message_handlers: dict[str, MessageHandler] = {}
        self.hub_device_id: str | None = None
        self.platforms: list[Platform] = []     # the entity platforms set up for this entry
        self.home: HomeBridge | None = None      # home control through Home Assistant

    # -- options -------------------------------------------------------------------------------
    def option(self, key: str) -> bool:
        return bool(self.entry.options.get(key, DEFAULT_OPTIONS[key]))

    # -- lifecycle -----------------------------------------------------------------------------
    async def async_start(self) -> None:
        """Open the event stream and take its snapshot; raises CannotConnect/InvalidAuth."""
        self.hub_device_id = register_hub_device(self.hass, self.entry, self.info, self.api.base_url)
        await self._connect()
        self._task = self.entry.async_create_background_task(
            self.hass, self._run(), f"{DOMAIN} event stream {self.info.hub_id}")

    async def async_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_ws()
        self.connected = False

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST / 2   # doubled once when the first connection is lost
        while True:
            if self._ws is None:
                try:
                    await self._connect()
                except InvalidAuth:
                    _LOGGER.error("Hub %s refused the admin token; reconfigure it", self.info.name)
                    self.entry.async_start_reauth(self.hass)
                    return
                except Exception as err:  # CannotConnect, or anything unexpected: keep trying
                    self.last_error = str(err)
                    if not isinstance(err, CannotConnect):
                        _LOGGER.exception("Unexpected error connecting to hub %s", self.info.name)
                    _LOGGER.debug("Hub %s still unreachable (%s); next try in %.0f s", self.info.name, err, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                _LOGGER.info("Connection to hub %s restored", self.info.name)
            since = time.monotonic()
            try:
                await self._read_loop()
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as err:
                self.last_error = str(err) or type(err).__name__
            finally:
                await self._close_ws()
                self._set_connected(False)
            _LOGGER.warning("Lost the connection to hub %s (%s); its entities are unavailable until it is back",
                            self.info.name, self.last_error or "closed")
            # A connection that keeps dropping at once (a hub that refuses us) is retried ever more slowly.
            backoff = min(backoff * 2, BACKOFF_MAX) if time.monotonic() - since < STABLE_SECONDS else BACKOFF_FIRST
            await asyncio.sleep(backoff)

    async def _connect(self) -> None:
        ws = await self.api.connect_events()
        try:
            hello = await ws.receive_json(timeout=HELLO_TIMEOUT)
        except (TimeoutError, ValueError, TypeError, aiohttp.ClientError) as err:
            await ws.close()
            raise CannotConnect(f"no hello on the event stream: {err or type(err).__name__}") from err
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            await ws.close()
            raise CannotConnect(f"the event stream did not start with a hello: {hello!r:.200}")
        if hello.get("hub_id") not in (None, self.info.hub_id):
            await ws.close()
            raise CannotConnect(f"a different hub ({hello.get('hub_id')}) now answers at {self.api.base_url}")
        self._ws = ws
        self.last_error = None
        try:
            self._apply_snapshot(hello.get("devices"))
            # This integration represents the devices, so the hub publishes no MQTT discovery for them;
            # "conversation" asks the hub to offer commands to Home Assistant's agent first.
            conversation = self.option(CONF_CONVERSATION_FIRST) and self.option(CONF_HOME_CONTROL)
            if not await self.async_send({"type": "register", "mqtt_discovery": False, "conversation": conversation}):
                raise CannotConnect("the event stream closed right after the hello")
        except BaseException:
            await self._close_ws()
            raise
        self._set_connected(True)

    async def _read_loop(self) -> None:
        assert self._ws is not None
        ws = self._ws
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    data = msg.json()
                except ValueError:
                    _LOGGER.debug("Ignoring a non-JSON message from the hub: %.200s", msg.data)
                    continue
                if isinstance(data, dict):
                    try:
                        self._dispatch(data)
                    except Exception:  # one bad event must not drop the stream
                        _LOGGER.exception("Could not apply an event from the hub: %.200s", msg.data)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                self.last_error = str(ws.exception())
                break
        if ws.close_code is not None and self.last_error is None:
            self.last_error = f"closed with code {ws.close_code}"

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()

    async def async_send(self, message: dict[str, Any]) -> bool:
        """Send a message on the event stream; False when the hub is not connected."""
        ws = self._ws
        if ws is None or ws.closed:
            return False
        try:
            async with self._send_lock:
                await ws.send_json(message)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as err:
            _LOGGER.debug("Could not send %s to the hub: %s", message.get("type"), err)
            return False
        return True

    # -- listeners -----------------------------------------------------------------------------
    @callback
    def async_add_platform(self, add_device: Callable[[HubDevice], None]) -> Callable[[], None]:
        """A platform's "create entities for this device"; called now for known devices, later for new ones."""
        self._platforms.append(add_device)
        for device_id in self._added:
            add_device(self.devices[device_id])
        return lambda: self._platforms.remove(add_device)

    @callback
    def async_add_device_listener(self, device_id: str, listener: Callable[[], None]) -> Callable[[], None]:
        return _subscribe(self._device_listeners, device_id, listener)

    @callback
    def async_add_event_listener(self, device_id: str, listener: DeviceEventListener) -> Callable[[], None]:
        return _subscribe(self._event_listeners, device_id, listener)

    @callback
    def async_add_connection_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._connection_listeners.append(listener)
        return lambda: self._connection_listeners.remove(listener)

    @callback
    def async_set_message_handler(self, type_: str, handler: MessageHandler) -> None:
        """Route hub messages of ``type_`` (home_call, conversation) to a bridge."""
        self._message_handlers[type_] = handler

    def _set_connected(self, connected: bool) -> None:
        if self.connected == connected:
            return
        self.connected = connected
        for listener in list(self._connection_listeners):
            listener()
        for listeners in list(self._device_listeners.values()):
            for device_listener in list(listeners):
                device_listener()

    def _changed(self, device_id: str) -> None:
        for listener in list(self._device_listeners.get(device_id, ())):
            listener()

    def _fire(self, device_id: str, event_type: str, data: dict[str, Any]) -> None:
        for listener in list(self._event_listeners.get(device_id, ())):
            listener(event_type, data)

    # -- events from the hub -------------------------------------------------------------------
    def _dispatch(self, msg: dict[str, Any]) -> None:
        type_ = msg.get("type")
        if not isinstance(type_, str):
            return
        if (handler := self._message_handlers.get(type_)) is not None:
            handler(msg)
            return
        if type_ == "error":
            # Without a device it is about this connection (the hub refused something we sent).
            level = logging.DEBUG if msg.get("device_id") else logging.WARNING
            reason = msg.get("error") or msg.get("message") or msg
            _LOGGER.log(level, "Hub %s reported an error: %.300s", self.info.name, reason)
            return
        if type_ in ("device_added", "device_renamed"):
            raw = msg.get("device")
            if isinstance(raw, dict):
                self._upsert(raw)
            return
        raw_id = msg.get("device_id")
        if not isinstance(raw_id, str) or not raw_id:
            return
        device_id = normalize_device_id(raw_id)
        if type_ == "device_removed":
            self._remove(device_id)
            return
        device = self.devices.get(device_id)
        if device is None:
            if type_ != "device_connected":
                return  # an event about a device we were never told about; the next hello fixes it
            device = self._upsert({"device_id": device_id, "online": True, "state": "idle"})
            if device is None:
                return
        self._apply_event(device, type_, msg)

    def _apply_event(self, device: HubDevice, type_: str, msg: dict[str, Any]) -> None:
        text = msg.get("text") if isinstance(msg.get("text"), str) else None
        if type_ == "device_connected":
            device.online = True
            if device.state == "offline":
                device.state = "idle"
            if isinstance(msg.get("transport"), str):
                device.transport = msg["transport"]
            if isinstance(msg.get("device"), dict):
                device.update(msg["device"])
        elif type_ == "device_disconnected":
            device.online, device.state = False, "offline"
        elif type_ == "state" and isinstance(msg.get("state"), str):
            device.state = msg["state"]
        elif type_ == "volume":
            device.update({"volume": msg.get("volume")})
        elif type_ == "stt" and text is not None:
            device.last_heard = text
        elif type_ == "reply" and text is not None:
            device.last_reply = text
        elif type_ == "wake":
            self._fire(device.device_id, EVENT_WAKE, {"text": text or ""})
            return
        elif type_ == "turn_finished":
            self._fire(device.device_id, EVENT_TURN_FINISHED,
                       {"heard": device.last_heard or "", "reply": device.last_reply or "",
                        "interrupted": msg.get("interrupted") is True})
            return
        elif type_ == "announcement":
            async_outcome(self.hass, device.device_id, msg.get("status"))
            return
        else:
            return
        self._changed(device.device_id)

    # -- devices -------------------------------------------------------------------------------
    def _apply_snapshot(self, raw_devices: Any) -> None:
        """The hello's device list is the truth: update, add, and drop devices the hub forgot."""
        seen: set[str] = set()
        for raw in raw_devices if isinstance(raw_devices, list) else ():
            if isinstance(raw, dict) and (device := self._upsert(raw)) is not None:
                seen.add(device.device_id)
        for device_id in list(self.devices):
            if device_id not in seen:
                self._remove(device_id)
        remove_stale_devices(self.hass, self.entry, self.info.hub_id, seen)

    def _upsert(self, raw: dict[str, Any]) -> HubDevice | None:
        try:
            incoming = HubDevice.from_api(raw)
        except ValueError:
            _LOGGER.debug("Ignoring a malformed device from the hub: %.200r", raw)
            return None
        known = self.devices.get(incoming.device_id)
        if known is None:
            self._add(incoming)
            return incoming
        known.update(raw)
        ensure_device(self.hass, self.entry, known, self.hub_device_id)
        self._changed(known.device_id)
        return known

    def _add(self, device: HubDevice) -> None:
        self.devices[device.device_id] = device
        ensure_device(self.hass, self.entry, device, self.hub_device_id)
        if device.device_id not in self._added:
            self._added.add(device.device_id)
            for add_device in list(self._platforms):
                add_device(device)

    def _remove(self, device_id: str) -> None:
        self.devices.pop(device_id, None)
        self._added.discard(device_id)
        if device_id not in self.removing:
            remove_device(self.hass, self.entry, device_id)

    @callback
    def async_forget(self, device_id: str) -> None:
        """The user removed the HA device; if the ESP32 shows up again it gets new entities."""
        self.devices.pop(device_id, None)
        self._added.discard(device_id)
        self._device_listeners.pop(device_id, None)
        self._event_listeners.pop(device_id, None)

    def device_for_ha_device(self, ha_device: dr.DeviceEntry) -> str | None:
        """The hub's device id behind a Home Assistant device of this entry (None for the hub itself)."""
        return hub_device_of(ha_device)

    def ha_device_id(self, device_id: str) -> str | None:
        return ha_device_id(self.hass, device_id)


def _subscribe[T](listeners: dict[str, list[T]], device_id: str, listener: T) -> Callable[[], None]:
    listeners.setdefault(device_id, []).append(listener)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):   # already dropped with its device (async_forget)
            listeners.get(device_id, []).remove(listener)

    return unsubscribe
