"""The OpenAI-compatible provider against a small fake server on 127.0.0.1 that streams SSE."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from xiaozhi_hub.providers import llm_openai
from xiaozhi_hub.providers.base import BusyError, ChatMessage, ProviderError, TextDelta, ToolCall, ToolSpec
from xiaozhi_hub.settings import from_mapping


class FakeOpenAI:
    """Records requests; streams the chunks in ``script`` (or fails with ``status``)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[dict[str, Any]] = []
        self.status = 200
        self.base = ""

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "qwen2.5-1.5b"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        if self.status != 200:
            return web.json_response({"error": {"message": "overloaded"}}, status=self.status)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": keep-alive\n\n")
        for chunk in self.script:
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp


def delta(**d: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": None}]}


def finish(reason: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_get("/v1/models", fake.models)
    app.router.add_post("/v1/chat/completions", fake.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"  # type: ignore[union-attr]
    yield fake
    await runner.cleanup()


async def provider(server: FakeOpenAI, **llm: Any) -> llm_openai.OpenAILLM:
    settings = from_mapping({"llm": {"provider": "openai", "base_url": server.base, **llm}})
    return await llm_openai.create(settings, compute=None)  # type: ignore[arg-type]


async def collect(llm: llm_openai.OpenAILLM, *args: Any) -> list[object]:
    try:
        return [e async for e in llm.stream(*args)]
    finally:
        await llm.aclose()


async def test_text_is_streamed_delta_by_delta(server: FakeOpenAI):
    server.script = [delta(role="assistant"), delta(content="The kitchen "), delta(content="light is on."),
                     finish("stop")]
    llm = await provider(server, model="my-model", max_tokens=50)
    events = await collect(llm, [ChatMessage(role="user", content="Hi")])
    assert events == [TextDelta("The kitchen "), TextDelta("light is on.")]
    body = server.requests[0]
    assert body["model"] == "my-model" and body["stream"] is True and body["max_tokens"] == 50
    assert body["messages"][0]["role"] == "system" and body["messages"][1] == {"role": "user", "content": "Hi"}
    assert "tools" not in body


async def test_tool_call_fragments_are_assembled(server: FakeOpenAI):
    server.script = [
        delta(role="assistant", content=None, tool_calls=[
            {"index": 0, "id": "call_abc", "type": "function", "function": {"name": "set_light", "arguments": ""}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": "{\"room\": \"kit"}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": "chen\", \"on\": true}"}}]),
        delta(tool_calls=[{"index": 1, "id": "call_def", "function": {"name": "get_time", "arguments": "{}"}}]),
        finish("tool_calls"),
    ]
    tool = ToolSpec(name="set_light", description="Switch a light",
                    parameters={"type": "object", "properties": {"room": {"type": "string"}}})
    history = [ChatMessage(role="user", content="Lights?"),
               ChatMessage(role="assistant", tool_calls=(ToolCall(id="c0", name="get_time", arguments={}),)),
               ChatMessage(role="tool", content="12:00", tool_call_id="c0", name="get_time")]
    events = await collect(await provider(server), history, [tool])
    assert events == [ToolCall(id="call_abc", name="set_light", arguments={"room": "kitchen", "on": True}),
                      ToolCall(id="call_def", name="get_time", arguments={})]
    body = server.requests[0]
    assert body["model"] == "qwen2.5-1.5b"          # discovered from /v1/models
    assert body["tools"][0]["function"]["name"] == "set_light"
    assert body["messages"][2]["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}
    assert body["messages"][3] == {"role": "tool", "content": "12:00", "tool_call_id": "c0", "name": "get_time"}


async def test_http_errors_carry_the_status(server: FakeOpenAI):
    server.status = 500
    with pytest.raises(ProviderError, match="HTTP 500: .*overloaded"):
        await collect(await provider(server, model="m"), [ChatMessage(role="user", content="Hi")])
    server.status = 429
    with pytest.raises(BusyError, match="HTTP 429"):
        await collect(await provider(server, model="m"), [ChatMessage(role="user", content="Hi")])


async def test_unreachable_server_is_a_provider_error():
    settings = from_mapping({"llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}})
    llm = await llm_openai.create(settings, compute=None)  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match="http://127.0.0.1:9/v1/chat/completions"):
        await collect(llm, [ChatMessage(role="user", content="Hi")])


async def test_missing_base_url_is_explained():
    with pytest.raises(ProviderError, match="needs llm.base_url"):
        await llm_openai.create(from_mapping({"llm": {"provider": "openai"}}), compute=None)  # type: ignore[arg-type]
