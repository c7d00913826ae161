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
import ipaddress
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

QTYPES = {1: "A", 28: "AAAA", 5: "CNAME", 12: "PTR", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS", 255: "ANY"}
LINK_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")   # never forwarded by a router
MDNS = {(ipaddress.ip_address("224.0.0.251"), 5353), (ipaddress.ip_address("ff02::fb"), 5353)}
TRAP_PORTS = (80, 443)
CANARY_NAME, CANARY_IP = "canary.sandbox.invalid", "192.0.2.1"      # RFC 6761 / RFC 5737 test names


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


# -- DNS ----------------------------------------------------------------------------------------

def parse_question(msg: bytes) -> tuple[str, int, int]:
    """(name, qtype, offset after the question) of a DNS query; ValueError if malformed."""
    if len(msg) < 12 or struct.unpack("!H", msg[4:6])[0] < 1:
        raise ValueError("no question")
    labels, p = [], 12
    while True:
        if p >= len(msg):
            raise ValueError("truncated name")
        n = msg[p]
        if n == 0:
            p += 1
            break
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(msg[p + 1:p + 1 + n].decode("ascii", "replace"))
        p += 1 + n
    if p + 4 > len(msg):
        raise ValueError("truncated question")
    qtype = struct.unpack("!H", msg[p:p + 2])[0]
    return ".".join(labels), qtype, p + 4


def answer(msg: bytes) -> tuple[bytes, str, str]:
    """A reply to ``msg`` sending every name to loopback; also the name and type asked."""
    name, qtype, end = parse_question(msg)
    rdata = {1: socket.inet_pton(socket.AF_INET, "127.0.0.1"), 28: socket.inet_pton(socket.AF_INET6, "::1")}
    records = b""
    if qtype in rdata:
        records = struct.pack("!HHHIH", 0xC00C, qtype, 1, 5, len(rdata[qtype])) + rdata[qtype]
    flags = 0x8180 | (struct.unpack("!H", msg[2:4])[0] & 0x0100)   # response, RA, echo RD
    header = msg[:2] + struct.pack("!HHHHH", flags, 1, 1 if records else 0, 0, 0)
    return header + msg[12:end] + records, name, QTYPES.get(qtype, str(qtype))


def is_local_name(name: str) -> bool:
    name = name.rstrip(".").lower()
    return name == "local" or name.endswith(".local")


class DnsResolver:
    """A resolver on 127.0.0.1:53 that answers everything with loopback and logs the questions."""

    def __init__(self, log: EgressLog, host: str = "127.0.0.1", port: int = 53) -> None:
        self.log = log
        watcher = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = watcher.handle(data, "udp", self.client_address[1])
                if reply:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while head := self.rfile.read(2):
                    data = self.rfile.read(struct.unpack("!H", head)[0])
                    reply = watcher.handle(data, "tcp", self.client_address[1])
                    if not reply:
                        return
                    self.wfile.write(struct.pack("!H", len(reply)) + reply)

        self.servers: list[socketserver.BaseServer] = [
            socketserver.ThreadingUDPServer((host, port), Udp), socketserver.ThreadingTCPServer((host, port), Tcp)]

    def handle(self, data: bytes, proto: str, client_port: int) -> bytes | None:
        try:
            reply, name, qtype = answer(data)
        except ValueError as err:
            self.log.add(Event("dns", f"malformed {proto} query ({err})", owner=owner_of(proto, client_port)))
            return None
        self.log.add(Event("dns", f"{qtype} {name} ({proto})", allowed=is_local_name(name),
                           owner=owner_of(proto, client_port)))
        return reply


# -- TCP traps ----------------------------------------------------------------------------------

def tls_sni(data: bytes) -> str | None:
    """The server name in a TLS ClientHello, if ``data`` starts with one."""
    try:
        if data[0] != 0x16 or data[5] != 0x01:
            return None
        p = 5 + 4 + 2 + 32                                  # record, handshake header, version, random
        p += 1 + data[p]                                    # session id
        p += 2 + struct.unpack("!H", data[p:p + 2])[0]      # cipher suites
        p += 1 + data[p]                                    # compression methods
        end = p + 2 + struct.unpack("!H", data[p:p + 2])[0]
        p += 2
        while p + 4 <= end:
            etype, elen = struct.unpack("!HH", data[p:p + 4])
            if etype == 0:                                  # server_name: list len, type, name len, name
                n = struct.unpack("!H", data[p + 7:p + 9])[0]
                return data[p + 9:p + 9 + n].decode("ascii", "replace")
            p += 4 + elen
    except (IndexError, struct.error):
        return None
    return None


def first_words(data: bytes) -> str:
    if not data:
        return "sent nothing"
    sni = tls_sni(data)
    if sni is not None:
        return f"TLS ClientHello, SNI {sni}"
    if data[:1] == b"\x16":
        return "TLS ClientHello without SNI"
    text = data.decode("latin-1")
    request = text.split("\r\n", 1)[0][:100]
    host = next((h.split(":", 1)[1].strip() for h in text.split("\r\n") if h.lower().startswith("host:")), "?")
    return f"{request!r}, Host {host}" if request.isprintable() else f"{len(data)} bytes"


class _DualStackServer(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _IPv4Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class TrapListener:
    """Accepts connections on ``port`` on every address, logs who came and what they said first."""

    def __init__(self, log: EgressLog, port: int, host: str = "::") -> None:
        self.log = log
        watcher = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                watcher.handle(self.request, port, self.client_address)

        try:
            server: socketserver.BaseServer = _DualStackServer((host, port), Handler)
        except OSError:                                     # no IPv6 here: IPv4 only
            server = _IPv4Server(("0.0.0.0" if host == "::" else host, port), Handler)
        self.servers = [server]

    def handle(self, conn: socket.socket, port: int, peer: tuple[Any, ...]) -> None:
        owner = owner_of("tcp", peer[1])
        local = conn.getsockname()[0].removeprefix("::ffff:")
        conn.settimeout(3.0)
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        self.log.add(Event("connect", f"tcp to {local}:{port}: {first_words(data)}", owner=owner))


# -- packets on lo ------------------------------------------------------------------------------

ETH_P_ALL, PACKET_OUTGOING = 0x0003, 4
KERNEL_ICMP6 = (b"\x01", b"\x83", b"\x84", b"\x85", b"\x86", b"\x87", b"\x88", b"\x8f")


def classify_packet(frame: bytes) -> Event | None:
    """An event for an outgoing frame on ``lo`` addressed outside loopback (TCP SYN, UDP, other)."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if ethertype == 0x0800 and len(ip) >= 20:
        proto, dst = ip[9], ipaddress.ip_address(ip[16:20])
        payload = ip[(ip[0] & 0x0F) * 4:]
    elif ethertype == 0x86DD and len(ip) >= 40:
        proto, dst = ip[6], ipaddress.ip_address(ip[24:40])
        payload = ip[40:]
    else:
        return None
    if dst.is_loopback:
        return None
    if proto in (6, 17) and len(payload) >= 8:
        sport, dport = struct.unpack("!HH", payload[:4])
        if proto == 6:
            if len(payload) < 14 or payload[13] & 0x12 != 0x02:   # only the SYN that opens a connection
                return None
            return Event("packet", f"tcp SYN to {dst}:{dport}", owner=owner_of("tcp", sport))
        if (dst, dport) in MDNS:
            return Event("mdns", f"udp to {dst}:{dport} (mDNS multicast)", allowed=True)
        return Event("packet", f"udp to {dst}:{dport}", owner=owner_of("udp", sport))
    # The kernel's own answers on lo: ICMP unreachable for a closed port (what a connection to any
    # routed-local address gets), IPv6 neighbour discovery and MLD. Nothing a program sent.
    if (proto == 1 and payload[:1] == b"\x03") or (proto == 58 and payload[:1] in KERNEL_ICMP6):
        return None
    if proto == 2 and dst in LINK_LOCAL_MULTICAST:          # IGMP: the kernel joining the mDNS group
        return Event("mdns", f"IGMP membership report to {dst} (link-local, for mDNS)", allowed=True)
    return Event("packet", f"ip protocol {proto} to {dst}")


class PacketSniffer:
    """Raw capture of every frame leaving ``lo``; logs those addressed outside loopback."""

    def __init__(self, log: EgressLog) -> None:
        self.log = log
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sniffer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._take(*self.sock.recvfrom(65535))
            except TimeoutError:
                continue
            except OSError:
                return
        # Frames sent on lo are queued here synchronously: after the watched processes are done,
        # what is left in the buffer is complete; read it without waiting.
        self.sock.setblocking(False)
        while True:
            try:
                self._take(*self.sock.recvfrom(65535))
            except OSError:
                return

    def _take(self, frame: bytes, addr: tuple[Any, ...]) -> None:
        if addr[2] == PACKET_OUTGOING:
            event = classify_packet(frame)
            if event is not None:
                self.log.add(event)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sock.close()


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
