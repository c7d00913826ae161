"""The ``info`` answer to ``describe``: the hub's loaded ASR model and TTS voice.

Built once when the server starts (the providers are loaded by then and never change while the hub
runs), so ``describe`` is answered from memory without touching an engine, however busy they are.

* ASR: one program with one model, the one ``asr.*`` selects; its languages are the configured
  ``asr.language`` or, for Whisper with ``language: auto``, every language Whisper knows. The Whisper
  provider decodes in the configured language whatever a request asks, so no other language is
  advertised. ``supports_transcript_streaming`` is the engine's own ``streaming`` flag (Vosk: true,
  Whisper: false).
* TTS: one program with the loaded voice; ``supports_synthesize_streaming`` is true (text chunks are
  split into sentences as they arrive and each sentence is spoken as soon as it is complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice

from ... import __version__
from ...models import DEFAULT_ASR_WHISPER, DEFAULT_TTS, VOSK_BY_LANGUAGE, load_manifest, looks_like_path

if TYPE_CHECKING:
    from ...providers.base import Providers
    from ...settings import Settings

# The programs are the hub's own; each model is attributed to its home (the manifest's homepage).
ATTRIBUTION = Attribution(name="xiaozhi-hub", url="")
ASR_PROGRAM = "xiaozhi-hub-asr"
TTS_PROGRAM = "xiaozhi-hub-tts"


@dataclass(frozen=True)
class Offer:
    """What this hub offers over Wyoming, in the terms requests are checked against."""

    info: Info
    asr_model: str
    asr_languages: tuple[str, ...]
    tts_voice: str
    tts_languages: tuple[str, ...]

    def asr_language_ok(self, language: str | None) -> bool:
        return language is None or _language_in(language, self.asr_languages)

    def tts_voice_ok(self, name: str | None, language: str | None) -> bool:
        if name is not None:
            return name == self.tts_voice
        return language is None or _language_in(language, self.tts_languages)


def _primary(language: str) -> str:
    return language.replace("_", "-").split("-")[0].lower()


def _language_in(language: str, offered: tuple[str, ...]) -> bool:
    """``en-US`` matches an offered ``en`` and the other way round (primary subtags compared)."""
    return _primary(language) in {_primary(o) for o in offered}


def _model_name(ref: str | None, default: str) -> str:
    if not ref:
        return default
    return Path(ref).stem if looks_like_path(ref) else ref


def _manifest_language(model_id: str) -> str | None:
    manifest = load_manifest()
    return manifest.get(model_id).language if model_id in manifest else None


def _attribution(model_id: str) -> Attribution:
    manifest = load_manifest()
    if model_id not in manifest:
        return ATTRIBUTION
    entry = manifest.get(model_id)
    return Attribution(name=f"{entry.id} ({entry.license})", url=entry.source.homepage or "")


def asr_offer(settings: "Settings") -> tuple[str, tuple[str, ...]]:
    """(model name, languages) of the configured ASR."""
    asr = settings.asr
    language = asr.language.strip()
    if asr.provider == "vosk":
        default = VOSK_BY_LANGUAGE.get(_primary(language or "en"), VOSK_BY_LANGUAGE["en"])
        name = _model_name(asr.model, default)
    elif asr.provider == "whisper":
        name = _model_name(asr.model, DEFAULT_ASR_WHISPER)
    else:
        name = asr.provider
    if language and language != "auto":
        return name, (language,)
    if asr.provider == "whisper":
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return name, tuple(_LANGUAGE_CODES)
    return name, (_manifest_language(name) or settings.agent.default_language,)


def tts_offer(settings: "Settings") -> tuple[str, tuple[str, ...]]:
    """(voice name, languages) of the configured TTS."""
    if settings.tts.provider != "piper":
        return settings.tts.provider, (settings.agent.default_language,)
    name = _model_name(settings.tts.voice, DEFAULT_TTS)
    return name, (_manifest_language(name) or settings.agent.default_language,)


def build_offer(settings: "Settings", providers: "Providers") -> Offer:
    asr_model, asr_languages = asr_offer(settings)
    tts_voice, tts_languages = tts_offer(settings)
    asr_engine, tts_engine = providers.asr.name, providers.tts.name
    info = Info(
        asr=[AsrProgram(
            name=ASR_PROGRAM, attribution=ATTRIBUTION, installed=True, version=__version__,
            description=f"xiaozhi-hub speech recognition ({asr_engine})",
            models=[AsrModel(name=asr_model, attribution=_attribution(asr_model), installed=True, version=None,
                             description=f"{asr_model} ({asr_engine})", languages=list(asr_languages))],
            supports_transcript_streaming=bool(providers.asr.streaming))],
        tts=[TtsProgram(
            name=TTS_PROGRAM, attribution=ATTRIBUTION, installed=True, version=__version__,
            description=f"xiaozhi-hub text to speech ({tts_engine})",
            voices=[TtsVoice(name=tts_voice, attribution=_attribution(tts_voice), installed=True, version=None,
                             description=f"{tts_voice} ({tts_engine})", languages=list(tts_languages))],
            supports_synthesize_streaming=True)],
    )
    return Offer(info=info, asr_model=asr_model, asr_languages=asr_languages,
                 tts_voice=tts_voice, tts_languages=tts_languages)
