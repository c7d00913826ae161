"""Configuration: ``hub.yaml`` validated with voluptuous into frozen settings.

Precedence, lowest first: built-in defaults < the YAML file < ``XIAOZHI_*`` environment variables
< command-line flags. Environment variables: the shortcuts ``XIAOZHI_WS_PORT``, ``XIAOZHI_HTTP_PORT``,
``XIAOZHI_DATA_DIR``, ``XIAOZHI_LOG_LEVEL``, ``XIAOZHI_CONFIG``, and any key as
``XIAOZHI_<SECTION>__<KEY>`` (for example ``XIAOZHI_SESSION__IDLE_TIMEOUT=300``); values are read as
YAML scalars, so ``true``, ``30`` and ``[a, b]`` work.

A bad file raises :class:`ConfigError` with one line naming the key and the problem; the CLI exits 2.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import voluptuous as vol
import yaml

DEFAULT_WS_PORT = 8000
DEFAULT_HTTP_PORT = 8003
WS_PATH = "/xiaozhi/v1/"
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration problem, phrased as one line: ``<key>: <problem>``."""


# ---------------------------------------------------------------------------- validators

def _port(v: Any) -> int:
    v = vol.Coerce(int)(v)
    if not 0 <= v <= 65535:
        raise vol.Invalid("must be a port number 0-65535 (0 = pick a free port)")
    return v


def _positive(kind: type = float) -> vol.All:
    return vol.All(vol.Coerce(kind), vol.Range(min=0, min_included=False))


def _non_negative(kind: type = float) -> vol.All:
    return vol.All(vol.Coerce(kind), vol.Range(min=0))


_str_list = vol.All(vol.Any(None, [vol.Coerce(str)]), lambda v: tuple(v or ()))
_opt_str = vol.Any(None, vol.Coerce(str))
_opt_path = vol.Any(None, vol.Coerce(str))


def _log_level(v: Any) -> str:
    s = str(v).lower()
    if s not in LOG_LEVELS:
        raise vol.Invalid(f"must be one of {', '.join(LOG_LEVELS)}")
    return s


# ---------------------------------------------------------------------------- sections
# Each section is a frozen dataclass plus a schema with the same keys and defaults.


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    ws_port: int = DEFAULT_WS_PORT
    http_port: int = DEFAULT_HTTP_PORT
    ws_path: str = WS_PATH
    # The address devices are told to use (OTA reply, status page). None = this machine's LAN IP.
    public_ws_url: str | None = None
    public_http_url: str | None = None
    max_frame_bytes: int = 65536          # devices never send more than 65,535 bytes per frame
    max_frames_per_second: int = 200      # stock firmware sends ~17 audio frames/s
    flood_grace_seconds: float = 2.0      # how long a device may exceed the rate before it is closed
    send_queue_frames: int = 64           # bounded per-connection outbound queue (frames)
    shutdown_grace: float = 3.0


SERVER_SCHEMA = vol.Schema({
    vol.Optional("host", default="0.0.0.0"): vol.Coerce(str),
    vol.Optional("ws_port", default=DEFAULT_WS_PORT): _port,
    vol.Optional("http_port", default=DEFAULT_HTTP_PORT): _port,
    vol.Optional("ws_path", default=WS_PATH): vol.All(vol.Coerce(str), vol.Match(r"^/", msg="must start with /")),
    vol.Optional("public_ws_url", default=None): vol.Any(None, vol.Match(r"^wss?://", msg="must start with ws:// or wss://")),
    vol.Optional("public_http_url", default=None): vol.Any(None, vol.Match(r"^https?://", msg="must start with http:// or https://")),
    vol.Optional("max_frame_bytes", default=65536): vol.All(vol.Coerce(int), vol.Range(min=1024, max=16 * 1024 * 1024)),
    vol.Optional("max_frames_per_second", default=200): vol.All(vol.Coerce(int), vol.Range(min=20)),
    vol.Optional("flood_grace_seconds", default=2.0): _positive(),
    vol.Optional("send_queue_frames", default=64): vol.All(vol.Coerce(int), vol.Range(min=8)),
    vol.Optional("shutdown_grace", default=3.0): _non_negative(),
})


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool = False
    tokens: tuple[str, ...] = ()            # static tokens accepted as "Bearer <token>"
    allowed_devices: tuple[str, ...] = ()   # device ids admitted without a token
    secret: str | None = None               # HMAC key for per-device tokens; None = generated in data_dir
    token_ttl: int = 30 * 24 * 3600


AUTH_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=False): vol.Boolean(),
    vol.Optional("tokens", default=[]): _str_list,
    vol.Optional("allowed_devices", default=[]): vol.All(_str_list, lambda t: tuple(s.lower() for s in t)),
    vol.Optional("secret", default=None): vol.Any(None, vol.All(vol.Coerce(str), vol.Length(min=8, msg="must be at least 8 characters"))),
    vol.Optional("token_ttl", default=30 * 24 * 3600): vol.All(vol.Coerce(int), vol.Range(min=60)),
})


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
    vol.Optional("hello_timeout", default=10.0): _positive(),
    vol.Optional("idle_timeout", default=120.0): _positive(),
    vol.Optional("mcp_call_timeout", default=30.0): _positive(),
    vol.Optional("mcp_enabled", default=True): vol.Boolean(),
    vol.Optional("tts_start_gap_ms", default=20): vol.All(vol.Coerce(int), vol.Range(min=0, max=1000)),
    vol.Optional("max_utterance_seconds", default=30.0): _positive(),
    vol.Optional("min_utterance_ms", default=300): vol.All(vol.Coerce(int), vol.Range(min=0)),
    vol.Optional("filler_after_ms", default=3000): vol.All(vol.Coerce(int), vol.Range(min=0, max=60000)),
    vol.Optional("idle_goodbye", default=True): vol.Boolean(),
    vol.Optional("wake_words", default=list(SessionSettings.wake_words)): vol.All(
        vol.Any(None, [vol.Coerce(str)]), lambda v: tuple(v or ())),
})


@dataclass(frozen=True)
class AudioSettings:
    downlink_sample_rate: int = 24000
    frame_duration_ms: int = 60
    prebuffer_frames: int = 5        # frames sent ahead of real time at the start of a reply


AUDIO_SCHEMA = vol.Schema({
    vol.Optional("downlink_sample_rate", default=24000): vol.All(vol.Coerce(int), vol.In([8000, 12000, 16000, 24000, 48000], msg="must be an Opus rate: 8000, 12000, 16000, 24000 or 48000")),
    vol.Optional("frame_duration_ms", default=60): vol.All(vol.Coerce(int), vol.In([20, 40, 60], msg="must be 20, 40 or 60")),
    vol.Optional("prebuffer_frames", default=5): vol.All(vol.Coerce(int), vol.Range(min=0, max=30)),
})


@dataclass(frozen=True)
class VADSettings:
    provider: str = "webrtc"
    aggressiveness: int = 2
    min_speech_ms: int = 150         # voiced audio needed before speech counts as started
    silence_ms: int = 500            # unvoiced audio that ends an utterance (auto mode)


VAD_SCHEMA = vol.Schema({
    vol.Optional("provider", default="webrtc"): vol.In(["webrtc"]),
    vol.Optional("aggressiveness", default=2): vol.All(vol.Coerce(int), vol.Range(min=0, max=3)),
    vol.Optional("min_speech_ms", default=150): vol.All(vol.Coerce(int), vol.Range(min=30)),
    vol.Optional("silence_ms", default=500): vol.All(vol.Coerce(int), vol.Range(min=90)),
})


@dataclass(frozen=True)
class ASRSettings:
    provider: str = "whisper"        # fake | whisper | vosk
    language: str = "en"
    model: str | None = None         # a model id from the manifest, or a path
    beam_size: int = 1
    threads: int = 2
    show_partials: bool = False      # send partial transcripts to the device as "stt"
    concurrency: int = 1
    early_decode_ms: int = 150       # start on the transcript after this much trailing silence (0 = only at the end)
    recognizer_pool: int = 2         # vosk: warm recognizers kept for reuse (a fresh one decodes ~10x slower)
    recognizer_uses: int = 100       # vosk: utterances before a recognizer is rebuilt (bounds its graph cache)


ASR_SCHEMA = vol.Schema({
    vol.Optional("provider", default="whisper"): vol.In(["fake", "whisper", "vosk"]),
    vol.Optional("language", default="en"): vol.Coerce(str),
    vol.Optional("model", default=None): _opt_path,
    vol.Optional("beam_size", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=10)),
    vol.Optional("threads", default=2): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    vol.Optional("show_partials", default=False): vol.Boolean(),
    vol.Optional("concurrency", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    vol.Optional("early_decode_ms", default=150): vol.All(vol.Coerce(int), vol.Range(min=0, max=5000)),
    vol.Optional("recognizer_pool", default=2): vol.All(vol.Coerce(int), vol.Range(min=0, max=64)),
    vol.Optional("recognizer_uses", default=100): vol.All(vol.Coerce(int), vol.Range(min=1)),
})


@dataclass(frozen=True)
class LLMSettings:
    provider: str = "llamacpp"       # fake | llamacpp | openai
    model: str | None = None         # manifest id or a .gguf path (llamacpp); model name (openai)
    base_url: str | None = None      # openai-compatible server, e.g. http://127.0.0.1:8080/v1
    api_key: str | None = None
    system_prompt: str = ("You are a helpful voice assistant in the home. Answer in one or two short "
                          "sentences of plain spoken language, without lists or markdown.")
    max_tokens: int = 160
    temperature: float = 0.6
    context_tokens: int = 2048
    threads: int = 2
    max_wait: float = 8.0            # longer than this in the queue -> spoken "busy" answer
    timeout: float = 60.0


LLM_SCHEMA = vol.Schema({
    vol.Optional("provider", default="llamacpp"): vol.In(["fake", "llamacpp", "openai"]),
    vol.Optional("model", default=None): _opt_path,
    vol.Optional("base_url", default=None): vol.Any(None, vol.Match(r"^https?://", msg="must start with http:// or https://")),
    vol.Optional("api_key", default=None): _opt_str,
    vol.Optional("system_prompt", default=LLMSettings.system_prompt): vol.Coerce(str),
    vol.Optional("max_tokens", default=160): vol.All(vol.Coerce(int), vol.Range(min=1, max=8192)),
    vol.Optional("temperature", default=0.6): vol.All(vol.Coerce(float), vol.Range(min=0, max=2)),
    vol.Optional("context_tokens", default=2048): vol.All(vol.Coerce(int), vol.Range(min=256)),
    vol.Optional("threads", default=2): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    vol.Optional("max_wait", default=8.0): _positive(),
    vol.Optional("timeout", default=60.0): _positive(),
})


@dataclass(frozen=True)
class TTSSettings:
    provider: str = "piper"          # fake | piper
    voice: str | None = None         # manifest id or a .onnx path
    speaker: int | None = None
    length_scale: float = 1.0
    concurrency: int = 1


TTS_SCHEMA = vol.Schema({
    vol.Optional("provider", default="piper"): vol.In(["fake", "piper"]),
    vol.Optional("voice", default=None): _opt_path,
    vol.Optional("speaker", default=None): vol.Any(None, vol.Coerce(int)),
    vol.Optional("length_scale", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0.3, max=3)),
    vol.Optional("concurrency", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
})


@dataclass(frozen=True)
class FakeSettings:
    """Deterministic providers for tests and demos (selected with provider: fake)."""

    asr_text: str = "turn on the kitchen light"
    asr_draft: str | None = None      # a streaming engine's guess during the trailing silence (None: no drafts)
    llm_reply: str = "Okay. The kitchen light is on now."
    llm_chunk_chars: int = 6
    llm_chunk_delay_ms: int = 0
    llm_tool_call: str | None = None  # JSON {"name":..., "arguments":{...}} emitted before the reply
    tts_ms_per_char: int = 60
    tts_frequency: int = 440


FAKE_SCHEMA = vol.Schema({
    vol.Optional("asr_text", default=FakeSettings.asr_text): vol.Coerce(str),
    vol.Optional("asr_draft", default=None): _opt_str,
    vol.Optional("llm_reply", default=FakeSettings.llm_reply): vol.Coerce(str),
    vol.Optional("llm_chunk_chars", default=6): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("llm_chunk_delay_ms", default=0): vol.All(vol.Coerce(int), vol.Range(min=0)),
    vol.Optional("llm_tool_call", default=None): _opt_str,
    vol.Optional("tts_ms_per_char", default=60): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
    vol.Optional("tts_frequency", default=440): vol.All(vol.Coerce(int), vol.Range(min=50, max=8000)),
})


@dataclass(frozen=True)
class OTASettings:
    enabled: bool = True
    timezone_offset_minutes: int | None = None   # None = this machine's local offset
    activation: bool = False                     # unknown devices must be approved with a code
    max_body_bytes: int = 64 * 1024
    rate_limit_per_minute: int = 60              # per client IP, OTA and activation


OTA_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("timezone_offset_minutes", default=None): vol.Any(None, vol.All(vol.Coerce(int), vol.Range(min=-720, max=840))),
    vol.Optional("activation", default=False): vol.Boolean(),
    vol.Optional("max_body_bytes", default=64 * 1024): vol.All(vol.Coerce(int), vol.Range(min=1024)),
    vol.Optional("rate_limit_per_minute", default=60): vol.All(vol.Coerce(int), vol.Range(min=1)),
})


@dataclass(frozen=True)
class MDNSSettings:
    enabled: bool = True
    name: str | None = None          # instance name; None = "xiaozhi-hub-<host>"
    interfaces: tuple[str, ...] = ()  # IPv4 addresses to advertise on (and advertise); () = all, LAN address


MDNS_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("name", default=None): _opt_str,
    vol.Optional("interfaces", default=[]): vol.All(
        vol.Any(None, [vol.All(vol.Coerce(str), vol.Match(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$",
                                                          msg="must be IPv4 addresses such as 192.168.1.10"))]),
        lambda v: tuple(v or ())),
})


@dataclass(frozen=True)
class WyomingSettings:
    """The hub's ASR and TTS as a Wyoming service for Home Assistant's Assist (net/wyoming/)."""

    enabled: bool = True
    host: str | None = None          # None = the same address as server.host
    port: int = 10300
    max_clients: int = 16            # connections served at once; more are told "busy" and closed
    max_event_bytes: int = 65536     # JSON header + data of one event
    max_payload_bytes: int = 1 << 20  # binary payload of one event (an audio chunk)
    max_audio_seconds: float = 60.0  # audio in one transcription
    max_text_chars: int = 5000       # text in one synthesis
    idle_timeout: float = 60.0       # a connection with no event for this long is closed


WYOMING_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("host", default=None): _opt_str,
    vol.Optional("port", default=10300): _port,
    vol.Optional("max_clients", default=16): vol.All(vol.Coerce(int), vol.Range(min=1, max=1024)),
    vol.Optional("max_event_bytes", default=65536): vol.All(vol.Coerce(int), vol.Range(min=1024, max=16 << 20)),
    vol.Optional("max_payload_bytes", default=1 << 20): vol.All(vol.Coerce(int), vol.Range(min=1024, max=64 << 20)),
    vol.Optional("max_audio_seconds", default=60.0): vol.All(vol.Coerce(float), vol.Range(min=1, max=3600)),
    vol.Optional("max_text_chars", default=5000): vol.All(vol.Coerce(int), vol.Range(min=10, max=1_000_000)),
    vol.Optional("idle_timeout", default=60.0): _positive(),
})


@dataclass(frozen=True)
class AddonSettings:
    """Inside the Home Assistant add-on (detected by SUPERVISOR_TOKEN in the environment; supervisor.py)."""

    supervisor_url: str = "http://supervisor"
    discovery: bool = True           # announce xiaozhi and wyoming to Home Assistant
    announce_host: str | None = None  # address Home Assistant uses to reach the hub; None = the LAN address


ADDON_SCHEMA = vol.Schema({
    vol.Optional("supervisor_url", default="http://supervisor"): vol.All(
        vol.Coerce(str), vol.Match(r"^https?://", msg="must start with http:// or https://")),
    vol.Optional("discovery", default=True): vol.Boolean(),
    vol.Optional("announce_host", default=None): _opt_str,
})


@dataclass(frozen=True)
class AgentSettings:
    """The tool loop and built-in tools (timers, volume)."""

    max_tool_depth: int = 3          # LLM rounds that may call tools before it must answer in words
    tool_timeout: float = 10.0       # per tool call; device MCP calls also have session.mcp_call_timeout
    volume_step: int = 10            # "louder" / "quieter" change, in percent
    default_language: str = "en"     # language of announcements when a device's language is unknown
    max_timers: int = 20             # active timers and alarms per device
    timer_poll_seconds: float = 1.0  # how often due timers look for their (re)connected device
    timer_max_late_hours: float = 12.0  # a timer missed by more than this is dropped, not announced


AGENT_SCHEMA = vol.Schema({
    vol.Optional("max_tool_depth", default=3): vol.All(vol.Coerce(int), vol.Range(min=0, max=10)),
    vol.Optional("tool_timeout", default=10.0): _positive(),
    vol.Optional("volume_step", default=10): vol.All(vol.Coerce(int), vol.Range(min=1, max=50)),
    vol.Optional("default_language", default="en"): vol.In(["en", "zh"]),
    vol.Optional("max_timers", default=20): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
    vol.Optional("timer_poll_seconds", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0.05, max=60)),
    vol.Optional("timer_max_late_hours", default=12.0): _positive(),
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
    vol.Optional("languages", default=["en", "zh"]): vol.All(_str_list, vol.Length(min=1), lambda t: tuple(s.lower() for s in t)),
    vol.Optional("sentences_file", default=None): _opt_path,
    vol.Optional("replace_builtin", default=False): vol.Boolean(),
    vol.Optional("disabled", default=[]): _str_list,
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
    vol.Optional("retention_days", default=30.0): _non_negative(),
})


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    vad: VADSettings = field(default_factory=VADSettings)
    asr: ASRSettings = field(default_factory=ASRSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    tts: TTSSettings = field(default_factory=TTSSettings)
    fake: FakeSettings = field(default_factory=FakeSettings)
    ota: OTASettings = field(default_factory=OTASettings)
    mdns: MDNSSettings = field(default_factory=MDNSSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    intents: IntentSettings = field(default_factory=IntentSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    addon: AddonSettings = field(default_factory=AddonSettings)
    data_dir: str = "data"
    models_dir: str = "models/installed"
    log_level: str = "info"
    source: str | None = None        # the file this came from (for messages)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def replace(self, **sections: Any) -> "Settings":
        return dataclasses.replace(self, **sections)


_SECTIONS: dict[str, tuple[vol.Schema, type]] = {
    "server": (SERVER_SCHEMA, ServerSettings),
    "auth": (AUTH_SCHEMA, AuthSettings),
    "session": (SESSION_SCHEMA, SessionSettings),
    "audio": (AUDIO_SCHEMA, AudioSettings),
    "vad": (VAD_SCHEMA, VADSettings),
    "asr": (ASR_SCHEMA, ASRSettings),
    "llm": (LLM_SCHEMA, LLMSettings),
    "tts": (TTS_SCHEMA, TTSSettings),
    "fake": (FAKE_SCHEMA, FakeSettings),
    "ota": (OTA_SCHEMA, OTASettings),
    "mdns": (MDNS_SCHEMA, MDNSSettings),
    "agent": (AGENT_SCHEMA, AgentSettings),
    "intents": (INTENTS_SCHEMA, IntentSettings),
    "memory": (MEMORY_SCHEMA, MemorySettings),
    "wyoming": (WYOMING_SCHEMA, WyomingSettings),
    "addon": (ADDON_SCHEMA, AddonSettings),
}
_TOP_LEVEL = {
    "data_dir": vol.Coerce(str),
    "models_dir": vol.Coerce(str),
    "log_level": _log_level,
}

# Flat shortcuts shared by flags and environment variables.
SHORTCUTS = {
    "ws_port": ("server", "ws_port"),
    "http_port": ("server", "http_port"),
    "data_dir": (None, "data_dir"),
    "log_level": (None, "log_level"),
}


def section_names() -> tuple[str, ...]:
    """The sections hub.yaml accepts (a generator of hub.yaml writes only these)."""
    return tuple(_SECTIONS)


def _path_of(err: vol.Invalid, prefix: tuple[str, ...] = ()) -> str:
    parts = [*prefix, *(str(p) for p in err.path)]
    return ".".join(parts) or "(top level)"


def _one_line(err: vol.Invalid, prefix: tuple[str, ...] = ()) -> str:
    if isinstance(err, vol.MultipleInvalid):
        err = err.errors[0]
    msg = err.error_message or str(err)
    if msg == "extra keys not allowed":
        msg = "unknown key"
    return f"{_path_of(err, prefix)}: {msg}"


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Collect ``XIAOZHI_*`` variables into a nested override mapping."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("XIAOZHI_") or name == "XIAOZHI_CONFIG":
            continue
        key = name[len("XIAOZHI_"):].lower()
        value = _parse_scalar(raw)
        if "__" in key:
            section, sub = key.split("__", 1)
            out.setdefault(section, {})[sub] = value
        elif key in SHORTCUTS:
            section, sub = SHORTCUTS[key]
            if section is None:
                out[sub] = value
            else:
                out.setdefault(section, {})[sub] = value
        else:
            raise ConfigError(f"{name}: unknown setting (use XIAOZHI_<SECTION>__<KEY>)")
    return out


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def from_mapping(raw: Mapping[str, Any] | None, source: str | None = None) -> Settings:
    """Validate a raw mapping into :class:`Settings`; raises :class:`ConfigError`."""
    raw = dict(raw or {})
    kwargs: dict[str, Any] = {"source": source}
    for key, value in raw.items():
        if key in _SECTIONS:
            schema, cls = _SECTIONS[key]
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key}: must be a mapping of settings")
            try:
                kwargs[key] = cls(**schema(dict(value)))
            except vol.Invalid as err:
                raise ConfigError(_one_line(err, (key,))) from None
        elif key in _TOP_LEVEL:
            try:
                kwargs[key] = _TOP_LEVEL[key](value)
            except vol.Invalid as err:
                raise ConfigError(f"{key}: {err.error_message}") from None
        else:
            raise ConfigError(f"{key}: unknown key (known: {', '.join([*_SECTIONS, *_TOP_LEVEL])})")
    return Settings(**kwargs)


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if p.name == "config.yaml":
        raise ConfigError(f"{p}: the hub's file is hub.yaml (config.yaml belongs to the Home Assistant add-on loader)")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot read ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}:{where} not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: must be a mapping of sections (server:, asr:, ...)")
    return data


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None) -> Settings:
    """File, then environment, then explicit overrides (CLI flags)."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get("XIAOZHI_CONFIG")
    raw: dict[str, Any] = load_file(path) if path else {}
    raw = merge(raw, env_overrides(environ))
    if overrides:
        raw = merge(raw, overrides)
    return from_mapping(raw, source=str(path) if path else None)


def shortcut_overrides(**values: Any) -> dict[str, Any]:
    """Turn flat shortcut values (``ws_port=...``) into a nested override mapping; None is skipped."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        section, sub = SHORTCUTS[key]
        if section is None:
            out[sub] = value
        else:
            out.setdefault(section, {})[sub] = value
    return out
