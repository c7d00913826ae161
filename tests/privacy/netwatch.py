"""Watchers for a no-egress check inside a network namespace that has only loopback.

Inside such a namespace nothing can reach the outside, so the question is only what the processes
*try*. Three traps, all on loopback, record every attempt:

* :class:`DnsResolver` on 127.0.0.1:53 (UDP and TCP), the only ``nameserver`` in the bind-mounted
  ``/etc/resolv.conf``: logs each question and answers A with 127.0.0.1, AAAA with ::1 (anything
  else: an empty answer), so the asking code goes on to connect;
* :class:`TrapListener` on :80 and :443 (all addresses): logs each connection and what the client
  said first (the TLS SNI of a ClientHello, or the HTTP request line and Host);
* :class:`PacketSniffer`, a raw socket on ``lo``: with the routes of :func:`setup_namespace` every
  address is local, so a connection to any address and port (a hard-coded IP, DNS over TCP 853, an
  MQTT broker that was not configured) leaves a SYN or a datagram on ``lo``; each one to an address
  outside loopback is logged. mDNS multicast (224.0.0.251 / ff02::fb, port 5353) is recorded as
  allowed.

The kernel's "no route" counters of the namespace (/proc/net/snmp, /proc/net/snmp6) are read before
and after as a backstop: whatever found no route at all shows there.

Each event names the process that owns the client socket (found through /proc) when it still exists.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path

from .events import EgressLog, Event, violations
from .traps import DnsResolver, PacketSniffer, TrapListener

__all__ = ["EgressLog", "Event", "Watch", "setup_namespace", "violations"]

TRAP_PORTS = (80, 443)
CANARY_NAME, CANARY_IP = "canary.sandbox.invalid", "192.0.2.1"      # RFC 6761 / RFC 5737 test names


# -- the namespace ------------------------------------------------------------------------------

def no_route_counters() -> dict[str, int]:
    """OutNoRoutes for IPv4 and IPv6 in this network namespace."""
    counters: dict[str, int] = {}
    rows = Path("/proc/net/snmp").read_text().splitlines()
    for names, values in zip(rows[::2], rows[1::2]):
        if names.startswith("Ip:"):
            counters["ipv4"] = int(dict(zip(names.split(), values.split()))["OutNoRoutes"])
    with open("/proc/net/snmp6") as f:
        for row in f:
            if row.startswith("Ip6OutNoRoutes"):
                counters["ipv6"] = int(row.split()[1])
    return counters


def setup_namespace(workdir: Path) -> None:
    """Bring up ``lo``, make every address local, send every lookup to 127.0.0.1 (bind mounts of
    /etc/resolv.conf and /etc/nsswitch.conf, seen only in this mount namespace)."""
    links = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True).stdout
    others = [row.split(":")[1].strip() for row in links.splitlines() if row.split(":")[1].strip() != "lo"]
    if others:
        raise RuntimeError(f"not an isolated network namespace (links {others}): run through the sandbox")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo"], check=True)
    subprocess.run(["ip", "-6", "route", "add", "local", "::/0", "dev", "lo"], check=False)
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    # glibc may be told to ask systemd-resolved (nss-resolve, over a Unix socket that the network
    # namespace does not cover) or nss-mdns; lookups must come to our resolver instead.
    nsswitch = Path("/etc/nsswitch.conf")
    if nsswitch.exists():
        rows = nsswitch.read_text().splitlines()
        ours = workdir / "nsswitch.conf"
        ours.write_text("".join(("hosts: files dns" if r.split(":")[0].strip() == "hosts" else r) + "\n" for r in rows))
        subprocess.run(["mount", "--bind", str(ours), str(nsswitch)], check=True)


class Watch:
    """All traps at once: ``with Watch(log): ...`` runs them for the duration of the block."""

    def __init__(self, log: EgressLog) -> None:
        self.log = log
        self.dns = DnsResolver(log)
        self.traps = [TrapListener(log, port) for port in TRAP_PORTS]
        self.sniffer = PacketSniffer(log)
        self._threads: list[threading.Thread] = []
        self._before: dict[str, int] = {}

    def __enter__(self) -> "Watch":
        self._before = no_route_counters()
        for server in [*self.dns.servers, *(s for t in self.traps for s in t.servers)]:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.sniffer.start()
        try:
            self.self_test()
        except BaseException:
            self.__exit__()
            raise
        return self

    def self_test(self, timeout: float = 30.0) -> None:
        """Look a name up and connect to an outside address ourselves; every trap must notice.

        Without this a broken trap would make any check pass. Raises RuntimeError if one missed it.
        """
        kinds = {"dns", "connect", "packet"}
        with self.log.labelled("sandbox self-test"):
            start = len(self.log.events())
            socket.getaddrinfo(CANARY_NAME, 443, socket.AF_INET, socket.SOCK_STREAM)
            with contextlib.suppress(OSError), socket.create_connection((CANARY_IP, 443), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: " + CANARY_NAME.encode() + b"\r\n\r\n")
            seen = self.log.wait_for(lambda events: kinds <= {e.kind for e in events[start:]}, timeout)
        if not seen:
            got = {e.kind for e in self.log.events()[start:]}
            raise RuntimeError(f"sandbox self-test: traps {sorted(kinds - got)} saw nothing")

    def __exit__(self, *exc: object) -> None:
        self.sniffer.stop()
        for server in [*self.dns.servers, *(s for t in self.traps for s in t.servers)]:
            server.shutdown()
            server.server_close()
        after = no_route_counters()
        for family, count in after.items():
            if count > self._before.get(family, 0):
                self.log.add(Event("noroute", f"{count - self._before.get(family, 0)} {family} packets "
                                              "found no route (sent to an address outside the namespace)"))
