"""A fake OpenAI-compatible vision server on 127.0.0.1 (llama-server's /v1/chat/completions for
images), recording what it was asked: for the vision endpoint tests and the camera end to end."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

API_KEY = "sk-vision-secret-0123456789"
ANSWER = "Seven coloured stripes, like a television test card."


@dataclass
class FakeVision:
    """Just enough of llama-server's /v1/chat/completions for images; records what it was sent."""

    mode: str = "ok"                       # ok | error | slow | echo_key | garbage
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    base_url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)    # a slow answer waits for this

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization"))
        self.requests.append(await request.json())
        if self.mode == "error":
            return web.Response(status=500, text="model crashed")
        if self.mode == "echo_key":
            return web.Response(status=401, text=f"bad key {request.headers.get('Authorization')}")
        if self.mode == "slow":
            await self.release.wait()
        if self.mode == "garbage":
            return web.Response(text="<html>not json</html>")
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}}]})


@pytest.fixture
async def fake_vision():
    fake = FakeVision()
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    yield fake
    fake.release.set()
    await runner.cleanup()


def photo_from(request: dict[str, Any]) -> tuple[str, bytes, str]:
    """(mime, image bytes, question) from a chat request with an image_url part."""
    user = request["messages"][-1]["content"]
    text = next(p["text"] for p in user if p["type"] == "text")
    url = next(p["image_url"]["url"] for p in user if p["type"] == "image_url")
    head, data = url.split(",", 1)
    return head.removeprefix("data:").removesuffix(";base64"), base64.b64decode(data), text
