"""The OTA check endpoint against a real aiohttp server and SQLite DB (docs/protocol.md, OTA check)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from xiaozhi_hub.auth import mint_token

from .conftest import BOARD, CLIENT_ID, DEVICE_ID, WS_PORT, Hub, device_headers, system_info


def _assert_only_firmware_safe_types(section: dict[str, Any]) -> None:
    """The device stores every string/number field of a section in NVS; nothing else belongs there."""
    for key, value in section.items():
        assert isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)), (key, value)


async def test_reply_to_a_protocol_shaped_body_has_every_field_right(hub: Hub) -> None:
    before = time.time()
    resp = await hub.ota()
    after = time.time()
    assert resp.status == 200
    assert resp.content_type == "application/json"
    reply = await resp.json()

    assert set(reply) == {"server_time", "firmware", "websocket"}          # no mqtt, no activation
    server_time = reply["server_time"]
    assert set(server_time) == {"timestamp", "timezone_offset"}
    assert type(server_time["timestamp"]) is int                        # milliseconds, integral
    assert before * 1000 - 1 <= server_time["timestamp"] <= after * 1000 + 1
    assert type(server_time["timezone_offset"]) is int and server_time["timezone_offset"] == 480  # minutes

    firmware = reply["firmware"]
    assert firmware == {"version": "1.7.6", "url": ""}                 # own version, no URL, no force

    websocket = reply["websocket"]
    _assert_only_firmware_safe_types(websocket)
    assert set(websocket) == {"url", "token"}
    assert websocket["url"] == f"ws://127.0.0.1:{WS_PORT}/xiaozhi/v1/"
    assert websocket["token"]


async def test_minted_token_is_accepted_and_a_revoked_one_is_not(hub: Hub) -> None:
    token = (await hub.ota_json())["websocket"]["token"]
    assert " " not in token                                            # the device adds "Bearer " itself
    auth = hub.ctx.auth
    assert auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {token}").ok
    assert not auth.check(DEVICE_ID, "another-client", f"Bearer {token}").ok
    assert not auth.check("ff:ff:ff:ff:ff:ff", CLIENT_ID, f"Bearer {token}").ok

    status, _ = await hub.api("POST", f"/api/devices/{DEVICE_ID}/revoke")
    assert status == 200
    result = auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {token}")
    assert not result.ok and result.reason == "token revoked"

    fresh = (await hub.ota_json())["websocket"]["token"]              # next OTA check: a working token
    assert fresh != token
    assert auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {fresh}").ok
    assert not auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {token}").ok


async def test_revocation_from_the_cli_reaches_the_running_hub(hub: Hub) -> None:
    token = (await hub.ota_json())["websocket"]["token"]
    assert hub.ctx.auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {token}").ok
    assert hub.cli("devices", "revoke", DEVICE_ID.upper()) == 0          # another process, another connection
    store = hub.ctx.devices
    assert await store.refresh_if_changed()                              # what the refresh loop does every 2 s
    assert hub.ctx.auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {token}").reason == "token revoked"


async def test_tokens_from_the_reference_server_scheme_still_verify(hub: Hub) -> None:
    await hub.ota_json()
    old = mint_token(hub.ctx.auth.secret, CLIENT_ID, DEVICE_ID, now=time.time() - 3600)
    assert hub.ctx.auth.check(DEVICE_ID, CLIENT_ID, old).ok


async def test_websocket_url_follows_the_host_the_device_used(hub: Hub) -> None:
    headers = {**device_headers(), "Host": "xiaozhi-hub.local:8003"}
    reply = await (await hub.ota(headers=headers)).json()
    assert reply["websocket"]["url"] == f"ws://xiaozhi-hub.local:{WS_PORT}/xiaozhi/v1/"
    headers["Host"] = "evil/path?x=1"                                    # not a host name: ignored
    reply = await (await hub.ota(headers=headers)).json()
    assert reply["websocket"]["url"] == f"ws://127.0.0.1:{WS_PORT}/xiaozhi/v1/"


async def test_public_ws_url_wins(make_hub) -> None:
    hub = await make_hub(server={"public_ws_url": "wss://voice.example.org/xiaozhi/v1/"})
    reply = await hub.ota_json()
    assert reply["websocket"]["url"] == "wss://voice.example.org/xiaozhi/v1/"


async def test_local_timezone_offset_when_not_configured(make_hub) -> None:
    hub = await make_hub(ota={"timezone_offset_minutes": None})
    reply = await hub.ota_json()
    expected = int(time.localtime().tm_gmtoff // 60)
    assert reply["server_time"]["timezone_offset"] == expected


async def test_device_record_is_kept(hub: Hub) -> None:
    await hub.ota_json()
    device = await hub.ctx.devices.get(DEVICE_ID)
    assert device.board == BOARD and device.firmware_version == "1.7.6" and device.client_id == CLIENT_ID
    assert device.chip == "esp32s3" and device.activated and not device.blocked
    assert device.info["board.rssi"] == -52 and device.info["flash_size"] == 16777216


async def test_get_returns_a_readable_status(hub: Hub) -> None:
    async with hub.session.get(f"{hub.base}/xiaozhi/ota/") as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        text = await r.text()
    assert "OTA endpoint is running" in text
    assert f"ws://127.0.0.1:{WS_PORT}/xiaozhi/v1/" in text
    assert "0f3c2d1e-hub-test" in text


async def test_path_without_trailing_slash_works_too(hub: Hub) -> None:
    async with hub.session.post(f"{hub.base}/xiaozhi/ota", json=system_info(), headers=device_headers()) as r:
        assert r.status == 200
        assert "websocket" in await r.json()


async def test_minimal_body_uses_headers(hub: Hub) -> None:
    """py-xiaozhi style clients send little; the version then comes from User-Agent."""
    reply = await (await hub.ota(body={}, headers=device_headers(version="1.6.2"))).json()
    assert reply["firmware"] == {"version": "1.6.2", "url": ""}
    assert reply["websocket"]["token"]


# ---------------------------------------------------------------------------- refusals

GARBAGE: list[tuple[str, bytes | str, dict[str, str] | None]] = [
    ("not json", b"hello", None),
    ("truncated json", b'{"application": {"version": "1.0"', None),
    ("json array", b"[1, 2, 3]", None),
    ("json string", b'"text"', None),
    ("empty body", b"", None),
    ("invalid utf-8", b'{"a": "\xff\xfe"}', None),
    ("deep nesting", b"[" * 30000 + b"]" * 30000, None),
    ("application not an object", json.dumps({"application": "1.0"}).encode(), None),
    ("version not a string", json.dumps({"application": {"version": 176}}).encode(), None),
    ("board not an object", json.dumps({"board": ["x"]}).encode(), None),
    ("board type not a string", json.dumps({"board": {"type": 7}}).encode(), None),
    ("huge board type", json.dumps({"board": {"type": "x" * 500}}).encode(), None),
    ("missing device id", json.dumps(system_info()).encode(), {"Device-Id": ""}),
    ("device id with a pipe", json.dumps(system_info()).encode(), {"Device-Id": "a|b"}),
    ("client id with a pipe", json.dumps(system_info()).encode(), {"Client-Id": "x|y"}),
]


@pytest.mark.parametrize("label, body, header_override", GARBAGE, ids=[g[0] for g in GARBAGE])
async def test_garbage_gets_400_with_a_reason(hub: Hub, label: str, body: bytes, header_override: dict | None) -> None:
    headers = {**device_headers(), **(header_override or {})}
    if header_override and header_override.get("Device-Id") == "":
        del headers["Device-Id"]
        body = json.dumps({k: v for k, v in json.loads(body).items() if k != "mac_address"}).encode()
    async with hub.session.post(f"{hub.base}/xiaozhi/ota/", data=body, headers=headers) as r:
        assert r.status == 400, (label, await r.text())
        payload = await r.json()
    assert isinstance(payload["error"], str) and payload["error"]


async def test_oversized_body_is_refused_with_413(make_hub) -> None:
    hub = await make_hub(ota={"max_body_bytes": 2048})
    body = json.dumps({**system_info(), "padding": "x" * 4096})
    async with hub.session.post(f"{hub.base}/xiaozhi/ota/", data=body, headers=device_headers()) as r:
        assert r.status == 413
        assert "too large" in (await r.json())["error"]

    async def chunks():                                   # no Content-Length: the limit still holds
        for _ in range(10):
            yield b"x" * 1024
    async with hub.session.post(f"{hub.base}/xiaozhi/ota/", data=chunks(), headers=device_headers()) as r:
        assert r.status == 413


async def test_random_bodies_never_cause_a_server_error(make_hub) -> None:
    hub = await make_hub(ota={"rate_limit_per_minute": 100000})
    rng = random.Random(5)
    values: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, [1, "a"], {"a": {}}, "1.2.3", 10**30]
    keys = ["application", "board", "version", "mac_address", "uuid", "language", "chip_model_name", "display"]
    for _ in range(150):
        body: Any = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, len(keys)))}
        for k in ("application", "board"):
            if rng.random() < 0.5:
                body[k] = {"version": rng.choice(values), "type": rng.choice(values), "name": rng.choice(values)}
        if rng.random() < 0.1:
            body = rng.choice(values)
        async with hub.session.post(f"{hub.base}/xiaozhi/ota/", json=body, headers=device_headers()) as r:
            assert r.status in (200, 400), (body, r.status, await r.text())
            if r.status == 200:
                reply = await r.json()
                assert isinstance(reply["firmware"]["version"], str) and reply["firmware"]["url"] == ""


async def test_rate_limit_answers_429_with_retry_after(make_hub) -> None:
    hub = await make_hub(ota={"rate_limit_per_minute": 3})
    statuses = [(await hub.ota()).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = await hub.ota()
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    # Activation polls have their own budget, so a device's OTA check does not starve them.
    async with hub.session.post(f"{hub.base}/xiaozhi/ota/activate", json={}, headers=device_headers()) as r:
        assert r.status == 200


async def test_blocked_device_is_refused_and_can_be_unblocked(hub: Hub) -> None:
    await hub.ota_json()
    assert hub.cli("devices", "block", DEVICE_ID) == 0
    store = hub.ctx.devices
    await store.refresh_if_changed()
    assert store.is_blocked(DEVICE_ID) and store.is_blocked(DEVICE_ID.upper())
    resp = await hub.ota()
    assert resp.status == 403
    assert hub.cli("devices", "unblock", DEVICE_ID) == 0
    await store.refresh_if_changed()
    assert not store.is_blocked(DEVICE_ID)
    assert (await hub.ota()).status == 200


async def test_ota_disabled_means_no_route(make_hub) -> None:
    hub = await make_hub(ota={"enabled": False})
    assert (await hub.ota()).status == 404
