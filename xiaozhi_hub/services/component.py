"""The Home Assistant component as the hub sees it: what it registered, the home it exposes, and
the calls the hub makes through it.

A component talks to the hub over the ``/api/events`` WebSocket (docs/api.md). Its messages:

- ``register`` ``{"mqtt_discovery": false, "conversation": true?}``: while such a component is
  connected, :attr:`ComponentLink.mqtt_discovery` is False (the MQTT bridge reads it and clears its
  discovery, so Home Assistant does not get every device twice); ``conversation`` asks the hub to try
  Home Assistant's conversation agent before its own (off unless asked for).
- ``home_entities`` ``{"entities": [...]}``: the entities exposed to Assist. They become the agent's
  home (``ctx.home_control``, :class:`ComponentHome`); only these are known, a command for any other
  entity is refused. Sent again whenever they change.
- ``home_result`` / ``conversation_result``: answers to the hub's ``home_call`` / ``conversation``.

A call that gets no answer within :data:`CALL_TIMEOUT` raises :class:`HomeControlError` (the agent
speaks a short failure); a component that disconnects fails its pending calls at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

from ..tools.home_assistant import HomeControl, HomeControlError, HomeEntity

log = logging.getLogger(__name__)

CALL_TIMEOUT = 8.0            # a home_call (the agent's tool timeout, 10 s by default, is the outer bound)
CONVERSATION_TIMEOUT = 5.0    # how long the hub waits for Home Assistant's conversation agent
MAX_ENTITIES = 2000
MAX_FIELD = 200
ACTIONS = ("turn_on", "turn_off", "set", "query")

Send = Callable[[Mapping[str, Any]], Awaitable[None]]


class ComponentMessageError(ValueError):
    """A component message that cannot be used; the text goes back to the component."""


@dataclass
class ComponentConn:
    """One connected component (one ``/api/events`` socket that sent something)."""

    send: Send
    name: str
    registered: bool = False
    mqtt_discovery: bool = True
    conversation: bool = False
    entities: tuple[HomeEntity, ...] = ()
    states: dict[str, str] = field(default_factory=dict)
    pending: dict[str, asyncio.Future[Mapping[str, Any]]] = field(default_factory=dict)


def _text(value: Any, what: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > MAX_FIELD:
        raise ComponentMessageError(f"{what} must be a string of at most {MAX_FIELD} characters")
    return value.strip()


def parse_entities(raw: Any) -> tuple[tuple[HomeEntity, ...], dict[str, str]]:
    """``home_entities.entities`` → entities and their last states; raises on a malformed list."""
    if not isinstance(raw, list) or len(raw) > MAX_ENTITIES:
        raise ComponentMessageError(f"entities must be a list of at most {MAX_ENTITIES} objects")
    entities: list[HomeEntity] = []
    states: dict[str, str] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ComponentMessageError(f"entities[{i}] must be an object")
        entity_id = _text(item.get("entity_id"), f"entities[{i}].entity_id")
        if "." not in entity_id:
            raise ComponentMessageError(f"entities[{i}].entity_id must look like light.kitchen")
        aliases = item.get("aliases") or []
        if not isinstance(aliases, list):
            raise ComponentMessageError(f"entities[{i}].aliases must be a list of strings")
        name = _text(item.get("name"), f"entities[{i}].name", required=False) or entity_id
        entities.append(HomeEntity(entity_id, name, tuple(_text(a, f"entities[{i}].aliases") for a in aliases)))
        state = item.get("state")
        if isinstance(state, str):
            states[entity_id] = state[:MAX_FIELD]
    return tuple(entities), states


class ComponentHome:
    """:class:`HomeControl` carried out by the connected component (its ``home_call``)."""

    def __init__(self, link: "ComponentLink", conn: ComponentConn) -> None:
        self.link = link
        self.conn = conn

    def entities(self) -> Sequence[HomeEntity]:
        return self.conn.entities

    def state_of(self, entity: HomeEntity) -> str | None:
        return self.conn.states.get(entity.entity_id)

    async def turn_on(self, entity: HomeEntity) -> str:
        return await self.link.home_call(self.conn, entity, "turn_on")

    async def turn_off(self, entity: HomeEntity) -> str:
        return await self.link.home_call(self.conn, entity, "turn_off")

    async def set_value(self, entity: HomeEntity, value: float, attribute: str | None = None) -> str:
        return await self.link.home_call(self.conn, entity, "set", value, attribute)

    async def query(self, entity: HomeEntity) -> str:
        return await self.link.home_call(self.conn, entity, "query")


class ComponentLink:
    def __init__(self, set_home: Callable[[HomeControl | None], None], call_timeout: float = CALL_TIMEOUT,
                 conversation_timeout: float = CONVERSATION_TIMEOUT) -> None:
        self._set_home = set_home
        self.call_timeout = call_timeout
        self.conversation_timeout = conversation_timeout
        self._conns: list[ComponentConn] = []
        self._home_conn: ComponentConn | None = None
        self._ids = itertools.count(1)
        # Called with the new value whenever mqtt_discovery changes (the MQTT bridge subscribes).
        self.discovery_listeners: list[Callable[[bool], None]] = []

    # -- connections ------------------------------------------------------------------------------------
    def attach(self, send: Send, name: str) -> ComponentConn:
        conn = ComponentConn(send, name)
        self._conns.append(conn)
        return conn

    def detach(self, conn: ComponentConn) -> None:
        before = self.mqtt_discovery
        if conn in self._conns:
            self._conns.remove(conn)
        for fut in conn.pending.values():
            if not fut.done():
                fut.set_exception(HomeControlError("Home Assistant disconnected"))
        conn.pending.clear()
        if self._home_conn is conn:
            self._home_conn = next((c for c in reversed(self._conns) if c.entities), None)
            self._set_home(ComponentHome(self, self._home_conn) if self._home_conn else None)
        self._discovery_changed(before)

    @property
    def connected(self) -> int:
        return len(self._conns)

    @property
    def mqtt_discovery(self) -> bool:
        """False while a connected component has asked the hub not to publish MQTT discovery."""
        return not any(c.registered and not c.mqtt_discovery for c in self._conns)

    @property
    def conversation_first(self) -> bool:
        return any(c.conversation for c in self._conns)

    def _discovery_changed(self, before: bool) -> None:
        now = self.mqtt_discovery
        if now != before:
            log.info("MQTT discovery %s by the Home Assistant component", "allowed" if now else "stopped")
            for listener in list(self.discovery_listeners):
                try:
                    listener(now)
                except Exception:
                    log.exception("MQTT discovery listener failed")

    # -- messages from the component ----------------------------------------------------------------------
    def handle(self, conn: ComponentConn, msg: Mapping[str, Any]) -> None:
        """Apply one message; raises :class:`ComponentMessageError` for a bad one (nothing changes then)."""
        kind = msg.get("type")
        if kind == "register":
            discovery, conversation = msg.get("mqtt_discovery", True), msg.get("conversation", False)
            if not isinstance(discovery, bool) or not isinstance(conversation, bool):
                raise ComponentMessageError("register: mqtt_discovery and conversation must be true or false")
            before = self.mqtt_discovery
            conn.registered, conn.mqtt_discovery, conn.conversation = True, discovery, conversation
            self._discovery_changed(before)
        elif kind == "home_entities":
            conn.entities, conn.states = parse_entities(msg.get("entities"))
            self._home_conn = conn
            self._set_home(ComponentHome(self, conn))
            log.info("Home Assistant exposes %d entities to the hub", len(conn.entities))
        elif kind in ("home_result", "conversation_result"):
            call_id = msg.get("call_id")
            fut = conn.pending.get(call_id) if isinstance(call_id, str) else None
            if fut is None:
                raise ComponentMessageError(f"{kind}: no call {call_id!r} is waiting for an answer")
            if not fut.done():
                fut.set_result(msg)
        else:
            raise ComponentMessageError(f"unknown message type {kind!r}")

    # -- calls from the hub ---------------------------------------------------------------------------------
    async def _call(self, conn: ComponentConn, message: dict[str, Any], timeout: float) -> Mapping[str, Any]:
        call_id = f"c{next(self._ids)}"
        fut: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        conn.pending[call_id] = fut
        try:
            async with asyncio.timeout(timeout):
                await conn.send({**message, "call_id": call_id})
                return await fut
        except TimeoutError:
            raise HomeControlError(f"Home Assistant did not answer within {timeout:g} s") from None
        except (ConnectionError, RuntimeError) as err:
            raise HomeControlError(f"Home Assistant is not reachable: {err}") from None
        finally:
            conn.pending.pop(call_id, None)

    async def home_call(self, conn: ComponentConn, entity: HomeEntity, action: str, value: float | None = None,
                        attribute: str | None = None) -> str:
        if action not in ACTIONS:
            raise HomeControlError(f"unknown action {action}")
        if conn not in self._conns or all(e.entity_id != entity.entity_id for e in conn.entities):
            raise HomeControlError(f"{entity.name} is not exposed to the assistant in Home Assistant")
        message: dict[str, Any] = {"type": "home_call", "entity_id": entity.entity_id, "action": action}
        if value is not None:
            message["value"] = value
        if attribute:
            message["attribute"] = attribute
        result = await self._call(conn, message, self.call_timeout)
        speech = result.get("speech")
        speech = speech if isinstance(speech, str) else ""
        if result.get("ok") is not True:
            raise HomeControlError(speech or f"Home Assistant could not {action.replace('_', ' ')} {entity.name}")
        return speech or "ok"

    async def converse(self, device_id: str, text: str, language: str) -> str | None:
        """Conversation-first: Home Assistant's answer to ``text``, or None (not handled, no component,
        no answer in time) so the hub's own assistant answers."""
        conn = next((c for c in reversed(self._conns) if c.conversation), None)
        if conn is None:
            return None
        try:
            result = await self._call(conn, {"type": "conversation", "text": text, "language": language,
                                             "device_id": device_id}, self.conversation_timeout)
        except HomeControlError as err:
            log.info("conversation-first skipped: %s", err)
            return None
        speech = result.get("speech")
        if result.get("handled") is True and isinstance(speech, str) and speech.strip():
            return speech.strip()
        return None
