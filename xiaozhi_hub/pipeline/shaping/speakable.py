"""What cannot be said aloud is never sent to TTS: code and tool-call syntax.

Markdown, URLs and emoji are cleaned per sentence just before synthesis
(:func:`xiaozhi_hub.pipeline.sentences.clean_for_speech`); code cannot be cleaned, only dropped.
:class:`CodeFilter` does that in two places:

* on the streamed text, before it is split into pieces: everything inside a fenced block
  (```` ``` ````, the language tag with it), however the fence is split across deltas;
* on each piece: inline code (`` `x` ``), a call (``timedelta(days=7)``), an assignment, an import or
  definition line, operators of a programming language (``==``, ``->``, ``+=``), braces or JSON,
  and tool-call syntax a model wrote as text (``<tool_call>``, ``<tools>``, chat-template tokens).

It counts what it dropped, so an answer that is nothing but code can be ended early.
"""

from __future__ import annotations

import re

FENCE = "```"
_CODE = re.compile(
    r"`"                                                   # inline code
    r"|[{}]|==|!=|->|=>|\+=|-=|:=|&&|\|\|"                 # braces, operators of programming languages
    r"|\b[A-Za-z_][\w.]*\([^()]*\)"                        # a call: print(x), datetime.timedelta(days=7)
    r"|\b[a-z_][a-z0-9_]*\s*=\s*[\w\"'\[(]"                # an assignment: x = 5, days = [..]
    r"|^\s*(?:import\s+[\w.]+\s*$|from\s+[\w.]+\s+import\b|def\s+\w+\s*\(|class\s+\w+\s*[:(])"
    r"|\"\w+\"\s*:"                                        # JSON: "name":
    r"|</?(?:tool_call|tools|tool_response|function)\b|<\|",  # tool-call and chat-template syntax
    re.MULTILINE)


def looks_like_code(piece: str) -> bool:
    return _CODE.search(piece) is not None


class CodeFilter:
    """Drops code from one answer: fenced blocks from the stream, code-like pieces."""

    def __init__(self) -> None:
        self.in_fence = False
        self.dropped = 0          # characters of code dropped so far
        self._pending = ""        # trailing backticks that may be the start of a fence

    def strip_fences(self, delta: str, final: bool = False) -> str:
        """Streamed text without the fenced blocks in it."""
        buf, self._pending = self._pending + delta, ""
        out: list[str] = []
        while buf:
            i = buf.find(FENCE)
            if i < 0:
                keep = 0 if final else min(2, len(buf) - len(buf.rstrip("`")))
                self._pending = buf[len(buf) - keep:] if keep else ""
                self._take(buf[:len(buf) - keep], out)
                break
            self._take(buf[:i], out)
            self.in_fence = not self.in_fence
            buf = buf[i + len(FENCE):]
        return "".join(out)

    def _take(self, text: str, out: list[str]) -> None:
        if self.in_fence:
            self.dropped += len(text.strip())
        else:
            out.append(text)

    def speakable(self, piece: str) -> str:
        """``piece`` as it may be said: "" when it is code."""
        if looks_like_code(piece):
            self.dropped += len(piece.strip())
            return ""
        return piece
