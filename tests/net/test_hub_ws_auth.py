"""End to end through the real hub (app.py): the token from the OTA reply opens the WebSocket, a revoked
one does not, a blocked device is refused, and a live session ends when its device is blocked."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from xiaozhi_hub.protocol.close import CloseCode

from .conftest import CLIENT_ID, DEVICE_ID, device_headers, system_info

STATIC = "static-device-token-for-ws-test"     # auth.tokens: a device credential, not the admin token
HELLO = {"type": "hello", "version": 1, "transport": "websocket", "features": {"mcp": True},
         "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}}


class Device:
    """Just enough of a stock device: OTA check over HTTP, then the WebSocket with its stored token."""

    def __init__(self, session: aiohttp.ClientSession, http_port: int, admin_token: str = "") -> None:
        self.session = session
        self.admin_token = admin_token
        self.http = f"http://127.0.0.1:{http_port}"
        self.ws_url = ""
        self.token = ""

    async def ota(self) -> dict:
        async with self.session.post(f"{self.http}/xiaozhi/ota/", json=system_info(), headers=device_headers()) as r:
            assert r.status == 200, await r.text()
            reply = await r.json()
        self.ws_url, self.token = reply["websocket"]["url"], reply["websocket"]["token"]
        return reply

    async def connect(self, token: str | None = None) -> aiohttp.ClientWebSocketResponse:
        headers = {"Device-Id": DEVICE_ID, "Client-Id": CLIENT_ID, "Protocol-Version": "1",
                   "Authorization": f"Bearer {token or self.token}"}
        ws = await self.session.ws_connect(self.ws_url, headers=headers)
        await ws.send_str(json.dumps(HELLO))
        return ws

    async def admin(self, path: str) -> None:
        async with self.session.post(f"{self.http}{path}", headers={"Authorization": f"Bearer {self.admin_token}"}) as r:
            assert r.status == 200, await r.text()


async def _first_text(ws: aiohttp.ClientWebSocketResponse) -> dict:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def _closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code


async def test_ota_token_opens_the_websocket_and_revocation_closes_the_door(start_hub) -> None:
    hub = await start_hub(auth={"enabled": True, "tokens": [STATIC]})
    ctx = hub.ctx
    async with aiohttp.ClientSession() as session:
        device = Device(session, ctx.http_port, ctx.admin.current())
        await device.ota()
        assert device.ws_url == f"ws://127.0.0.1:{ctx.ws_port}/xiaozhi/v1/"

        ws = await device.connect()
        assert (await _first_text(ws))["type"] == "hello"
        await ws.close()

        ws = await device.connect(token="forged.1700000000")
        assert (await _first_text(ws))["type"] != "hello"
        assert await _closed_with(ws) == CloseCode.AUTH

        revoked = device.token
        await device.admin(f"/api/devices/{DEVICE_ID}/revoke")
        ws = await device.connect(token=revoked)
        refusal = await _first_text(ws)
        assert "revoked" in json.dumps(refusal)
        assert await _closed_with(ws) == CloseCode.AUTH

        await device.ota()                                   # next boot: a fresh token works again
        assert device.token != revoked
        ws = await device.connect()
        assert (await _first_text(ws))["type"] == "hello"

        await device.admin(f"/api/devices/{DEVICE_ID}/block")   # the live session is ended at once
        assert await _closed_with(ws) == CloseCode.BLOCKED
        ws = await device.connect()
        assert "blocked" in json.dumps(await _first_text(ws))
        assert await _closed_with(ws) == CloseCode.BLOCKED


async def test_websocket_connection_is_recorded(start_hub) -> None:
    hub = await start_hub(auth={"enabled": True, "tokens": [STATIC]})
    ctx = hub.ctx
    async with aiohttp.ClientSession() as session:
        device = Device(session, ctx.http_port)
        await device.ota()
        store = ctx.devices
        after_ota = (await store.get(DEVICE_ID)).last_seen
        await asyncio.sleep(0.01)
        ws = await device.connect()
        assert (await _first_text(ws))["type"] == "hello"
        for _ in range(50):
            if (await store.get(DEVICE_ID)).last_seen > after_ota:
                break
            await asyncio.sleep(0.02)
        assert (await store.get(DEVICE_ID)).last_seen > after_ota
        await ws.close()
