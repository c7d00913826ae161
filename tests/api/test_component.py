"""The Home Assistant component's side of /api/events, played by a test WebSocket client: register
(MQTT discovery off while it is connected), home_entities → the hub's home, a spoken command carried
out through home_call/home_result, an entity it did not share refused in words, a call it does not
answer, bad messages, and conversation-first."""

from __future__ import annotations

import asyncio

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.services.component import ComponentLink
from xiaozhi_hub.simulator.device import DeviceState
from xiaozhi_hub.tools.home_assistant import HomeControlError, HomeEntity, NoHomeControl

from .conftest import Api, Events

SPEECH = pcmlib.voice_like(1200)
KITCHEN = {"entity_id": "light.kitchen", "name": "Kitchen light", "aliases": ["厨房灯"], "domain": "light",
           "state": "off", "area": "Kitchen"}
GARAGE = {"entity_id": "light.garage", "name": "Garage light", "aliases": [], "domain": "light", "state": "off"}


async def component(a: Api, *entities: dict, **register) -> Events:
    stream = await a.events()
    assert (await stream.next())["type"] == "hello"
    await stream.send({"type": "register", "mqtt_discovery": False, **register})
    if entities:
        await stream.send({"type": "home_entities", "entities": list(entities)})
    async with asyncio.timeout(5):
        while len(a.hub.ctx.home_control.entities()) != len(entities) or a.hub.ctx.component.mqtt_discovery:
            await asyncio.sleep(0.01)
    return stream


async def answer_home_calls(stream: Events, calls: list[dict], ok: bool = True) -> None:
    """Act as Home Assistant: answer each home_call (recording it)."""
    while True:
        msg = await stream.next(30)
        if msg["type"] == "home_call":
            calls.append(msg)
            await stream.send({"type": "home_result", "call_id": msg["call_id"], "ok": ok,
                               "speech": "Turned on the light" if ok else "That light is unavailable"})


async def spoken_turn(a: Api) -> str:
    """One spoken turn on a fresh simulated device; returns what the device was told (sentences joined)."""
    async with a.device() as dev:
        turn = await dev.run_turn(SPEECH, mode="manual")
        await dev.wait_state(DeviceState.IDLE)
        return " ".join(turn.sentences)


async def test_register_stops_mqtt_discovery_while_connected(api) -> None:
    a = await api()
    changes: list[bool] = []
    a.hub.ctx.component.discovery_listeners.append(changes.append)
    stream = await component(a)
    status, body = await a.call("GET", "/api/hub")
    assert body["mqtt_discovery"] is False and changes == [False]
    await stream.close()
    async with asyncio.timeout(5):
        while not a.hub.ctx.component.mqtt_discovery:
            await asyncio.sleep(0.01)
    assert changes == [False, True]
    assert (await a.call("GET", "/api/hub"))[1]["mqtt_discovery"] is True


async def test_a_spoken_command_switches_an_exposed_light_through_the_component(api) -> None:
    a = await api()                                        # fake ASR hears "turn on the kitchen light"
    stream = await component(a, KITCHEN, GARAGE)
    calls: list[dict] = []
    ha = asyncio.create_task(answer_home_calls(stream, calls))
    try:
        sentences = await spoken_turn(a)
    finally:
        ha.cancel()
    assert [(c["entity_id"], c["action"]) for c in calls] == [("light.kitchen", "turn_on")]
    assert sentences == "Turned on the Kitchen light."
    tool = [m for m in stream.messages if m["type"] == "tool_call"]
    assert tool[-1]["name"] == "home_control" and tool[-1]["ok"] is True
    await stream.close()


async def test_an_entity_home_assistant_did_not_share_is_refused_in_words(api) -> None:
    a = await api()
    stream = await component(a, GARAGE)                   # the kitchen light is not exposed
    calls: list[dict] = []
    ha = asyncio.create_task(answer_home_calls(stream, calls))
    try:
        sentences = await spoken_turn(a)
    finally:
        ha.cancel()
    assert calls == []                                     # nothing reached Home Assistant
    assert sentences == "I don't know a device called kitchen light."
    # And the home itself refuses an entity outside the list, whoever asks.
    home = a.hub.ctx.home_control
    try:
        await home.turn_on(HomeEntity("light.kitchen", "Kitchen light"))
    except HomeControlError as err:
        assert "not exposed" in str(err)
    else:
        raise AssertionError("an entity that was not shared must be refused")
    await stream.close()


async def test_a_failed_or_unanswered_call_is_a_spoken_failure(api) -> None:
    a = await api()
    a.hub.ctx.component.call_timeout = 0.5
    stream = await component(a, KITCHEN)
    assert await spoken_turn(a) == "Sorry, I couldn't control the Kitchen light."      # no answer at all
    calls: list[dict] = []
    ha = asyncio.create_task(answer_home_calls(stream, calls, ok=False))
    try:
        assert await spoken_turn(a) == "Sorry, I couldn't control the Kitchen light."   # ok: false
    finally:
        ha.cancel()
    assert [c["call_id"] for c in calls] == ["c1", "c2"]       # c1 was answered too late: nobody waits for it
    await stream.close()


async def test_the_home_goes_when_the_component_goes(api) -> None:
    a = await api()
    stream = await component(a, KITCHEN)
    assert [e.entity_id for e in a.hub.ctx.home_control.entities()] == ["light.kitchen"]
    await stream.close()
    async with asyncio.timeout(5):
        while not isinstance(a.hub.ctx.home_control, NoHomeControl):
            await asyncio.sleep(0.01)


async def test_bad_component_messages_are_answered_and_change_nothing(api) -> None:
    a = await api()
    stream = await component(a, KITCHEN)
    for bad in ("not json", "[1, 2]", '{"type": "launch"}', '{"type": "register", "mqtt_discovery": "no"}',
                '{"type": "home_entities", "entities": "all"}', '{"type": "home_entities", "entities": [{"name": 1}]}',
                '{"type": "home_result", "call_id": "c999", "ok": true}'):
        await stream.ws.send_str(bad)
        reply = await stream.until(lambda e: e["type"] == "error")
        assert reply["error"], bad
    await stream.ws.send_bytes(b"\x00\x01")
    assert (await stream.until(lambda e: e["type"] == "error"))["error"]
    assert [e.entity_id for e in a.hub.ctx.home_control.entities()] == ["light.kitchen"]
    assert a.hub.ctx.component.mqtt_discovery is False
    await stream.close()


async def test_conversation_first_lets_home_assistant_answer_and_falls_back(api) -> None:
    a = await api()
    stream = await component(a, conversation=True)
    seen: list[dict] = []

    async def ha() -> None:
        while True:
            msg = await stream.next(30)
            if msg["type"] == "conversation":
                seen.append(msg)
                handled = len(seen) == 1
                await stream.send({"type": "conversation_result", "call_id": msg["call_id"], "handled": handled,
                                   "speech": "The kitchen light is on." if handled else ""})

    task = asyncio.create_task(ha())
    try:
        assert await spoken_turn(a) == "The kitchen light is on."                 # Home Assistant's answer
        assert await spoken_turn(a) == "Okay. The kitchen light is on now."       # not handled: the hub's
    finally:
        task.cancel()
    assert [m["text"] for m in seen] == ["turn on the kitchen light"] * 2
    assert seen[0]["language"] == "en" and seen[0]["device_id"]
    await stream.close()


async def test_link_without_a_component() -> None:
    homes: list = []
    link = ComponentLink(homes.append)
    assert link.mqtt_discovery is True and not link.conversation_first
    assert await link.converse("d", "hello", "en") is None
