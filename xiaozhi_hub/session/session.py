"""One device connection after the upgrade: the state machine, the microphone's utterances, the
current Turn task, and what happens after a reply.

Rules (docs/design.md, Cancellation): control overtakes data — ``abort`` and ``listen`` are handled in the read loop
at once (:mod:`.handlers` maps each message onto a session operation); a Turn is one task and
barge-in/abort cancel it (nothing polls a flag); every ``abort`` is answered with ``tts stop`` and no
audio frame follows it. The turn itself is orchestrated in :mod:`.turn` with the reply machinery of
:mod:`xiaozhi_hub.pipeline`; the agent sees the device through :class:`.link.SessionLink`. After every
reply one rule applies, :meth:`Session.after_reply`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Mapping, Protocol, Sequence

from ..audio.opus import OpusDecoder, OpusError
from ..pipeline.sentences import same_words
from ..pipeline.speculation import SpeculationSlot
from ..protocol import binary, codec
from ..protocol.close import CloseCode
from ..protocol.messages import (AudioParams, DeviceHello, Error, ListenMode, Message, ProtocolError, ServerHello,
                                 Stt, Tts, TtsState)
from ..providers.base import Transcript, VADEvent
from ..vision import camera_call_timeout
from .announcing import Announcing
from .handlers import handle_text
from .link import SessionLink
from .state import SessionState, check_transition
from .turn import run_text_turn, run_turn, say_goodbye
from .utterance import Utterance

if TYPE_CHECKING:
    from ..context import HubContext

log = logging.getLogger(__name__)

S = SessionState

def is_wake_word(text: str, wake_words: Sequence[str]) -> bool:
    """Whether ``listen detect`` text names a wake word (case, spaces and punctuation ignored)."""
    return any(same_words(text, w) for w in wake_words)


class Connection(Protocol):
    """The transport side of a session: a WebSocket, or an MQTT+UDP audio channel (transport/mqtt/)."""

    remote: str

    async def send_text(self, text: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Session:
    def __init__(self, ctx: "HubContext", conn: Connection, device_id: str, client_id: str,
                 protocol_version: int, *, transport: str = "websocket", udp: Mapping[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.conn = conn
        # What the hub hello says: the transport's name and, for MQTT+UDP, the audio socket and its keys.
        self.transport = transport
        self._hello_udp = udp
        self.id = str(uuid.uuid4())
        self.device_id = device_id
        self.client_id = client_id
        self.protocol_version = protocol_version if protocol_version in (1, 2, 3) else 1
        self.state = S.CONNECTED
        self.mode = ListenMode.AUTO
        self.hello: DeviceHello | None = None
        self.link = SessionLink(self.id, device_id, self.send,
                                observe=functools.partial(ctx.live.device_tool, device_id))
        self.utterance: Utterance | None = None
        self.speculation = SpeculationSlot(self, self.link, self.spawn)   # an answer started on a draft
        self.turn: asyncio.Task[None] | None = None
        self.connected_at = time.monotonic()
        self.last_voice = self.connected_at          # idle timeout is measured from here
        self._decoder: OpusDecoder | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned_binary = False
        self.closed = asyncio.Event()
        self.frames_in = 0
        self.turn_log: collections.deque[dict[str, float]] = collections.deque(maxlen=16)
        self.announcing = Announcing(self)           # the session as announcements see it

    # ------------------------------------------------------------------ helpers
    def __repr__(self) -> str:
        return f"<Session {self.device_id} {self.id[:8]} {self.state.value}>"

    def set_state(self, new: SessionState) -> None:
        check_transition(self.state, new)
        self.state = new
        self.ctx.live.state(self.device_id, self.id, new.value)

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

    @property
    def channel_open(self) -> bool:
        """The hello is done and the connection is still up."""
        return self.state not in (S.CONNECTED, S.CLOSED)

    # ------------------------------------------------------------------ inbound
    async def handle_text(self, text: str) -> None:
        await handle_text(self, text)

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
            await self._start_turn_from_utterance(utt)

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
                await self._start_turn_from_utterance(utt)

    # ------------------------------------------------------------------ what the device asks for
    async def greet(self, msg: DeviceHello) -> None:
        """The device hello: answer with the server hello; the device is idle (connected) from here."""
        if self.state is not S.CONNECTED:
            log.info("%s: repeated hello ignored", self)
            return
        self.hello = msg
        if msg.version in (1, 2, 3) and msg.version != self.protocol_version:
            # The header and the hello should agree; the hello is what the firmware frames with.
            self.protocol_version = msg.version
        audio = self.ctx.settings.audio
        reply = ServerHello(session_id=self.id, transport=self.transport, version=self.protocol_version,
                            audio_params=AudioParams("opus", audio.downlink_sample_rate, 1, audio.frame_duration_ms),
                            udp=self._hello_udp)
        await self.send(reply)
        self.ctx.live.connected(self.device_id, self.id, "mqtt" if self.transport == "udp" else "websocket")
        self.set_state(S.IDLE)
        self.ctx.announcements.on_hello(self.announcing)   # queued announcements, before its own request
        if msg.mcp and self.ctx.settings.session.mcp_enabled:
            mcp = self.link.open_mcp(self.ctx.settings.session.mcp_call_timeout, self.ctx.vision_capability(self.device_id),
                                     camera_call_timeout(self.ctx.settings))
            self.spawn(mcp.start(), "mcp-init")

    async def start_listening(self, mode: ListenMode | None) -> None:
        """``listen start``: a new utterance; while the hub is still answering, that is barge-in."""
        if self.announcing.defer_listen(mode):
            return                                      # applied once the announcements are spoken
        if mode is not None:
            self.mode = mode
        if self.busy:
            await self._cancel_turn()
            await self.send(Tts(TtsState.STOP, session_id=self.id))
        await self._drop_utterance()
        self.set_state(S.LISTENING)
        self.utterance = self._new_utterance()
        if self.mode is ListenMode.MANUAL:
            self.last_voice = time.monotonic()  # push-to-talk: the button press is the voice

    async def stop_listening(self) -> None:
        """``listen stop``: the device stopped listening (push-to-talk released, or a client that ends
        the utterance itself in auto mode). What was heard is answered; with nothing heard the session
        goes idle at once, whatever the mode: the microphone is off, so listening on would only wait
        for the idle sweeper."""
        if self.announcing.drop_listen():
            return                                      # announcements play: the deferred start ends here
        utt = self.utterance
        if self.state is S.LISTENING and utt is not None and utt.heard_speech:
            utt.end()
            await self._start_turn_from_utterance(utt)
        elif self.state is S.LISTENING:
            await self._drop_utterance()
            self.set_state(S.IDLE)
        elif not self.busy:
            self.set_state(S.IDLE)

    async def detected(self, text: str) -> None:
        """``listen detect``: a wake word, or (any other text) a typed question answered like speech."""
        self.last_voice = time.monotonic()
        await self._drop_utterance()
        question = text.strip()
        if question and not is_wake_word(question, self.ctx.settings.session.wake_words):
            await self._start_text_turn(question)   # test clients and apps send text this way
            return
        self.ctx.live.wake(self.device_id, question)
        if self.state is S.LISTENING:
            # Wake word: the audio so far was the wake word itself; start clean.
            self.utterance = self._new_utterance()

    # ------------------------------------------------------------------ utterances
    def _new_utterance(self) -> Utterance:
        p = self.ctx.providers
        use_vad = self.mode is not ListenMode.MANUAL
        show = self.ctx.settings.asr.show_partials and p.asr.streaming
        return Utterance(self.ctx.settings, p.vad, p.asr, use_vad, on_partial=self._send_partial if show else None,
                         on_draft=self._speculate, on_resume=self.speculation.withdraw)

    def _send_partial(self, partial: Transcript) -> None:
        self.spawn(self.send(Stt(partial.text, session_id=self.id)), "partial")

    def _speculate(self, draft: Transcript) -> None:
        """A draft transcript during the trailing silence: start answering it (pipeline.speculation)."""
        if self.state is S.LISTENING:
            self.speculation.start(draft.text)

    async def _drop_utterance(self) -> None:
        utt, self.utterance = self.utterance, None
        await self.speculation.drop()
        if utt is not None:
            await utt.close()

    async def _start_turn_from_utterance(self, utt: Utterance) -> None:
        self.utterance = None
        if not utt.heard_speech:
            # Nothing worth answering (a click, or listen stop right after start).
            self.speculation.withdraw()
            self.spawn(utt.close(), "utterance-close")
            await self.after_reply()
            return
        self.set_state(S.THINKING)
        self.turn = self.spawn(run_turn(self, utt, self.speculation.take()), "turn")

    # ------------------------------------------------------------------ turns
    def close_idle(self) -> None:
        """Idle too long: say goodbye, then close (4008). The goodbye counts as a turn, so the
        sweeper does not ask twice."""
        self.turn = self.spawn(say_goodbye(self), "idle-close")

    async def _start_text_turn(self, text: str) -> None:
        if self.busy or self.state is S.SPEAKING:
            await self.abort("question")                 # a new question interrupts the answer
            await self._drop_utterance()
            if self.state is S.CLOSED:                   # the answer was the end of the conversation
                return
        self.set_state(S.THINKING)
        self.turn = self.spawn(run_text_turn(self, text), "turn")

    async def _cancel_turn(self) -> None:
        task, self.turn = self.turn, None
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        # Wait (briefly) until it has stopped sending; asyncio.wait neither raises the turn's own
        # CancelledError nor swallows a cancellation of this task (asyncio.wait_for can, on 3.11).
        await asyncio.wait({task}, timeout=1.0)

    async def abort(self, reason: str) -> None:
        """Stop speaking now: cancel the turn, then always answer ``tts stop``."""
        self.ctx.metrics.inc("aborts")
        await self._cancel_turn()
        await self.send(Tts(TtsState.STOP, session_id=self.id))
        if self.state in (S.SPEAKING, S.THINKING):
            await self.after_reply()

    # -- what the reply machinery tells the session (pipeline.reply.ReplyChannel)
    def reply_started(self) -> None:
        if self.state is not S.SPEAKING:
            self.set_state(S.SPEAKING)

    async def reply_finished(self, said: str) -> None:
        self.last_voice = time.monotonic()  # the idle timeout counts from the end of the answer
        self.ctx.live.replied(self.device_id, said, complete=True)
        await self.after_reply()

    def reply_cut(self, said: str) -> None:
        """The answer stopped part way: report it, and store it as interrupted with what was said."""
        self.ctx.live.replied(self.device_id, said, complete=False)
        self.ctx.agent.cut_short(self.device_id, said)

    async def return_to(self, previous: SessionState) -> None:
        """After announcements: idle again if the device was idle, else the rule after a reply."""
        self.last_voice = time.monotonic()
        if self.state is S.CLOSED or self.busy:
            return
        await self._drop_utterance()         # audio from before the announcements is stale
        if previous in (S.IDLE, S.CONNECTED):
            if self.state is not S.IDLE:
                self.set_state(S.IDLE)
        else:
            await self.after_reply()

    async def after_reply(self) -> None:
        """The rule after a reply (spoken, aborted, or nothing to answer): close the channel when the
        conversation was ended, else listen again (auto, realtime) or go idle (manual)."""
        if self.state is S.CLOSED:
            return
        if self.link.end_requested:
            await self.close(CloseCode.NORMAL, "conversation ended")
        elif self.mode is ListenMode.MANUAL:
            self.set_state(S.IDLE)
        else:
            self.set_state(S.LISTENING)
            if self.utterance is None:
                self.utterance = self._new_utterance()

    # ------------------------------------------------------------------ lifecycle
    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if self.state is S.CLOSED:
            return
        self.set_state(S.CLOSED)
        # The close frame goes out first, so in-flight work being cancelled cannot pre-empt the code;
        # waiting for the device's close reply (it may never send one) overlaps the cleanup.
        closing = asyncio.ensure_future(self.conn.close(code, reason))
        await self._cleanup()
        with contextlib.suppress(Exception):
            await closing

    async def on_disconnect(self) -> None:
        """The socket is gone (device dropped TCP, or we closed it)."""
        if self.state is not S.CLOSED:
            self.set_state(S.CLOSED)
            await self._cleanup()

    async def _cleanup(self) -> None:
        self.ctx.live.disconnected(self.device_id, self.id)
        self.link.close()
        turn, self.turn = self.turn, None
        tasks = [t for t in (*self._tasks, turn) if t is not None and not t.done() and t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        await self._drop_utterance()
        self.closed.set()
