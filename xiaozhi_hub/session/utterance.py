"""One utterance: microphone PCM → VAD end-pointing → ASR stream, until the final transcript.

The read loop calls :meth:`Utterance.push` with decoded PCM; it never waits on ASR. VAD runs
inline (microseconds a frame); ASR runs in this utterance's own task fed by a bounded queue, so a
slow engine delays only this device's transcript, never the handling of ``abort`` on the socket.

**Drafts.** The VAD waits ``vad.silence_ms`` of silence before it ends the utterance, and most of
that wait is idle. Once ``asr.early_decode_ms`` of it has passed, the utterance asks the ASR stream
for a draft of everything heard so far (after the audio already queued has been fed) and hands it to
``on_draft``; the session starts the answer on it speculatively. If the user speaks again before the
end, ``on_resume`` withdraws it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Callable

from ..providers.base import ASR, VAD, BusyError, ProviderError, Transcript, VADEvent
from ..settings import Settings

log = logging.getLogger(__name__)

BYTES_PER_MS = 32          # 16 kHz, 16-bit mono
PREROLL_MS = 300           # audio kept from before the VAD fired, so the first syllable is not lost
QUEUE_CHUNKS = 200         # ~12 s of 60 ms chunks waiting for ASR before the oldest is dropped


class _DraftMarker:
    """Queued after the audio a draft must cover: the feed task takes the draft when it gets here."""


_DRAFT = _DraftMarker()


class Utterance:
    def __init__(self, settings: Settings, vad: VAD, asr: ASR, use_vad: bool,
                 on_partial: Callable[[Transcript], None] | None = None,
                 on_draft: Callable[[Transcript], None] | None = None,
                 on_resume: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.use_vad = use_vad
        self.vad_stream = vad.open_stream() if use_vad else None
        self.asr = asr
        self.asr_stream = asr.open_stream()
        self.on_partial = on_partial
        self.on_draft = on_draft
        self.on_resume = on_resume
        self._draft_after = settings.asr.early_decode_ms if on_draft is not None and use_vad else 0
        self._draft_asked = False
        self.speaking = not use_vad          # without VAD, everything is speech (manual mode)
        self.ended = False
        self.speech_ms = 0
        self.started_at: float | None = None  # monotonic time speech started
        self.ended_at: float | None = None    # monotonic time the end of speech was detected
        self._preroll: collections.deque[bytes] = collections.deque()
        self._preroll_bytes = 0
        self._queue: asyncio.Queue[bytes | _DraftMarker | None] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        self._task = asyncio.create_task(self._feed_asr(), name="asr-feed")
        self.error: Exception | None = None

    # -- called from the read loop (never blocks) ----------------------------------------------
    def push(self, pcm: bytes) -> list[VADEvent]:
        """Add microphone PCM; returns the VAD events it caused (SPEECH_END ends the utterance)."""
        if self.ended:
            return []
        events = self.vad_stream.feed(pcm) if self.vad_stream is not None else []
        if VADEvent.SPEECH_START in events and not self.speaking:
            self.speaking = True
            self.started_at = time.monotonic()
            for chunk in self._preroll:
                self._enqueue(chunk)
            self._preroll.clear()
            self._preroll_bytes = 0
        if self.speaking:
            self._enqueue(pcm)
            self.speech_ms += len(pcm) // BYTES_PER_MS
            if self.speech_ms >= self.settings.session.max_utterance_seconds * 1000:
                events.append(VADEvent.SPEECH_END)
        else:
            self._preroll.append(pcm)
            self._preroll_bytes += len(pcm)
            while self._preroll_bytes > PREROLL_MS * BYTES_PER_MS and self._preroll:
                self._preroll_bytes -= len(self._preroll.popleft())
        if VADEvent.SPEECH_END in events and self.speaking:
            self.end()
        elif self._draft_after and self.speaking:
            self._check_draft()
        return events

    def _check_draft(self) -> None:
        quiet = self.vad_stream.quiet_ms if self.vad_stream is not None else 0
        if not self._draft_asked and quiet >= self._draft_after:
            self._draft_asked = True
            self._enqueue(_DRAFT)
        elif self._draft_asked and quiet == 0:
            self._draft_asked = False       # the user goes on talking: the draft is out of date
            if self.on_resume is not None:
                self.on_resume()

    def _enqueue(self, pcm: bytes | _DraftMarker) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            log.warning("ASR is falling behind; dropped 60 ms of audio")
        self._queue.put_nowait(pcm)

    def end(self) -> None:
        """End of speech (VAD, ``listen stop`` or the length limit)."""
        if self.ended:
            return
        self.ended = True
        self.ended_at = time.monotonic()
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(None)

    # -- the ASR side -----------------------------------------------------------------------------
    async def _feed_asr(self) -> None:
        while True:
            pcm = await self._queue.get()
            if pcm is None:
                return
            if self.error is not None:
                continue
            try:
                if isinstance(pcm, _DraftMarker):
                    await self._take_draft()
                    continue
                partial = await self.asr_stream.feed(pcm)
            except (ProviderError, BusyError) as err:
                self.error = err
                continue
            if partial is not None and partial.text and self.on_partial is not None:
                self.on_partial(partial)

    async def _take_draft(self) -> None:
        if not self._draft_asked or self.ended or self.on_draft is None:
            return      # withdrawn (speech resumed) or too late (the utterance already ended)
        transcript = await self.asr_stream.draft()
        if transcript is not None and transcript.text.strip() and self._draft_asked and not self.ended:
            self.on_draft(transcript)

    async def finish(self) -> Transcript:
        """Wait for the final transcript (call after :meth:`end`)."""
        self.end()
        await self._task
        if self.error is not None:
            raise self.error
        return await self.asr_stream.finish()

    @property
    def heard_speech(self) -> bool:
        return self.speaking and self.speech_ms >= self.settings.session.min_utterance_ms

    async def close(self) -> None:
        self.ended = True
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.asr_stream.close()
