"""Shared fixtures: an in-process hub on free ports with fake providers, and simulated devices."""

from __future__ import annotations

import contextlib
import socket
from typing import Any, AsyncIterator, Callable

import pytest

from xiaozhi_hub.app import Hub
from xiaozhi_hub.settings import Settings, from_mapping, merge

pytest_plugins = ["tests.vision_fake"]      # the fake vision server fixture (vision endpoint, camera)

FAKE_BASE: dict[str, Any] = {
    "server": {"host": "127.0.0.1", "ws_port": 0, "http_port": 0},
    "asr": {"provider": "fake"},
    "llm": {"provider": "fake"},
    "tts": {"provider": "fake"},
    "mdns": {"enabled": False},
    "wyoming": {"enabled": False},      # tests that need it enable it on a free port (tests/wyoming/)
    "device_mqtt": {"enabled": False},  # likewise (tests/transport/mqtt/, tests/e2e/test_mqtt_udp.py)
    "log_level": "info",
}


# A long fake answer the answer guards let through whole (docs/agent.md, Spoken answers): ten different
# sentences (a sentence said twice is a loop and is cut), and an answer budget that lets all ten be said
# (the default is two sentences): ``start_hub(fake={"llm_reply": LONG_REPLY}, agent=LONG_BUDGET)``.
LONG_SENTENCES = ["One red apple.", "Two blue cars.", "Three old cats.", "Four tall trees.", "Five small boats.",
                  "Six green hats.", "Seven quiet owls.", "Eight warm loaves.", "Nine bright stars.", "Ten sleepy dogs."]
LONG_REPLY = " ".join(LONG_SENTENCES)
LONG_BUDGET: dict[str, Any] = {"answer_sentences": 20, "answer_seconds": 120}


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_settings(tmp_path, **sections: Any) -> Settings:
    raw = merge(FAKE_BASE, {"data_dir": str(tmp_path / "data")})
    return from_mapping(merge(raw, sections))


@pytest.fixture
async def start_hub(tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """``hub = await start_hub(session={...}, ...)`` starts a hub; all are stopped after the test."""
    hubs: list[Hub] = []

    async def start(**sections: Any) -> Hub:
        hub = Hub(fake_settings(tmp_path, **sections))
        await hub.start()
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        await hub.stop()


def ws_url(hub: Hub) -> str:
    assert hub.ctx is not None
    return f"ws://127.0.0.1:{hub.ctx.ws_port}/xiaozhi/v1/"
