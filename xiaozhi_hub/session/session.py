"""One device connection after the upgrade: the state machine, the handlers per message type, and
the current Turn task.

Rules (DESIGN.md): control overtakes data — ``abort`` and ``listen`` are handled in the read loop at
once; a Turn is one task and barge-in/abort cancel it (nothing polls a flag); every ``abort`` is
answered with ``tts stop`` and no audio frame follows it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Mapping, Protocol, Sequence

from ..audio.opus import OpusDecoder, OpusError
from ..protocol import binary, codec, mcp
from ..protocol.close import CloseCode
from ..protocol.messages import (Abort, AudioParams, DeviceGoodbye, DeviceHello, DeviceMcp, Direction,
                                 Error, IotCommand, IotUpdate, Listen, ListenMode, ListenState, Message,
                                 Ping, Pong, ProtocolError, ServerHello, Stt, Tts, TtsState)
from ..pipeline.sentences import same_words
from ..providers.base import Transcript, VADEvent
from .mcp_client import McpCallError, McpClient
from .state import SessionState, check_transition
from .utterance import Utterance

if TYPE_CHECKING:
    from ..context import HubContext
    from .turn import Speculation

log = logging.getLogger(__name__)


def is_wake_word(text: str, wake_words: Sequence[str]) -> bool:
    """Whether ``listen detect`` text names a wake word (case, spaces and punctuation ignored)."""
    return any(same_words(text, w) for w in wake_words)

S = SessionState

# Kept only for net/devices.py and tests/net, which import these two names until they use CloseCode
# (branch house-net); remove them then.
CLOSE_AUTH = CloseCode.AUTH
CLOSE_BLOCKED = CloseCode.BLOCKED


class Connection(Protocol):
    """The transport side of a session (WebSocket today, MQTT+UDP later)."""

    remote: str

    async def send_text(self, text: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Session:
    def __init__(self, ctx: "HubContext", conn: Connection, device_id: str, client_id: str,
                 protocol_version: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.id = str(uuid.uuid4())
        self.device_id = device_id
        self.client_id = client_id
        self.protocol_version = protocol_version if protocol_version in (1, 2, 3) else 1
        self.state = S.CONNECTED
        self.mode = ListenMode.AUTO
        self.hello: DeviceHello | None = None
        self.mcp: McpClient | None = None
        self.iot_descriptors: dict[str, Mapping[str, Any]] = {}
        self.iot_states: dict[str, dict[str, Any]] = {}
        self.utterance: Utterance | None = None
        self.turn: asyncio.Task[None] | None = None
        self.speculation: "Speculation | None" = None   # an answer started on a draft transcript
        self.connected_at = time.monotonic()
        self.last_voice = self.connected_at          # idle timeout is measured from here
        self._decoder: OpusDecoder | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._end_after_reply = False
        self._warned_binary = False
        self.closed = asyncio.Event()
        self.frames_in = 0
        self.turn_log: collections.deque[dict[str, float]] = collections.deque(maxlen=16)

    # ------------------------------------------------------------------ helpers
    def __repr__(self) -> str:
        return f"<Session {self.device_id} {self.id[:8]} {self.state.value}>"

    def set_state(self, new: SessionState) -> None:
        check_transition(self.state, new)
        self.state = new

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start a background task owned by this session (cancelled when it closes)."""
        task = asyncio.ensure_future(coro)
        task.set_name(f"{name}:{self.device_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s failed", self, task.get_name(), exc_info=task.exception())

    async def send(self, message: Message) -> None:
        await self.conn.send_text(codec.encode(message))

    async def send_audio(self, opus: bytes, timestamp: int = 0) -> None:
        await self.conn.send_bytes(binary.encode_audio(opus, self.protocol_version, timestamp))

    async def send_error(self, code: str, message: str) -> None:
        await self.send(Error(code, message, session_id=self.id))

    @property
    def busy(self) -> bool:
        return self.turn is not None and not self.turn.done()

    # ------------------------------------------------------------------ inbound
    async def handle_text(self, text: str) -> None:
        try:
            msg = codec.decode(text, Direction.FROM_DEVICE)
        except ProtocolError as err:
            log.info("%s: bad message (%s)", self, err)
            self.ctx.metrics.inc("bad_messages")
            await self.send_error(err.kind, err.detail)
            return
        if self.state is S.CONNECTED and not isinstance(msg, DeviceHello):
            await self.send_error("hello_required", f"send hello before {msg.TYPE}")
            return
        handler = self._handlers.get(type(msg))
        if handler is not None:
            await handler(self, msg)

    async def handle_binary(self, data: bytes) -> None:
        if self.state is S.CONNECTED:
            if not self._warned_binary:
                self._warned_binary = True
                log.info("%s: audio before hello ignored", self)
                await self.send_error("hello_required", "audio before hello is ignored")
            return
        self.frames_in += 1
        if self.state is not S.LISTENING and not (self.state is S.SPEAKING and self.mode is ListenMode.REALTIME):
            return  # wake-word audio before "listen detect", or audio after the turn ended
        try:
            frame = binary.decode_audio(data, self.protocol_version)
            if self._decoder is None:
                self._decoder = OpusDecoder(sample_rate=16000, channels=1, frame_ms=60)
            pcm = self._decoder.decode(frame.payload)
        except (ProtocolError, OpusError) as err:
            self.ctx.metrics.inc("bad_audio_frames")
            log.debug("%s: undecodable audio frame: %s", self, err)
            return
        if self.state is S.SPEAKING:
            await self._realtime_barge_in(pcm)
            return
        utt = self.utterance
        if utt is None:
            return
        events = utt.push(pcm)
        if VADEvent.SPEECH_START in events:
            self.last_voice = time.monotonic()
        if utt.ended:
            self._start_turn_from_utterance(utt)

    async def _realtime_barge_in(self, pcm: bytes) -> None:
        """Realtime mode keeps the microphone on while speaking: voice means barge-in."""
        if self.utterance is None:
            self.utterance = self._new_utterance()
        events = self.utterance.push(pcm)
        if VADEvent.SPEECH_START in events:
            self.last_voice = time.monotonic()
            self.ctx.metrics.inc("barge_ins")
            utt = self.utterance
            self.utterance = None
            await self._cancel_turn()
            await self.send(Tts(TtsState.STOP, session_id=self.id))
            self.set_state(S.LISTENING)
            self.utterance = utt
            if utt.ended:
                self._start_turn_from_utterance(utt)

    # -- handlers per message type
    async def _on_hello(self, msg: DeviceHello) -> None:
        if self.state is not S.CONNECTED:
            log.info("%s: repeated hello ignored", self)
            return
        self.hello = msg
        if msg.version in (1, 2, 3) and msg.version != self.protocol_version:
            # The header and the hello should agree; the hello is what the firmware frames with.
            self.protocol_version = msg.version
        audio = self.ctx.settings.audio
        reply = ServerHello(session_id=self.id, transport="websocket", version=self.protocol_version,
                            audio_params=AudioParams("opus", audio.downlink_sample_rate, 1, audio.frame_duration_ms))
        await self.send(reply)
        self.set_state(S.IDLE)
        self.ctx.agent.timers.wake()  # timers that fell due while this device was away are announced now
        if msg.mcp and self.ctx.settings.session.mcp_enabled:
            self.mcp = McpClient(self._send_mcp, self.ctx.settings.session.mcp_call_timeout)
            self.spawn(self.mcp.start(), "mcp-init")

    async def _send_mcp(self, message: Message) -> None:
        await self.send(message)

    async def _on_listen(self, msg: Listen) -> None:
        if msg.state is ListenState.START:
            if msg.mode is not None:
                self.mode = msg.mode
            if self.busy:
                # A new utterance while the hub is still answering: barge-in.
                await self._cancel_turn()
                await self.send(Tts(TtsState.STOP, session_id=self.id))
            await self._drop_utterance()
            self.set_state(S.LISTENING)
            self.utterance = self._new_utterance()
            if self.mode is ListenMode.MANUAL:
                self.last_voice = time.monotonic()  # push-to-talk: the button press is the voice
        elif msg.state is ListenState.STOP:
            utt = self.utterance
            if self.state is S.LISTENING and utt is not None:
                utt.end()
                self._start_turn_from_utterance(utt)
            elif not self.busy:
                self.set_state(S.IDLE)
        elif msg.state is ListenState.DETECT:
            self.last_voice = time.monotonic()
            await self._drop_utterance()
            question = (msg.text or "").strip()
            if question and not is_wake_word(question, self.ctx.settings.session.wake_words):
                # Not a wake word: a typed question (test clients and apps send text this way),
                # answered like speech.
                await self._start_text_turn(question)
            elif self.state is S.LISTENING:
                # Wake word: the audio so far was the wake word itself; start clean.
                self.utterance = self._new_utterance()

    async def _on_abort(self, msg: Abort) -> None:
        await self.abort(msg.reason or "device")

    async def _on_mcp(self, msg: DeviceMcp) -> None:
        if self.mcp is not None:
            self.mcp.on_payload(msg.payload)

    async def _on_iot(self, msg: IotUpdate) -> None:
        for d in msg.descriptors:
            self.iot_descriptors[str(d["name"])] = d
        for s in msg.states:
            state = s.get("state")
            if isinstance(state, Mapping):
                self.iot_states.setdefault(str(s["name"]), {}).update(state)

    async def _on_goodbye(self, msg: DeviceGoodbye) -> None:
        await self.close(CloseCode.NORMAL, "goodbye")

    async def _on_ping(self, msg: Ping) -> None:
        await self.send(Pong(time.strftime("%Y-%m-%d %H:%M:%S"), session_id=self.id))

    _handlers: dict[type, Callable[["Session", Any], Awaitable[None]]] = {
        DeviceHello: _on_hello, Listen: _on_listen, Abort: _on_abort, DeviceMcp: _on_mcp,
        IotUpdate: _on_iot, DeviceGoodbye: _on_goodbye, Ping: _on_ping,
    }

    # ------------------------------------------------------------------ turns
    def _new_utterance(self) -> Utterance:
        p = self.ctx.providers
        use_vad = self.mode is not ListenMode.MANUAL
        show = self.ctx.settings.asr.show_partials and p.asr.streaming
        return Utterance(self.ctx.settings, p.vad, p.asr, use_vad,
                         on_partial=(lambda t: self.spawn(self.send(Stt(t.text, session_id=self.id)), "partial"))
                         if show else None,
                         on_draft=self._speculate, on_resume=self._unspeculate)

    # -- speculation: the answer starts on a draft transcript during the trailing silence
    def _speculate(self, draft: Transcript) -> None:
        if self.state is not S.LISTENING:
            return
        lim = self.ctx.compute.limit("llm")
        if lim.active >= lim.limit or lim.waiting:
            return   # a guess starts only on an idle LLM: it must not queue ahead of another device's turn
        from .turn import Speculation  # local import: turn imports the pipeline

        self._unspeculate()
        self.speculation = Speculation(self, draft.text)
        self.ctx.metrics.inc("speculations")

    def _withdraw_speculation(self) -> "Speculation | None":
        spec, self.speculation = self.speculation, None
        if spec is not None:
            self.ctx.metrics.inc("speculation_misses")
        return spec

    def _unspeculate(self) -> None:
        spec = self._withdraw_speculation()
        if spec is not None:
            self.spawn(spec.discard(), "speculation-discard")

    async def _drop_utterance(self) -> None:
        utt, self.utterance = self.utterance, None
        spec = self._withdraw_speculation()
        if spec is not None:
            await spec.discard()
        if utt is not None:
            await utt.close()

    def _start_turn_from_utterance(self, utt: Utterance) -> None:
        self.utterance = None
        if not utt.heard_speech:
            self._unspeculate()
            # Nothing worth answering (a click, or listen stop right after start).
            self.spawn(utt.close(), "utterance-close")
            if self.mode is ListenMode.MANUAL:
                self.set_state(S.IDLE)
            else:
                self.utterance = self._new_utterance()
            return
        from .turn import run_turn  # local import: turn imports the pipeline

        speculation, self.speculation = self.speculation, None
        self.set_state(S.THINKING)
        self.turn = self.spawn(run_turn(self, utt, speculation), "turn")

    def close_idle(self) -> None:
        """Idle too long: say goodbye, then close (4008). The goodbye counts as a turn, so the
        sweeper does not ask twice."""
        from .turn import say_goodbye  # local import: turn imports the pipeline

        self.turn = self.spawn(say_goodbye(self), "idle-close")

    async def _start_text_turn(self, text: str) -> None:
        from .turn import run_text_turn  # local import: turn imports the pipeline

        if self.busy or self.state is S.SPEAKING:
            await self.abort("question")                 # a new question interrupts the answer
            await self._drop_utterance()
        self.set_state(S.THINKING)
        self.turn = self.spawn(run_text_turn(self, text), "turn")

    def start_reply(self, deltas: AsyncIterator[str], user_text: str | None = None) -> asyncio.Task[None]:
        """Speak a reply that does not come from the microphone (announcements, MQTT "say")."""
        from .turn import speak_reply

        async def run() -> None:
            await self._cancel_turn()
            await speak_reply(self, deltas)

        self.turn = self.spawn(run(), "announce")
        return self.turn

    async def _cancel_turn(self) -> None:
        task, self.turn = self.turn, None
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout=1.0)

    async def abort(self, reason: str) -> None:
        """Stop speaking now: cancel the turn, then always answer ``tts stop``."""
        self.ctx.metrics.inc("aborts")
        await self._cancel_turn()
        await self.send(Tts(TtsState.STOP, session_id=self.id))
        if self.state in (S.SPEAKING, S.THINKING):
            self.set_state(S.IDLE if self.mode is ListenMode.MANUAL else S.LISTENING)
            if self.state is S.LISTENING and self.utterance is None:
                self.utterance = self._new_utterance()

    def end_conversation(self) -> None:
        self._end_after_reply = True

    # -- DeviceLink for the agent
    def device_tools(self) -> Sequence[mcp.McpTool]:
        return self.mcp.tools if self.mcp is not None else ()

    async def call_device_tool(self, name: str, arguments: Mapping[str, Any]) -> str:
        if self.mcp is None:
            raise McpCallError("device has no MCP")
        return await self.mcp.call_tool(name, arguments)

    async def send_iot_command(self, commands: Sequence[Mapping[str, Any]]) -> None:
        await self.send(IotCommand(tuple(commands), session_id=self.id))

    # ------------------------------------------------------------------ lifecycle
    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if self.state is S.CLOSED:
            return
        self.state = S.CLOSED
        # The close frame goes out first, so in-flight work being cancelled cannot pre-empt the code;
        # waiting for the device's close reply (it may never send one) overlaps the cleanup.
        closing = asyncio.ensure_future(self.conn.close(code, reason))
        await self._cleanup()
        with contextlib.suppress(Exception):
            await closing

    async def on_disconnect(self) -> None:
        """The socket is gone (device dropped TCP, or we closed it)."""
        if self.state is not S.CLOSED:
            self.state = S.CLOSED
            await self._cleanup()

    async def _cleanup(self) -> None:
        if self.mcp is not None:
            self.mcp.cancel_all()
        turn, self.turn = self.turn, None
        tasks = [t for t in (*self._tasks, turn) if t is not None and not t.done() and t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        await self._drop_utterance()
        self.closed.set()
