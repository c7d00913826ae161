"""The /api/devices JSON API, the device CLI, and the hooks the WebSocket server uses (the records
and the store without HTTP are tested in tests/store/test_devices.py)."""

from __future__ import annotations

import asyncio
import json
import math

from xiaozhi_hub.store.device_store import DeviceStore

from .conftest import ADMIN_TOKEN, BOARD, CLIENT_ID, DEVICE_ID, Hub


# ---------------------------------------------------------------------------- JSON API

async def test_api_lists_shows_renames_blocks_and_revokes(hub: Hub) -> None:
    await hub.ota_json()
    status, body = await hub.api("GET", "/api/devices")
    assert status == 200
    [device] = body["devices"]
    assert device["device_id"] == DEVICE_ID and device["board"] == BOARD and device["online"] is False
    assert "activation_code" not in device and "hmac_key" not in device     # never exposed

    status, body = await hub.api("POST", f"/api/devices/{DEVICE_ID}/rename", {"name": "Kitchen"})
    assert status == 200 and body["device"]["name"] == "Kitchen"
    status, body = await hub.api("GET", "/api/devices/Kitchen")              # names work as references
    assert status == 200 and body["device"]["device_id"] == DEVICE_ID
    status, body = await hub.api("GET", f"/api/devices/{DEVICE_ID.upper()}")
    assert status == 200

    status, body = await hub.api("POST", "/api/devices/Kitchen/block")
    assert status == 200 and body["device"]["blocked"] is True
    assert hub.ctx.devices.is_blocked(DEVICE_ID)
    status, body = await hub.api("POST", "/api/devices/Kitchen/unblock")
    assert status == 200 and not hub.ctx.devices.is_blocked(DEVICE_ID)

    status, body = await hub.api("POST", "/api/devices/Kitchen/revoke")
    assert status == 200
    cutoff = hub.ctx.auth.revoked_before(DEVICE_ID)
    assert cutoff is not None and cutoff == math.floor(cutoff)


async def test_api_errors_are_json(hub: Hub) -> None:
    status, body = await hub.api("GET", "/api/devices/00:00:00:00:00:00")
    assert status == 404 and "no device" in body["error"]
    await hub.ota_json()
    status, body = await hub.api("POST", f"/api/devices/{DEVICE_ID}/rename", {"name": ""})
    assert status == 400
    status, body = await hub.api("POST", f"/api/devices/{DEVICE_ID}/rename", {"title": "x"})
    assert status == 400
    async with hub.session.post(f"{hub.base}/api/devices/{DEVICE_ID}/rename", data=b"not json",
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as r:
        assert r.status == 400 and "error" in await r.json()


async def test_api_needs_an_admin_token_when_auth_is_on(hub: Hub) -> None:
    await hub.ota_json()
    status, _ = await hub.api("GET", "/api/devices", token=None)
    assert status == 401
    status, _ = await hub.api("GET", "/api/devices", token="wrong")
    assert status == 401
    device_token = (await hub.ota_json())["websocket"]["token"]
    status, _ = await hub.api("POST", f"/api/devices/{DEVICE_ID}/block", token=device_token)
    assert status == 401                                                 # a device cannot administer


async def test_api_needs_the_admin_token_when_auth_is_off_too(make_hub) -> None:
    # Device authentication off admits devices without tokens; the admin API stays closed.
    hub = await make_hub(auth={"enabled": False})
    status, body = await hub.api("GET", "/api/devices", token=None)
    assert status == 401 and "admin token" in body["error"]
    status, body = await hub.api("GET", "/api/devices")
    assert status == 200 and body == {"devices": []}


# ---------------------------------------------------------------------------- hooks for the WebSocket server

async def test_the_store_is_wired_into_the_authenticator(hub: Hub) -> None:
    store = hub.ctx.devices
    assert isinstance(store, DeviceStore)
    assert hub.ctx.auth.revoked_before == store.revoked_before
    assert store.revoked_before(DEVICE_ID) is None and not store.is_blocked(DEVICE_ID)


async def test_seen_records_connections_without_raising(hub: Hub) -> None:
    store = hub.ctx.devices
    await store.seen("AA:BB:CC:DD:EE:FF", CLIENT_ID)                     # a device that never did OTA
    device = await store.get("aa:bb:cc:dd:ee:ff")
    assert device is not None and device.client_id == CLIENT_ID and device.activated
    first = device.last_seen
    await asyncio.sleep(0.01)
    await store.seen("aa:bb:cc:dd:ee:ff", "")                            # keeps the known client id
    device = await store.get("aa:bb:cc:dd:ee:ff")
    assert device.client_id == CLIENT_ID and device.last_seen > first
    await store.seen("not a|valid id", "x")                              # ignored, no exception
    await store.seen("", None)


async def test_block_and_revoke_end_a_live_session(hub: Hub) -> None:
    closed: list[tuple[int, str]] = []

    class Session:
        """What the registry and the shut-out hook use of a live session."""

        id = "session-1"
        device_id = DEVICE_ID

        async def close(self, code: int, reason: str) -> None:
            closed.append((code, reason))

    hub.ctx.registry.add(Session())  # type: ignore[arg-type]
    await hub.ota_json()
    hub.ctx.live.connected(DEVICE_ID, "session-1", "websocket")            # what the session reports at hello
    status, body = await hub.api("GET", "/api/devices")
    assert body["devices"][0]["online"] is True and body["devices"][0]["state"] == "idle"
    await hub.api("POST", f"/api/devices/{DEVICE_ID}/block")
    assert closed == [(4003, "device blocked")]                          # the WS server's refusal codes
    await hub.api("POST", f"/api/devices/{DEVICE_ID}/unblock")
    assert hub.cli("devices", "revoke", DEVICE_ID) == 0                  # from the CLI: noticed on refresh
    await hub.ctx.devices.refresh_if_changed()
    assert closed[-1] == (4001, "device tokens revoked")


async def test_refresh_loop_picks_up_cli_changes_by_itself(hub: Hub) -> None:
    await hub.ota_json()
    store = hub.ctx.devices
    await store.close()                                                  # restart the loop, faster
    store.start_refresh(interval=0.05)
    assert hub.cli("devices", "block", DEVICE_ID) == 0
    for _ in range(100):
        if store.is_blocked(DEVICE_ID):
            break
        await asyncio.sleep(0.02)
    assert store.is_blocked(DEVICE_ID)


# ---------------------------------------------------------------------------- CLI

async def test_cli_device_commands(hub: Hub, capsys) -> None:
    await hub.ota_json()
    capsys.readouterr()
    assert hub.cli("devices", "list") == 0
    out = capsys.readouterr().out
    assert DEVICE_ID in out and BOARD in out and "approved" in out

    assert hub.cli("devices", "rename", DEVICE_ID, "Living room") == 0
    assert hub.cli("devices", "block", "Living room") == 0
    capsys.readouterr()
    assert hub.cli("devices", "list", "--json") == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["name"] == "Living room" and listed["blocked"] is True

    assert hub.cli("devices", "block", "nobody") == 1
    assert "no device" in capsys.readouterr().err
    assert hub.cli("devices", "approve", "12") == 2
    assert hub.cli("devices", "approve", "123456") == 1
    assert hub.cli("devices", "key", DEVICE_ID, "xyz") == 2
    assert hub.cli("devices") == 2                                       # needs an action


def test_cli_refuses_a_missing_database(tmp_path, capsys) -> None:
    from xiaozhi_hub.__main__ import main
    assert main(["devices", "list", "--data-dir", str(tmp_path / "nowhere")]) == 1
    assert "no hub database" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()
