"""The integration's metadata as Home Assistant reads it: manifest, services.yaml, icons, translations
(en and zh-Hans with the same keys, every key the code uses present), hacs.json, brand icon."""

from __future__ import annotations

import json
from pathlib import Path
import re
import struct
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.icon import async_get_icons
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.helpers.translation import async_get_translations
from homeassistant.loader import async_get_custom_components
from homeassistant.setup import async_setup_component

from custom_components.xiaozhi.const import DOMAIN

COMPONENT = Path(__file__).resolve().parents[1] / "custom_components" / DOMAIN


def _keys(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return {prefix}
    return set().union(*(_keys(v, f"{prefix}.{k}" if prefix else k) for k, v in tree.items()))


def test_translations_have_the_same_keys_in_english_and_chinese() -> None:
    en = json.loads((COMPONENT / "translations" / "en.json").read_text())
    zh = json.loads((COMPONENT / "translations" / "zh-Hans.json").read_text())
    assert _keys(en) == _keys(zh)
    # Placeholders must match too, or a Chinese message would fail to format.
    flat_en = {k: v for k, v in _flatten(en)}
    for key, text in _flatten(zh):
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", flat_en[key])), key


def _flatten(tree: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(tree, str):
        return [(prefix, tree)]
    return [item for k, v in tree.items() for item in _flatten(v, f"{prefix}.{k}" if prefix else k)]


def test_every_translation_key_the_code_uses_exists() -> None:
    en = json.loads((COMPONENT / "translations" / "en.json").read_text())
    code = "\n".join(p.read_text() for p in COMPONENT.glob("*.py"))
    for key in set(re.findall(r'translation_key="(\w+)"', code)):
        assert key in en["exceptions"], key
    for key in set(re.findall(r'_attr_translation_key = "(\w+)"', code)):
        assert any(key in platform for platform in en["entity"].values()), key
    for reason in set(re.findall(r'reason="(\w+)"', code)):
        assert reason in en["config"]["abort"], reason
    for error in set(re.findall(r'\{"base": "(\w+)"\}', code)):
        assert error in en["config"]["error"], error
    for step in set(re.findall(r'step_id="(\w+)"', code)) - {"init"}:
        assert step in en["config"]["step"], step


async def test_home_assistant_loads_the_metadata(hass: HomeAssistant) -> None:
    integration = (await async_get_custom_components(hass))[DOMAIN]
    assert integration.config_flow and integration.iot_class == "local_push"
    assert integration.manifest["integration_type"] == "hub"
    assert integration.manifest["zeroconf"] == ["_xiaozhi._tcp.local."]
    assert await async_setup_component(hass, DOMAIN, {})
    descriptions = await async_get_all_descriptions(hass)
    say = descriptions[DOMAIN]["say"]
    assert set(say["fields"]) == {"message", "priority", "ttl"}
    assert say["name"] == "Say" and "target" in say
    icons = await async_get_icons(hass, "services", [DOMAIN])
    assert icons[DOMAIN]["say"]["service"] == "mdi:account-voice"
    entity_icons = await async_get_icons(hass, "entity", [DOMAIN])
    assert entity_icons[DOMAIN]["sensor"]["state"]["state"]["speaking"] == "mdi:account-voice"
    zh = await async_get_translations(hass, "zh-Hans", "entity", [DOMAIN])
    assert zh[f"component.{DOMAIN}.entity.sensor.state.name"] == "状态"


def test_hacs_and_brand() -> None:
    hacs = json.loads((COMPONENT.parents[1] / "hacs.json").read_text())
    assert hacs["name"] and hacs["homeassistant"] == "2025.4.0"
    manifest = json.loads((COMPONENT / "manifest.json").read_text())
    for key in ("domain", "name", "version", "documentation", "issue_tracker", "codeowners"):
        assert manifest[key], key
    assert list(manifest)[:2] == ["domain", "name"] and list(manifest)[2:] == sorted(list(manifest)[2:])
    png = (COMPONENT / "brand" / "icon.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (256, 256)
