"""Issue 3 acceptance through the simulator with the default real models (faster-whisper base,
SmolLM2 via llama.cpp, Piper joe): a spoken "turn on the kitchen light" (Piper-made, 16 kHz) comes
back as that `stt` text and a non-empty spoken reply arrives as decodable Opus."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xiaozhi_hub.app import Hub
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.settings import from_mapping
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import ws_url

pytestmark = pytest.mark.models

INSTALLED = Path(__file__).resolve().parents[2] / "models" / "installed"
DEFAULTS = ("whisper-base", "smollm2-135m-instruct", "piper-en_US-joe-medium")


def real_settings(tmp_path: Path, **asr: object):
    from xiaozhi_hub.models import load_manifest

    manifest = load_manifest()
    missing = [m for m in DEFAULTS if not manifest.get(m).main_path(INSTALLED).exists()]
    if missing:
        pytest.skip(f"models {', '.join(missing)} not installed: run `xiaozhi-hub models install --defaults`")
    return from_mapping({"server": {"host": "127.0.0.1", "ws_port": 0, "http_port": 0},
                         "mdns": {"enabled": False}, "data_dir": str(tmp_path / "data"),
                         "models_dir": str(INSTALLED), "asr": {"provider": "whisper", **asr},
                         "llm": {"provider": "llamacpp", "max_tokens": 48},
                         "tts": {"provider": "piper"}})


async def spoken(hub: Hub, text: str) -> bytes:
    tts = hub.ctx.providers.tts
    pcm = b"".join([chunk async for chunk in tts.synthesize(text)])
    return pcmlib.resample(pcm, tts.sample_rate, 16000)


def normalise(text: str | None) -> str:
    return re.sub(r"[^a-z ]", "", (text or "").lower()).strip()


async def test_spoken_command_round_trip_with_the_default_models(tmp_path):
    hub = Hub(real_settings(tmp_path))
    await hub.start()
    try:
        speech = await spoken(hub, "Turn on the kitchen light.")
        async with SimulatedDevice(ws_url(hub)) as dev:
            turn = await dev.run_turn(pcmlib.silence(300, 16000) + speech, mode="auto", timeout=60)
        assert normalise(turn.stt_text) == "turn on the kitchen light", turn.stt_text
        assert turn.sentences and any(s.strip() for s in turn.sentences)
        assert len(turn.played) >= 5 and turn.decode_errors == 0 and turn.dropped == 0
        assert turn.audio_seconds > 0.3
        assert pcmlib.rms(bytes(turn.pcm)) > 100        # speech, not silence
        m = hub.ctx.metrics
        for stage in ("asr_final", "first_token", "first_sentence", "first_synth", "first_audio"):
            assert m.summary(stage)["count"] == 1, stage
    finally:
        await hub.stop()
