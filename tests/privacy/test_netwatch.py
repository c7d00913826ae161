"""The no-egress traps themselves, outside any namespace (no root needed): the resolver's answers,
SNI from a ClientHello made by Python's own TLS stack, the listener, the packet classifier."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import struct
import threading

import pytest

from . import traps
from .events import EgressLog, Event, violations
from .traps import answer, classify_packet, is_local_name, parse_question, tls_sni

from ..conftest import free_port


def query(name: str, qtype: int, ident: int = 0x1234) -> bytes:
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 1) + qname + struct.pack("!HH", qtype, 1)


def client_hello(server_name: str) -> bytes:
    """The first flight of a real TLS handshake (Python's ssl) for ``server_name``."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize(("qtype", "rdata"), [(1, socket.inet_aton("127.0.0.1")),
                                              (28, socket.inet_pton(socket.AF_INET6, "::1"))])
def test_the_resolver_sends_every_name_to_loopback(qtype, rdata):
    msg = query("mobile.events.data.microsoft.com", qtype)
    reply, name, kind = answer(msg)
    assert name == "mobile.events.data.microsoft.com" and kind == {1: "A", 28: "AAAA"}[qtype]
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", reply[:12])
    assert (ident, flags & 0x8000, flags & 0x000F, qd, an) == (0x1234, 0x8000, 0, 1, 1)   # response, NOERROR
    assert reply[12:len(msg)] == msg[12:]                                            # question echoed
    assert reply.endswith(rdata)


def test_other_questions_get_an_empty_answer_and_malformed_ones_an_error():
    reply, _, kind = answer(query("example.org", 16))
    assert kind == "TXT" and struct.unpack("!H", reply[6:8])[0] == 0
    with pytest.raises(ValueError):
        parse_question(b"\x12\x34" + b"\0" * 4)
    with pytest.raises(ValueError):
        parse_question(query("example.org", 1)[:-3])


def test_the_resolver_logs_questions_over_udp_and_tcp():
    log = EgressLog()
    port = free_port()
    resolver = traps.DnsResolver(log, "127.0.0.1", port)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
               for s in resolver.servers]
    for t in threads:
        t.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(query("printer.local", 1), ("127.0.0.1", port))
            assert u.recv(512).endswith(socket.inet_aton("127.0.0.1"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            msg = query("example.com", 28)
            conn.sendall(struct.pack("!H", len(msg)) + msg)
            size = struct.unpack("!H", conn.recv(2))[0]
            assert len(conn.recv(size)) == size
    finally:
        for s in resolver.servers:
            s.shutdown()
            s.server_close()
    lines = [(e.detail, e.allowed) for e in log.events()]
    assert lines == [("A printer.local (udp)", True), ("AAAA example.com (tcp)", False)]


def test_sni_is_read_from_a_real_client_hello():
    assert tls_sni(client_hello("mobile.events.data.microsoft.com")) == "mobile.events.data.microsoft.com"
    assert tls_sni(b"GET / HTTP/1.1\r\n") is None
    assert tls_sni(client_hello("example.com")[:20]) is None                   # truncated: no crash


def test_the_listener_reports_tls_and_http_clients():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    log = EgressLog()
    port = free_port()
    trap = traps.TrapListener(log, port, host="::1")
    server = trap.servers[0]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with socket.create_connection(("::1", port), timeout=10) as s:
            s.sendall(client_hello("telemetry.example"))
        with socket.create_connection(("::1", port), timeout=10) as s:
            s.sendall(b"GET /collect HTTP/1.1\r\nHost: tracker.example\r\n\r\n")
        assert log.wait_for(lambda events: len(events) == 2, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    details = sorted(e.detail for e in log.events())
    assert details == [f"tcp to ::1:{port}: 'GET /collect HTTP/1.1', Host tracker.example",
                       f"tcp to ::1:{port}: TLS ClientHello, SNI telemetry.example"]
    assert violations(log.events()) == [e.line() for e in log.events()]


def frame(dst: str, proto: int, payload: bytes) -> bytes:
    addr = ipaddress.ip_address(dst)
    if addr.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                         socket.inet_aton("127.0.0.1"), addr.packed)
        return b"\0" * 12 + b"\x08\x00" + ip + payload
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64, ipaddress.ip_address("::1").packed, addr.packed)
    return b"\0" * 12 + b"\x86\xdd" + ip + payload


def tcp(dport: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", 40000, dport, 0, 0, 5 << 4, flags, 65535, 0, 0)


def udp(dport: int) -> bytes:
    return struct.pack("!HHHH", 40000, dport, 8, 0)


@pytest.mark.parametrize(("packet", "expected"), [
    (frame("20.42.65.92", 6, tcp(443, 0x02)), ("packet", "tcp SYN to 20.42.65.92:443", False)),
    (frame("2603:1030::1", 6, tcp(8883, 0x02)), ("packet", "tcp SYN to 2603:1030::1:8883", False)),
    (frame("20.42.65.92", 6, tcp(443, 0x12)), None),                   # SYN-ACK: an answer, not an attempt
    (frame("127.0.0.1", 6, tcp(443, 0x02)), None),                     # loopback is home
    (frame("9.9.9.9", 17, udp(53)), ("packet", "udp to 9.9.9.9:53", False)),
    (frame("224.0.0.251", 17, udp(5353)), ("mdns", "udp to 224.0.0.251:5353 (mDNS multicast)", True)),
    (frame("ff02::fb", 17, udp(5353)), ("mdns", "udp to ff02::fb:5353 (mDNS multicast)", True)),
    (frame("224.0.0.22", 2, b"\x22" + b"\0" * 7), ("mdns", "IGMP membership report to 224.0.0.22 "
                                                   "(link-local, for mDNS)", True)),
    (frame("224.0.1.1", 17, udp(123)), ("packet", "udp to 224.0.1.1:123", False)),   # routable multicast
    (frame("9.9.9.9", 1, b"\x03\x03" + b"\0" * 6), None),              # the kernel's port unreachable
    (frame("9.9.9.9", 1, b"\x08\x00" + b"\0" * 6), ("packet", "ip protocol 1 to 9.9.9.9", False)),   # a ping
])
def test_packets_leaving_loopback_are_classified(monkeypatch, packet, expected):
    monkeypatch.setattr(traps, "owner_of", lambda proto, port: None)
    event = classify_packet(packet)
    assert (None if event is None else (event.kind, event.detail, event.allowed)) == expected


def test_only_dot_local_names_are_allowed():
    assert is_local_name("printer.local") and is_local_name("xiaozhi-hub-vm._xiaozhi._tcp.local.")
    assert not is_local_name("localhost.example.com") and not is_local_name("mobile.events.data.microsoft.com")
    events = [Event("dns", "A printer.local", allowed=True), Event("dns", "A example.com")]
    assert violations(events) == [events[1].line()]
