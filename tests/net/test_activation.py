"""Activation: code + challenge in the OTA reply, /activate 202 until approved, then 200 (docs/protocol.md, Activation)."""

from __future__ import annotations

import hashlib
import hmac
import re

from xiaozhi_hub.auth import ACTIVATION_PENDING

from .conftest import CLIENT_ID, DEVICE_ID, Hub, device_headers


async def _activate(hub: Hub, body: object = None, headers: dict[str, str] | None = None) -> int:
    """POST /xiaozhi/ota/activate as a device; the status code."""
    async with hub.session.post(f"{hub.base}/xiaozhi/ota/activate", json={} if body is None else body,
                                headers=headers or device_headers()) as r:
        await r.read()
        return r.status


async def _pending_reply(hub: Hub, image_file=None) -> dict:
    reply = await hub.ota_json(version="1.7.6")
    activation = reply["activation"]
    assert re.fullmatch(r"[0-9]{6}", activation["code"])
    assert isinstance(activation["challenge"], str) and activation["challenge"]
    assert activation["code"] in activation["message"]
    assert type(activation["timeout_ms"]) is int
    # Still a well-formed reply: firmware object and a websocket section with the device's token, which
    # the socket refuses until the device is approved (not as malformed: as pending).
    assert reply["firmware"] == {"version": "1.7.6", "url": ""}
    verdict = hub.ctx.auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {reply['websocket']['token']}")
    assert not verdict.ok and verdict.code == ACTIVATION_PENDING and "approve" in verdict.reason
    assert "mqtt" not in reply
    return reply


async def test_activation_goes_202_then_200_after_cli_approval(make_hub) -> None:
    hub = await make_hub(ota={"activation": True})
    reply = await _pending_reply(hub)
    code = reply["activation"]["code"]
    assert await _activate(hub) == 202
    assert await _activate(hub) == 202
    again = await hub.ota_json()                                        # the code does not change per check
    assert again["activation"]["code"] == code

    assert hub.cli("devices", "approve", code) == 0                     # another process, while the hub runs
    assert await _activate(hub) == 200

    final = await hub.ota_json()                                        # the loop-ending reply
    assert "activation" not in final
    token = final["websocket"]["token"]
    assert hub.ctx.auth.check(DEVICE_ID, CLIENT_ID, f"Bearer {token}").ok


async def test_activation_approved_over_http(make_hub) -> None:
    hub = await make_hub(ota={"activation": True})
    code = (await _pending_reply(hub))["activation"]["code"]
    assert await _activate(hub) == 202
    status, body = await hub.api("POST", "/api/devices/approve", {"code": "000000" if code != "000000" else "111111"})
    assert status == 404 and "no device is waiting" in body["error"]
    status, body = await hub.api("POST", "/api/devices/approve", {"code": "12ab"})
    assert status == 400
    status, body = await hub.api("POST", "/api/devices/approve", {"code": code})
    assert status == 200 and body["device"]["activated"] is True
    assert await _activate(hub) == 200
    assert "activation" not in await hub.ota_json()
    status, body = await hub.api("POST", "/api/devices/approve", {"code": code})   # codes are single-use
    assert status == 404


async def test_pending_device_is_not_offered_firmware(make_hub, image_file) -> None:
    hub = await make_hub(ota={"activation": True})
    path = image_file("1.8.0")
    assert hub.cli("firmware", "add", str(path), "--board", "bread-compact-wifi") == 0
    reply = await _pending_reply(hub)
    assert hub.cli("devices", "approve", reply["activation"]["code"]) == 0
    assert (await hub.ota_json())["firmware"]["version"] == "1.8.0"


async def test_two_devices_get_different_codes(make_hub) -> None:
    hub = await make_hub(ota={"activation": True})
    first = (await hub.ota_json())["activation"]["code"]
    other = "11:22:33:44:55:66"
    resp = await hub.ota(headers=device_headers(mac=other), mac=other)
    second = (await resp.json())["activation"]["code"]
    assert first != second
    assert hub.cli("devices", "approve", second) == 0
    assert await _activate(hub, headers=device_headers(mac=other)) == 200
    assert await _activate(hub) == 202                                   # approving one leaves the other


async def test_activate_refusals(make_hub) -> None:
    hub = await make_hub(ota={"activation": True})
    assert await _activate(hub) == 404                                   # unknown: OTA check first
    await hub.ota_json()
    headers = device_headers()
    del headers["Device-Id"]
    assert await _activate(hub, headers=headers) == 400
    assert await _activate(hub, body=[1]) == 400
    assert await _activate(hub, body={"algorithm": "md5", "hmac": "00"}) == 400
    assert await _activate(hub, body={"hmac": 5}) == 400
    async with hub.session.post(f"{hub.base}/xiaozhi/ota/activate", data=b"{nope",
                                headers=device_headers()) as r:
        assert r.status == 400 and "error" in await r.json()
    assert hub.cli("devices", "block", DEVICE_ID) == 0
    assert await _activate(hub) == 403


async def test_hmac_body_without_a_known_key_is_approved_by_code(make_hub) -> None:
    hub = await make_hub(ota={"activation": True})
    reply = await _pending_reply(hub)
    body = {"algorithm": "hmac-sha256", "serial_number": "SN0001", "challenge": reply["activation"]["challenge"],
            "hmac": "ab" * 32}
    headers = {**device_headers(), "Activation-Version": "2", "Serial-Number": "SN0001"}
    assert await _activate(hub, body=body, headers=headers) == 202
    assert hub.cli("devices", "approve", reply["activation"]["code"]) == 0
    assert await _activate(hub, body=body, headers=headers) == 200


async def test_hmac_with_a_registered_key(make_hub) -> None:
    hub = await make_hub(ota={"activation": True})
    await _pending_reply(hub)
    key = bytes(range(32))
    assert hub.cli("devices", "key", DEVICE_ID, key.hex()) == 0
    challenge = (await hub.ota_json())["activation"]["challenge"]
    headers = {**device_headers(), "Activation-Version": "2", "Serial-Number": "SN0001"}
    wrong = {"algorithm": "hmac-sha256", "serial_number": "SN0001", "challenge": challenge,
             "hmac": hmac.new(b"another key", challenge.encode(), hashlib.sha256).hexdigest()}
    assert await _activate(hub, body=wrong, headers=headers) == 403
    stale = {**wrong, "challenge": "not-the-current-challenge",
             "hmac": hmac.new(key, b"not-the-current-challenge", hashlib.sha256).hexdigest()}
    assert await _activate(hub, body=stale, headers=headers) == 403
    assert await _activate(hub, body={**wrong, "challenge": "挑战", "hmac": "é"}, headers=headers) == 403
    right = {**wrong, "hmac": hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest()}
    assert await _activate(hub, body=right, headers=headers) == 200      # the registered key vouches for it
    assert "activation" not in await hub.ota_json()


async def test_activation_off_means_no_activation_section(hub: Hub) -> None:
    reply = await hub.ota_json()
    assert "activation" not in reply
    assert await _activate(hub) == 200                                   # nothing to wait for


async def test_devices_seen_while_activation_was_off_stay_approved(make_hub) -> None:
    before = await make_hub()
    await before.ota_json()
    after = await make_hub(data_dir=before.data_dir, ota={"activation": True})   # restarted with activation on
    assert "activation" not in await after.ota_json()
    newcomer = "11:22:33:44:55:66"
    resp = await after.ota(headers=device_headers(mac=newcomer), mac=newcomer)
    assert "activation" in await resp.json()


# -- both body shapes, both key readings (docs/protocol.md, Activation) -----------------------------
# Stock firmware: {"algorithm","serial_number","challenge","hmac"} at the top level, HMAC keyed with the
# raw eFuse key bytes, Serial-Number header. py-xiaozhi: the same fields wrapped as {"Payload": {...}},
# HMAC keyed with the ASCII of its hex key string, no Serial-Number header.

STOCK_KEY = bytes(range(0x40, 0x60))                                  # 32 raw bytes, registered as hex
PY_KEY = hashlib.sha256(b"host||a1:b2:c3:d4:e5:f6||machine-id").hexdigest()   # a 64-hex string


def _stock_poll(challenge: str, key: bytes) -> tuple[dict, dict[str, str]]:
    body = {"algorithm": "hmac-sha256", "serial_number": "SN0001", "challenge": challenge,
            "hmac": hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest()}
    return body, {**device_headers(), "Activation-Version": "2", "Serial-Number": "SN0001"}


def _py_xiaozhi_poll(challenge: str, key: bytes) -> tuple[dict, dict[str, str]]:
    body = {"Payload": {"algorithm": "hmac-sha256", "serial_number": "SN-1A2B3C4D-a1b2c3d4e5f6",
                        "challenge": challenge, "hmac": hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest()}}
    return body, {"Activation-Version": "2", "Device-Id": DEVICE_ID, "Client-Id": CLIENT_ID,
                  "Content-Type": "application/json"}


async def _registered(make_hub, key_hex: str) -> tuple[Hub, str]:
    hub = await make_hub(ota={"activation": True})
    await _pending_reply(hub)
    assert hub.cli("devices", "key", DEVICE_ID, key_hex) == 0
    return hub, (await hub.ota_json())["activation"]["challenge"]


async def test_stock_shape_with_the_raw_key(make_hub) -> None:
    hub, challenge = await _registered(make_hub, STOCK_KEY.hex())
    assert await _activate(hub, *_stock_poll(challenge, b"not the key")) == 403
    assert await _activate(hub, *_stock_poll(challenge, STOCK_KEY)) == 200
    assert "activation" not in await hub.ota_json()


async def test_py_xiaozhi_shape_with_the_ascii_key(make_hub) -> None:
    hub, challenge = await _registered(make_hub, PY_KEY)
    assert await _activate(hub, *_py_xiaozhi_poll(challenge, b"not the key")) == 403   # the wrapper is read
    assert await _activate(hub, *_py_xiaozhi_poll(challenge, PY_KEY.encode())) == 200
    assert "activation" not in await hub.ota_json()


async def test_either_shape_takes_either_key_reading(make_hub) -> None:
    hub, challenge = await _registered(make_hub, PY_KEY)
    assert await _activate(hub, *_stock_poll(challenge, PY_KEY.encode())) == 200
    hub, challenge = await _registered(make_hub, STOCK_KEY.hex())
    assert await _activate(hub, *_py_xiaozhi_poll(challenge, STOCK_KEY)) == 200


async def test_payload_shape_refusals(make_hub) -> None:
    hub = await make_hub(ota={"activation": True})
    challenge = (await _pending_reply(hub))["activation"]["challenge"]
    body, headers = _py_xiaozhi_poll(challenge, PY_KEY.encode())
    assert await _activate(hub, {"Payload": "nope"}, headers) == 400
    assert await _activate(hub, {"Payload": {**body["Payload"], "hmac": 7}}, headers) == 400
    assert await _activate(hub, {"Payload": {**body["Payload"], "algorithm": "md5"}}, headers) == 400
    assert await _activate(hub, body, headers) == 202                  # no key registered: the code decides
