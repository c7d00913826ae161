"""The hub's assistant controls Home Assistant through this bridge.

The hub learns the entities exposed to Assist (only those, with their names, aliases and areas) and
turns them into its intents and tools; when a device user says "turn on the kitchen light" the hub
sends ``home_call`` and the bridge carries it out with Home Assistant's own services, answering
``home_result`` with a sentence to speak. A call for an entity that is not exposed is refused, even
if the hub asks for it. With the conversation-first option, the hub first offers the text to Home
Assistant's conversation agent (``conversation``) and falls back to its own assistant when Home
Assistant did not understand it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import logging
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import (
    async_listen_entity_updates,
    async_should_expose,
)
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Context, Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.components import conversation
from homeassistant.helpers import area_registry as ar, device_registry as dr, entity_registry as er, intent
from homeassistant.helpers.event import async_call_later

from .const import CONF_CONVERSATION_FIRST, CONF_HOME_CONTROL
from .home_actions import async_execute, entity_name
from .hub import XiaozhiHub

_LOGGER = logging.getLogger(__name__)

ASSISTANT = "conversation"      # the "Assist" exposure settings
RESEND_DELAY = 1.0              # seconds: changes are batched into one home_entities message
MAX_ENTITIES = 1000             # a hub with a small model needs a short list anyway


class HomeBridge:
    """Exposed entities → hub; hub calls → Home Assistant services."""

    def __init__(self, hass: HomeAssistant, hub: XiaozhiHub) -> None:
        self.hass = hass
        self.hub = hub
        self._unsubs: list[Callable[[], None]] = []
        self._resend: Callable[[], None] | None = None
        self._exposed: frozenset[str] = frozenset()
        self._warned_cap = False
        self.sent: list[str] = []       # entity ids of the last home_entities the hub received

    @property
    def enabled(self) -> bool:
        return self.hub.option(CONF_HOME_CONTROL)

    @callback
    def async_start(self) -> None:
        hub = self.hub
        hub.async_set_message_handler("home_call", self._on_home_call)
        hub.async_set_message_handler("conversation", self._on_conversation)
        self._unsubs.append(hub.async_add_connection_listener(self._on_connection))
        if not self.enabled:
            return
        self._unsubs.append(async_listen_entity_updates(self.hass, ASSISTANT, self._schedule_resend))
        self._unsubs.append(self.hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, self._on_registry))
        self._unsubs.append(self.hass.bus.async_listen(EVENT_STATE_CHANGED, self._on_state_changed))

    @callback
    def async_stop(self) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        if self._resend is not None:
            self._resend()
            self._resend = None

    # -- exposed entities → hub ------------------------------------------------------------------
    @callback
    def exposed_entities(self) -> list[dict[str, Any]]:
        """Every entity exposed to Assist, as the hub wants it (docs/api.md, home_entities)."""
        if not self.enabled:
            return []
        ent_reg, dev_reg, area_reg = er.async_get(self.hass), dr.async_get(self.hass), ar.async_get(self.hass)
        out: list[dict[str, Any]] = []
        for state in self.hass.states.async_all():
            if not async_should_expose(self.hass, ASSISTANT, state.entity_id):
                continue
            out.append(_describe(state, ent_reg.async_get(state.entity_id), dev_reg, area_reg))
            if len(out) >= MAX_ENTITIES:
                if not self._warned_cap:
                    _LOGGER.warning("More than %d entities are exposed to Assist; the hub gets the first %d",
                                    MAX_ENTITIES, MAX_ENTITIES)
                    self._warned_cap = True
                break
        self._exposed = frozenset(e["entity_id"] for e in out)
        return out

    async def async_send_entities(self) -> None:
        entities = self.exposed_entities()
        if await self.hub.async_send({"type": "home_entities", "entities": entities}):
            self.sent = [e["entity_id"] for e in entities]

    @callback
    def _on_connection(self) -> None:
        if self.hub.connected:
            self.hub.entry.async_create_background_task(
                self.hass, self.async_send_entities(), "xiaozhi home entities")

    @callback
    def _schedule_resend(self, *_: Any) -> None:
        if self._resend is not None or not self.hub.connected:
            return

        @callback
        def fire(_now: Any) -> None:
            self._resend = None
            self.hub.entry.async_create_background_task(
                self.hass, self.async_send_entities(), "xiaozhi home entities")

        self._resend = async_call_later(self.hass, RESEND_DELAY, fire)

    @callback
    def _on_registry(self, event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        self._schedule_resend()

    @callback
    def _on_state_changed(self, event: Event[EventStateChangedData]) -> None:
        data = event.data
        old, new = data["old_state"], data["new_state"]
        if old is None or new is None:          # an entity appeared or went away
            self._schedule_resend()
        elif data["entity_id"] in self._exposed and (old.state, old.name) != (new.state, new.name):
            self._schedule_resend()

    # -- hub → Home Assistant --------------------------------------------------------------------
    @callback
    def _on_home_call(self, msg: dict[str, Any]) -> None:
        self.hub.entry.async_create_background_task(self.hass, self._answer_home_call(msg), "xiaozhi home_call")

    async def _answer_home_call(self, msg: dict[str, Any]) -> None:
        result = await self.async_handle_home_call(msg)
        await self.hub.async_send({"type": "home_result", "call_id": msg.get("call_id"), **result})

    async def async_handle_home_call(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Carry out one ``home_call``; returns ``{"ok": bool, "speech": str}``."""
        entity_id = msg.get("entity_id")
        if not self.enabled:
            return {"ok": False, "speech": "Home control is switched off in Home Assistant."}
        if not isinstance(entity_id, str) or not entity_id:
            return {"ok": False, "speech": "The command did not say which device to control."}
        if (state := self.hass.states.get(entity_id)) is None:
            return {"ok": False, "speech": f"I don't know a device called {entity_id}."}
        if not async_should_expose(self.hass, ASSISTANT, entity_id):
            _LOGGER.warning("Refused a command for %s: it is not exposed to Assist", entity_id)
            return {"ok": False, "speech": f"Sorry, {entity_name(state)} is not exposed to the voice "
                                           "assistant, so I can't control it."}
        return await async_execute(self.hass, state, msg, Context())

    @callback
    def _on_conversation(self, msg: dict[str, Any]) -> None:
        self.hub.entry.async_create_background_task(self.hass, self._answer_conversation(msg),
                                                    "xiaozhi conversation")

    async def _answer_conversation(self, msg: dict[str, Any]) -> None:
        result = await self.async_handle_conversation(msg)
        await self.hub.async_send({"type": "conversation_result", "call_id": msg.get("call_id"), **result})

    async def async_handle_conversation(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Let Home Assistant's agent try ``text``; ``handled`` is False when it did not understand."""
        text = msg.get("text")
        if not self.hub.option(CONF_CONVERSATION_FIRST) or not self.enabled or not isinstance(text, str):
            return {"handled": False, "speech": ""}

        raw_device = msg.get("device_id")
        ha_device = self.hub.ha_device_id(raw_device) if isinstance(raw_device, str) else None
        language = msg.get("language") if isinstance(msg.get("language"), str) else None
        try:
            async with asyncio.timeout(30):
                result = await conversation.async_converse(
                    self.hass, text, None, Context(), language=language, device_id=ha_device)
        except Exception as err:  # any agent failure means "not handled": the hub answers
            _LOGGER.debug("Conversation agent failed on %r: %s", text, err)
            return {"handled": False, "speech": ""}
        response = result.response
        speech = response.speech.get("plain", {}).get("speech", "") if response.speech else ""
        handled = response.response_type in (intent.IntentResponseType.ACTION_DONE,
                                             intent.IntentResponseType.QUERY_ANSWER)
        return {"handled": handled, "speech": speech}


def _describe(state: State, entry: er.RegistryEntry | None, dev_reg: dr.DeviceRegistry,
              area_reg: ar.AreaRegistry) -> dict[str, Any]:
    aliases: list[str] = sorted(a for a in (entry.aliases if entry else ()) if a)
    area_id = entry.area_id if entry else None
    if area_id is None and entry is not None and entry.device_id:
        device = dev_reg.async_get(entry.device_id)
        area_id = device.area_id if device else None
    area = area_reg.async_get_area(area_id) if area_id else None
    return {"entity_id": state.entity_id, "name": entity_name(state), "aliases": aliases,
            "domain": state.domain, "state": state.state, "area": area.name if area else None}
