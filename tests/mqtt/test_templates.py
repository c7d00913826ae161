"""The templates in the discovery payloads, rendered the way Home Assistant's MQTT integration renders
a ``value_template``: Jinja's immutable sandbox, ``value`` (the payload) and ``value_json`` (it parsed),
a ``to_json`` filter; an empty result is ignored by the event entity. Rendered on the event topic's
real payloads (the event bus's JSON)."""

from __future__ import annotations

import json

import pytest

from xiaozhi_hub.mqtt.discovery import HA_EVENT_TYPES
from xiaozhi_hub.services.events import Event, EventType

from .test_discovery import _sample

jinja2_sandbox = pytest.importorskip("jinja2.sandbox")


def render(template: str, payload: str) -> str:
    env = jinja2_sandbox.ImmutableSandboxedEnvironment()
    env.filters["to_json"] = lambda v: json.dumps(v, ensure_ascii=False)
    try:
        value_json = json.loads(payload)
    except ValueError:
        value_json = None
    return env.from_string(template).render(value=payload, value_json=value_json).strip()


def components() -> dict:
    return _sample()[1]["components"]


@pytest.mark.parametrize("event, expected", [
    (Event(EventType.WAKE, "aa:bb:cc:dd:ee:01", {"text": "你好小智"}, 1.0, 1),
     {"event_type": "wake", "text": "你好小智", "status": "", "id": ""}),
    (Event(EventType.TURN_FINISHED, "aa:bb:cc:dd:ee:01", {"interrupted": False}, 1.0, 2),
     {"event_type": "turn_finished", "text": "", "status": "", "id": ""}),
    (Event(EventType.ANNOUNCEMENT, "aa:bb:cc:dd:ee:01", {"id": "l1", "status": "spoken", "text": "Done."}, 1.0, 3),
     {"event_type": "announcement", "text": "Done.", "status": "spoken", "id": "l1"}),
    (Event(EventType.STT, "aa:bb:cc:dd:ee:01", {"text": "hello"}, 1.0, 4), None),
    (Event(EventType.TOOL_CALL, "aa:bb:cc:dd:ee:01", {"name": "x", "arguments": {}, "ok": True}, 1.0, 5), None),
])
def test_the_event_entity_fires_its_types_and_ignores_the_rest(event: Event, expected) -> None:
    template = components()["events"]["value_template"]
    out = render(template, json.dumps(event.to_json()))
    if expected is None:
        assert out == ""                                      # HA ignores an empty rendering
    else:
        assert json.loads(out) == expected and expected["event_type"] in HA_EVENT_TYPES


def test_last_heard_and_reply_fit_a_sensor_state() -> None:
    for key in ("last_heard", "last_reply"):
        template = components()[key]["value_template"]
        assert render(template, "x" * 300) == "x" * 255          # HA refuses states over 255 characters
        assert render(template, "turn on the light") == "turn on the light"
        assert render(template, '{"looks": "like json"}') == '{"looks": "like json"}'


def test_every_template_renders_on_any_json() -> None:
    templates = [c["value_template"] for c in components().values() if "value_template" in c]
    assert len(templates) == 3
    for template in templates:
        for payload in ("{}", "[]", "null", "not json"):
            render(template, payload)                         # no error whatever arrives on the topic
