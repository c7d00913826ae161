"""The timing of one turn: when each stage was reached, as seen from the end of speech.

What a user feels is the wait from the end of their speech to the first audio frame, so every stage
is also observed as a latency from that moment (``/metrics``: asr_final, first_token,
first_sentence, first_synth, first_audio).
"""

from __future__ import annotations

import time

from ..metrics import Metrics


class TurnTiming:
    """Monotonic timestamps of one turn's stages, by stage name (each stage is stamped once)."""

    __slots__ = ("metrics", "stamps")

    def __init__(self, metrics: Metrics, end_of_speech: float | None) -> None:
        self.metrics = metrics
        self.stamps: dict[str, float] = {}
        if end_of_speech is not None:
            self.stamps["end_of_speech"] = end_of_speech

    def mark(self, stage: str) -> None:
        if stage in self.stamps:
            return
        now = self.stamps[stage] = time.monotonic()
        start = self.stamps.get("end_of_speech")
        if start is not None:
            self.metrics.observe(stage, now - start)

    def absorb(self, other: "TurnTiming") -> None:
        """Take over the stages a speculative answer reached before the end of speech (they count as
        0 s in the metrics: the work was done before the user had finished)."""
        start = self.stamps.get("end_of_speech")
        for stage, at in other.stamps.items():
            if stage in self.stamps:
                continue
            self.stamps[stage] = at
            if start is not None and stage != "draft":
                self.metrics.observe(stage, max(0.0, at - start))
