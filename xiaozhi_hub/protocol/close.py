"""WebSocket close codes the hub sends (see docs/protocol.md, "Close codes").

Stock firmware treats any close as "go idle"; the codes tell a person reading logs (or a client such
as the simulator) why the hub ended the channel.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000          # conversation ended, goodbye
    GOING_AWAY = 1001      # the hub is shutting down
    POLICY = 1008          # flooding
    TOO_BIG = 1009         # frame over the size limit (aiohttp closes with it)
    NO_HELLO = 4000        # no hello within session.hello_timeout
    AUTH = 4001            # missing, malformed, expired or revoked token
    BLOCKED = 4003         # the device is blocked on the hub
    IDLE = 4008            # no voice for session.idle_timeout
    REPLACED = 4009        # the same device opened a new connection
