"""Issue 4 acceptance over real sockets: the device simulator against an in-process hub with the
fake providers (and one hub subprocess killed with SIGKILL), on real SQLite files.

(a) "set the volume to thirty" through the intent path → MCP ``self.audio_speaker.set_volume``
    ``{"volume": 30}`` on the device and a spoken confirmation;
(b) the same through the LLM path (the fake LLM emits the tool call);
(c) a timer set for ~2 s is announced on the device when due, also across a hub restart;
(d) conversation memory survives a restart, and ``kill -9`` during a turn loses nothing committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
import yaml

from xiaozhi_hub.app import Hub
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.providers.base import ChatMessage
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import LONG_BUDGET, LONG_REPLY, fake_settings, free_port, ws_url

SPEECH = pcmlib.voice_like(1200)      # ~1.2 s the VAD hears as speech; the fake ASR "hears" asr_text
DEVICE = "02:00:00:00:04:01"


@pytest.fixture
async def hubs(tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """``hub = await hubs(fake={...})`` starts a hub on ``tmp_path/data``; all are stopped at the end
    (a hub stopped by the test is not stopped twice)."""
    running: list[Hub] = []

    async def start(**sections: Any) -> Hub:
        hub = Hub(fake_settings(tmp_path, **sections))
        await hub.start()
        running.append(hub)
        return hub

    yield start
    for hub in running:
        if hub._runners or hub._closers:
            await hub.stop()


async def mcp_ready(hub: Hub, dev: SimulatedDevice) -> None:
    """Wait until the hub has the device's tool list (the hub asks for it right after the hello)."""
    assert hub.ctx is not None
    for _ in range(200):
        session = hub.ctx.registry.by_device(dev.device_id)
        if session is not None and session.link.mcp is not None and session.link.mcp.ready.is_set():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("device MCP tools never arrived")


def volume_calls(dev: SimulatedDevice) -> list[Any]:
    return [c.params for c in dev.mcp_calls
            if c.method == "tools/call" and (c.params or {}).get("name") == "self.audio_speaker.set_volume"]


async def test_a_intent_path_sets_the_volume_over_mcp_and_confirms(hubs):
    hub = await hubs(fake={"asr_text": "set the volume to thirty"})
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        await mcp_ready(hub, dev)
        turn = await dev.run_turn(SPEECH)
        assert turn.stt_text == "set the volume to thirty"
        assert volume_calls(dev) == [{"name": "self.audio_speaker.set_volume", "arguments": {"volume": 30}}]
        assert dev.volume == 30
        assert turn.sentences == ["Volume set to 30."]
        assert turn.played and turn.dropped == 0
        metrics = hub.ctx.metrics
        assert metrics.counters["intent_turns"] == 1 and metrics.counters.get("llm_turns", 0) == 0


async def test_a_chinese_intent_with_spoken_numbers(hubs):
    hub = await hubs(fake={"asr_text": "音量调到三十"})
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        await mcp_ready(hub, dev)
        turn = await dev.run_turn(SPEECH)
        assert dev.volume == 30 and turn.sentences == ["音量已调到30。"]


@pytest.mark.parametrize("sections", [
    # The text is no intent ...
    {"fake": {"asr_text": "make it a bit quieter, thirty would be good"}},
    # ... or intents are off.
    {"fake": {"asr_text": "set the volume to thirty"}, "intents": {"enabled": False}},
], ids=["no-intent-match", "intents-disabled"])
async def test_b_llm_path_calls_the_device_tool(hubs, sections):
    sections["fake"].update(llm_reply="The volume is thirty now.",
                            llm_tool_call=json.dumps({"name": "self_audio_speaker_set_volume",
                                                      "arguments": {"volume": 30}}))
    hub = await hubs(**sections)
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        await mcp_ready(hub, dev)
        turn = await dev.run_turn(SPEECH)
        assert volume_calls(dev) == [{"name": "self.audio_speaker.set_volume", "arguments": {"volume": 30}}]
        assert dev.volume == 30
        assert turn.sentences == ["The volume is thirty now."]
        assert hub.ctx.metrics.counters["llm_turns"] == 1


async def test_c_timer_is_announced_on_the_device_when_due(hubs):
    hub = await hubs(fake={"asr_text": "set a timer for two seconds"}, agent={"timer_poll_seconds": 0.1})
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        turn = await dev.run_turn(SPEECH)
        set_at = next(m.t for m in turn.messages if m.type == "stt")    # the timer starts with the turn
        assert turn.sentences == ["Timer set for 2 seconds."]
        msg = await dev.wait_for("tts", state="sentence_start", text="Your 2 second timer is done.", timeout=8)
        assert 1.9 < msg.t - set_at < 3.5, msg.t - set_at
        await dev.wait_for("tts", state="stop", timeout=5)
        announced = next(t for t in dev.turns if msg in t.messages)
        assert announced.played and announced.dropped == 0    # spoken, not just shown
    assert await hub.ctx.agent.timers.store.for_device(DEVICE) == []


async def test_c_timer_survives_a_hub_restart_and_is_announced_on_reconnect(hubs):
    hub = await hubs(fake={"asr_text": "set a timer for three seconds"}, agent={"timer_poll_seconds": 0.1})
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        turn = await dev.run_turn(SPEECH)
        assert turn.sentences == ["Timer set for 3 seconds."]
    await hub.stop()                                  # the timer is pending in SQLite
    await asyncio.sleep(3.5)                          # it falls due while no hub is running

    hub2 = await hubs(agent={"timer_poll_seconds": 0.1})
    async with SimulatedDevice(ws_url(hub2), device_id=DEVICE) as dev:
        msg = await dev.wait_for("tts", state="sentence_start", timeout=8)
        assert msg.data["text"] == "Your 3 second timer is done."
        await dev.wait_for("tts", state="stop", timeout=5)
    assert await hub2.ctx.agent.timers.store.for_device(DEVICE) == []


class RecordingLLM:
    """Wraps the hub's LLM to record the prompts it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.prompts: list[list[ChatMessage]] = []

    def stream(self, messages, tools=()):
        self.prompts.append(list(messages))
        return self.inner.stream(messages, tools)


async def test_d_conversation_memory_survives_a_restart(hubs):
    hub = await hubs(fake={"asr_text": "my name is Ann", "llm_reply": "Nice to meet you, Ann."})
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        await dev.run_turn(SPEECH)
    await hub.stop()

    hub2 = await hubs(fake={"asr_text": "what is my name", "llm_reply": "Your name is Ann."})
    agent = hub2.ctx.agent
    agent.llm = recorder = RecordingLLM(agent.llm)
    async with SimulatedDevice(ws_url(hub2), device_id=DEVICE) as dev:
        await dev.run_turn(SPEECH)
    prompt = [(m.role, m.content) for m in recorder.prompts[0]]
    assert prompt[1:] == [("user", "my name is Ann"), ("assistant", "Nice to meet you, Ann."),
                          ("user", "what is my name")]


# ---------------------------------------------------------------------------- kill -9


def rows(db_path: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT device_id, role, content, interrupted FROM dialogue ORDER BY id").fetchall()


async def test_d_kill_9_during_a_turn_loses_no_committed_dialogue(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "ws_port": port, "http_port": free_port()},
        "asr": {"provider": "fake"}, "llm": {"provider": "fake"}, "tts": {"provider": "fake"},
        "mdns": {"enabled": False}, "data_dir": str(data), "log_level": "warning",
        # A slow LLM: the reply streams for ~3 s, so the kill lands mid-turn.
        "fake": {"asr_text": "tell me about the weather", "llm_reply": LONG_REPLY,
                 "llm_chunk_chars": 10, "llm_chunk_delay_ms": 200},
        "agent": LONG_BUDGET,
    }))
    proc = subprocess.Popen([sys.executable, "-m", "xiaozhi_hub", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"ws://127.0.0.1:{port}/xiaozhi/v1/"
        deadline = time.monotonic() + 30
        dev = None
        while dev is None:
            try:
                dev = SimulatedDevice(url, device_id=DEVICE)
                await dev.connect()
            except Exception:
                dev = None
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "hub did not start"
                await asyncio.sleep(0.2)
        first = await dev.run_turn(SPEECH, timeout=30)       # a whole turn: both messages committed
        assert first.sentences[0] == "One red apple."
        second = await dev.start_listening("auto")
        await dev.stream_pcm(SPEECH)
        await dev.stream_silence(lambda: second.tts_start_at is not None, 10)
        await dev.wait_for("tts", state="sentence_start", timeout=10)   # the agent is speaking turn 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await dev.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    reply = LONG_REPLY
    assert rows(data / "hub.db") == [(DEVICE, "user", "tell me about the weather", 0),
                                     (DEVICE, "assistant", reply, 0),
                                     (DEVICE, "user", "tell me about the weather", 0)]


async def test_goodbye_ends_the_conversation_after_a_short_goodbye(hubs):
    hub = await hubs(fake={"asr_text": "goodbye"})
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        turn = await dev.run_turn(SPEECH)
        assert turn.sentences == ["Goodbye!"] and turn.played
        await dev.wait_until(lambda: dev.closed, 5)
        assert dev.close_code == 1000


async def test_an_aborted_llm_reply_is_stored_as_interrupted(hubs):
    hub = await hubs(fake={"asr_text": "tell me a story", "llm_reply": LONG_REPLY, "llm_chunk_delay_ms": 100})
    store = hub.ctx.agent.memory.store
    async with SimulatedDevice(ws_url(hub), device_id=DEVICE) as dev:
        await dev.run_turn(SPEECH, abort_after_ms=300)
        for _ in range(100):
            msgs = await store.messages(DEVICE)
            if len(msgs) == 2:
                break
            await asyncio.sleep(0.02)
    assert [(m.role, m.interrupted) for m in msgs] == [("user", False), ("assistant", True)]
    assert msgs[1].content.startswith("One red apple.") and len(msgs[1].content) < len(LONG_REPLY)
