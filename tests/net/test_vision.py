"""The camera's explain endpoint (net/vision.py) against a fake OpenAI-compatible vision server on
127.0.0.1, with a real PNG uploaded the way stock firmware uploads (chunked multipart, its boundary and
part names), real SQLite and HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

import pytest

from xiaozhi_hub.auth import mint_token, mint_vision_token
from xiaozhi_hub.simulator.camera import colour_bars, multipart_body, png, upload_photo
from xiaozhi_hub.vision import EXPLAIN_PATH

from ..vision_fake import ANSWER, API_KEY, FakeVision, photo_from
from .conftest import CLIENT_ID, DEVICE_ID, SECRET, Hub


async def _vision_hub(make_hub, fake: FakeVision, **vision: Any) -> Hub:
    return await make_hub(vision={"base_url": fake.base_url, "model": "qwen2.5-vl-3b", "api_key": API_KEY,
                                  "timeout": 30, **vision})


async def test_a_firmware_style_upload_is_answered_by_the_vision_model(make_hub, fake_vision, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    hub = await _vision_hub(make_hub, fake_vision)
    capability = hub.ctx.vision_capability(DEVICE_ID)
    assert capability is not None and capability["url"] == f"{hub.base}{EXPLAIN_PATH}"
    photo = colour_bars()
    assert zlib.decompress(photo[photo.index(b"IDAT") + 4:])[:4] == b"\x00\xff\xff\xff"   # a real PNG: white bar

    status, text = await upload_photo(hub.session, capability["url"], capability["token"], DEVICE_ID, CLIENT_ID,
                                      "What do you see?", photo)
    assert status == 200, text
    assert json.loads(text) == {"success": True, "action": "RESPONSE", "response": ANSWER}
    request = fake_vision.requests[-1]
    assert request["model"] == "qwen2.5-vl-3b" and request["stream"] is False
    assert photo_from(request) == ("image/png", photo, "What do you see?")
    assert fake_vision.auth[-1] == f"Bearer {API_KEY}"
    assert API_KEY not in caplog.text                                        # the key is sent, never logged


async def test_refusals_are_json_with_clear_reasons(make_hub, fake_vision) -> None:
    hub = await _vision_hub(make_hub, fake_vision, max_image_bytes=4096)
    url, token = f"{hub.base}{EXPLAIN_PATH}", mint_vision_token(SECRET, DEVICE_ID)

    async def refused(status: int, *, token: str = token, device: str = DEVICE_ID, image: bytes | None = None,
                      body: bytes | None = None) -> str:
        code, text = await upload_photo(hub.session, url, token, device, CLIENT_ID, "what?", image, body=body)
        reply = json.loads(text)
        assert code == status and reply["success"] is False and reply["error"] == reply["message"], (code, text)
        return reply["error"]

    assert "Authorization" in await refused(401, token="")
    assert "malformed" in await refused(401, token="nonsense")
    assert "signature" in await refused(401, device="11:22:33:44:55:66")      # another device's token
    assert "signature" in await refused(401, token=mint_token(SECRET, CLIENT_ID, DEVICE_ID))   # a WebSocket token
    assert "expired" in await refused(401, token=mint_vision_token(SECRET, DEVICE_ID, now=1_000_000))
    assert "Device-Id" in await refused(400, device="")
    assert "not an image" in await refused(415, image=b"GIF? no, plain text")
    assert "too large" in await refused(413, image=png(128, 128, lambda x, y: (x * 2, y * 2, (x * y) % 256)))
    assert "question" in await refused(413, body=multipart_body("?" * 3000, colour_bars()))
    no_photo = b'------ESP32_CAMERA_BOUNDARY\r\nContent-Disposition: form-data; name="question"\r\n\r\nhi\r\n' \
               b"------ESP32_CAMERA_BOUNDARY--\r\n"
    assert "no photo" in await refused(400, body=no_photo)
    async with hub.session.post(url, json={"question": "hi"},
                                headers={"Device-Id": DEVICE_ID, "Authorization": f"Bearer {token}"}) as r:
        assert r.status == 400 and "multipart" in (await r.json())["error"]
    await hub.ota_json()
    assert hub.cli("devices", "block", DEVICE_ID) == 0
    await hub.ctx.devices.refresh_if_changed()
    assert "blocked" in await refused(403)
    assert fake_vision.requests == []                                         # nothing reached the model


@pytest.mark.parametrize("mode, said", [("error", "HTTP 500: model crashed"), ("slow", "did not answer within 1 s"),
                                        ("garbage", "did not answer with JSON"), ("echo_key", "HTTP 401: bad key")])
async def test_model_failures_are_spoken_reasons(make_hub, fake_vision, caplog, mode: str, said: str) -> None:
    caplog.set_level(logging.DEBUG)
    fake_vision.mode = mode
    hub = await _vision_hub(make_hub, fake_vision, timeout=1 if mode == "slow" else 30)
    status, text = await upload_photo(hub.session, f"{hub.base}{EXPLAIN_PATH}", mint_vision_token(SECRET, DEVICE_ID),
                                      DEVICE_ID, CLIENT_ID, "what?")
    reply = json.loads(text)
    # 200 on purpose: the firmware passes a 200 body to the LLM verbatim, any other status as a bare error.
    assert status == 200 and reply["success"] is False and said in reply["message"], text
    assert API_KEY not in text and API_KEY not in caplog.text
    assert hub.ctx.metrics.counters["vision_failures"] == 1


async def test_without_a_vision_model_nothing_is_offered(hub: Hub) -> None:
    assert hub.ctx.vision is None and hub.ctx.vision_capability(DEVICE_ID) is None
    status, text = await upload_photo(hub.session, f"{hub.base}{EXPLAIN_PATH}", mint_vision_token(SECRET, DEVICE_ID),
                                      DEVICE_ID, CLIENT_ID, "what?")
    assert status == 503 and "vision.base_url" in json.loads(text)["error"]


def test_settings_keep_the_api_key_out_of_their_repr(tmp_path) -> None:
    from .conftest import make_settings
    settings = make_settings(tmp_path, vision={"base_url": "http://127.0.0.1:1/v1", "api_key": API_KEY})
    assert settings.vision.api_key == API_KEY and API_KEY not in repr(settings)
    assert "test-secret" not in repr(settings) and "admin-token" not in repr(settings)
