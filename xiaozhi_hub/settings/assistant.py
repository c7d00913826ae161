"""Settings of the conversation: ``session``, ``agent``, ``intents``, ``memory``, ``announce``.

Each section is a frozen dataclass plus a schema with the same keys and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from .validators import non_negative, opt_path, positive, str_list


@dataclass(frozen=True)
class SessionSettings:
    hello_timeout: float = 10.0      # close a connection that sends no hello in time
    idle_timeout: float = 120.0      # close a session after this long without detected voice
    mcp_call_timeout: float = 30.0
    mcp_enabled: bool = True
    tts_start_gap_ms: int = 20       # pause between "tts start" and the first audio frame
    max_utterance_seconds: float = 30.0
    min_utterance_ms: int = 300      # shorter speech is ignored (clicks, coughs)
    filler_after_ms: int = 3000      # no answer this long after end of speech -> say "One moment." (0 = off)
    idle_goodbye: bool = True        # say "Goodbye." before closing an idle session (as the reference server does)
    # "listen detect" with one of these texts is a wake word; any other text is a typed question.
    # ESP-SR names some models' words in pinyin ("nihaoxiaozhi"), so both spellings are listed.
    wake_words: tuple[str, ...] = ("你好小智", "nihaoxiaozhi", "你好小志", "小爱同学", "xiaoaitongxue",
                                   "你好小鑫", "nihaoxiaoxin", "hi esp", "hi lexin", "hey jarvis", "alexa",
                                   "hey wanda", "hi jason", "sophia")


SESSION_SCHEMA = vol.Schema({
    vol.Optional("hello_timeout", default=10.0): positive(),
    vol.Optional("idle_timeout", default=120.0): positive(),
    vol.Optional("mcp_call_timeout", default=30.0): positive(),
    vol.Optional("mcp_enabled", default=True): vol.Boolean(),
    vol.Optional("tts_start_gap_ms", default=20): vol.All(vol.Coerce(int), vol.Range(min=0, max=1000)),
    vol.Optional("max_utterance_seconds", default=30.0): positive(),
    vol.Optional("min_utterance_ms", default=300): vol.All(vol.Coerce(int), vol.Range(min=0)),
    vol.Optional("filler_after_ms", default=3000): vol.All(vol.Coerce(int), vol.Range(min=0, max=60000)),
    vol.Optional("idle_goodbye", default=True): vol.Boolean(),
    vol.Optional("wake_words", default=list(SessionSettings.wake_words)): vol.All(
        vol.Any(None, [vol.Coerce(str)]), lambda v: tuple(v or ())),
})


@dataclass(frozen=True)
class AgentSettings:
    """The tool loop and built-in tools (timers, volume)."""

    max_tool_depth: int = 3          # LLM rounds that may call tools before it must answer in words
    tool_timeout: float = 10.0       # per tool call; device MCP calls also have session.mcp_call_timeout
    volume_step: int = 10            # "louder" / "quieter" change, in percent
    default_language: str = "en"     # language of announcements when a device's language is unknown
    max_timers: int = 20             # active timers and alarms per device
    timer_poll_seconds: float = 1.0  # no effect any more (due timers are announcements); kept so files load
    timer_max_late_hours: float = 12.0  # a timer missed by more than this is dropped, not announced
    # The spoken answer of the LLM, cut between sentences (pipeline/shaping): sentences and estimated
    # seconds of speech, and the longer budget when the user asks for a story, a list or an explanation.
    answer_sentences: int = 2
    answer_seconds: float = 12.0
    long_answer_sentences: int = 12
    long_answer_seconds: float = 60.0


AGENT_SCHEMA = vol.Schema({
    vol.Optional("max_tool_depth", default=3): vol.All(vol.Coerce(int), vol.Range(min=0, max=10)),
    vol.Optional("tool_timeout", default=10.0): positive(),
    vol.Optional("volume_step", default=10): vol.All(vol.Coerce(int), vol.Range(min=1, max=50)),
    vol.Optional("default_language", default="en"): vol.In(["en", "zh"]),
    vol.Optional("max_timers", default=20): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
    vol.Optional("timer_poll_seconds", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0.05, max=60)),
    vol.Optional("timer_max_late_hours", default=12.0): positive(),
    vol.Optional("answer_sentences", default=2): vol.All(vol.Coerce(int), vol.Range(min=1, max=100)),
    vol.Optional("answer_seconds", default=12.0): vol.All(vol.Coerce(float), vol.Range(min=1, max=600)),
    vol.Optional("long_answer_sentences", default=12): vol.All(vol.Coerce(int), vol.Range(min=1, max=500)),
    vol.Optional("long_answer_seconds", default=60.0): vol.All(vol.Coerce(float), vol.Range(min=1, max=3600)),
})


@dataclass(frozen=True)
class IntentSettings:
    """Fast local intents matched before the LLM (pipeline/intents.py)."""

    enabled: bool = True
    languages: tuple[str, ...] = ("en", "zh")
    sentences_file: str | None = None   # YAML {language: {intent: [template, ...]}} added to the built-ins
    replace_builtin: bool = False       # True: only the file's templates are used
    disabled: tuple[str, ...] = ()      # intent names never matched (they go to the LLM)


INTENTS_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("languages", default=["en", "zh"]): vol.All(str_list, vol.Length(min=1), lambda t: tuple(s.lower() for s in t)),
    vol.Optional("sentences_file", default=None): opt_path,
    vol.Optional("replace_builtin", default=False): vol.Boolean(),
    vol.Optional("disabled", default=[]): str_list,
})


@dataclass(frozen=True)
class MemorySettings:
    """Per-device dialogue in SQLite with a bounded context window and a rolling summary."""

    enabled: bool = True
    window_messages: int = 12        # newest messages given to the LLM verbatim
    max_context_chars: int = 4000    # the verbatim window is also cut to this many characters
    summary_chars: int = 800         # the rolling summary of older messages is kept under this
    summarizer: str = "auto"         # auto (llm for a remote openai LLM, else extractive) | llm | extractive
    retention_days: float = 30.0     # dialogue older than this is deleted; 0 keeps it forever


MEMORY_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("window_messages", default=12): vol.All(vol.Coerce(int), vol.Range(min=2, max=200)),
    vol.Optional("max_context_chars", default=4000): vol.All(vol.Coerce(int), vol.Range(min=200)),
    vol.Optional("summary_chars", default=800): vol.All(vol.Coerce(int), vol.Range(min=100, max=20000)),
    vol.Optional("summarizer", default="auto"): vol.In(["auto", "llm", "extractive"]),
    vol.Optional("retention_days", default=30.0): non_negative(),
})


@dataclass(frozen=True)
class AnnounceSettings:
    """"Say this" announcements (HTTP API, MQTT, timers): the queue for devices that are not connected."""

    ttl_seconds: float = 3600.0      # a queued announcement not delivered within this is expired
    max_queued: int = 20             # per device; the oldest is dropped when a new one overflows it


ANNOUNCE_SCHEMA = vol.Schema({
    vol.Optional("ttl_seconds", default=3600.0): vol.All(vol.Coerce(float), vol.Range(min=1, max=30 * 24 * 3600)),
    vol.Optional("max_queued", default=20): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
})
