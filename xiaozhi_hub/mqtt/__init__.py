"""The MQTT bridge (docs/mqtt.md): commands in, device events and state out, and Home Assistant MQTT
discovery — one more front door to the hub's shared services (announcements, live state, the event
bus, the Home Assistant component's discovery flag); it keeps no queue or state of its own.

- :mod:`.topics`: topic names; a device's id in topics is its MAC without separators;
- :mod:`.client`: paho-mqtt in its own thread, handing everything to the event loop;
- :mod:`.discovery`: the device-based discovery payloads;
- :mod:`.commands`: ``say``, ``all/say``, ``volume/set``, ``stop``: parsing and acting;
- :mod:`.bridge`: :class:`MqttBridge`, which ties them to the event bus.

Component hook for app.py: ``start(ctx)`` sets ``ctx.mqtt`` and returns the closer; with
``mqtt.host`` empty the bridge is off. A broker that is down does not stop the hub from starting: the
bridge keeps trying in the background.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from .bridge import MqttBridge

if TYPE_CHECKING:
    from ..context import HubContext

__all__ = ["MqttBridge", "start"]


async def start(ctx: "HubContext") -> Callable[[], Awaitable[None]] | None:
    """Start the bridge unless ``mqtt.host`` is empty."""
    if not ctx.settings.mqtt.enabled:
        return None
    bridge = MqttBridge(ctx)
    await bridge.start()
    ctx.mqtt = bridge
    return bridge.close
