"""The bridge's commands (docs/mqtt.md, Commands): parse a payload, then act through the shared
services — announcements for ``say``, :mod:`xiaozhi_hub.services.control` for volume and stop.

A payload the bridge cannot use raises :class:`CommandError` with the reason; the bridge answers it
on ``<base>/error`` with the topic, and logs it. Nothing a payload holds can raise anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..services import control
from ..services.announce import AnnounceError
from ..store.devices import DeviceError, DeviceNotFound
from .topics import ALL, SAY, STOP, VOLUME_SET, Command

if TYPE_CHECKING:
    from ..context import HubContext

MAX_PAYLOAD = 16 * 1024       # bytes; the text itself is limited by the announcement rules (1000 characters)
SAY_KEYS = frozenset({"text", "ttl", "priority", "id"})


class CommandError(ValueError):
    """A command the bridge cannot carry out; the text is the reason sent on ``<base>/error``."""


@dataclass(frozen=True)
class SayRequest:
    text: Any
    ttl: Any = None
    priority: Any = "normal"
    id: Any = None


def _text(payload: bytes) -> str:
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError("payload is not UTF-8 text") from None


def parse_say(payload: bytes) -> SayRequest:
    """Plain text, or a JSON object ``{"text", "ttl", "priority", "id"}`` (only ``text`` is needed)."""
    text = _text(payload)
    if not text:
        raise CommandError('empty payload: send the text to say, or JSON {"text": "..."}')
    if text[0] not in '{["':
        return SayRequest(text)
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise CommandError(f"payload looks like JSON but is not valid JSON ({err.msg} at character {err.pos})") from None
    if isinstance(body, str):
        return SayRequest(body)
    if not isinstance(body, dict):
        raise CommandError('JSON payload must be an object {"text": "...", "ttl": ..., "priority": ..., "id": ...}')
    unknown = sorted(set(body) - SAY_KEYS)
    if unknown:
        raise CommandError(f"unknown field {unknown[0]!r} (expected {', '.join(sorted(SAY_KEYS))})")
    if "text" not in body:
        raise CommandError("text is missing")
    return SayRequest(body["text"], body.get("ttl"), body.get("priority", "normal"), body.get("id"))


def parse_volume(payload: bytes) -> int:
    """A whole number 0-100 (``30``, also ``30.0`` as Home Assistant's number may send it)."""
    text = _text(payload)
    try:
        value = json.loads(text) if text else None
    except ValueError:
        value = None
    try:
        return control.check_volume(value)
    except ValueError as err:
        raise CommandError(f"{err}, got {text[:40]!r}") from None


class Commands:
    """Carries out parsed commands on one hub context."""

    def __init__(self, ctx: "HubContext", known: dict[str, str]) -> None:
        self.ctx = ctx
        self.known = known            # topic id → device id, kept by the bridge

    async def device_id(self, tid: str) -> str:
        """The device a topic's id names; CommandError when the hub does not know it."""
        if tid in self.known:
            return self.known[tid]
        try:
            return (await self.ctx.devices.resolve(tid)).device_id      # the MAC without colons, or a unique name
        except DeviceNotFound:
            raise CommandError(f"unknown device {tid!r}") from None
        except DeviceError as err:                                      # e.g. a name two devices share
            raise CommandError(str(err)) from None

    async def run(self, command: Command, payload: bytes) -> None:
        try:
            if command.command == SAY:
                await self._say(command.target, payload)
            elif command.target == ALL:
                raise CommandError(f"{command.command} needs one device ({ALL} works only with say)")
            elif command.command == VOLUME_SET:
                volume = parse_volume(payload)
                await control.set_volume(self.ctx.registry, await self.device_id(command.target), volume)
            elif command.command == STOP:
                _text(payload)                         # any text (Home Assistant's button sends one), within the limit
                await control.stop(self.ctx.registry, await self.device_id(command.target), "mqtt")
        except (AnnounceError, control.ControlError) as err:
            raise CommandError(str(err)) from None

    async def _say(self, target: str, payload: bytes) -> None:
        """Accepted in order and answered at once (``wait=False``): the outcome follows as an
        ``announcement`` event on the device's event topic."""
        req = parse_say(payload)
        kw: dict[str, Any] = {"ttl": req.ttl, "priority": req.priority, "ann_id": req.id, "wait": False,
                              "source": "mqtt"}
        if target != ALL:
            await self.ctx.announcements.say(await self.device_id(target), req.text, **kw)
            return
        devices = [d.device_id for d in await self.ctx.devices.list_all() if not d.blocked]
        if not devices:
            raise CommandError("the hub knows no device yet")
        await self.ctx.announcements.say_many(devices, req.text, **kw)
