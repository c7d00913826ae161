"""The device camera end to end: a simulated camera board over a real socket on 127.0.0.1, an
in-process hub (fake ASR/TTS, a fake LLM that asks for the camera tool), the hub's explain endpoint
and a fake OpenAI-compatible vision server on 127.0.0.1. The simulator's camera uploads a real PNG
the way the firmware uploads its JPEG (chunked multipart to the URL and token from MCP initialize)."""

from __future__ import annotations

import json
import logging
from typing import AsyncIterator, Sequence

from xiaozhi_hub.app import Hub
from xiaozhi_hub.auth import mint_vision_token
from xiaozhi_hub.pipeline.device_tools import NO_VISION
from xiaozhi_hub.protocol.mcp import CAMERA_TOOL
from xiaozhi_hub.providers.base import ChatMessage, LLMEvent, Providers, ToolSpec
from xiaozhi_hub.providers.fake import FakeASR, FakeLLM, FakeTTS
from xiaozhi_hub.providers.registry import create_provider
from xiaozhi_hub.simulator import SimulatedDevice
from xiaozhi_hub.simulator.camera import png
from xiaozhi_hub.simulator.mcp import FirmwareMcpServer
from xiaozhi_hub.vision import EXPLAIN_PATH

from ..conftest import fake_settings, ws_url
from ..vision_fake import ANSWER, API_KEY, photo_from
from .test_turns import SPEECH

QUESTION = "What is on the table?"
LOOK = json.dumps({"name": "self_camera_take_photo", "arguments": {"question": QUESTION}})
TIMEOUT = 30.0


class RecordingLLM(FakeLLM):
    """The fake LLM (calls the camera tool, then says its reply), keeping every prompt it was given."""

    def __init__(self, settings) -> None:
        super().__init__(settings.fake)
        self.prompts: list[list[ChatMessage]] = []

    async def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> AsyncIterator[LLMEvent]:
        self.prompts.append(list(messages))
        async for event in super().stream(messages, tools):
            yield event


async def camera_hub(tmp_path, llm_reply: str = "Here is what I see.", **sections) -> tuple[Hub, RecordingLLM]:
    settings = fake_settings(tmp_path, fake={"llm_tool_call": LOOK, "llm_reply": llm_reply},
                             session={"filler_after_ms": 0}, **sections)
    llm = RecordingLLM(settings)
    hub = Hub(settings)
    await hub.start(Providers(vad=await create_provider("vad", settings, None), asr=FakeASR(settings.fake),
                              llm=llm, tts=FakeTTS(settings.fake)))
    return hub, llm


def tool_results(llm: RecordingLLM) -> list[str]:
    return [m.content for prompt in llm.prompts for m in prompt if m.role == "tool"]


async def test_the_camera_photo_is_explained_by_the_vision_model(tmp_path, fake_vision, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    hub, llm = await camera_hub(tmp_path, vision={"base_url": fake_vision.base_url, "api_key": API_KEY,
                                                  "model": "llava"})
    photo = png(48, 32, lambda x, y: (255, 255 * (x > 24), 0))          # a red-and-yellow real image
    try:
        board = FirmwareMcpServer(camera=True, photo=photo)
        async with SimulatedDevice(ws_url(hub), mcp_server=board) as dev:
            await dev.wait_until(lambda: board.vision is not None, TIMEOUT)   # initialize offered the upload
            assert board.vision == {"url": f"{hub.ctx.http_url()}{EXPLAIN_PATH}", "token": board.vision["token"]}
            assert hub.ctx.auth.verify_vision_token(board.vision["token"], dev.device_id).ok
            await dev.wait_until(lambda: any(c.method == "tools/list" for c in board.calls), TIMEOUT)
            turn = await dev.run_turn(SPEECH, mode="manual", timeout=TIMEOUT)
        assert turn.sentences == ["Here is what I see."]
        # The board captured and uploaded; the vision model saw that very image and the LLM's question.
        assert [(q, ok) for q, ok, _ in board.photos] == [(QUESTION, True)]
        assert photo_from(fake_vision.requests[-1]) == ("image/png", photo, QUESTION)
        assert fake_vision.auth[-1] == f"Bearer {API_KEY}"
        # The answer travelled back as the tool result the LLM read.
        assert any(ANSWER in r for r in tool_results(llm)), tool_results(llm)
        assert API_KEY not in caplog.text
    finally:
        await hub.stop()


async def test_without_a_vision_model_the_answer_says_so(tmp_path) -> None:
    hub, llm = await camera_hub(tmp_path, llm_reply="")      # an LLM that says nothing after the tool
    try:
        board = FirmwareMcpServer(camera=True)
        async with SimulatedDevice(ws_url(hub), mcp_server=board) as dev:
            await dev.wait_until(lambda: any(c.method == "tools/list" for c in board.calls), TIMEOUT)
            init = next(c for c in board.calls if c.method == "initialize")
            assert "vision" not in (init.params or {}).get("capabilities", {})    # nothing offered
            turn = await dev.run_turn(SPEECH, mode="manual", timeout=TIMEOUT)
        assert " ".join(turn.sentences) == NO_VISION["en"]         # the hub's plain answer, spoken
        assert any(NO_VISION["en"] in r for r in tool_results(llm))  # and what the LLM was told
        assert not [c for c in board.calls if c.method == "tools/call"] and board.photos == []
    finally:
        await hub.stop()


async def test_the_simulated_board_answers_like_the_firmware_without_a_url(tmp_path, fake_vision) -> None:
    """A camera call without an explain URL is the firmware's error; with a stale token the upload fails."""
    hub, _ = await camera_hub(tmp_path, vision={"base_url": fake_vision.base_url})
    try:
        board = FirmwareMcpServer(camera=True)
        async with SimulatedDevice(ws_url(hub), mcp_server=board) as dev:
            await dev.wait_until(lambda: board.vision is not None, TIMEOUT)
            session = hub.ctx.registry.by_device(dev.device_id)
            assert session is not None and session.link.mcp is not None
            board.vision = {"url": board.vision["url"], "token": mint_vision_token("another-secret", dev.device_id)}
            try:
                await session.link.call_device_tool(CAMERA_TOOL, {"question": "what?"})
                raise AssertionError("the upload with a bad token should have failed")
            except Exception as err:
                assert "Failed to upload photo" in str(err)
            board.vision = None
            try:
                await session.link.call_device_tool(CAMERA_TOOL, {"question": "what?"})
                raise AssertionError("a camera without an explain URL should fail")
            except Exception as err:
                assert "explain URL" in str(err)
        assert [ok for _, ok, _ in board.photos] == [False, False] and fake_vision.requests == []
    finally:
        await hub.stop()
