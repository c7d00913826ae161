"""A simulated stock xiaozhi device over WebSocket, for tests, demos and latency measurements.

It behaves like the firmware (PROTOCOL.md sections 1-4 and 8), not like a friendly client:

* handshake headers ``Device-Id``/``Client-Id``/``Protocol-Version`` (+ ``Authorization`` only with a
  token), no subprotocol, no compression, no heartbeat, no User-Agent;
* the server hello must arrive within 10 s and carry ``transport: "websocket"``; a hello without
  ``transport`` raises :class:`DeviceCrash`, because the firmware dereferences a null pointer there;
* mic audio (60 ms, 16 kHz Opus, DTX) is only sent while listening; downlink audio is only accepted
  while speaking (anything else is counted as *dropped*), decoded at the hello's rate with a
  buffer of exactly one declared frame, and pushed through a simulated 40-packet playback queue
  (overflow is counted, as the firmware silently drops it);
* ``tts stop`` returns to listening (auto: ``listen start`` again once playback has drained) or
  idle (manual); MCP requests are answered by :class:`FirmwareMcpServer`.

Everything the hub sends is recorded per turn with monotonic timestamps so tests can assert message
order, first-audio latency and pacing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import aiohttp

from ..audio import pcm as pcmlib
from ..audio.opus import OpusDecoder, OpusEncoder, OpusError
from ..protocol.binary import decode_audio, encode_audio
from ..protocol.close import CloseCode
from ..protocol.messages import ProtocolError
from .mcp import FirmwareMcpServer

_LOG = logging.getLogger(__name__)

UPLINK_RATE = 16000
UPLINK_FRAME_MS = 60
HANDSHAKE_TIMEOUT = 10.0       # ML web_socket.cc: HTTP upgrade must complete within this
HELLO_TIMEOUT = 10.0           # FW waits this long for the server hello
DECODE_QUEUE_PACKETS = 40      # FW MAX_DECODE_PACKETS_IN_QUEUE (2400 ms / 60 ms)
POLL_INTERVAL = 0.05          # wait_until re-checks at least this often
TIMESTAMP_QUEUE = 3            # FW keeps at most 3 downlink timestamps to echo (v2)


class SimulatorError(Exception):
    """The session could not proceed the way a real device would."""


class DeviceCrash(SimulatorError):
    """The hub sent something that crashes stock firmware (e.g. a hello without ``transport``)."""


class HelloTimeout(SimulatorError):
    """No valid server hello within 10 s; a real device shows "server timeout" and goes idle."""


class DeviceClosed(SimulatorError):
    """The connection closed while the caller was waiting for something."""


class DeviceState(str, enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    LISTENING = "listening"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class ReceivedMessage:
    t: float                         # time.monotonic() at arrival
    data: Mapping[str, Any]          # the JSON object ({} for a non-JSON text frame)
    raw: str

    @property
    def type(self) -> str | None:
        v = self.data.get("type")
        return v if isinstance(v, str) else None


@dataclass(frozen=True)
class AudioArrival:
    t: float
    size: int                        # Opus payload bytes
    while_speaking: bool
    samples: int = 0                 # decoded samples (0 if dropped or undecodable)
    timestamp: int = 0               # v2 header timestamp


@dataclass
class TurnRecord:
    """Everything observed during one listening turn (listen start → tts stop)."""

    index: int
    mode: str
    started_at: float
    downlink_rate: int = 24000
    messages: list[ReceivedMessage] = field(default_factory=list)
    audio: list[AudioArrival] = field(default_factory=list)
    pcm: bytearray = field(default_factory=bytearray)
    frames_sent: int = 0
    speech_sent_until: float | None = None   # when the last real (non-silence) mic frame was sent
    listen_stop_at: float | None = None
    tts_start_at: float | None = None
    tts_stop_at: float | None = None
    abort_at: float | None = None
    dropped: int = 0                         # audio received while not speaking
    decode_errors: int = 0
    overflow: int = 0                        # audio the 40-packet queue would have dropped

    # -- derived

    @property
    def end_of_speech_at(self) -> float | None:
        """The moment the user "stopped talking": ``listen stop`` (manual) or end of the clip."""
        return self.listen_stop_at if self.listen_stop_at is not None else self.speech_sent_until

    def texts(self, type_: str, state: str | None = None, key: str = "text") -> list[str]:
        return [str(m.data.get(key, "")) for m in self.messages
                if m.type == type_ and (state is None or m.data.get("state") == state)]

    @property
    def stt_text(self) -> str | None:
        texts = self.texts("stt")
        return texts[-1] if texts else None

    @property
    def sentences(self) -> list[str]:
        return self.texts("tts", "sentence_start")

    @property
    def emotions(self) -> list[str]:
        return self.texts("llm", key="emotion")

    @property
    def played(self) -> list[AudioArrival]:
        """Frames that arrived while speaking (overflowed/undecodable ones included, ``samples == 0``)."""
        return [a for a in self.audio if a.while_speaking]

    @property
    def first_audio_at(self) -> float | None:
        played = self.played
        return played[0].t if played else None

    @property
    def first_audio_latency(self) -> float | None:
        """Seconds from end of speech to the first audio frame (the latency users feel)."""
        first, end = self.first_audio_at, self.end_of_speech_at
        return None if first is None or end is None else first - end

    @property
    def intervals(self) -> list[float]:
        """Seconds between consecutive downlink audio frames (pacing)."""
        ts = [a.t for a in self.played]
        return [b - a for a, b in zip(ts, ts[1:])]

    @property
    def audio_seconds(self) -> float:
        return len(self.pcm) / 2 / self.downlink_rate

    @property
    def abort_to_stop(self) -> float | None:
        if self.abort_at is None or self.tts_stop_at is None or self.tts_stop_at < self.abort_at:
            return None
        return self.tts_stop_at - self.abort_at

    def summary(self) -> dict[str, Any]:
        iv = self.intervals
        return {
            "turn": self.index, "mode": self.mode, "stt": self.stt_text, "sentences": self.sentences,
            "emotions": self.emotions, "first_audio_latency_ms": _ms(self.first_audio_latency),
            "frames": len(self.played), "audio_seconds": round(self.audio_seconds, 3),
            "max_interval_ms": _ms(max(iv) if iv else None),
            "mean_interval_ms": _ms(sum(iv) / len(iv) if iv else None),
            "dropped": self.dropped, "decode_errors": self.decode_errors, "overflow": self.overflow,
            "abort_to_stop_ms": _ms(self.abort_to_stop),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def random_mac() -> str:
    """A locally administered unicast MAC, lowercase and colon-separated like the firmware's."""
    b = bytearray(uuid.uuid4().bytes[:6])
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


MessageMatch = str | Callable[[Mapping[str, Any]], bool]


def _matcher(match: MessageMatch, fields: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    def pred(data: Mapping[str, Any]) -> bool:
        if isinstance(match, str):
            if data.get("type") != match:
                return False
        elif not match(data):
            return False
        return all(data.get(k) == v for k, v in fields.items())
    return pred


class SimulatedDevice:
    """One simulated device. Use as ``async with SimulatedDevice(url) as dev:`` (connects + hello)."""

    def __init__(self, url: str, *, device_id: str | None = None, client_id: str | None = None,
                 token: str | None = None, protocol_version: int = 1, mcp: bool = True,
                 auto_relisten: bool = True, hello_timeout: float = HELLO_TIMEOUT,
                 mcp_server: FirmwareMcpServer | None = None) -> None:
        if protocol_version not in (1, 2, 3):
            raise ValueError("protocol_version must be 1, 2 or 3")
        self.url = url
        self.device_id = (device_id or random_mac()).lower()
        self.client_id = client_id or str(uuid.uuid4())
        self.token = token
        self.protocol_version = protocol_version
        self.features: dict[str, Any] = {"mcp": True} if mcp else {}
        self.auto_relisten = auto_relisten
        self.hello_timeout = hello_timeout
        self.mcp = mcp_server or FirmwareMcpServer()

        self.state = DeviceState.IDLE
        self.mode = "auto"
        self.session_id = ""
        self.server_hello: Mapping[str, Any] | None = None
        self.downlink_rate = 24000
        self.downlink_frame_ms = 60
        self.messages: list[ReceivedMessage] = []
        self.turns: list[TurnRecord] = []
        self.text_frames: list[str] = []          # non-JSON text frames (e.g. an auth failure text)
        self.errors: list[str] = []
        self.dropped_outside_turns = 0
        self.closed_at: float | None = None
        self.close_code: int | None = None        # the hub's close code (1006: TCP dropped)
        self.close_reason = ""

        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._cursor = 0
        self._hello: asyncio.Future[Mapping[str, Any]] | None = None
        self._encoder = OpusEncoder(UPLINK_RATE, 1, UPLINK_FRAME_MS, "audio", complexity=0, dtx=True)
        self._decoder: OpusDecoder | None = None
        self._play_end = 0.0
        self._echo_ts: collections.deque[int] = collections.deque(maxlen=TIMESTAMP_QUEUE)

    # ------------------------------------------------------------------ properties

    @property
    def volume(self) -> int:
        """Speaker volume as last set over MCP (``self.audio_speaker.set_volume``)."""
        return self.mcp.volume

    @property
    def mcp_calls(self) -> list[Any]:
        return self.mcp.calls

    @property
    def turn(self) -> TurnRecord | None:
        return self.turns[-1] if self.turns else None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    # ------------------------------------------------------------------ connection

    async def __aenter__(self) -> "SimulatedDevice":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def handshake_headers(self) -> dict[str, str]:
        host = urlsplit(self.url).hostname or ""
        headers = {"Host": host, "Protocol-Version": str(self.protocol_version),
                   "Device-Id": self.device_id, "Client-Id": self.client_id}
        if self.token:
            headers["Authorization"] = self.token if " " in self.token else f"Bearer {self.token}"
        return headers

    async def connect(self) -> Mapping[str, Any]:
        """Open the WebSocket, send the device hello, wait for the server hello (≤ 10 s)."""
        if self._ws is not None and not self.closed:
            raise SimulatorError("already connected")
        self.state = DeviceState.CONNECTING
        self.closed_at, self.close_code, self.close_reason = None, None, ""
        self._session = aiohttp.ClientSession(skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                self._ws = await self._session.ws_connect(
                    self.url, headers=self.handshake_headers(), autoping=True, heartbeat=None,
                    compress=0, protocols=(), timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                    max_msg_size=0)
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            await self._session.close()
            self.state = DeviceState.IDLE
            reason = f"handshake took longer than {HANDSHAKE_TIMEOUT:g} s" if isinstance(err, asyncio.TimeoutError) else err
            raise SimulatorError(f"cannot connect to {self.url}: {reason}") from err
        self._hello = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(), name=f"sim-read-{self.device_id}")
        await self.send_json({"type": "hello", "version": self.protocol_version, "features": self.features,
                              "transport": "websocket",
                              "audio_params": {"format": "opus", "sample_rate": UPLINK_RATE, "channels": 1,
                                               "frame_duration": UPLINK_FRAME_MS}})
        try:
            async with asyncio.timeout(self.hello_timeout):
                hello = await asyncio.shield(self._hello)
        except TimeoutError:
            await self.close()
            raise HelloTimeout(f"no valid server hello within {self.hello_timeout:g} s") from None
        except SimulatorError:
            await self.close()
            raise
        self.state = DeviceState.IDLE
        return hello

    async def close(self) -> None:
        """Close like the firmware: drop TCP without a close frame (the hub sees code 1006)."""
        for task in (self._relisten, self._reader):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._ws is not None and not self._ws.closed:
            # aiohttp has no public "drop" call; the connection object is the only way to the transport.
            transport = getattr(getattr(self._ws, "_conn", None), "transport", None)
            if transport is not None:
                transport.abort()
            else:  # pragma: no cover - aiohttp internals changed: fall back to a clean close
                await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self._mark_closed(None)

    async def close_gracefully(self, code: int = CloseCode.NORMAL) -> None:
        """Send a WebSocket close frame (stock firmware never does; useful for hub tests)."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=code)
        await self.close()

    # ------------------------------------------------------------------ sending

    async def send_json(self, obj: Mapping[str, Any]) -> None:
        if self._ws is None or self._ws.closed:
            raise DeviceClosed("connection is closed")
        await self._ws.send_str(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def _with_session(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {"session_id": self.session_id, **obj}  # the firmware puts session_id first

    async def start_listening(self, mode: str = "auto") -> TurnRecord:
        """Enter listening (a new turn) and send ``listen start``."""
        if mode not in ("auto", "manual", "realtime"):
            raise ValueError("mode must be auto, manual or realtime")
        if self._relisten is not None and not self._relisten.done() and self._relisten is not asyncio.current_task():
            self._relisten.cancel()  # an explicit start replaces the automatic one
        self.mode = mode
        turn = self._new_turn(mode)
        self._encoder.reset()
        self._set_state(DeviceState.LISTENING)
        await self.send_json(self._with_session({"type": "listen", "state": "start", "mode": mode}))
        return turn

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
        pred = _matcher(match, fields)
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

    # ------------------------------------------------------------------ receiving

    async def _read_loop(self) -> None:
        assert self._ws is not None
        code: int | None = None
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._on_binary(msg.data)
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    code, self.close_reason = msg.data, msg.extra or ""   # the hub's code, before autoclose
                    break
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    self.errors.append(f"websocket error: {self._ws.exception()}")
                    break
                else:                                                      # CLOSING / CLOSED
                    break
                await self._notify()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug here must not hang waiters: record it and close
            _LOG.exception("simulator read loop failed")
            self.errors.append(f"read loop: {err!r}")
        finally:
            if code is None:
                code = self._ws.close_code
            self._mark_closed(code)
            if self._hello is not None and not self._hello.done():
                last = f"; last text frame {self.text_frames[-1]!r}" if self.text_frames else ""
                self._hello.set_exception(
                    SimulatorError(f"connection closed (code {code}) before the server hello{last}"))
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _mark_closed(self, code: int | None) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.close_code = code
            self.state = DeviceState.IDLE

    async def _on_text(self, raw: str) -> None:
        now = time.monotonic()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.text_frames.append(raw)
            return
        rec = ReceivedMessage(now, data, raw)
        self.messages.append(rec)
        type_ = rec.type
        if type_ == "hello":
            self._on_hello(data)
            return
        if self.turn is not None and not (type_ == "tts" and data.get("state") == "start"):
            self.turn.messages.append(rec)
        if type_ == "tts":
            self._on_tts(rec)
        elif type_ == "mcp":
            await self._on_mcp(data.get("payload"))
        elif type_ == "system" and data.get("command") == "reboot":
            await self.close()

    def _on_hello(self, data: Mapping[str, Any]) -> None:
        if self._hello is None or self._hello.done():
            return
        transport = data.get("transport")
        if transport is None:
            self._hello.set_exception(DeviceCrash("server hello has no 'transport': stock firmware crashes "
                                                  "(null pointer while logging)"))
            return
        if transport != "websocket":
            self.errors.append(f"ignored server hello with transport {transport!r}")
            return  # the firmware ignores it and times out
        self.server_hello = data
        sid = data.get("session_id")
        self.session_id = sid if isinstance(sid, str) else ""
        raw_params = data.get("audio_params")
        params = raw_params if isinstance(raw_params, dict) else {}
        rate = params.get("sample_rate", 24000)
        frame_ms = params.get("frame_duration", 60)
        try:
            self._decoder = OpusDecoder(int(rate), 1, int(frame_ms), strict=True)
            self.downlink_rate, self.downlink_frame_ms = int(rate), int(frame_ms)
        except (TypeError, ValueError) as err:
            self.errors.append(f"server hello audio_params unusable ({err}); decoding at 24000/60")
            self._decoder = OpusDecoder(24000, 1, 60, strict=True)
        self._hello.set_result(data)

    def _on_tts(self, rec: ReceivedMessage) -> None:
        state = rec.data.get("state")
        if state == "start":
            turn = self.turn
            if turn is None or turn.tts_stop_at is not None:
                turn = self._new_turn("push")  # the hub speaks unprompted (announcement)
            turn.messages.append(rec)
            if turn.tts_start_at is None:      # a repeated start keeps the turn; the FW just clears queues
                turn.tts_start_at = rec.t
            self._play_end = 0.0
            if self._decoder is not None:
                self._decoder.reset()  # FW: entering speaking resets the decoder and clears queues
            self._set_state(DeviceState.SPEAKING)
        elif state == "stop":
            if self.turn is not None and self.turn.tts_stop_at is None:
                self.turn.tts_stop_at = rec.t
            if self.state != DeviceState.SPEAKING:
                return
            if self.mode == "manual":
                self._set_state(DeviceState.IDLE)
                return
            self._set_state(DeviceState.LISTENING)
            if self.mode == "auto" and self.auto_relisten:
                self._relisten = asyncio.create_task(self._listen_after_drain())

    async def _listen_after_drain(self) -> None:
        """FW: in auto mode the mic reopens (``listen start``) only after playback has drained."""
        await _sleep_until(self._play_end)
        if self.state == DeviceState.LISTENING and not self.closed:
            with contextlib.suppress(DeviceClosed, ConnectionError):
                await self.start_listening("auto")
                await self._notify()

    async def _on_mcp(self, payload: Any) -> None:
        reply = self.mcp.handle(payload)
        if reply is not None and not self.closed:
            with contextlib.suppress(DeviceClosed, ConnectionError):
                await self.send_json(self._with_session({"type": "mcp", "payload": reply}))

    def _on_binary(self, data: bytes) -> None:
        now = time.monotonic()
        turn = self.turn
        try:
            frame = decode_audio(data, self.protocol_version)
        except ProtocolError as err:
            if turn is not None:
                turn.decode_errors += 1
            self.errors.append(f"bad binary frame: {err}")
            return
        if turn is None:
            self.dropped_outside_turns += 1
            return
        if self.state != DeviceState.SPEAKING or self._decoder is None:
            turn.dropped += 1
            turn.audio.append(AudioArrival(now, len(frame.payload), False, 0, frame.timestamp))
            return
        frame_s = self.downlink_frame_ms / 1000.0
        if self._play_end - now >= DECODE_QUEUE_PACKETS * frame_s:
            turn.overflow += 1
            turn.audio.append(AudioArrival(now, len(frame.payload), True, 0, frame.timestamp))
            return
        try:
            pcm = self._decoder.decode(frame.payload)
        except OpusError as err:
            turn.decode_errors += 1
            self.errors.append(str(err))
            pcm = b""
        samples = len(pcm) // 2
        turn.pcm += pcm
        turn.audio.append(AudioArrival(now, len(frame.payload), True, samples, frame.timestamp))
        self._play_end = max(self._play_end, now) + samples / self.downlink_rate
        if frame.timestamp:
            self._echo_ts.append(frame.timestamp)

    # ------------------------------------------------------------------ helpers

    def _new_turn(self, mode: str) -> TurnRecord:
        turn = TurnRecord(index=len(self.turns) + 1, mode=mode, started_at=time.monotonic(),
                          downlink_rate=self.downlink_rate)
        self.turns.append(turn)
        return turn

    def _set_state(self, state: DeviceState) -> None:
        self.state = state


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
