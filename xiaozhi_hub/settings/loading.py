"""Loading settings: the root :class:`Settings`, and merging defaults, the YAML file, ``XIAOZHI_*``
environment variables and command-line flags into it (see :mod:`xiaozhi_hub.settings`)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import voluptuous as vol
import yaml

from .assistant import (AGENT_SCHEMA, ANNOUNCE_SCHEMA, INTENTS_SCHEMA, MEMORY_SCHEMA, SESSION_SCHEMA, AgentSettings,
                        AnnounceSettings, IntentSettings, MemorySettings, SessionSettings)
from .engines import (ASR_SCHEMA, AUDIO_SCHEMA, FAKE_SCHEMA, LLM_SCHEMA, TTS_SCHEMA, VAD_SCHEMA, VISION_SCHEMA,
                      ASRSettings, AudioSettings, FakeSettings, LLMSettings, TTSSettings, VADSettings, VisionSettings)
from .network import (AUTH_SCHEMA, MDNS_SCHEMA, OTA_SCHEMA, SERVER_SCHEMA, AuthSettings, MDNSSettings, OTASettings,
                      ServerSettings)
from .integrations import ADDON_SCHEMA, MQTT_SCHEMA, WYOMING_SCHEMA, AddonSettings, MqttSettings, WyomingSettings
from .device_transport import (DEVICE_MQTT_SCHEMA, DEVICES_SCHEMA, UDP_SCHEMA, DeviceMqttSettings, DevicesSettings,
                               UdpSettings)
from .validators import log_level


class ConfigError(ValueError):
    """A configuration problem, phrased as one line: ``<key>: <problem>``."""


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
    vision: VisionSettings = field(default_factory=VisionSettings)
    fake: FakeSettings = field(default_factory=FakeSettings)
    ota: OTASettings = field(default_factory=OTASettings)
    mdns: MDNSSettings = field(default_factory=MDNSSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    intents: IntentSettings = field(default_factory=IntentSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    announce: AnnounceSettings = field(default_factory=AnnounceSettings)
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    addon: AddonSettings = field(default_factory=AddonSettings)
    devices: DevicesSettings = field(default_factory=DevicesSettings)
    device_mqtt: DeviceMqttSettings = field(default_factory=DeviceMqttSettings)
    udp: UdpSettings = field(default_factory=UdpSettings)
    data_dir: str = "data"
    models_dir: str = "models/installed"
    log_level: str = "info"
    source: str | None = None        # the file this came from (for messages)
    # Where data_dir came from: "default", the file's path, "XIAOZHI_DATA_DIR" or "--data-dir".
    data_dir_origin: str = "default"
    # XIAOZHI_* variables in the environment that are not hub settings (ignored; see environment_notes).
    env_ignored: tuple[str, ...] = ()

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def replace(self, **sections: Any) -> "Settings":
        return dataclasses.replace(self, **sections)


SECTIONS: dict[str, tuple[vol.Schema, type]] = {
    "server": (SERVER_SCHEMA, ServerSettings),
    "auth": (AUTH_SCHEMA, AuthSettings),
    "session": (SESSION_SCHEMA, SessionSettings),
    "audio": (AUDIO_SCHEMA, AudioSettings),
    "vad": (VAD_SCHEMA, VADSettings),
    "asr": (ASR_SCHEMA, ASRSettings),
    "llm": (LLM_SCHEMA, LLMSettings),
    "tts": (TTS_SCHEMA, TTSSettings),
    "vision": (VISION_SCHEMA, VisionSettings),
    "fake": (FAKE_SCHEMA, FakeSettings),
    "ota": (OTA_SCHEMA, OTASettings),
    "mdns": (MDNS_SCHEMA, MDNSSettings),
    "agent": (AGENT_SCHEMA, AgentSettings),
    "intents": (INTENTS_SCHEMA, IntentSettings),
    "memory": (MEMORY_SCHEMA, MemorySettings),
    "announce": (ANNOUNCE_SCHEMA, AnnounceSettings),
    "wyoming": (WYOMING_SCHEMA, WyomingSettings),
    "mqtt": (MQTT_SCHEMA, MqttSettings),
    "addon": (ADDON_SCHEMA, AddonSettings),
    "devices": (DEVICES_SCHEMA, DevicesSettings),
    "device_mqtt": (DEVICE_MQTT_SCHEMA, DeviceMqttSettings),
    "udp": (UDP_SCHEMA, UdpSettings),
}
TOP_LEVEL: dict[str, Callable[[Any], Any]] = {
    "data_dir": vol.Coerce(str),
    "models_dir": vol.Coerce(str),
    "log_level": log_level,
}

# Flat shortcuts shared by flags and environment variables.
SHORTCUTS: dict[str, tuple[str | None, str]] = {
    "ws_port": ("server", "ws_port"),
    "http_port": ("server", "http_port"),
    "data_dir": (None, "data_dir"),
    "log_level": (None, "log_level"),
}


def section_names() -> tuple[str, ...]:
    """The sections hub.yaml accepts (a generator of hub.yaml writes only these)."""
    return tuple(SECTIONS)


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


@dataclass(frozen=True)
class EnvSettings:
    """What the ``XIAOZHI_*`` environment says: the overrides, and the names that are not hub settings."""

    overrides: dict[str, Any]
    ignored: tuple[str, ...]


def _env_target(key: str) -> tuple[str | None, str] | None:
    """(section or None for top level, key) for an environment name without its prefix; None if foreign."""
    if "__" in key:
        section, sub = key.split("__", 1)
        return (section, sub) if section in SECTIONS else None
    return SHORTCUTS.get(key)


def read_env(environ: Mapping[str, str]) -> EnvSettings:
    """Collect ``XIAOZHI_*`` variables into a nested override mapping.

    The prefix is shared: py-xiaozhi, a desktop client often run on the same machine, reads
    ``XIAOZHI_CACHE_DIR``, ``XIAOZHI_LOG_DIR``, ``XIAOZHI_DISABLE_AUDIO``, ... . A name that is
    neither a shortcut nor ``XIAOZHI_<SECTION>__<KEY>`` with a known section is therefore not an error:
    it is ignored and reported (:func:`environment_notes`). A known section's unknown key or bad
    value still stops the hub, as in hub.yaml: that name can only have been meant for the hub.
    """
    out: dict[str, Any] = {}
    ignored: list[str] = []
    for name, raw in environ.items():
        if not name.startswith("XIAOZHI_") or name == "XIAOZHI_CONFIG":
            continue
        target = _env_target(name[len("XIAOZHI_"):].lower())
        if target is None:
            ignored.append(name)
            continue
        section, sub = target
        value = _parse_scalar(raw)
        if section is None:
            out[sub] = value
        else:
            out.setdefault(section, {})[sub] = value
    return EnvSettings(out, tuple(sorted(ignored)))


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The nested override mapping of the ``XIAOZHI_*`` environment (foreign names left out)."""
    return read_env(environ).overrides


def environment_notes(settings: "Settings") -> list[str]:
    """What the command line warns about once at start: ignored variables, and a data folder set by a
    variable that py-xiaozhi reads too (README, Configuration reference)."""
    notes: list[str] = []
    if settings.env_ignored:
        notes.append(f"ignoring {', '.join(settings.env_ignored)}: not hub settings (other programs, such as "
                     "py-xiaozhi, use XIAOZHI_* variables too; the hub's are listed in the README)")
    if settings.data_dir_origin == "XIAOZHI_DATA_DIR" and (settings.env_ignored or settings.source):
        overriding = f", overriding {settings.source}" if settings.source else ""
        notes.append(f"data folder {settings.data_path.resolve()} is set by XIAOZHI_DATA_DIR{overriding}; "
                     "py-xiaozhi reads that variable for its own data: if it was set for py-xiaozhi, "
                     "start the hub with --data-dir")
    return notes


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
        if key in SECTIONS:
            schema, cls = SECTIONS[key]
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key}: must be a mapping of settings")
            try:
                kwargs[key] = cls(**schema(dict(value)))
            except vol.Invalid as err:
                raise ConfigError(_one_line(err, (key,))) from None
        elif key in TOP_LEVEL:
            try:
                kwargs[key] = TOP_LEVEL[key](value)
            except vol.Invalid as err:
                raise ConfigError(f"{key}: {err.error_message}") from None
        else:
            raise ConfigError(f"{key}: unknown key (known: {', '.join([*SECTIONS, *TOP_LEVEL])})")
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
    env = read_env(environ)
    origin = str(path) if "data_dir" in raw else "default"
    if "data_dir" in env.overrides:
        origin = "XIAOZHI_DATA_DIR"
    if overrides and "data_dir" in overrides:
        origin = "--data-dir"
    raw = merge(raw, env.overrides)
    if overrides:
        raw = merge(raw, overrides)
    settings = from_mapping(raw, source=str(path) if path else None)
    return dataclasses.replace(settings, data_dir_origin=origin, env_ignored=env.ignored)


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