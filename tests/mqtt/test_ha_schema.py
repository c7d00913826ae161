"""The discovery payloads a hub really publishes for a simulator device (read from a real Mosquitto),
validated by Home Assistant's own MQTT schemas: the device schema, then each component as HA's
discovery hands it to its platform (tests/mqtt/ha_check.py, run with the Python of the Home Assistant
test venv that `make test-ha` builds; skipped, saying so, when it is not there).

That venv has Home Assistant 2025.4, which does not know ``default_entity_id`` yet (2025.10 added it
when it deprecated ``object_id``): it is the one key allowed to be dropped as unknown."""

from __future__ import annotations

import copy
import glob
import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import Watcher, device, known

CHECKER = Path(__file__).with_name("ha_check.py")
NEWER_THAN_THIS_HA = {"default_entity_id"}


def ha_python() -> str | None:
    explicit = os.environ.get("HA_TEST_PYTHON")
    if explicit:
        return explicit
    found = sorted(glob.glob(os.path.expanduser("~/.cache/xiaozhi-hub/ha-venv/*/bin/python")))
    return next((p for p in found if Path(p).parent.parent.joinpath(".complete").exists()), None)


def ha_check(items: list[tuple[str, dict]]) -> list[dict]:
    python = ha_python()
    if python is None:
        pytest.skip("no Home Assistant test venv (make ha-venv) to validate with HA's own schemas")
    proc = subprocess.run([python, str(CHECKER)], input=json.dumps(items), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


async def test_published_payloads_pass_home_assistants_own_schemas(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await watcher.until(lambda m: m.topic.endswith(f"_{dev.device_id.replace(':', '')}/config") and m.payload)
        await watcher.until(lambda m: m.topic.endswith(f"xiaozhi_hub_{hub.ctx.hub_id}/config") and m.payload)
    items = [(m.topic, m.json()) for m in watcher.messages if m.topic.endswith("/config") and m.payload]
    assert len(items) == 2
    results = ha_check(items)
    assert len(results) == sum(len(p["components"]) for _, p in items)
    for r in results:
        assert r["error"] is None, r
        assert set(r["dropped"]) <= NEWER_THAN_THIS_HA, r


def test_home_assistant_rejects_the_spoiled_ones() -> None:
    from .test_discovery import _sample
    topic, config = _sample()
    bad_max = copy.deepcopy(config)
    bad_max["components"]["volume"]["max"] = "loud"
    no_types = copy.deepcopy(config)
    del no_types["components"]["events"]["event_types"]
    bad_class = copy.deepcopy(config)
    bad_class["components"]["connectivity"]["device_class"] = "wifi-ish"
    misspelt = copy.deepcopy(config)
    misspelt["components"]["stop"]["payload_pres"] = "stop"
    no_origin = copy.deepcopy(config)
    del no_origin["origin"]
    results = ha_check([(topic, bad_max), (topic, no_types), (topic, bad_class), (topic, misspelt),
                        (topic, no_origin)])
    errors = {(r["component"], bool(r["error"])) for r in results}
    assert ("volume", True) in errors and ("events", True) in errors and ("connectivity", True) in errors
    assert any(r["component"] == "stop" and "payload_pres" in r["dropped"] for r in results)
    assert any(r["component"] is None and "origin" in r["error"] for r in results)
