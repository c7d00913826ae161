"""The three traps of the no-egress sandbox: a resolver, TCP listeners, a packet capture on ``lo``.

See netwatch.py for how they are put together in the namespace.
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import struct
import threading
from typing import Any

from .events import EgressLog, Event, owner_of

QTYPES = {1: "A", 28: "AAAA", 5: "CNAME", 12: "PTR", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS", 255: "ANY"}
LINK_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")   # never forwarded by a router
MDNS = {(ipaddress.ip_address("224.0.0.251"), 5353), (ipaddress.ip_address("ff02::fb"), 5353)}


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
