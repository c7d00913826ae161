"""Configuration: ``hub.yaml`` validated with voluptuous into frozen settings.

Precedence, lowest first: built-in defaults < the YAML file < ``XIAOZHI_*`` environment variables
< command-line flags. Environment variables: the shortcuts ``XIAOZHI_WS_PORT``, ``XIAOZHI_HTTP_PORT``,
``XIAOZHI_DATA_DIR``, ``XIAOZHI_LOG_LEVEL``, ``XIAOZHI_CONFIG``, and any key as
``XIAOZHI_<SECTION>__<KEY>`` (for example ``XIAOZHI_SESSION__IDLE_TIMEOUT=300``); values are read as
YAML scalars, so ``true``, ``30`` and ``[a, b]`` work. Other ``XIAOZHI_*`` names (py-xiaozhi reads
several) are ignored with one warning at start, naming them.

A bad file raises :class:`ConfigError` with one line naming the key and the problem; the CLI exits 2.

The schema is written per section (:mod:`.network`: server, auth, ota, mdns; :mod:`.engines`: audio,
vad, asr, llm, tts, vision, fake; :mod:`.assistant`: session, agent, intents, memory, announce; :mod:`.integrations`:
wyoming, mqtt, addon; :mod:`.device_transport`: devices, device_mqtt, udp) with shared validators
(:mod:`.validators`); :mod:`.loading` holds the root :class:`Settings` and the file/env/CLI merging,
:mod:`.flags` the command-line flags every subcommand shares.
A new section is a dataclass and schema in the module of its concern plus one line in ``SECTIONS``.
"""

from __future__ import annotations

from .assistant import AgentSettings, AnnounceSettings, IntentSettings, MemorySettings, SessionSettings
from .device_transport import DeviceMqttSettings, DevicesSettings, UdpSettings
from .engines import ASRSettings, AudioSettings, FakeSettings, LLMSettings, TTSSettings, VADSettings, VisionSettings
from .flags import add_common_flags, settings_from_args
from .integrations import AddonSettings, MqttSettings, WyomingSettings
from .loading import (SECTIONS, SHORTCUTS, ConfigError, EnvSettings, Settings, env_overrides, environment_notes,
                      from_mapping, load, load_file, merge, read_env, section_names, shortcut_overrides)
from .network import DEFAULT_HTTP_PORT, DEFAULT_WS_PORT, WS_PATH, AuthSettings, MDNSSettings, OTASettings, ServerSettings
from .validators import LOG_LEVELS

__all__ = [
    "ASRSettings", "AddonSettings", "AgentSettings", "AnnounceSettings", "AudioSettings", "AuthSettings", "ConfigError",
    "DEFAULT_HTTP_PORT", "DEFAULT_WS_PORT", "DeviceMqttSettings", "DevicesSettings", "EnvSettings", "FakeSettings",
    "IntentSettings", "LLMSettings",
    "LOG_LEVELS", "MDNSSettings", "MemorySettings", "MqttSettings", "OTASettings", "SECTIONS", "SHORTCUTS", "ServerSettings",
    "SessionSettings", "Settings", "TTSSettings", "UdpSettings", "VADSettings", "VisionSettings", "WS_PATH", "WyomingSettings",
    "add_common_flags", "env_overrides", "environment_notes", "from_mapping", "load", "load_file", "merge",
    "read_env", "section_names", "settings_from_args", "shortcut_overrides",
]
