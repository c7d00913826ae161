"""Each device's live state, in one place, and the one place sessions report what happens.

Sessions (any transport) call the small methods of :class:`LiveDevices` — ``connected``, ``state``,
``wake``, ``heard``, ``replied``, ``device_tool``, ``disconnected`` ... — and nothing else; each call
updates the device's :class:`DeviceLive` and publishes the matching event on the bus. The HTTP API,
the event stream, the MQTT bridge and the Home Assistant component all read the same state.

Every method is synchronous and cheap (a dict update and a non-blocking publish), so calling it from
the audio path costs nothing. A report from a session that is no longer the device's current one (a
replaced connection closing late) is ignored, so a reconnect never shows the device offline.

The state is kept in memory: after a hub restart every device is offline until it connects, and
``last_heard``/``last_reply`` start empty (the dialogue itself is in the conversation memory).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .events import EventBus, EventType

ONLINE_STATES = frozenset({"idle", "listening", "thinking", "speaking"})
OFFLINE = "offline"
# The stock firmware's MCP tools that tell the device's volume (docs/protocol.md, MCP).
MCP_SET_VOLUME = "self.audio_speaker.set_volume"
MCP_DEVICE_STATUS = "self.get_device_status"
MAX_TEXT = 2000          # last_heard / last_reply are cut to this many characters


@dataclass
class DeviceLive:
    device_id: str
    online: bool = False
    state: str = OFFLINE
    volume: int | None = None
    last_heard: str | None = None
    last_reply: str | None = None
    transport: str | None = None
    session_id: str | None = None
    connected_at: float | None = None    # unix time of the current connection's hello

    def to_json(self) -> dict[str, Any]:
        return {"online": self.online, "state": self.state, "volume": self.volume,
                "last_heard": self.last_heard, "last_reply": self.last_reply, "transport": self.transport}


def _volume_from_status(text: str) -> int | None:
    """The speaker volume in a ``self.get_device_status`` result, if it has one."""
    try:
        status = json.loads(text)
        volume = status["audio_speaker"]["volume"]
    except (ValueError, TypeError, KeyError):
        return None
    return _valid_volume(volume)


def _valid_volume(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if 0 <= value <= 100 else None


class LiveDevices:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._devices: dict[str, DeviceLive] = {}

    # -- reading ------------------------------------------------------------------------------------
    def get(self, device_id: str) -> DeviceLive | None:
        return self._devices.get(device_id)

    def is_online(self, device_id: str) -> bool:
        live = self._devices.get(device_id)
        return bool(live and live.online)

    def online_ids(self) -> list[str]:
        return [d for d, live in self._devices.items() if live.online]

    def view(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A device record's public JSON with its live fields (online, state, volume, ...) merged in."""
        live = self._devices.get(str(record.get("device_id"))) or DeviceLive(str(record.get("device_id")))
        return {**record, **live.to_json()}

    def _entry(self, device_id: str) -> DeviceLive:
        live = self._devices.get(device_id)
        if live is None:
            live = self._devices[device_id] = DeviceLive(device_id)
        return live

    def _current(self, device_id: str, session_id: str) -> DeviceLive | None:
        """The entry if ``session_id`` is the device's current connection (else the report is stale)."""
        live = self._devices.get(device_id)
        return live if live is not None and live.online and live.session_id == session_id else None

    # -- reports from sessions ----------------------------------------------------------------------
    def connected(self, device_id: str, session_id: str, transport: str) -> None:
        """The hello is done: the device has a channel (``transport``: websocket or mqtt)."""
        live = self._entry(device_id)
        was_online = live.online
        live.online, live.session_id, live.transport = True, session_id, transport
        live.connected_at = time.time()
        if not was_online:
            self.bus.publish(EventType.DEVICE_CONNECTED, device_id, transport=transport)
        self._set_state(live, "idle")

    def state(self, device_id: str, session_id: str, state: str) -> None:
        """The session moved to ``state`` (a SessionState value; other values are ignored)."""
        live = self._current(device_id, session_id)
        if live is not None and state in ONLINE_STATES:
            self._set_state(live, state)

    def _set_state(self, live: DeviceLive, state: str) -> None:
        if live.state != state:
            live.state = state
            self.bus.publish(EventType.STATE, live.device_id, state=state)

    def disconnected(self, device_id: str, session_id: str) -> None:
        live = self._current(device_id, session_id)
        if live is None:
            return
        live.online, live.session_id, live.connected_at = False, None, None
        self._set_state(live, OFFLINE)
        self.bus.publish(EventType.DEVICE_DISCONNECTED, device_id)

    def wake(self, device_id: str, text: str) -> None:
        self.bus.publish(EventType.WAKE, device_id, text=text)

    def heard(self, device_id: str, text: str) -> None:
        self._entry(device_id).last_heard = text[:MAX_TEXT]
        self.bus.publish(EventType.STT, device_id, text=text)

    def replied(self, device_id: str, text: str, complete: bool) -> None:
        """A turn's answer ended (``complete`` False: cut off by abort, barge-in or an announcement)."""
        if text:
            self._entry(device_id).last_reply = text[:MAX_TEXT]
            self.bus.publish(EventType.REPLY, device_id, text=text, complete=complete)
        self.bus.publish(EventType.TURN_FINISHED, device_id, interrupted=not complete)

    def device_tool(self, device_id: str, name: str, arguments: Mapping[str, Any], result: str) -> None:
        """A device MCP tool answered; volume changes and status reports update the known volume."""
        volume: int | None = None
        if name == MCP_SET_VOLUME:
            volume = _valid_volume(arguments.get("volume"))
        elif name == MCP_DEVICE_STATUS:
            volume = _volume_from_status(result)
        if volume is not None:
            self.volume(device_id, volume)

    def volume(self, device_id: str, volume: int) -> None:
        live = self._entry(device_id)
        if live.volume != volume:
            live.volume = volume
            self.bus.publish(EventType.VOLUME, device_id, volume=volume)

    def tool_call(self, device_id: str, name: str, arguments: Mapping[str, Any], error: str | None) -> None:
        """The agent ran a tool (intent or LLM): ``error`` None means it succeeded."""
        data: dict[str, Any] = {"name": name, "arguments": dict(arguments), "ok": error is None}
        if error is not None:
            data["error"] = error
        self.bus.publish(EventType.TOOL_CALL, device_id, **data)

    def error(self, device_id: str | None, message: str) -> None:
        self.bus.publish(EventType.ERROR, device_id, message=message)

    # -- reports from the device records --------------------------------------------------------------
    def record_changed(self, kind: str, record: Mapping[str, Any]) -> None:
        """A device record was added, renamed or removed (``kind``); ``record`` is its public JSON."""
        device_id = str(record.get("device_id"))
        if kind == "added":
            self.bus.publish(EventType.DEVICE_ADDED, device_id, device=self.view(record))
        elif kind == "renamed":
            self.bus.publish(EventType.DEVICE_RENAMED, device_id, device=self.view(record))
        elif kind == "removed":
            live = self._devices.get(device_id)
            if live is not None and not live.online:
                del self._devices[device_id]
            self.bus.publish(EventType.DEVICE_REMOVED, device_id)
        else:
            raise ValueError(f"unknown record change {kind!r}")
