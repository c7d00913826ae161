"""The answer budget: how much of the LLM's answer is spoken.

A voice answer is one or two sentences (``agent.answer_sentences``, ``agent.answer_seconds`` of
estimated speech); when the user asks for a story, a list or an explanation the longer budget
applies (``agent.long_answer_sentences``, ``agent.long_answer_seconds``). The budget is spent
sentence by sentence: a sentence that would go over it is not started, and the LLM is stopped
there. Only a sentence that runs on past the whole budget without an end is cut inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...settings import Settings

# Asks for a longer answer, in English and Chinese.
_LONG_EN = re.compile(
    r"\b(?:stor(?:y|ies)|tales?|fairy ?tales?|poems?|rhymes?|song|lyrics|list|explain|explanation|describe"
    r"|in detail|step by step|steps|instructions|recipe|summari[sz]e"
    r"|tell me (?:more|everything|all) about|tell me about|what are (?:some|the)"
    r"|(?:give|tell|name) me (?:some|a few|several|\d+|two|three|four|five|six|seven|eight|nine|ten)"
    r"|name (?:some|a few|several|\d+|two|three|four|five|six|seven|eight|nine|ten)"
    r"|why|how (?:do|does|did|can|could|should|would) (?:i|you|we|one|it|they|people))\b",
    re.IGNORECASE)
_LONG_ZH = re.compile(r"故事|童话|诗|儿歌|列出|列举|有哪些|哪些|解释|说明|介绍|详细|为什么|步骤|怎么做|如何|菜谱|总结")


def asks_for_long(question: str) -> bool:
    """Whether the user asked for a story, a list or an explanation."""
    return _LONG_EN.search(question) is not None or _LONG_ZH.search(question) is not None


@dataclass(frozen=True)
class Budget:
    sentences: int
    seconds: float
    long: bool = False

    @classmethod
    def for_question(cls, question: str, settings: Settings) -> "Budget":
        a = settings.agent
        if asks_for_long(question):
            return cls(a.long_answer_sentences, a.long_answer_seconds, long=True)
        return cls(a.answer_sentences, a.answer_seconds)
