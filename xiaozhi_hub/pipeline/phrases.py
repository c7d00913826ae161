"""The hub's fixed phrases: the busy and error answers, the "One moment." filler and the idle goodbye.

They are spoken in the hub's language: English, or Chinese when the ASR language is Chinese. The
filler and the busy answer are synthesized once into :class:`xiaozhi_hub.pipeline.speaker.PhraseCache`
so they can be said at once even while the TTS engine is queued up.
"""

from __future__ import annotations

from ..settings import Settings

BUSY_TEXT = "Sorry, I'm busy right now. Please ask me again in a moment."
ERROR_TEXT = "Sorry, something went wrong. Please try again."
FILLER_TEXT = "One moment."
GOODBYE_TEXT = "Goodbye."
PHRASES_ZH = {BUSY_TEXT: "抱歉，我现在有点忙，请稍后再问我。", ERROR_TEXT: "抱歉，出了点问题，请再试一次。",
              FILLER_TEXT: "请稍等。", GOODBYE_TEXT: "再见。"}


def phrase(settings: Settings, text: str) -> str:
    """A fixed phrase in the hub's language (English unless the ASR language is Chinese)."""
    return PHRASES_ZH.get(text, text) if settings.asr.language.lower().startswith("zh") else text

# The agent's short confirmations after a tool, by the language of the user's words.
DONE = {"en": "Done.", "zh": "好了。"}
FAILED = {"en": "Sorry, I couldn't do that.", "zh": "抱歉，我没能做到。"}
# Said when the answer guards cut everything the LLM wrote (or it wrote nothing): short and honest.
NO_ANSWER = {"en": "Sorry, I don't have a good answer to that.", "zh": "抱歉，这个问题我答不好。"}
