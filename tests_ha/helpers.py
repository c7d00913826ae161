"""Small helpers: find a device's entities, wait for a state (event-driven, no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import time

from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.xiaozhi.const import DOMAIN

KEYS = {
    "assist_satellite": "satellite", "notify": "speak", "number": "volume", "button": "stop",
    "event": "voice", "binary_sensor": "connectivity",
}


def entity_id(hass: HomeAssistant, platform: str, device_id: str, key: str | None = None) -> str | None:
    """The entity id of ``key`` (default: the platform's only entity) of a hub device."""
    return er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{device_id}-{key or KEYS[platform]}")


async def wait_for_entity(hass: HomeAssistant, platform: str, device_id: str, key: str | None = None,
                          timeout: float = 30.0) -> str:
    """Wait until the entity exists in the registry (entities are added when a device first appears)."""
    async with asyncio.timeout(timeout):
        while (eid := entity_id(hass, platform, device_id, key)) is None or hass.states.get(eid) is None:
            await _next_registry_change(hass)
    return eid


async def _next_registry_change(hass: HomeAssistant) -> None:
    changed = asyncio.Event()

    @callback
    def on_change(_event: Event) -> None:
        changed.set()

    unsub = hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, on_change)
    unsub_states = hass.bus.async_listen("state_changed", on_change)
    try:
        await changed.wait()
    finally:
        unsub()
        unsub_states()


async def wait_state(hass: HomeAssistant, eid: str, pred: Callable[[State], bool],
                     timeout: float = 30.0) -> tuple[State, float]:
    """Wait until ``pred(state)``; returns the state and the ``time.monotonic()`` it was seen."""
    state = hass.states.get(eid)
    if state is not None and pred(state):
        return state, time.monotonic()
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[State, float]] = loop.create_future()

    @callback
    def on_change(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and pred(new) and not fut.done():
            fut.set_result((new, time.monotonic()))

    unsub = async_track_state_change_event(hass, [eid], on_change)
    try:
        return await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        raise AssertionError(f"{eid} never matched; last state {hass.states.get(eid)}") from None
    finally:
        unsub()


def state_is(value: str) -> Callable[[State], bool]:
    return lambda s: s.state == value
