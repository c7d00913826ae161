"""Live sessions: session_id -> session and device_id -> session.

A second connection from the same device replaces the first (the old one is closed), which is
what happens when a device reconnects before the hub noticed its TCP connection was gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from ..session.session import Session


class SessionRegistry:
    def __init__(self) -> None:
        self._by_id: dict[str, "Session"] = {}
        self._by_device: dict[str, "Session"] = {}

    def add(self, session: "Session") -> "Session | None":
        """Register ``session``; returns the session it replaces for the same device, if any."""
        previous = self._by_device.get(session.device_id)
        self._by_id[session.id] = session
        self._by_device[session.device_id] = session
        if previous is not None and previous is not session:
            self._by_id.pop(previous.id, None)
            return previous
        return None

    def remove(self, session: "Session") -> None:
        self._by_id.pop(session.id, None)
        if self._by_device.get(session.device_id) is session:
            del self._by_device[session.device_id]

    def get(self, session_id: str) -> "Session | None":
        return self._by_id.get(session_id)

    def by_device(self, device_id: str) -> "Session | None":
        return self._by_device.get(device_id.lower())

    def __iter__(self) -> Iterator["Session"]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
