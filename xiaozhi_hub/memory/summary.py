"""Rolling summaries of older dialogue: by the LLM, or extractive (deterministic, no model).

The LLM summary reads better but costs a model call, so it runs in the background after a turn and
only every half window. The extractive summary keeps the first sentence of each message; it is
what the fake LLM gets (tests stay deterministic) and what a real LLM falls back to when it is busy
or fails, so a summary always advances and the window stays bounded.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol, Sequence

from ..providers.base import LLM, ChatMessage, ProviderError, TextDelta
from .store import DialogueMessage

log = logging.getLogger(__name__)

_FIRST_SENTENCE = re.compile(r"^(.+?[.!?。！？])(?:\s|$)")
MESSAGE_CHARS = 120


class Summarizer(Protocol):
    async def summarize(self, previous: str, messages: Sequence[DialogueMessage], max_chars: int) -> str:
        """The previous summary extended with ``messages`` (oldest first), at most ``max_chars``."""


def _first_sentence(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    m = _FIRST_SENTENCE.match(text)
    s = m.group(1) if m else text
    if len(s) > limit:
        s = s[:limit - 1].rstrip() + "…"
    return s


def _keep_tail(lines: list[str], max_chars: int) -> str:
    """Join lines, dropping the oldest until the text fits (a summary's newest facts matter most)."""
    while lines and len("\n".join(lines)) > max_chars:
        lines.pop(0)
    text = "\n".join(lines)
    return text[-max_chars:] if len(text) > max_chars else text


class ExtractiveSummarizer:
    """One line per message: "User: <first sentence>" / "Assistant: <first sentence>"."""

    async def summarize(self, previous: str, messages: Sequence[DialogueMessage], max_chars: int) -> str:
        lines = [ln for ln in previous.splitlines() if ln.strip()]
        for m in messages:
            who = "User" if m.role == "user" else "Assistant"
            lines.append(f"{who}: {_first_sentence(m.content)}")
        return _keep_tail(lines, max_chars)


SUMMARY_PROMPT = ("You keep the memory of a spoken conversation between a user and a voice assistant. "
                  "Rewrite the summary so it includes the new messages. Keep facts about the user (name, "
                  "preferences, plans, things to remember) and open requests; drop small talk. Write plain "
                  "sentences, at most {max_chars} characters, in the language of the conversation.")


class LLMSummarizer:
    """Summary written by the hub's LLM; falls back to :class:`ExtractiveSummarizer` on any failure."""

    def __init__(self, llm: LLM, fallback: Summarizer | None = None) -> None:
        self.llm = llm
        self.fallback = fallback or ExtractiveSummarizer()

    async def summarize(self, previous: str, messages: Sequence[DialogueMessage], max_chars: int) -> str:
        convo = "\n".join(f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}" for m in messages)
        prompt = [ChatMessage("system", SUMMARY_PROMPT.format(max_chars=max_chars)),
                  ChatMessage("user", f"Summary so far:\n{previous or '(none)'}\n\nNew messages:\n{convo}\n\n"
                                      "Updated summary:")]
        parts: list[str] = []
        try:
            async for event in self.llm.stream(prompt, ()):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
        except ProviderError as err:
            log.info("LLM summary failed (%s); using the extractive summary", err)
            return await self.fallback.summarize(previous, messages, max_chars)
        text = " ".join("".join(parts).split())
        if not text:
            return await self.fallback.summarize(previous, messages, max_chars)
        if len(text) > max_chars:
            cut = text[:max_chars]
            end = max(cut.rfind(". "), cut.rfind("。"), cut.rfind("! "), cut.rfind("? "))
            text = cut[:end + 1] if end > max_chars // 2 else cut
        return text


def make_summarizer(kind: str, llm: LLM, remote: bool = False) -> Summarizer:
    """``auto`` uses the LLM only when it runs on a separate server (``remote``).

    An in-process llama.cpp model has one generation slot and one prompt cache: a summary evicts the
    cached system prompt and tool list, and the next turn re-evaluates all of it (measured +3.5 s on
    2 cores with smollm2-135m). The fake LLM's canned reply would make a useless summary. ``llm``
    forces LLM summaries anyway; the extractive one is always the fallback.
    """
    if kind == "extractive" or (kind == "auto" and (not remote or getattr(llm, "name", "") == "fake")):
        return ExtractiveSummarizer()
    return LLMSummarizer(llm)
