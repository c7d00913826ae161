"""Voice activity detection with webrtcvad (the GMM VAD from WebRTC, a tiny C extension).

webrtcvad classifies single 10/20/30 ms frames. Turning that into utterance boundaries needs a
little hysteresis, which lives here:

* **start**: ``min_speech_ms`` worth of voiced frames inside a slightly longer sliding window, so a
  single unvoiced frame inside a syllable (a "flicker") does not delay the start, while isolated
  clicks do not trigger it;
* **end**: ``silence_ms`` during which no two consecutive frames were voiced. A lone voiced frame in
  background noise does not restart the silence timer; real speech (runs of voiced frames) does.

The classifier costs a few microseconds per 30 ms frame, so streams run inline on the event loop
(no ComputePool hop, whose overhead would be larger than the work).
"""

from __future__ import annotations

import collections
import math

import webrtcvad

from ..settings import VADSettings
from .base import UPLINK_SAMPLE_RATE, VADEvent

FRAME_MS = 30
FRAME_BYTES = UPLINK_SAMPLE_RATE * FRAME_MS // 1000 * 2  # 960


class WebRtcVADStream:
    """Per-utterance VAD state over a 16 kHz PCM stream of arbitrary chunk sizes."""

    def __init__(self, settings: VADSettings) -> None:
        self._vad = webrtcvad.Vad(settings.aggressiveness)
        self._start_frames = max(1, math.ceil(settings.min_speech_ms / FRAME_MS))
        # Window for the start decision: room for one flicker frame per two voiced frames, at least one.
        self._window = self._start_frames + max(1, self._start_frames // 2)
        self._end_frames = max(1, math.ceil(settings.silence_ms / FRAME_MS))
        self._buf = bytearray()
        self._recent: collections.deque[bool] = collections.deque(maxlen=self._window)
        self._in_speech = False
        self._prev_voiced = False
        self._quiet_frames = 0

    @property
    def in_speech(self) -> bool:
        """True between SPEECH_START and SPEECH_END."""
        return self._in_speech

    @property
    def quiet_ms(self) -> int:
        """Trailing silence so far inside speech (0 outside speech or while the user talks)."""
        return self._quiet_frames * FRAME_MS if self._in_speech else 0

    def feed(self, pcm: bytes) -> list[VADEvent]:
        self._buf += pcm
        events: list[VADEvent] = []
        usable = len(self._buf) - len(self._buf) % FRAME_BYTES
        for off in range(0, usable, FRAME_BYTES):
            event = self._step(self._vad.is_speech(bytes(self._buf[off:off + FRAME_BYTES]), UPLINK_SAMPLE_RATE))
            if event is not None:
                events.append(event)
        del self._buf[:usable]
        return events

    def _step(self, voiced: bool) -> VADEvent | None:
        """Advance by one 30 ms frame; returns the event that frame completes, if any."""
        if not self._in_speech:
            self._recent.append(voiced)
            if sum(self._recent) >= self._start_frames:
                self._in_speech = True
                self._quiet_frames = 0
                self._prev_voiced = voiced
                self._recent.clear()
                return VADEvent.SPEECH_START
            return None
        if voiced and self._prev_voiced:
            self._quiet_frames = 0
        else:
            self._quiet_frames += 1
        self._prev_voiced = voiced
        if self._quiet_frames >= self._end_frames:
            self._in_speech = False
            self._quiet_frames = 0
            self._prev_voiced = False
            return VADEvent.SPEECH_END
        return None

    def reset(self) -> None:
        self._buf.clear()
        self._recent.clear()
        self._in_speech = False
        self._prev_voiced = False
        self._quiet_frames = 0


class WebRtcVAD:
    """The VAD provider: stateless itself; each utterance/session opens its own stream."""

    name = "webrtc"

    def __init__(self, settings: VADSettings) -> None:
        if not 0 <= settings.aggressiveness <= 3:
            raise ValueError(f"vad.aggressiveness must be 0-3, not {settings.aggressiveness}")
        self.settings = settings

    def open_stream(self) -> WebRtcVADStream:
        return WebRtcVADStream(self.settings)
