"""The bridge's topic names, in one place (docs/mqtt.md, Topics).

A device's id in topics is its MAC in lowercase without separators (``aa:bb:cc:dd:ee:01`` →
``aabbccddee01``); ``hub`` and ``all`` are reserved (no MAC spells them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HUB = "hub"
ALL = "all"
ONLINE, OFFLINE = "online", "offline"
# What a command topic ends with, after ``<base>/<id>/``.
SAY, VOLUME_SET, STOP = "say", "volume/set", "stop"
COMMANDS = (SAY, VOLUME_SET, STOP)

_NOT_TOPIC_SAFE = re.compile(r"[^a-z0-9_-]")


def topic_id(device_id: str) -> str:
    """``aa:bb:cc:dd:ee:01`` → ``aabbccddee01``; any other id keeps only ``[a-z0-9_-]`` (no wildcard,
    no level separator can reach a topic)."""
    return _NOT_TOPIC_SAFE.sub("", device_id.lower()) or "unnamed"


@dataclass(frozen=True)
class Command:
    """A message on one of the bridge's command topics."""

    target: str            # a device's topic id, or ``all``
    command: str           # SAY, VOLUME_SET or STOP


@dataclass(frozen=True)
class Topics:
    base: str
    prefix: str            # Home Assistant's discovery prefix

    # -- the hub --------------------------------------------------------------------------------------
    @property
    def hub_availability(self) -> str:
        return f"{self.base}/{HUB}/availability"

    @property
    def hub_connected(self) -> str:
        """How many devices have a channel open now (the hub device's sensor)."""
        return f"{self.base}/{HUB}/connected"

    @property
    def hub_event(self) -> str:
        """Events that concern no device (an ``error`` of the hub itself)."""
        return f"{self.base}/{HUB}/event"

    @property
    def error(self) -> str:
        """Where a command the bridge cannot use is answered (topic and reason)."""
        return f"{self.base}/error"

    @property
    def ha_status(self) -> str:
        return f"{self.prefix}/status"

    # -- one device -----------------------------------------------------------------------------------
    def device(self, tid: str, leaf: str) -> str:
        return f"{self.base}/{tid}/{leaf}"

    def discovery(self, object_id: str) -> str:
        return f"{self.prefix}/device/{object_id}/config"

    def subscriptions(self) -> list[str]:
        """What the bridge listens to: the commands, and Home Assistant's birth message."""
        return [*(f"{self.base}/+/{c}" for c in COMMANDS), self.ha_status]

    def command(self, topic: str) -> Command | None:
        """The command a topic names, or None when it is not a command topic."""
        start = f"{self.base}/"
        if not topic.startswith(start):
            return None
        target, _, rest = topic[len(start):].partition("/")
        if not target or rest not in COMMANDS:
            return None
        return Command(target, rest)
