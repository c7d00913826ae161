"""The add-on's options (``/data/options.json``, schema in addon/config.yaml) → the hub's ``hub.yaml``.

Run by the add-on's start script before the hub::

    python -m xiaozhi_hub.addon_options --options /data/options.json --output /data/hub.yaml [--print-models]

* ``language`` → ``asr.language`` and ``agent.default_language``;
* ``asr_model`` / ``tts_voice`` / ``llm_model`` (manifest ids) → ``asr``/``tts``/``llm`` ``.model`` or
  ``.voice`` and the provider the manifest names for that model (engine);
* ``log_level`` → ``log_level``; ``wyoming`` → ``wyoming.enabled``; ``ota_activation`` → ``ota.activation``;
* ``mqtt_host``/``mqtt_port``/``mqtt_username``/``mqtt_password``/``mqtt_tls`` → ``mqtt.*``; when no
  host is set and the Supervisor offers an MQTT service (``services: mqtt:want``), its broker and
  credentials are used. Written only when this hub has an ``mqtt`` section (the MQTT bridge);
  otherwise the start log says the options are unused;
* always: ``data_dir`` /data, ``models_dir`` /data/models (so models survive add-on updates), the
  ports the add-on publishes (8000, 8003, 10300), and ``addon.supervisor_url``.

The written file is validated with the hub's own settings loader before it replaces the old one; a bad
option exits 2 with one line naming it (the add-on log shows it). The file holds the broker password,
so it is written with mode 0600 inside the add-on's private /data. ``--print-models`` prints the model
ids to install, one a line, for the start script's ``xiaozhi-hub models install``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import voluptuous as vol
import yaml

from .models import load_manifest
from .settings import LOG_LEVELS, ConfigError, from_mapping, section_names
from .supervisor import MqttService, SupervisorClient, SupervisorError, supervisor_token

LANGUAGES = ("en", "zh", "auto")
PORTS = {"ws_port": 8000, "http_port": 8003, "wyoming": 10300}


def _manifest_id(role: str) -> vol.All:
    def check(value: Any) -> str:
        manifest = load_manifest()
        if value not in manifest.ids(role):
            raise vol.Invalid(f"must be one of {', '.join(manifest.ids(role))}")
        return str(value)
    return vol.All(vol.Coerce(str), check)


_empty_is_none = vol.Any(None, vol.All(vol.Coerce(str), lambda s: s.strip() or None))

OPTIONS_SCHEMA = vol.Schema({
    vol.Required("language"): vol.In(LANGUAGES),
    vol.Required("asr_model"): _manifest_id("asr"),
    vol.Required("tts_voice"): _manifest_id("tts"),
    vol.Required("llm_model"): _manifest_id("llm"),
    vol.Required("log_level"): vol.In(LOG_LEVELS),
    vol.Required("wyoming"): bool,
    vol.Optional("ota_activation", default=False): bool,
    vol.Optional("mqtt_host", default=None): _empty_is_none,
    vol.Optional("mqtt_port", default=None): vol.Any(None, vol.All(int, vol.Range(min=1, max=65535))),
    vol.Optional("mqtt_username", default=None): _empty_is_none,
    vol.Optional("mqtt_password", default=None): _empty_is_none,
    vol.Optional("mqtt_tls", default=None): vol.Any(None, bool),
})


def validate_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return OPTIONS_SCHEMA(dict(raw))
    except vol.MultipleInvalid as err:
        first = err.errors[0]
        key = ".".join(str(p) for p in first.path) or "(options)"
        msg = "unknown option" if first.error_message == "extra keys not allowed" else first.error_message
        raise ConfigError(f"add-on option {key}: {msg}") from None


def _mqtt(options: Mapping[str, Any], service: MqttService | None) -> dict[str, Any] | None:
    if options["mqtt_host"]:
        out: dict[str, Any] = {"host": options["mqtt_host"], "port": options["mqtt_port"] or 1883,
                               "username": options["mqtt_username"], "password": options["mqtt_password"],
                               "tls": bool(options["mqtt_tls"])}
    elif service is not None:
        out = {"host": service.host, "port": service.port, "username": service.username,
               "password": service.password, "tls": service.ssl}
    else:
        return None
    return {k: v for k, v in out.items() if v is not None}


def options_to_config(options: Mapping[str, Any], *, data_dir: str = "/data", mqtt: MqttService | None = None,
                      supervisor_url: str = "http://supervisor") -> dict[str, Any]:
    """The hub.yaml mapping for validated ``options``."""
    manifest = load_manifest()
    language = options["language"]
    config: dict[str, Any] = {
        "data_dir": data_dir,
        "models_dir": str(Path(data_dir) / "models"),
        "log_level": options["log_level"],
        "server": {"host": "0.0.0.0", "ws_port": PORTS["ws_port"], "http_port": PORTS["http_port"]},
        "asr": {"provider": manifest.get(options["asr_model"]).engine, "model": options["asr_model"],
                "language": language},
        "tts": {"provider": manifest.get(options["tts_voice"]).engine, "voice": options["tts_voice"]},
        "llm": {"provider": manifest.get(options["llm_model"]).engine, "model": options["llm_model"]},
        "agent": {"default_language": language if language in ("en", "zh") else "en"},
        "ota": {"activation": options["ota_activation"]},
        "wyoming": {"enabled": options["wyoming"], "port": PORTS["wyoming"]},
        "addon": {"supervisor_url": supervisor_url},
    }
    broker = _mqtt(options, mqtt)
    if broker is not None and "mqtt" in section_names():
        config["mqtt"] = broker
    return config


def model_ids(options: Mapping[str, Any]) -> list[str]:
    return [options["asr_model"], options["tts_voice"], options["llm_model"]]


def _log(message: str) -> None:
    print(f"xiaozhi-hub add-on: {message}", file=sys.stderr, flush=True)


async def lookup_mqtt(options: Mapping[str, Any], supervisor_url: str) -> MqttService | None:
    """The Supervisor's broker when the user set none (and the hub runs inside the add-on)."""
    token = supervisor_token()
    if options["mqtt_host"] or token is None:
        return None
    try:
        async with SupervisorClient(supervisor_url, token) as client:
            service = await client.mqtt_service()
    except SupervisorError as err:
        _log(f"MQTT broker lookup failed: {err}")
        return None
    _log(f"MQTT broker from the Supervisor: {service.describe()}" if service else
         "no MQTT broker offered by the Supervisor (install the Mosquitto add-on, or set mqtt_host)")
    return service


def write_config(config: Mapping[str, Any], output: Path) -> None:
    from_mapping(config)          # the hub's own validation: never write a file the hub would refuse
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# Written by the add-on from /data/options.json at every start; edit the add-on's options instead.\n")
        yaml.safe_dump(dict(config), f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, output)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xiaozhi_hub.addon_options",
                                     description="Map the add-on's options.json to the hub's hub.yaml.")
    parser.add_argument("--options", default="/data/options.json", help="the Supervisor's options file")
    parser.add_argument("--output", default="/data/hub.yaml", help="hub.yaml to write")
    parser.add_argument("--data-dir", default=None, help="the add-on's data folder (default: the output's folder)")
    parser.add_argument("--supervisor-url", default="http://supervisor")
    parser.add_argument("--print-models", action="store_true", help="print the model ids to install")
    args = parser.parse_args(argv)
    output = Path(args.output)
    try:
        try:
            raw = json.loads(Path(args.options).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{args.options}: cannot read the add-on options ({err})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{args.options}: must be a JSON object")
        options = validate_options(raw)
        mqtt = asyncio.run(lookup_mqtt(options, args.supervisor_url))
        config = options_to_config(options, data_dir=args.data_dir or str(output.parent), mqtt=mqtt,
                                   supervisor_url=args.supervisor_url)
        if (options["mqtt_host"] or mqtt) and "mqtt" not in config:
            _log("this hub version has no MQTT bridge yet; the MQTT settings are not used")
        write_config(config, output)
    except ConfigError as err:
        print(f"xiaozhi-hub add-on: configuration error: {err}", file=sys.stderr)
        return 2
    if args.print_models:
        print("\n".join(model_ids(options)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
