"""Acting on a connected device — set its volume, stop what it says — with one set of rules for
every front door (the HTTP API, MQTT).

- A device can be acted on only while it is connected: stop needs an open channel (a stock device on
  WebSocket has one only during a conversation), the volume also works on a device idle on MQTT+UDP,
  whose MCP tools answer without an audio channel; otherwise :class:`ControlError` with status 409.
- The volume goes through the device's own MCP tool ``self.audio_speaker.set_volume`` (0-100, a whole
  number); a device that just connected gets a few seconds for its tool list to arrive. A device
  without the tool is a 409, one that refuses is a 503. The session reports the new volume
  (``ctx.live``), so it reaches every front door as a ``volume`` event.
- Stop aborts what the device is saying or about to say (the session answers ``tts stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ..session.mcp_client import McpCallError
from ..session.state import SessionState
from .live import MCP_SET_VOLUME

if TYPE_CHECKING:
    from ..session.session import Session
    from ..transport.registry import SessionRegistry

MCP_READY_WAIT = 5.0          # a volume request right after connecting waits this long for the MCP tools


class ControlError(Exception):
    """The device cannot do it now; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_volume(value: Any) -> int:
    """A volume as callers give it: a whole number 0-100; raises ValueError with the reason."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100 \
            or value != int(value):
        raise ValueError("volume must be a whole number from 0 to 100")
    return int(value)


def open_session(registry: "SessionRegistry", device_id: str) -> "Session | None":
    session = registry.by_device(device_id)
    return session if session is not None and session.channel_open else None


def reachable_session(registry: "SessionRegistry", device_id: str) -> "Session | None":
    """The device's session if its MCP tools can be called now: with an open channel, or idle on
    MQTT+UDP (its session has no hello then, but MCP is initialised; docs/mqtt-udp.md)."""
    session = registry.by_device(device_id)
    if session is None or session.state is SessionState.CLOSED:
        return None
    return session if session.channel_open or session.link.mcp is not None else None


async def set_volume(registry: "SessionRegistry", device_id: str, volume: int) -> int:
    """Set the speaker volume through the device's MCP tool; returns it."""
    session = reachable_session(registry, device_id)
    if session is None:
        raise ControlError(409, f"{device_id} is not connected (over WebSocket a device is connected only during "
                                "a conversation)")
    link = session.link
    if link.mcp is not None:        # just connected: its tool list may still be on the way
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(MCP_READY_WAIT):
                await link.mcp.ready.wait()
    if not any(t.name == MCP_SET_VOLUME for t in link.device_tools()):
        raise ControlError(409, f"{device_id} offers no {MCP_SET_VOLUME} (MCP) tool")
    try:
        await link.call_device_tool(MCP_SET_VOLUME, {"volume": volume})
    except McpCallError as err:
        raise ControlError(503, f"the device did not set the volume: {err}") from None
    return volume


async def stop(registry: "SessionRegistry", device_id: str, reason: str) -> bool:
    """Abort what the device is saying or about to say; False when there was nothing to stop."""
    session = open_session(registry, device_id)
    stopped = session is not None and (session.busy or session.state.value in ("thinking", "speaking"))
    if session is not None and stopped:
        await session.abort(reason)
    return stopped
