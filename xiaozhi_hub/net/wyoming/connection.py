"""One Wyoming client connection: a read loop that answers ``describe`` at once, and a worker that
serves the requests (transcriptions, syntheses) one after another, in order.

* ``describe`` and ``ping`` are answered by the read loop from memory, never queued behind a
  request, so Home Assistant's 1 s ``describe`` timeout holds however busy the engines are.
* Everything else goes through a bounded queue to the worker (a slow worker stops the read loop, and
  TCP stops the client: memory stays bounded).
* A request the hub cannot serve (bad field, unsupported format or language, too much audio or
  text, an engine error, the compute pool's busy answer), a framing error (framing.py) and an idle
  connection are answered with an ``error`` event, and the connection ends: the client learns at once
  that no ``transcript`` or audio is coming (Home Assistant's Wyoming client waits only for those and
  sees the end of the stream as a failure). The hub half-closes first and skips what the client still
  sends for a moment, so the ``error`` event is not lost to a reset.
* When the client closes its side the worker finishes what was already received (a client may send
  ``synthesize`` and half-close); a transcription whose ``audio-stop`` never came is dropped, and a
  synthesis stops at the first write the vanished client refuses.
* Unknown event types are ignored, as the protocol asks of servers (newer clients send optional
  events such as ``select-program`` that older servers must skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Awaitable, Callable

from wyoming.asr import Transcribe
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from ...providers.base import BusyError, ProviderError
from ...pipeline.phrases import BUSY_TEXT
from .audio import AudioFormat
from .framing import FrameError, read_event, write_event
from .requests import RequestError, Synthesis, Transcription

if TYPE_CHECKING:
    from .server import WyomingServer

log = logging.getLogger(__name__)

QUEUE_EVENTS = 8            # events received but not yet served, per connection (each up to max_payload_bytes)
WATCH_SECONDS = 1.0         # how often the idle watchdog looks
LINGER_SECONDS = 2.0        # after an error, how long input is skipped before the close


class Connection:
    """Serves one client; :meth:`run` returns when the connection is closed."""

    def __init__(self, server: "WyomingServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 *, over_limit: bool = False) -> None:
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        self.over_limit = over_limit
        self.peer = str(writer.get_extra_info("peername"))
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=QUEUE_EVENTS)
        self._write_lock = asyncio.Lock()
        self._last_event = time.monotonic()
        self._working = False                        # the worker is serving an event
        self._language: str | None = None            # from the last `transcribe`
        self.transcription: Transcription | None = None
        self.synthesis: Synthesis | None = None      # a streamed synthesis (synthesize-start … stop)
        self._handlers: dict[str, Callable[[Event], Awaitable[None]]] = {
            "transcribe": self._on_transcribe, "audio-start": self._on_audio_start,
            "audio-chunk": self._on_audio_chunk, "audio-stop": self._on_audio_stop,
            "synthesize": self._on_synthesize, "synthesize-start": self._on_synthesize_start,
            "synthesize-chunk": self._on_synthesize_chunk, "synthesize-stop": self._on_synthesize_stop,
        }

    # -- sending ---------------------------------------------------------------------------------
    async def send(self, event: Event) -> None:
        if self.writer.is_closing():
            raise ConnectionResetError("the client has gone")
        async with self._write_lock:
            await write_event(event, self.writer)

    async def send_error(self, code: str, text: str) -> None:
        log.info("wyoming %s: %s (%s)", self.peer, text, code)
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(Error(text=text, code=code).event())

    # -- lifecycle -------------------------------------------------------------------------------
    async def run(self) -> None:
        reader = asyncio.create_task(self._read_loop(), name=f"wyoming-read {self.peer}")
        worker = asyncio.create_task(self._work(), name=f"wyoming-worker {self.peer}")
        watchdog = asyncio.create_task(self._watch(), name=f"wyoming-watchdog {self.peer}")
        linger = True
        try:
            await asyncio.wait({reader, worker}, return_when=asyncio.FIRST_COMPLETED)
            if _returned(reader) is True and not worker.done():
                await self._queue.put(None)          # the client closed its side: finish what it sent
                linger = not await worker
            elif _returned(worker) is True:
                linger = False                       # the client vanished while being answered
        except asyncio.CancelledError:               # the hub is stopping: no lingering
            linger = False
            raise
        finally:
            for task in (reader, worker, watchdog):
                task.cancel()
            await asyncio.gather(reader, worker, watchdog, return_exceptions=True)
            await self._drop_requests()
            await self._close(linger)

    async def _close(self, linger: bool) -> None:
        """Close; after an error first half-close and skip what the client still sends (briefly), so
        the ``error`` event reaches it instead of being lost to a reset."""
        if linger and not self.writer.is_closing():
            with contextlib.suppress(Exception):
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                async with asyncio.timeout(LINGER_SECONDS):
                    while await self.reader.read(1 << 16):
                        pass
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def _read_loop(self) -> bool:
        """Read until the client closes its side (True) or the connection must end (False)."""
        limits = {"max_event_bytes": self.settings.max_event_bytes,
                  "max_payload_bytes": self.settings.max_payload_bytes}
        while True:
            try:
                event = await read_event(self.reader, **limits)
            except FrameError as err:
                await self.send_error(err.code, str(err))
                return False
            except (ConnectionError, OSError):
                return False
            if event is None:
                return not self.writer.is_closing()
            self._last_event = time.monotonic()
            if Describe.is_type(event.type):
                await self._reply_now(self.server.offer.info.event())
            elif Ping.is_type(event.type):
                await self._reply_now(Pong(text=Ping.from_event(event).text).event())
            elif self.over_limit:
                await self.send_error("busy", f"{BUSY_TEXT} (more than {self.settings.max_clients} Wyoming clients)")
                return False
            else:
                await self._queue.put(event)

    async def _reply_now(self, event: Event) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(event)

    async def _watch(self) -> None:
        """End a connection that sends nothing for ``idle_timeout`` while no request is in progress."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            busy = (self._working or self.transcription is not None or self.synthesis is not None
                    or not self._queue.empty())
            if busy:
                self._last_event = time.monotonic()
            elif time.monotonic() - self._last_event > self.settings.idle_timeout:
                await self.send_error("timeout", f"no event for {self.settings.idle_timeout:g} s; closing")
                self.writer.close()
                return

    async def _drop_requests(self) -> None:
        transcription, self.transcription, self.synthesis = self.transcription, None, None
        if transcription is not None:
            with contextlib.suppress(Exception):
                await transcription.close()

    # -- the worker ------------------------------------------------------------------------------
    async def _work(self) -> bool:
        """Serve queued events in order. Returns True when the client vanished mid-answer, False after
        a failed request (answered with an ``error`` event; the connection then ends, which is also
        what tells a client that waits only for its ``transcript`` or audio that none is coming)."""
        while True:
            event = await self._queue.get()
            if event is None:
                return False
            handler = self._handlers.get(event.type)
            if handler is None:
                log.debug("wyoming %s: ignoring event %r", self.peer, event.type)
                continue
            self._working = True
            try:
                await handler(event)
            except ConnectionError as err:
                log.debug("wyoming %s: connection lost (%s)", self.peer, err)
                return True
            except Exception as err:
                await self._drop_requests()
                await self.send_error(*_error_of(event.type, err))
                return False
            finally:
                self._working = False
                self._last_event = time.monotonic()

    # -- ASR ---------------------------------------------------------------------------------------
    async def _on_transcribe(self, event: Event) -> None:
        request = Transcribe.from_event(event)
        offer = self.server.offer
        if request.name is not None and request.name not in (offer.asr_model, offer.info.asr[0].name):
            raise RequestError("unsupported", f"unknown ASR model {request.name!r} (this hub has {offer.asr_model!r})")
        if not offer.asr_language_ok(request.language):
            raise RequestError("unsupported", f"language {request.language!r} is not offered "
                                              f"(this hub transcribes {', '.join(offer.asr_languages[:5])})")
        self._language = request.language

    async def _on_audio_start(self, event: Event) -> None:
        await self._drop_requests()
        await self._begin_transcription(_audio_format(event))

    async def _begin_transcription(self, fmt: AudioFormat) -> None:
        ctx = self.server.ctx
        self.transcription = Transcription(ctx.providers.asr, fmt, self.send, language=self._language,
                                           max_seconds=self.settings.max_audio_seconds, metrics=ctx.metrics)
        await self.transcription.begin()

    async def _on_audio_chunk(self, event: Event) -> None:
        fmt = _audio_format(event)
        if self.transcription is None:          # audio without audio-start: its chunks say the format
            await self._begin_transcription(fmt)
        assert self.transcription is not None
        await self.transcription.feed(fmt, event.payload or b"")

    async def _on_audio_stop(self, event: Event) -> None:
        transcription = self.transcription
        if transcription is None:
            raise RequestError("bad-request", "audio-stop without audio")
        try:
            text = await transcription.finish()
        finally:
            self.transcription = None
            self._language = None
            await transcription.close()
        log.info("wyoming %s: transcribed %.1f s of audio (%d characters)", self.peer,
                 transcription.fmt.seconds(transcription.audio_bytes), len(text))

    # -- TTS ---------------------------------------------------------------------------------------
    def _new_synthesis(self, data: dict[str, object]) -> Synthesis:
        voice = data.get("voice") or {}
        if not isinstance(voice, dict):
            raise RequestError("bad-event", "voice must be a JSON object")
        name, language = voice.get("name"), voice.get("language")
        if not self.server.offer.tts_voice_ok(name if isinstance(name, str) else None,
                                              language if isinstance(language, str) else None):
            raise RequestError("unsupported", f"unknown voice {voice!r} (this hub speaks with "
                                              f"{self.server.offer.tts_voice!r})")
        ctx = self.server.ctx
        return Synthesis(ctx.providers.tts, ctx.compute, self.send, max_chars=self.settings.max_text_chars,
                         metrics=ctx.metrics)

    async def _on_synthesize(self, event: Event) -> None:
        if self.synthesis is not None:
            return      # the whole text again, sent for older servers during a streamed synthesis
        request = Synthesize.from_event(event)
        synthesis = self._new_synthesis(event.data)
        await synthesis.add_text(request.text)
        await synthesis.finish()

    async def _on_synthesize_start(self, event: Event) -> None:
        SynthesizeStart.from_event(event)
        self.synthesis = self._new_synthesis(event.data)

    async def _on_synthesize_chunk(self, event: Event) -> None:
        if self.synthesis is None:
            raise RequestError("bad-request", "synthesize-chunk without synthesize-start")
        await self.synthesis.add_text(SynthesizeChunk.from_event(event).text)

    async def _on_synthesize_stop(self, event: Event) -> None:
        SynthesizeStop.from_event(event)
        synthesis, self.synthesis = self.synthesis, None
        if synthesis is None:
            raise RequestError("bad-request", "synthesize-stop without synthesize-start")
        await synthesis.finish()
        await self.send(SynthesizeStopped().event())


def _returned(task: asyncio.Task[bool]) -> bool | None:
    """What a finished task returned (None: not finished, cancelled or raised)."""
    if not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()


def _audio_format(event: Event) -> AudioFormat:
    try:
        return AudioFormat.parse(event.data)
    except ValueError as err:
        raise RequestError("bad-audio", f"{event.type}: {err}") from None


def _error_of(event_type: str, err: Exception) -> tuple[str, str]:
    """(code, text) of the ``error`` event answering a failed request."""
    if isinstance(err, RequestError):
        return err.code, str(err)
    if isinstance(err, BusyError):
        return "busy", f"{BUSY_TEXT} ({err})"
    if isinstance(err, ProviderError):
        return "engine-error", str(err)
    if isinstance(err, (KeyError, TypeError, ValueError, AttributeError)):
        return "bad-event", f"{event_type}: {err.__class__.__name__}: {err}"
    log.exception("wyoming: %s failed", event_type, exc_info=err)
    return "internal-error", f"{event_type} failed ({err.__class__.__name__})"
