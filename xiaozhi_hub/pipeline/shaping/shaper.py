"""One LLM answer shaped for the ear: pieces in, the pieces worth saying out, and when to stop.

The streamed text is split into the same pieces the reply speaks (:class:`SentenceSplitter`: a short
first piece, then sentences), and each piece is judged in turn:

1. code and tool-call syntax are dropped (:mod:`.speakable`; fenced blocks before the text is
   split); :data:`MAX_CODE_CHARS` of code with nothing said in between ends the answer;
2. a piece that repeats the prompt (:mod:`.leaks`) or repeats the answer itself (:mod:`.loops`)
   ends the answer, and is not said;
3. the budget (:mod:`.budget`) ends the answer before a sentence that does not fit, and as soon as
   the next sentence begins once its last sentence is said;
4. when the generation ends inside a new sentence after whole ones (the LLM's token limit cut it
   off), that unfinished sentence is not said.

When the answer ends, :attr:`AnswerShaper.stopped` says why and the caller stops the LLM: its
remaining tokens would be thrown away. A piece that ends in a run of prompt text waits for the next
one, so a leak split across two pieces is still caught before anything of it is said.
"""

from __future__ import annotations

import logging
from typing import Sequence

from ...providers.base import ChatMessage, ToolSpec
from ...providers.tool_calls import tools_system_block
from ...settings import Settings
from ..sentences import SentenceSplitter, clean_for_speech
from .budget import Budget
from .leaks import PromptGuard
from .loops import LoopGuard
from .speakable import CodeFilter
from .text import ends_sentence, join_piece, speech_seconds

log = logging.getLogger(__name__)

MAX_CODE_CHARS = 300     # code dropped since the last piece said: the answer is code, stop


class AnswerShaper:
    """Judges one answer's pieces (see the module docstring); one instance per answer."""

    def __init__(self, guard: PromptGuard, budget: Budget, length_scale: float = 1.0) -> None:
        self.guard = guard
        self.budget = budget
        self.length_scale = length_scale
        self.splitter = SentenceSplitter()
        self.codes = CodeFilter()
        self.loops = LoopGuard()
        self.text = ""                  # the answer as it is said
        self.seconds = 0.0              # estimated speech so far
        self.sentences = 0              # complete sentences said
        self.in_sentence = False        # the last piece said did not end its sentence
        self.stopped: str | None = None  # why the answer ended early
        self._held = ""
        self._code_mark = 0             # code dropped before the last piece said

    @property
    def cut_everything(self) -> bool:
        """Nothing was said, but something was written and cut (say something short instead)."""
        return not self.text and (self.stopped is not None or self.codes.dropped > 0)

    def feed(self, delta: str) -> list[str]:
        """Streamed text in → the pieces to say now."""
        if self.stopped:
            return []
        return self._judge_all(self.splitter.feed(self.codes.strip_fences(delta)), final=False)

    def flush(self) -> list[str]:
        """The generation ended: the pieces still to say."""
        if self.stopped:
            return []
        rest = self.splitter.feed(self.codes.strip_fences("", final=True))
        return self._judge_all([*rest, *self.splitter.flush()], final=True)

    def _judge_all(self, pieces: list[str], final: bool) -> list[str]:
        out: list[str] = []
        if final and self._held and not pieces:
            pieces = [""]
        for i, piece in enumerate(pieces):
            piece = join_piece(self._held, piece) if self._held else piece
            self._held = ""
            last = final and i == len(pieces) - 1
            if not last and self.guard.holds(piece) and self.guard.leak(piece, self.loops.spoken) is None:
                self._held = piece      # may be the start of a leak: judge it with the next piece
                continue
            if last and self._unfinished(piece):
                log.info("answer ends in an unfinished sentence, not said: %.60s", piece)
                continue
            said = self._judge(piece)
            if said is not None:
                out.append(said)
                if not final and self._budget_spent():
                    # The splitter released this sentence because the next one has begun, and that one
                    # will not be said: stop the LLM now rather than after it has written it all (the
                    # model is shared: another device may be waiting for it).
                    self._stop(f"budget of {self.budget.sentences} sentences")
            if self.stopped:
                break
        if not self.stopped and self.codes.dropped - self._code_mark > MAX_CODE_CHARS:
            self._stop("code and nothing else")
        return out

    def _budget_spent(self) -> bool:
        """The budget's last sentence has been said: nothing more will be (a face-only piece aside)."""
        return not self.in_sentence and self.sentences >= self.budget.sentences

    def _unfinished(self, piece: str) -> bool:
        """A last piece that starts a sentence it does not end, after whole sentences were said."""
        return (self.sentences > 0 and not self.in_sentence and not ends_sentence(piece)
                and bool(clean_for_speech(piece)))

    def _judge(self, piece: str) -> str | None:
        """The piece as it may be said, or None (dropped; :attr:`stopped` set if the answer ends)."""
        text = self.codes.speakable(piece).strip()
        if not text:
            return None
        reason = self._refusal(text)
        if reason is not None:
            self._stop(reason)
            return None
        spoken = clean_for_speech(text)
        if spoken:
            self.seconds += speech_seconds(spoken, self.length_scale)
            if ends_sentence(text):
                self.sentences += 1
            self.in_sentence = not ends_sentence(text)
        self.loops.said(text)
        self.text = join_piece(self.text, text)
        self._code_mark = self.codes.dropped
        return text

    def _refusal(self, text: str) -> str | None:
        """Why ``text`` must not be said (and the answer ends), or None."""
        leak = self.guard.leak(text, self.loops.spoken)
        if leak is not None:
            return f"prompt text {leak!r}"
        loop = self.loops.loop(text)
        if loop is not None:
            return f"repetition {loop}"
        spoken = clean_for_speech(text)
        if not spoken or not self.text:
            return None          # the first words are always said (a face-only piece costs nothing)
        b = self.budget
        if not self.in_sentence and self.sentences >= b.sentences:
            return f"budget of {b.sentences} sentences"
        if self.seconds + speech_seconds(spoken, self.length_scale) > b.seconds:
            return f"budget of {b.seconds:g} s"
        return None

    def _stop(self, reason: str) -> None:
        self.stopped = reason
        log.info("answer cut: %s", reason)


def shaper_for(settings: Settings, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec],
               question: str) -> AnswerShaper:
    """The shaper of one answer: a leak guard built from the prompt the LLM is given (system messages,
    the tool instructions, each tool's name and description) and the budget the question asks for."""
    texts = [m.content for m in messages if m.role == "system" and m.content]
    if tools:
        texts.append(tools_system_block(tools))
        texts.extend(t.description for t in tools if t.description)
    guard = PromptGuard(texts, [t.name for t in tools], question)
    return AnswerShaper(guard, Budget.for_question(question, settings), settings.tts.length_scale)
