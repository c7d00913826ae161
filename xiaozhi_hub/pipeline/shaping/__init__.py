"""Voice-shaped answers: what of the LLM's text is spoken, and when the LLM is stopped.

A listener cannot skim: an answer must be short unless a story, a list or an explanation was asked
for, must end at the end of a sentence, and must contain nothing that cannot be said (code, tool
calls, markup), nothing of the prompt (the instructions, the tools, the summary) and no loop. Any
model gets this, from a 135M one that needs it badly to a remote one that rarely does.

Where things are: :mod:`.shaper` (the answer piece by piece, and :func:`shaper_for`),
:mod:`.budget` (how long, and the asks for longer), :mod:`.leaks` (the prompt guard),
:mod:`.loops` (repetition), :mod:`.speakable` (code and tool syntax), :mod:`.text` (tokens and the
speech-time estimate). Markdown, URLs and emoji are cleaned just before TTS by
:func:`xiaozhi_hub.pipeline.sentences.clean_for_speech`.
"""

from .budget import Budget, asks_for_long
from .leaks import PromptGuard
from .loops import LoopGuard
from .shaper import AnswerShaper, shaper_for
from .speakable import CodeFilter, looks_like_code
from .text import speech_seconds, tokens

__all__ = ["AnswerShaper", "Budget", "CodeFilter", "LoopGuard", "PromptGuard", "asks_for_long", "looks_like_code",
           "shaper_for", "speech_seconds", "tokens"]
