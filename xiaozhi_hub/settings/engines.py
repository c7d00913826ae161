"""Settings of the engines: ``audio``, ``vad``, ``asr``, ``llm``, ``tts``, ``vision`` and the deterministic ``fake``
providers.

Each section is a frozen dataclass plus a schema with the same keys and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import voluptuous as vol

from .validators import opt_path, opt_str, positive


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
    window_s: float = 10.0           # whisper: shortest encoder window (speech + 2 s when longer; 30 = always pad to 30 s)
    batch_max: int = 4               # whisper: utterances waiting at the same time are decoded in one pass, up to this many


ASR_SCHEMA = vol.Schema({
    vol.Optional("provider", default="whisper"): vol.In(["fake", "whisper", "vosk"]),
    vol.Optional("language", default="en"): vol.Coerce(str),
    vol.Optional("model", default=None): opt_path,
    vol.Optional("beam_size", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=10)),
    vol.Optional("threads", default=2): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    vol.Optional("show_partials", default=False): vol.Boolean(),
    vol.Optional("concurrency", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    vol.Optional("early_decode_ms", default=150): vol.All(vol.Coerce(int), vol.Range(min=0, max=5000)),
    vol.Optional("recognizer_pool", default=2): vol.All(vol.Coerce(int), vol.Range(min=0, max=64)),
    vol.Optional("recognizer_uses", default=100): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("window_s", default=10.0): vol.All(vol.Coerce(float), vol.Range(min=1, max=30)),
    vol.Optional("batch_max", default=4): vol.All(vol.Coerce(int), vol.Range(min=1, max=16)),
})


@dataclass(frozen=True)
class LLMSettings:
    provider: str = "llamacpp"       # fake | llamacpp | openai
    model: str | None = None         # manifest id or a .gguf path (llamacpp); model name (openai)
    base_url: str | None = None      # openai-compatible server, e.g. http://127.0.0.1:8080/v1
    api_key: str | None = field(default=None, repr=False)      # secrets stay out of reprs (and so out of logs)
    system_prompt: str = ("You are a helpful voice assistant in the home. Your answers are spoken aloud: "
                          "answer in one or two short sentences of plain language, without lists, markdown "
                          "or code. Tell a story or give a list only when asked.")
    # Whether the LLM is offered tools: auto = when the model can call them reliably (a remote server, a
    # GGUF whose chat template renders tools, like Qwen2.5; not SmolLM2-135M, whose intents carry them).
    tools: str = "auto"              # auto | on | off
    max_tokens: int = 160
    temperature: float = 0.6
    context_tokens: int = 2048
    # One thread: llama.cpp's threads meet at a spinning barrier after every operation, so whenever
    # ASR, TTS or another process takes a core, the other thread spins out its time slice. Measured
    # on 2 shared cores: 24 ms/token with 1 thread, 426 ms/token with 2 (bench/pipeline.py).
    threads: int = 1
    max_wait: float = 8.0            # longer than this in the queue -> spoken "busy" answer
    timeout: float = 60.0
    ready_wait: float = 60.0         # "ready" waits up to this long for the prompt-cache warm-up (0 = not at all)


def _tools_mode(value: object) -> str:
    """``auto`` | ``on`` | ``off``; YAML reads a bare on/off as a boolean, which means the same."""
    if isinstance(value, bool):
        return "on" if value else "off"
    mode = str(value).strip().lower()
    if mode not in ("auto", "on", "off"):
        raise vol.Invalid("must be auto, on or off")
    return mode


LLM_SCHEMA = vol.Schema({
    vol.Optional("provider", default="llamacpp"): vol.In(["fake", "llamacpp", "openai"]),
    vol.Optional("model", default=None): opt_path,
    vol.Optional("base_url", default=None): vol.Any(None, vol.Match(r"^https?://", msg="must start with http:// or https://")),
    vol.Optional("api_key", default=None): opt_str,
    vol.Optional("system_prompt", default=LLMSettings.system_prompt): vol.Coerce(str),
    vol.Optional("tools", default="auto"): _tools_mode,
    vol.Optional("max_tokens", default=160): vol.All(vol.Coerce(int), vol.Range(min=1, max=8192)),
    vol.Optional("temperature", default=0.6): vol.All(vol.Coerce(float), vol.Range(min=0, max=2)),
    vol.Optional("context_tokens", default=2048): vol.All(vol.Coerce(int), vol.Range(min=256)),
    vol.Optional("threads", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    vol.Optional("max_wait", default=8.0): positive(),
    vol.Optional("timeout", default=60.0): positive(),
    vol.Optional("ready_wait", default=60.0): vol.All(vol.Coerce(float), vol.Range(min=0, max=3600)),
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
    vol.Optional("voice", default=None): opt_path,
    vol.Optional("speaker", default=None): vol.Any(None, vol.Coerce(int)),
    vol.Optional("length_scale", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0.3, max=3)),
    vol.Optional("concurrency", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
})


@dataclass(frozen=True)
class VisionSettings:
    """The model that answers the device camera (an OpenAI-compatible chat endpoint taking images)."""

    base_url: str | None = None      # e.g. http://127.0.0.1:8080/v1 (llama-server, multimodal) or Ollama's /v1; None = off
    model: str | None = None         # required by Ollama (e.g. llava); llama-server serves one and ignores it
    api_key: str | None = field(default=None, repr=False)      # sent as a bearer token; never logged
    prompt: str = ("You look at photos for a voice assistant. Answer the question about the photo in one or "
                   "two short sentences of plain spoken language, without lists or markdown.")
    max_tokens: int = 200
    timeout: float = 60.0
    max_image_bytes: int = 4 * 1024 * 1024

    @property
    def configured(self) -> bool:
        return self.base_url is not None


VISION_SCHEMA = vol.Schema({
    vol.Optional("base_url", default=None): vol.Any(None, vol.Match(r"^https?://", msg="must start with http:// or https://")),
    vol.Optional("model", default=None): opt_str,
    vol.Optional("api_key", default=None): opt_str,
    vol.Optional("prompt", default=VisionSettings.prompt): vol.Coerce(str),
    vol.Optional("max_tokens", default=200): vol.All(vol.Coerce(int), vol.Range(min=1, max=8192)),
    vol.Optional("timeout", default=60.0): positive(),
    vol.Optional("max_image_bytes", default=4 * 1024 * 1024): vol.All(vol.Coerce(int), vol.Range(min=1024, max=64 * 1024 * 1024)),
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
    vol.Optional("asr_draft", default=None): opt_str,
    vol.Optional("llm_reply", default=FakeSettings.llm_reply): vol.Coerce(str),
    vol.Optional("llm_chunk_chars", default=6): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("llm_chunk_delay_ms", default=0): vol.All(vol.Coerce(int), vol.Range(min=0)),
    vol.Optional("llm_tool_call", default=None): opt_str,
    vol.Optional("tts_ms_per_char", default=60): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
    vol.Optional("tts_frequency", default=440): vol.All(vol.Coerce(int), vol.Range(min=50, max=8000)),
})
