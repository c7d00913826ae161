"""``listen stop`` in auto mode with no speech heard, end to end: a simulated device over a real socket
on 127.0.0.1 against an in-process hub (fake engines). The hub ends the utterance and goes idle at
once, not when the idle sweeper (``session.idle_timeout``) closes the session."""

from __future__ import annotations

import asyncio

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.session.state import SessionState
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import ws_url
from .test_turns import SPEECH, assert_complete_turn

TIMEOUT = 20.0       # generous (shared machine); the wait ends as soon as the state is reached


async def hub_state_becomes(hub, device_id: str, state: SessionState) -> None:
    async with asyncio.timeout(TIMEOUT):
        while (session := hub.ctx.registry.by_device(device_id)) is None or session.state is not state:
            await asyncio.sleep(0.02)


async def test_listen_stop_with_nothing_heard_ends_listening_at_once(start_hub):
    hub = await start_hub(session={"idle_timeout": 600})
    async with SimulatedDevice(ws_url(hub)) as dev:
        await dev.start_listening("auto")
        await hub_state_becomes(hub, dev.device_id, SessionState.LISTENING)
        await dev.stream_pcm(pcmlib.silence(900, 16000))       # the microphone was open; nobody spoke
        await dev.stop_listening()
        await hub_state_becomes(hub, dev.device_id, SessionState.IDLE)
        session = hub.ctx.registry.by_device(dev.device_id)
        assert session is not None and session.utterance is None and session.turn is None
        assert not [m for m in dev.turn.messages if m.type in ("stt", "tts")]    # nothing was answered
        # The channel is still good: the next push-to-talk turn is answered as usual.
        turn = await dev.run_turn(SPEECH, mode="manual")
        assert_complete_turn(turn)
        assert not dev.closed
