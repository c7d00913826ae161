"""The Home Assistant hook: what the agent needs from "the home", with a no-op default.

The MQTT and Home Assistant issues fill this in (entities discovered over MQTT or the HA API). They
register an implementation with :func:`set_home_control` (the context's ``home_control`` field);
until then :class:`NoHomeControl` knows no entities, so home commands are not matched as intents and
the LLM is not offered a home tool — the request goes to the LLM as plain chat.

Entity names are matched after normalisation (case, punctuation, a leading "the"/"the …" and spaces
in Chinese), against the entity's name and its aliases, so "the Kitchen Light" finds "kitchen light"
and "客厅 灯" finds "客厅灯".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from ..context import HubContext


@dataclass(frozen=True)
class HomeEntity:
    entity_id: str                 # e.g. "light.kitchen"
    name: str                      # the name people say, e.g. "kitchen light"
    aliases: tuple[str, ...] = ()  # other names, any language ("厨房灯")

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]


class HomeControlError(Exception):
    """The home could not carry out a command (unreachable, unknown entity, refused)."""


@runtime_checkable
class HomeControl(Protocol):
    """Control of named home entities. Each call returns a short status text (or raises)."""

    def entities(self) -> Sequence[HomeEntity]: ...

    async def turn_on(self, entity: HomeEntity) -> str: ...

    async def turn_off(self, entity: HomeEntity) -> str: ...

    async def set_value(self, entity: HomeEntity, value: float, attribute: str | None = None) -> str:
        """Set the entity's main value (brightness %, temperature, position…)."""


class NoHomeControl:
    """The default: no home connected."""

    def entities(self) -> Sequence[HomeEntity]:
        return ()

    async def turn_on(self, entity: HomeEntity) -> str:
        raise HomeControlError("no home automation is connected")

    async def turn_off(self, entity: HomeEntity) -> str:
        raise HomeControlError("no home automation is connected")

    async def set_value(self, entity: HomeEntity, value: float, attribute: str | None = None) -> str:
        raise HomeControlError("no home automation is connected")


def home_control(ctx: "HubContext | None") -> HomeControl:
    """The home control in use, or the no-op default without a hub. Looked up on every use, so a
    bridge that connects after the agent was built is picked up without a restart."""
    return ctx.home_control if ctx is not None else NoHomeControl()


def set_home_control(ctx: "HubContext", control: HomeControl | None) -> None:
    """Register (or with None, remove) the home control the agent uses."""
    ctx.home_control = control if control is not None else NoHomeControl()


_LEADING = re.compile(r"^(?:the|my|our|all the)\s+")
_CJK = r"\u3400-\u9fff"


def normalize_name(name: str) -> str:
    """Lowercase, no punctuation, no leading article, no spaces next to Chinese characters."""
    s = re.sub(r"[^\w\s]", " ", name.lower())
    s = re.sub(r"\s+", " ", s).strip()
    s = _LEADING.sub("", s)
    s = re.sub(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])", "", s)
    s = s.removeprefix("把").removeprefix("将")
    return s


def find_entity(home: HomeControl, spoken: str) -> HomeEntity | None:
    """The entity whose name or alias is ``spoken`` (after normalisation), or None."""
    wanted = normalize_name(spoken)
    if not wanted:
        return None
    for entity in home.entities():
        for name in (entity.name, *entity.aliases, entity.entity_id):
            if normalize_name(name) == wanted:
                return entity
    return None


# Nouns of things a home automation switches; a name with one of these (or a word of a known entity)
# is taken for a home entity even when it is not known, so the command is refused in words.
_DEVICE_NOUNS = frozenset({"light", "lights", "lamp", "lamps", "fan", "switch", "plug", "socket", "heater",
                           "heating", "thermostat", "blind", "blinds", "curtain", "curtains", "shutter", "shutters",
                           "tv", "television", "door", "lock", "ac", "conditioner", "radiator", "kettle", "outlet"})
_ZH_DEVICE_NOUNS = ("灯", "风扇", "空调", "插座", "开关", "窗帘", "暖气", "电视", "门", "锁", "加湿器", "热水器")


def looks_like_home_entity(home: HomeControl, spoken: str) -> bool:
    """Whether ``spoken`` (an unknown name) names something like the home's entities: it shares a
    word with a known entity or its domain, or is a common device noun ("garage light", "卧室空调")."""
    wanted = normalize_name(spoken)
    if not wanted:
        return False
    if any(noun in wanted for noun in _ZH_DEVICE_NOUNS):
        return True
    words = set(wanted.split())
    if words & _DEVICE_NOUNS:
        return True
    known: set[str] = set()
    for entity in home.entities():
        known.add(entity.domain)
        for name in (entity.name, *entity.aliases):
            known.update(normalize_name(name).split())
    return bool(words & known)
