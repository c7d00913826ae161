"""What the no-egress traps record: events, the log they go to, and who caused them."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator


@dataclass
class Event:
    kind: str              # dns | connect | packet | mdns | noroute
    detail: str            # one human-readable line
    allowed: bool = False
    t: float = field(default_factory=time.time)
    owner: str | None = None

    def line(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.t)) + f".{int(self.t * 1000) % 1000:03d}"
        who = f"  [{self.owner}]" if self.owner else ""
        return f"{stamp} {self.kind:8s} {self.detail}{who}"


class EgressLog:
    """Thread-safe list of events, echoed to stderr as they happen when ``echo`` is set."""

    def __init__(self, echo: bool = False) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._echo = echo
        self._label: str | None = None

    def add(self, event: Event) -> None:
        with self._cond:
            if self._label:
                event.allowed, event.detail = True, f"({self._label}) {event.detail}"
            self._events.append(event)
            self._cond.notify_all()
        if self._echo:
            print(f"[egress] {event.line()}", file=sys.stderr, flush=True)

    def events(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._events), timeout)

    @contextlib.contextmanager
    def labelled(self, label: str) -> Iterator[None]:
        """Events added meanwhile are the sandbox's own (its self-test): allowed, and labelled so."""
        self._label = label
        try:
            yield
        finally:
            self._label = None

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.events()]


def violations(events: list[Event]) -> list[str]:
    """The events that break "nothing leaves the home", as lines."""
    return [e.line() for e in events if not e.allowed]


# -- who did it ---------------------------------------------------------------------------------

def _socket_inodes(proto: str, port: int) -> set[str]:
    """Inodes of sockets in this namespace whose local port is ``port`` (/proc/net/tcp, tcp6, ...)."""
    inodes: set[str] = set()
    for table in (proto, proto + "6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in lines:
            cols = row.split()
            if len(cols) > 9 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def owner_of(proto: str, port: int) -> str | None:
    """``pid N: command line`` of the process holding a ``proto`` socket bound to local ``port``."""
    wanted = {f"socket:[{i}]" for i in _socket_inodes(proto, port)} - {"socket:[0]"}
    if not wanted:
        return None
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        return f"pid {pid}: " + " ".join(a.decode(errors="replace") for a in argv if a)[:160]
    return None
