"""A simulated stock xiaozhi device over WebSocket, for tests, demos and latency measurements.

It behaves like the firmware (:mod:`.firmware`: handshake, hello, playback queue, MCP), not like a
friendly client; this module adds what a user does with it: listen (auto, manual, realtime), speak
into the microphone (60 ms, 16 kHz Opus, DTX, only while listening), abort, and wait for what the
hub answers. Everything the hub sends is recorded per turn (:mod:`.records`) with monotonic
timestamps so tests can assert message order, first-audio latency and pacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Callable

from ..audio import pcm as pcmlib
from ..protocol.binary import encode_audio
from .firmware import UPLINK_FRAME_MS, UPLINK_RATE, DeviceFirmware, _sleep_until
from .records import (AudioArrival, DeviceClosed, DeviceCrash, DeviceState, HelloTimeout, MessageMatch,
                      ReceivedMessage, SimulatorError, TurnRecord, message_matcher, random_mac)

__all__ = ["AudioArrival", "DeviceClosed", "DeviceCrash", "DeviceState", "HelloTimeout", "ReceivedMessage",
           "SimulatedDevice", "SimulatorError", "TurnRecord", "random_mac"]

POLL_INTERVAL = 0.05          # wait_until re-checks at least this often


class SimulatedDevice(DeviceFirmware):
    """One simulated device. Use as ``async with SimulatedDevice(url) as dev:`` (connects + hello)."""

    @property
    def volume(self) -> int:
        """Speaker volume as last set over MCP (``self.audio_speaker.set_volume``)."""
        return self.mcp.volume

    @property
    def mcp_calls(self) -> list[Any]:
        return self.mcp.calls

    # ------------------------------------------------------------------ connection

    async def __aenter__(self) -> "SimulatedDevice":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ using the device

    async def detect(self, text: str) -> None:
        """Wake word (or a typed query, as test clients use it): ``listen detect`` with text."""
        await self.send_json(self._with_session({"type": "listen", "state": "detect", "text": text}))

    async def stop_listening(self) -> None:
        """Push-to-talk release: ``listen stop``, then idle (channel stays open)."""
        if self.turn is not None:
            self.turn.listen_stop_at = time.monotonic()
        await self.send_json(self._with_session({"type": "listen", "state": "stop"}))
        self._set_state(DeviceState.IDLE)

    async def abort(self, reason: str | None = None) -> None:
        """Button while speaking (no reason: stay speaking until ``tts stop``) or wake word."""
        msg: dict[str, Any] = {"type": "abort"}
        if reason is not None:
            msg["reason"] = reason
        if self.turn is not None:
            self.turn.abort_at = time.monotonic()
        await self.send_json(self._with_session(msg))
        if reason == "wake_word_detected":  # FW >= 2.3: abort, then listen again at once
            await self.start_listening(self.mode)

    async def send_audio_frame(self, opus_packet: bytes) -> None:
        if self._ws is None or self._ws.closed:
            raise DeviceClosed("connection is closed")
        ts = self._echo_ts.popleft() if self._echo_ts else 0
        await self._ws.send_bytes(encode_audio(opus_packet, self.protocol_version, ts))
        if self.turn is not None:
            self.turn.frames_sent += 1

    def _mic_open(self) -> bool:
        return self.state == DeviceState.LISTENING or (
            self.state == DeviceState.SPEAKING and self.mode == "realtime")

    async def stream_pcm(self, pcm: bytes, sample_rate: int = UPLINK_RATE, realtime: bool = True) -> int:
        """Send PCM as 60 ms Opus frames, paced at real time like a microphone.

        Stops early when the mic closes (``tts start`` outside realtime mode), as the firmware does.
        Returns the number of frames sent and marks the end of speech for latency measurement.
        """
        pcm = pcmlib.resample(pcm, sample_rate, UPLINK_RATE)
        sent = 0
        t0 = time.monotonic()
        for frame in pcmlib.frames(pcm, UPLINK_RATE, UPLINK_FRAME_MS):
            if not self._mic_open():
                break
            if realtime:
                await _sleep_until(t0 + sent * UPLINK_FRAME_MS / 1000.0)
            await self.send_audio_frame(self._encoder.encode(frame))
            sent += 1
        if self.turn is not None:
            self.turn.speech_sent_until = time.monotonic()
        return sent

    async def stream_wav(self, wav: str | bytes, sample_rate: int = UPLINK_RATE) -> int:
        """Stream a WAV file (path) or 16 kHz PCM (bytes); any rate/channels are converted."""
        if isinstance(wav, (bytes, bytearray)):
            return await self.stream_pcm(bytes(wav), sample_rate)
        pcm, rate = pcmlib.read_wav(wav)
        return await self.stream_pcm(pcm, rate)

    async def stream_silence(self, until: Callable[[], bool], timeout: float) -> int:
        """Keep the mic streaming digital silence (tiny DTX packets) until ``until()`` or timeout."""
        silent = pcmlib.silence(UPLINK_FRAME_MS, UPLINK_RATE)
        sent = 0
        t0 = time.monotonic()
        while not until() and self._mic_open() and not self.closed:
            if time.monotonic() - t0 >= timeout:
                break
            await self.send_audio_frame(self._encoder.encode(silent))
            sent += 1
            await _sleep_until(t0 + sent * UPLINK_FRAME_MS / 1000.0)
        return sent

    # ------------------------------------------------------------------ waiting

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds.

        Re-checked on every message, audio frame, state change or close, and at least every 50 ms so
        conditions on outside state (the hub's counters) work too.
        """
        async with asyncio.timeout(timeout), self._changed:
            while not condition():
                if self.closed:
                    raise DeviceClosed(f"connection closed (code {self.close_code}) while waiting")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_INTERVAL):
                        await self._changed.wait()

    async def wait_for(self, match: MessageMatch, timeout: float = 10.0, *, since: int | None = None,
                       **fields: Any) -> ReceivedMessage:
        """The next JSON message matching ``match`` (a type or a predicate) and ``fields``.

        Messages are consumed in order: each call starts after the last message a previous call
        returned (or at index ``since``), so ``wait_for("tts", state="stop")`` twice waits for two
        different stops. Raises ``asyncio.TimeoutError`` or :class:`DeviceClosed`.
        """
        pred = message_matcher(match, fields)
        start = self._cursor if since is None else since
        found: list[ReceivedMessage] = []

        def scan() -> bool:
            nonlocal start
            for i in range(start, len(self.messages)):
                if pred(self.messages[i].data):
                    self._cursor = i + 1
                    found.append(self.messages[i])
                    return True
            start = len(self.messages)
            return False

        await self.wait_until(scan, timeout)
        return found[0]

    async def wait_state(self, state: DeviceState, timeout: float = 10.0) -> None:
        await self.wait_until(lambda: self.state == state, timeout)

    # ------------------------------------------------------------------ one whole turn

    async def run_turn(self, pcm: bytes | None = None, *, mode: str = "auto", text: str | None = None,
                       sample_rate: int = UPLINK_RATE, timeout: float = 30.0,
                       abort_after_ms: float | None = None) -> TurnRecord:
        """Speak ``pcm`` (or send ``text`` as a detect query) and wait for the reply to finish.

        auto/realtime: keep streaming silence until the hub answers (its VAD ends the turn);
        manual: ``listen stop`` after the clip. Returns the turn's record (also in ``turns``).
        """
        if self._relisten is not None and not self._relisten.done():
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._relisten)  # playback drains first
        turn = self.turn
        reusable = (turn is not None and self.state == DeviceState.LISTENING and turn.mode == mode
                    and turn.frames_sent == 0 and turn.tts_start_at is None)
        if not reusable:
            turn = await self.start_listening(mode)
        assert turn is not None
        if text is not None:
            await self.detect(text)
            turn.speech_sent_until = time.monotonic()
        if pcm is not None:
            await self.stream_pcm(pcm, sample_rate)
        if mode == "manual":
            await self.stop_listening()
        else:
            await self.stream_silence(lambda: turn.tts_start_at is not None, timeout)
        await self.wait_until(lambda: turn.tts_start_at is not None, timeout)
        if abort_after_ms is not None:
            await self.wait_until(lambda: turn.first_audio_at is not None, timeout)
            await _sleep_until(turn.first_audio_at + abort_after_ms / 1000.0)  # type: ignore[operator]
            if turn.tts_stop_at is None:
                await self.abort()
        await self.wait_until(lambda: turn.tts_stop_at is not None, timeout)
        return turn
