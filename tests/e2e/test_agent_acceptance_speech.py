"""Issue 4 acceptance with real speech: a Piper-made WAV through the simulator, real Whisper ASR in
the hub, the fake LLM. Skipped when the models are not installed (`xiaozhi-hub models install
--defaults` installs them; `make test` does it first)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xiaozhi_hub.app import Hub
from xiaozhi_hub.settings import from_mapping, merge
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import FAKE_BASE, ws_url
from .test_agent_acceptance import mcp_ready, volume_calls

pytestmark = pytest.mark.models

INSTALLED = Path(__file__).resolve().parents[2] / "models" / "installed"
VOICE, ASR = "piper-en_US-joe-medium", "whisper-base"
COMMAND = "Set the volume to thirty."


def need_models() -> None:
    from xiaozhi_hub.models import load_manifest

    manifest = load_manifest()
    missing = [m for m in (VOICE, ASR) if not manifest.get(m).main_path(INSTALLED).exists()]
    if missing:
        pytest.skip(f"models {', '.join(missing)} not installed: run `xiaozhi-hub models install --defaults`")


async def start_hub(tmp_path: Path, **sections: Any) -> Hub:
    need_models()
    raw = merge(FAKE_BASE, {"data_dir": str(tmp_path / "data"), "models_dir": str(INSTALLED),
                            "asr": {"provider": "whisper", "model": ASR, "language": "en"},
                            "tts": {"provider": "piper", "voice": VOICE}})
    hub = Hub(from_mapping(merge(raw, sections)))
    await hub.start()
    return hub


async def spoken_command(hub: Hub) -> bytes:
    """The command spoken by the hub's own Piper voice, as 16 kHz PCM with silence around it."""
    import soxr

    tts = hub.ctx.providers.tts
    pcm = b"".join([chunk async for chunk in tts.synthesize(COMMAND)])
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    pcm16 = (np.clip(soxr.resample(audio, tts.sample_rate, 16000), -1, 1) * 32767).astype("<i2").tobytes()
    pad = b"\0\0" * 16 * 300
    return pad + pcm16 + pad


@pytest.mark.parametrize("sections", [
    {},                                                                         # intent path
    {"intents": {"enabled": False},                                             # LLM path
     "fake": {"llm_reply": "The volume is thirty now.",
              "llm_tool_call": json.dumps({"name": "self_audio_speaker_set_volume", "arguments": {"volume": 30}})}},
], ids=["intent", "llm"])
async def test_spoken_volume_command_reaches_the_device(tmp_path, sections):
    hub = await start_hub(tmp_path, **sections)
    try:
        command = await spoken_command(hub)
        async with SimulatedDevice(ws_url(hub)) as dev:
            await mcp_ready(hub, dev)
            turn = await dev.run_turn(command, timeout=60)
            assert turn.stt_text is not None and "volume" in turn.stt_text.lower(), turn.stt_text
            assert volume_calls(dev) == [{"name": "self.audio_speaker.set_volume", "arguments": {"volume": 30}}]
            assert dev.volume == 30
            expected = "Volume set to 30." if not sections else "The volume is thirty now."
            assert turn.sentences == [expected]
            assert turn.played
    finally:
        await hub.stop()
