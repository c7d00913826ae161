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
