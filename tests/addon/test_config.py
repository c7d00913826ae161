"""addon/config.yaml and its neighbours, checked against the add-on schema the Supervisor applies
(keys and types of the manifest, the option-schema grammar, defaults valid for their schema) and
against the hub (every model list is the manifest's installable models; translations cover every
option and port; no other file in the repository looks like an add-on manifest)."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from xiaozhi_hub.addon_options import OPTIONS_SCHEMA, validate_options
from xiaozhi_hub.models import load_manifest

from .conftest import ADDON, ROOT

CONFIG = yaml.safe_load((ADDON / "config.yaml").read_text())
TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "version": str, "slug": str, "description": str, "url": str, "arch": list, "init": bool,
    "startup": str, "boot": str, "stage": str, "host_network": bool, "ports": dict, "ports_description": dict,
    "homeassistant_api": bool, "services": list, "discovery": list, "watchdog": str, "backup_exclude": list,
    "options": dict, "schema": dict,
}
REQUIRED = ("name", "version", "slug", "description", "arch")
# The option-schema grammar (Supervisor: str, bool, int(min,max), float(min,max), email, url, password,
# port, match(regex), list(a|b|c), device(filter); a trailing ? makes the option optional).
SCHEMA_TYPE = re.compile(r"^(str(\(\d*,\d*\))?|bool|email|url|password|port|device(\(.*\))?"
                         r"|int(\(-?\d*,-?\d*\))?|float(\(-?[\d.]*,-?[\d.]*\))?|match\(.+\)"
                         r"|list\([^|()]+(\|[^|()]+)*\))\??$")


def test_manifest_keys_have_the_types_the_supervisor_expects():
    for key in REQUIRED:
        assert key in CONFIG, key
    for key, value in CONFIG.items():
        assert key in TYPES, f"unexpected key {key}"
        assert isinstance(value, TYPES[key]), (key, value)
    assert re.fullmatch(r"[a-z0-9_]+", CONFIG["slug"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", CONFIG["version"])
    assert sorted(CONFIG["arch"]) == ["aarch64", "amd64"]          # 32-bit is gone from the Supervisor
    assert CONFIG["init"] is False                                   # s6-overlay v3 is PID 1
    assert CONFIG["startup"] in ("initialize", "system", "services", "application", "once")
    assert CONFIG["boot"] in ("auto", "manual")
    assert CONFIG["host_network"] is True and CONFIG["homeassistant_api"] is True
    assert CONFIG["ports"] == {"8000/tcp": 8000, "8003/tcp": 8003, "10300/tcp": 10300}
    assert set(CONFIG["ports_description"]) == set(CONFIG["ports"])
    assert CONFIG["services"] == ["mqtt:want"]
    assert CONFIG["discovery"] == ["xiaozhi", "wyoming"]
    assert re.fullmatch(r"tcp://\[HOST\]:\[PORT:8003\]", CONFIG["watchdog"])
    assert "models/*" in CONFIG["backup_exclude"]
    assert CONFIG["url"].startswith("https://")


def test_the_manifest_version_is_the_hubs_version():
    from xiaozhi_hub import __version__

    assert CONFIG["version"] == __version__


def _check_default(key: str, kind: str, value: Any) -> None:
    kind = kind.rstrip("?")
    if kind.startswith("list("):
        assert value in kind[5:-1].split("|"), (key, value)
    elif kind == "bool":
        assert isinstance(value, bool), key
    elif kind == "port":
        assert isinstance(value, int) and 1 <= value <= 65535, key
    elif kind.startswith(("str", "password")):
        assert isinstance(value, str), key
    else:
        raise AssertionError(f"{key}: no default check for {kind}")


def test_every_option_has_a_valid_schema_and_a_default_that_fits_it():
    options, schema = CONFIG["options"], CONFIG["schema"]
    assert set(options) <= set(schema)
    for key, kind in schema.items():
        assert isinstance(kind, str) and SCHEMA_TYPE.match(kind), (key, kind)
        if key in options:
            _check_default(key, kind, options[key])
        else:
            assert kind.endswith("?"), f"{key} has no default, so it must be optional"
    # And the hub's own validation of options.json knows exactly these keys.
    assert {str(k) for k in OPTIONS_SCHEMA.schema} == set(schema)
    validate_options(options)


@pytest.mark.parametrize("option,role", [("asr_model", "asr"), ("tts_voice", "tts"), ("llm_model", "llm")])
def test_model_lists_are_the_installable_models_of_the_manifest(option, role):
    manifest = load_manifest()
    installable = [m for m in manifest.ids(role) if manifest.get(m).verified]
    listed = CONFIG["schema"][option][5:-1].split("|")
    assert listed == installable
    assert CONFIG["options"][option] in [e.id for e in manifest.defaults()]


def test_translations_cover_every_option_and_port():
    tr = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())
    assert set(tr["configuration"]) == set(CONFIG["schema"])
    for key, entry in tr["configuration"].items():
        assert entry["name"] and entry["description"], key
    assert set(tr["network"]) == set(CONFIG["ports"])


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_the_add_on_folder_is_complete():
    for name in ("Dockerfile", "DOCS.md", "README.md", "CHANGELOG.md", "icon.png", "logo.png",
                 "rootfs/etc/s6-overlay/s6-rc.d/xiaozhi-hub/run", "rootfs/etc/s6-overlay/s6-rc.d/xiaozhi-hub/type",
                 "rootfs/etc/s6-overlay/s6-rc.d/user/contents.d/xiaozhi-hub"):
        assert (ADDON / name).exists(), name
    assert _png_size(ADDON / "icon.png") == (128, 128)
    assert _png_size(ADDON / "logo.png") == (250, 100)
    dockerfile = (ADDON / "Dockerfile").read_text()
    froms = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms == ["FROM ghcr.io/home-assistant/${BUILD_ARCH}-base-debian:bookworm"]   # explicit, no BUILD_FROM
    assert "make deps" in dockerfile and "io.hass.type" in dockerfile
    assert CONFIG["version"] in dockerfile                     # the default BUILD_VERSION label
    assert "docker build" in (ADDON / "DOCS.md").read_text()
    repo = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert repo["name"] and repo["url"].startswith("https://") and repo["maintainer"]


def test_no_other_file_in_the_repository_looks_like_an_add_on_manifest():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    candidates = [p for p in tracked if re.search(r"(^|/)config\.(json|ya?ml)$", p)
                  and not any(part.startswith(".") or part == "rootfs" for part in Path(p).parts[:-1])]
    assert candidates == ["addon/config.yaml"]
