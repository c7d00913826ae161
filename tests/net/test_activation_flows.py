"""Activation with ``auth.enabled``, through the real hub (app.py, fake engines, sockets on 127.0.0.1):
a device that completes activation connects with what it was given.

Two clients, with their own request shapes:
* py-xiaozhi 2.1.1: OTA check without ``Serial-Number``, its HMAC key as ``application.elf_sha256``,
  ``/activate`` with ``{"Payload": {...}}``, and *no* second OTA check after activating: it opens the
  socket with the token of its first reply.
* stock firmware: OTA check with ``Serial-Number``, ``/activate`` with the fields at the top level,
  then a fresh OTA check (the loop ends only on a reply without ``activation``) and that reply's token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from xiaozhi_hub.__main__ import main as cli_main
from xiaozhi_hub.auth import ACTIVATION_PENDING, mint_token
from xiaozhi_hub.protocol.close import CloseCode

from .conftest import CLIENT_ID, DEVICE_ID, device_headers, system_info

STATIC = "static-token-for-tools-0123"
HELLO = {"type": "hello", "version": 1, "transport": "websocket",
         "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}}
# py-xiaozhi's key: the SHA-256 hex of its hardware fingerprint; it signs with the ASCII of this string.
PY_KEY = hashlib.sha256(b"desktop||a1:b2:c3:d4:e5:f6||0123456789abcdef").hexdigest()
PY_SERIAL = "SN-1A2B3C4D-a1b2c3d4e5f6"


def py_xiaozhi_headers() -> dict[str, str]:
    return {"Device-Id": DEVICE_ID, "Client-Id": CLIENT_ID, "Content-Type": "application/json",
            "User-Agent": "bread-compact-wifi/py-xiaozhi-2.1.1", "Accept-Language": "zh-CN",
            "Activation-Version": "2.1.1"}


def py_xiaozhi_body() -> dict[str, Any]:
    return {"application": {"version": "2.1.1", "elf_sha256": PY_KEY},
            "board": {"type": "bread-compact-wifi", "name": "py-xiaozhi", "ip": "192.168.1.77", "mac": DEVICE_ID}}


class Client:
    def __init__(self, session: aiohttp.ClientSession, http_port: int) -> None:
        self.session = session
        self.http = f"http://127.0.0.1:{http_port}"

    async def ota(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        async with self.session.post(f"{self.http}/xiaozhi/ota/", json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def activate(self, body: dict[str, Any], headers: dict[str, str]) -> int:
        async with self.session.post(f"{self.http}/xiaozhi/ota/activate", json=body, headers=headers) as r:
            await r.read()
            return r.status

    async def open(self, url: str, token: str) -> tuple[dict[str, Any], aiohttp.ClientWebSocketResponse]:
        """Connect as both clients do (Bearer token, Protocol-Version 1), send hello, return the first reply."""
        headers = {"Authorization": f"Bearer {token}", "Protocol-Version": "1", "Device-Id": DEVICE_ID,
                   "Client-Id": CLIENT_ID}
        ws = await self.session.ws_connect(url, headers=headers)
        await ws.send_str(json.dumps(HELLO))
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data), ws


async def _refused_as_pending(client: Client, url: str, token: str) -> None:
    reply, ws = await client.open(url, token)
    assert reply["type"] == "error" and reply["code"] == ACTIVATION_PENDING, reply
    assert "malformed" not in reply["message"] and "approve" in reply["message"]
    closing = await ws.receive(timeout=10)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert ws.close_code == CloseCode.AUTH
    await ws.close()


async def test_py_xiaozhi_connects_with_the_token_of_its_only_ota_check(start_hub) -> None:
    hub = await start_hub(auth={"enabled": True, "tokens": [STATIC]}, ota={"activation": True})
    async with aiohttp.ClientSession() as session:
        client = Client(session, hub.ctx.http_port)
        first = await client.ota(py_xiaozhi_body(), py_xiaozhi_headers())
        activation, websocket = first["activation"], first["websocket"]
        token = websocket["token"]
        assert token and "." in token                      # not "" (py-xiaozhi would fall back to "test-token")

        await _refused_as_pending(client, websocket["url"], token)

        # Exactly what py-xiaozhi posts: the fields wrapped in "Payload", keyed with its hex string's ASCII,
        # no Serial-Number header. No key is registered, so the code decides.
        challenge = activation["challenge"]
        poll = {"Payload": {"algorithm": "hmac-sha256", "serial_number": PY_SERIAL, "challenge": challenge,
                            "hmac": hmac.new(PY_KEY.encode(), challenge.encode(), hashlib.sha256).hexdigest()}}
        poll_headers = {"Activation-Version": "2", "Device-Id": DEVICE_ID, "Client-Id": CLIENT_ID,
                        "Content-Type": "application/json"}
        assert await client.activate(poll, poll_headers) == 202
        # Approved from the command line (another process): the next poll says so, and the socket agrees
        # at once, without waiting for the store's periodic refresh.
        assert cli_main(["devices", "approve", activation["code"], "--data-dir", hub.settings.data_dir]) == 0
        assert await client.activate(poll, poll_headers) == 200

        reply, ws = await client.open(websocket["url"], token)      # no second OTA check
        assert reply["type"] == "hello" and reply["transport"] == "websocket"
        await ws.close()


async def test_stock_firmware_activates_then_connects_with_its_next_token(start_hub) -> None:
    hub = await start_hub(auth={"enabled": True, "tokens": [STATIC]}, ota={"activation": True})
    serial = "SN0000A1B2C3D4E5"
    headers = {**device_headers(), "Activation-Version": "2", "Serial-Number": serial}
    efuse_key = bytes(range(32, 64))                                  # the chip's key: raw bytes, never registered
    async with aiohttp.ClientSession() as session:
        client = Client(session, hub.ctx.http_port)
        first = await client.ota(system_info(), headers)
        activation = first["activation"]
        await _refused_as_pending(client, first["websocket"]["url"], first["websocket"]["token"])

        challenge = activation["challenge"]
        poll = {"algorithm": "hmac-sha256", "serial_number": serial, "challenge": challenge,
                "hmac": hmac.new(efuse_key, challenge.encode(), hashlib.sha256).hexdigest()}
        assert await client.activate(poll, headers) == 202
        async with session.post(f"{client.http}/api/devices/approve", json={"code": activation["code"]},
                                headers={"Authorization": f"Bearer {hub.ctx.admin.current()}"}) as r:
            assert r.status == 200, await r.text()
        assert await client.activate(poll, headers) == 200

        final = await client.ota(system_info(), headers)            # the loop-ending check
        assert "activation" not in final
        reply, ws = await client.open(final["websocket"]["url"], final["websocket"]["token"])
        assert reply["type"] == "hello"
        await ws.close()
        # The token stored from the first (pending) reply works too now: it was the device's all along.
        reply, ws = await client.open(first["websocket"]["url"], first["websocket"]["token"])
        assert reply["type"] == "hello"
        await ws.close()


async def test_unknown_device_with_a_valid_token_waits_for_an_ota_check(start_hub) -> None:
    """With activation required, a signed token alone (a wiped database, a shared secret) admits nobody."""
    secret = "shared-secret-0123456789"
    hub = await start_hub(auth={"enabled": True, "secret": secret}, ota={"activation": True})
    verdict = hub.ctx.auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {mint_token(secret, CLIENT_ID, DEVICE_ID)}")
    assert not verdict.ok and verdict.code == ACTIVATION_PENDING and "OTA check" in verdict.reason
