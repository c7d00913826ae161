"""The firmware half of the simulated device: its connection to the hub and how it reacts to what the
hub sends, as stock firmware does (docs/protocol.md).

* handshake headers ``Device-Id``/``Client-Id``/``Protocol-Version`` (+ ``Authorization`` only with a
  token), no subprotocol, no compression, no heartbeat, no User-Agent;
* the server hello must arrive within 10 s and carry ``transport: "websocket"``; a hello without
  ``transport`` raises :class:`DeviceCrash`, because the firmware dereferences a null pointer there;
* downlink audio is only accepted while speaking (anything else is counted as *dropped*), decoded
  at the hello's rate with a buffer of exactly one declared frame, and pushed through a simulated
  40-packet playback queue (overflow is counted, as the firmware silently drops it);
* ``tts stop`` returns to listening (auto: ``listen start`` again once playback has drained) or
  idle (manual); MCP requests are answered by :class:`FirmwareMcpServer`; closing drops TCP.

What a user does with the device (listen, speak, abort, wait) is :class:`.device.SimulatedDevice`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from typing import Any, Mapping
from urllib.parse import urlsplit

import aiohttp

from ..audio.opus import OpusDecoder, OpusEncoder, OpusError
from ..protocol.binary import decode_audio
from ..protocol.close import CloseCode
from ..protocol.messages import ProtocolError
from .camera import take_photo
from .mcp import FirmwareMcpServer, PhotoRequest
from .records import (AudioArrival, DeviceClosed, DeviceCrash, DeviceState, HelloTimeout, ReceivedMessage,
                      SimulatorError, TurnRecord, random_mac)

_LOG = logging.getLogger(__name__)

UPLINK_RATE = 16000
UPLINK_FRAME_MS = 60
HANDSHAKE_TIMEOUT = 10.0       # ML web_socket.cc: HTTP upgrade must complete within this
HELLO_TIMEOUT = 10.0           # FW waits this long for the server hello
DECODE_QUEUE_PACKETS = 40      # FW MAX_DECODE_PACKETS_IN_QUEUE (2400 ms / 60 ms)
TIMESTAMP_QUEUE = 3            # FW keeps at most 3 downlink timestamps to echo (v2)


class DeviceFirmware:
    """The connection and the firmware's reactions; the state both sides of the device share."""

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
        self._photo_tasks: set[asyncio.Task[None]] = set()   # camera calls in flight (the FW runs them aside)
        self._changed = asyncio.Condition()
        self._cursor = 0
        self._hello: asyncio.Future[Mapping[str, Any]] | None = None
        self._encoder = OpusEncoder(UPLINK_RATE, 1, UPLINK_FRAME_MS, "audio", complexity=0, dtx=True)
        self._decoder: OpusDecoder | None = None
        self._play_end = 0.0
        self._echo_ts: collections.deque[int] = collections.deque(maxlen=TIMESTAMP_QUEUE)

    # ------------------------------------------------------------------ properties

    @property
    def turn(self) -> TurnRecord | None:
        return self.turns[-1] if self.turns else None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    # ------------------------------------------------------------------ connection

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
        if self.state == DeviceState.CONNECTING:  # the hub may already be speaking (a queued announcement)
            self.state = DeviceState.IDLE
        return hello

    async def close(self) -> None:
        """Close like the firmware: drop TCP without a close frame (the hub sees code 1006)."""
        for task in (self._relisten, self._reader, *self._photo_tasks):
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
        if isinstance(reply, PhotoRequest):      # capture, upload and wait for the explanation aside
            task = asyncio.create_task(self._answer_photo(reply), name=f"sim-photo-{self.device_id}")
            self._photo_tasks.add(task)
            task.add_done_callback(self._photo_tasks.discard)
            return
        if reply is not None and not self.closed:
            with contextlib.suppress(DeviceClosed, ConnectionError):
                await self.send_json(self._with_session({"type": "mcp", "payload": reply}))

    async def _answer_photo(self, request: PhotoRequest) -> None:
        assert self._session is not None
        ok, text = await take_photo(self._session, self.mcp.vision, self.device_id, self.client_id,
                                    request.question, self.mcp.photo)
        if not self.closed:
            with contextlib.suppress(DeviceClosed, ConnectionError):
                await self.send_json(self._with_session({"type": "mcp", "payload": self.mcp.photo_reply(request, ok, text)}))

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
