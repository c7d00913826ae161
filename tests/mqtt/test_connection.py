"""How the bridge reaches the broker, against a real Mosquitto: user and password (the wrong
password is refused, retried with backoff, and never logged), TLS verified against the system's
CA certificates (here a self-signed certificate made the system's via SSL_CERT_FILE), and a broker
that accepts the TCP connection but never answers, which must not hold up a conversation."""

from __future__ import annotations

import asyncio
import logging
import subprocess

from xiaozhi_hub.audio import pcm as pcmlib

from ..conftest import free_port
from .conftest import BASE, Broker, Watcher, device

SPEECH = pcmlib.voice_like(1200)
HUB_AVAILABILITY = f"{BASE}/hub/availability"
USER, PASSWORD = "hubuser", "s3cret-broker-pw"


async def test_user_and_password(start_hub, tmp_path, fast_reconnect, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), USER, PASSWORD], check=True, capture_output=True)
    pwfile.chmod(0o600)
    broker = Broker(tmp_path, anonymous=False, extra=f"password_file {pwfile}\n")
    broker.start()
    try:
        watcher = await Watcher(broker.port, USER, PASSWORD).start()
        wrong = await start_hub(mqtt={"host": "127.0.0.1", "port": broker.port, "username": USER,
                                      "password": "not-the-password"})
        async with asyncio.timeout(20):
            while not any("refused the connection" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        assert not wrong.ctx.mqtt.client.connected
        await wrong.stop()
        hub = await start_hub(mqtt={"host": "127.0.0.1", "port": broker.port, "username": USER, "password": PASSWORD})
        await hub.ctx.mqtt.client.wait_connected()
        await watcher.value(HUB_AVAILABILITY, "online")
        await hub.stop()
        watcher.stop()
    finally:
        broker.stop()
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert PASSWORD not in logged and "not-the-password" not in logged


async def test_tls_with_the_systems_certificates(start_hub, tmp_path, fast_reconnect, monkeypatch) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls_port = free_port()
    broker = Broker(tmp_path, extra=f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n")
    broker.start()
    try:
        watcher = await Watcher(broker.port).start()               # watches on the plain listener
        untrusted = await start_hub(mqtt={"host": "127.0.0.1", "port": tls_port, "tls": True})
        await asyncio.sleep(1.5)                                   # a few attempts: the certificate is refused
        assert not untrusted.ctx.mqtt.client.connected and untrusted.ctx.mqtt.client.connects == 0
        await untrusted.stop()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))              # now the system trusts it
        hub = await start_hub(mqtt={"host": "127.0.0.1", "port": tls_port, "tls": True})
        await hub.ctx.mqtt.client.wait_connected()
        await watcher.value(HUB_AVAILABILITY, "online")
        await hub.stop()
        watcher.stop()
    finally:
        broker.stop()


async def test_a_broker_that_never_answers_holds_up_nothing(start_hub, fast_reconnect) -> None:
    port = free_port()
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)                                       # accept, read nothing, never answer CONNECT

    server = await asyncio.start_server(silent, "127.0.0.1", port)
    try:
        hub = await start_hub(mqtt={"host": "127.0.0.1", "port": port})
        async with asyncio.timeout(10):
            while not held:
                await asyncio.sleep(0.02)                          # the bridge is in its CONNECT, waiting
        async with device(hub) as dev:
            turn = await dev.run_turn(SPEECH, mode="manual")
            assert turn.stt_text == "turn on the kitchen light" and turn.tts_stop_at is not None
            print(f"\nfirst audio {1000 * (turn.first_audio_at - turn.listen_stop_at):.0f} ms after listen stop, "
                  "with the broker silent")
        assert not hub.ctx.mqtt.client.connected
        await hub.stop()
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()
