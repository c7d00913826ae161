"""Whisper decodes in an encoder window fitted to the speech, several utterances in one pass.

faster-whisper's ``transcribe`` pads every input to 30 s of log-Mel frames, so a 1.5 s command pays
for a 30 s encoder pass and a decoder that cross-attends to 1,500 positions: ~0.65–0.9 s for Whisper
base on 2 cores, nearly all of it padding. CTranslate2 accepts shorter inputs, so this module
computes the features itself, pads them (with zeros, as faster-whisper pads) to a window of
``max(window_s, speech + 2 s)``, and encodes and decodes all the utterances that are waiting in
one batch: ~0.1–0.2 s for one command, ~0.35 s for four.

A window much shorter than 30 s is outside what Whisper was trained on: below ~8 s it starts
repeating the sentence to fill the window ("Good morning. Good morning. ..."). With 10 s it gave
the same words as the 30 s window on every command of the bench set; as a guard, a transcript
with more tokens than speech of that length can hold, or that says the same words twice in a row
(the way Whisper fills a window), is decoded again in the full 30 s window (a real "Stop. Stop."
costs that second pass, never its words).
Utterances longer than the window can hold, and language detection disagreements, take
faster-whisper's own path (``transcribe_full``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = 160                      # samples per log-Mel frame (10 ms)
FULL_FRAMES = 3000             # Whisper's 30 s window
MARGIN_FRAMES = 200            # padding after the speech inside the window (2 s)
STEP_FRAMES = 100              # windows are whole seconds (fewer distinct shapes)
TOKENS_PER_SECOND = 6.0        # more than this (plus TOKENS_SLACK) is not speech: a window artefact
TOKENS_SLACK = 10


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    language: str | None


class WindowDecoder:
    """Blocking decoder over a loaded ``faster_whisper.WhisperModel`` (call it on a compute thread).

    ``window_s`` is the shortest encoder window; 30 (or more) keeps faster-whisper's 30 s window
    for everything (the slow, classic behaviour, as a fallback setting).
    """

    def __init__(self, model: Any, *, language: str | None, beam_size: int, window_s: float = 10.0) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model = model
        self.language = language
        self.beam_size = beam_size
        self.min_frames = min(FULL_FRAMES, max(STEP_FRAMES, int(round(window_s * 100))))
        self._tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                                    language=language or "en")
        self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]) or [])
        self.fallbacks = 0          # utterances decoded again in the full window (guard tripped)

    # -- the public entry point -----------------------------------------------------------------------
    def transcribe(self, audios: Sequence[np.ndarray]) -> list[Decoded]:
        """Transcribe float32 16 kHz utterances; one encoder/decoder pass for all that fit a window."""
        results: list[Decoded | None] = [None] * len(audios)
        fitted = [i for i, a in enumerate(audios) if self._fits(a)]
        if fitted:
            for i, decoded in zip(fitted, self._windowed([audios[i] for i in fitted])):
                results[i] = decoded
        for i, audio in enumerate(audios):
            if results[i] is None:
                results[i] = self.transcribe_full(audio)
        return [r for r in results if r is not None]

    def transcribe_full(self, audio: np.ndarray) -> Decoded:
        """faster-whisper's own path: 30 s windows, chunking of long audio, language detection."""
        segments, info = self.model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False)
        text = "".join(s.text for s in segments).strip()
        return Decoded(text, getattr(info, "language", self.language))

    # -- the fitted window ----------------------------------------------------------------------------
    def _fits(self, audio: np.ndarray) -> bool:
        return self.min_frames < FULL_FRAMES and _frames(audio) + MARGIN_FRAMES <= FULL_FRAMES

    def window_frames(self, audios: Sequence[np.ndarray]) -> int:
        longest = max(_frames(a) for a in audios) + MARGIN_FRAMES
        return min(FULL_FRAMES, max(self.min_frames, math.ceil(longest / STEP_FRAMES) * STEP_FRAMES))

    def _windowed(self, audios: Sequence[np.ndarray]) -> list[Decoded | None]:
        import ctranslate2

        width = self.window_frames(audios)
        batch = np.zeros((len(audios), 80, width), dtype=np.float32)
        for i, audio in enumerate(audios):
            feats = self.model.feature_extractor(audio, padding=HOP)[:, :-1]
            n = min(width, feats.shape[1])
            batch[i, :, :n] = feats[:, :n]
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        languages = self._languages(encoded, len(audios))
        limits = [int(TOKENS_SLACK + TOKENS_PER_SECOND * len(a) / SAMPLE_RATE) for a in audios]
        prompts = [self._prompt(lang) for lang in languages]
        results = self.model.model.generate(
            encoded, prompts, beam_size=self.beam_size, max_length=len(prompts[0]) + max(limits) + 1,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True, suppress_tokens=self._suppress)
        out: list[Decoded | None] = []
        for audio, result, lang, limit in zip(audios, results, languages, limits):
            tokens = result.sequences_ids[0]
            text = self._tokenizer.decode(tokens).strip()
            if len(tokens) > limit or repeats(text):
                self.fallbacks += 1
                log.info("whisper: %d tokens for %.1f s of audio in a %d s window: decoding again in 30 s",
                         len(tokens), len(audio) / SAMPLE_RATE, width // 100)
                out.append(None)
                continue
            out.append(Decoded("" if _no_speech(result, tokens) else text, lang))
        return out

    def _languages(self, encoded: Any, n: int) -> list[str]:
        if self.language is not None or not self.model.model.is_multilingual:
            return [self.language or "en"] * n
        detected = self.model.model.detect_language(encoded)
        return [pairs[0][0][2:-2] for pairs in detected]      # "<|en|>" -> "en"

    def _prompt(self, language: str) -> list[int]:
        tok = self._tokenizer
        lang_token = tok.tokenizer.token_to_id(f"<|{language}|>")
        return [tok.sot, lang_token, tok.transcribe, tok.no_timestamps]


def repeats(text: str) -> bool:
    """Whether ``text`` is one run of words said twice or more back to back (a window artefact)."""
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    for period in range(1, len(words) // 2 + 1):
        head, last = words[:-1], words[-1]
        if all(head[i] == words[i % period] for i in range(len(head))) and \
                words[(len(words) - 1) % period].startswith(last):     # the last word may be cut off
            return len(words) >= 4 or period > 1
    return False


def _frames(audio: np.ndarray) -> int:
    return (len(audio) + HOP) // HOP


def _no_speech(result: Any, tokens: list[int]) -> bool:
    """faster-whisper's silence rule: no_speech_prob > 0.6 and average log-probability < -1."""
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else -math.inf
    return bool(result.no_speech_prob > 0.6 and avg_logprob < -1.0)
