"""The handlers per inbound message type: each maps one device message onto the session's operations.

Text frames are decoded here (a bad frame gets a JSON ``error`` and the connection is kept); before
the hello only the hello is accepted. The handlers run in the read loop, so control messages
(``abort``, ``listen``) are handled at once, never queued behind audio (docs/design.md, The path of one turn).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..protocol import codec
from ..protocol.close import CloseCode
from ..protocol.messages import (Abort, DeviceGoodbye, DeviceHello, DeviceMcp, Direction, IotUpdate, Listen,
                                 ListenState, Ping, Pong, ProtocolError)
from .state import SessionState

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)


async def handle_text(session: "Session", text: str) -> None:
    """Decode one text frame from the device and hand it to its handler."""
    try:
        msg = codec.decode(text, Direction.FROM_DEVICE)
    except ProtocolError as err:
        log.info("%s: bad message (%s)", session, err)
        session.ctx.metrics.inc("bad_messages")
        await session.send_error(err.kind, err.detail)
        return
    if session.state is SessionState.CONNECTED and not isinstance(msg, DeviceHello):
        await session.send_error("hello_required", f"send hello before {msg.TYPE}")
        return
    handler = HANDLERS.get(type(msg))
    if handler is not None:
        await handler(session, msg)


async def on_hello(session: "Session", msg: DeviceHello) -> None:
    await session.greet(msg)


async def on_listen(session: "Session", msg: Listen) -> None:
    if msg.state is ListenState.START:
        await session.start_listening(msg.mode)
    elif msg.state is ListenState.STOP:
        await session.stop_listening()
    elif msg.state is ListenState.DETECT:
        await session.detected(msg.text or "")


async def on_abort(session: "Session", msg: Abort) -> None:
    await session.abort(msg.reason or "device")


async def on_mcp(session: "Session", msg: DeviceMcp) -> None:
    session.link.on_mcp(msg.payload)


async def on_iot(session: "Session", msg: IotUpdate) -> None:
    session.link.on_iot(msg)


async def on_goodbye(session: "Session", msg: DeviceGoodbye) -> None:
    await session.close(CloseCode.NORMAL, "goodbye")


async def on_ping(session: "Session", msg: Ping) -> None:
    await session.send(Pong(time.strftime("%Y-%m-%d %H:%M:%S"), session_id=session.id))


HANDLERS: dict[type, Callable[["Session", Any], Awaitable[None]]] = {
    DeviceHello: on_hello, Listen: on_listen, Abort: on_abort, DeviceMcp: on_mcp,
    IotUpdate: on_iot, DeviceGoodbye: on_goodbye, Ping: on_ping,
}


async def handle_guarded(session: "Session", work: Awaitable[None]) -> bool:
    """Run the handling of one inbound message for any transport. One bad message never takes the
    hub down: an unexpected error is logged and the device told; False means the connection is gone
    (a send timed out or the peer reset it) and the caller stops reading."""
    try:
        await work
    except (TimeoutError, ConnectionResetError):
        return False
    except Exception:
        log.exception("%s: error handling a message", session)
        with contextlib.suppress(Exception):
            await session.send_error("internal", "the hub could not handle that message")
    return True
