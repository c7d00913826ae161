"""Built-in tools: time and date, timers and alarms, device volume, ending the conversation,
forgetting the conversation, home control through the Home Assistant hook, and the everyday
questions (arithmetic, unit conversions, dates: :mod:`.everyday`).

Each tool answers with ``data`` for the LLM and a short ``say`` sentence in the caller's language
(English or Chinese) that the intent path speaks as its confirmation. Device volume goes through the
device's own MCP tools (``self.audio_speaker.set_volume``, ``self.get_device_status``) or, on legacy
firmware, through the IoT ``Speaker`` thing, so the device stays the source of truth.

Volume tools are intent-only (``for_llm=False``): the LLM already sees the device's own
``self_audio_speaker_set_volume``, and two tools for one action confuse small models.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any, Mapping

from .everyday import everyday_tools
from .home_assistant import HomeControl, HomeControlError, NoHomeControl, find_entity
from .registry import Tool, ToolContext, ToolError, ToolRegistry, ToolResult, schema
from .spoken import format_clock, format_duration
from .timers import TimerLimitError

if TYPE_CHECKING:
    from .timers import TimerService

log = logging.getLogger(__name__)

MCP_SET_VOLUME = "self.audio_speaker.set_volume"
MCP_DEVICE_STATUS = "self.get_device_status"
IOT_SPEAKER = "Speaker"
DEFAULT_UNMUTE_VOLUME = 50

_WEEKDAYS_ZH = "一二三四五六日"


# ---------------------------------------------------------------------------- time and date


def _spoken_time(now: dt.datetime, lang: str) -> str:
    return format_clock(now.hour, now.minute, lang)


def _spoken_date(now: dt.datetime, lang: str) -> str:
    if lang == "zh":
        return f"{now.year}年{now.month}月{now.day}日，星期{_WEEKDAYS_ZH[now.weekday()]}"
    return f"{now:%A}, {now:%B} {now.day}, {now.year}"


async def get_time(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    now = tctx.env.now()
    data = {"time": now.strftime("%H:%M"), "date": now.date().isoformat(), "weekday": now.strftime("%A"),
            "timezone": now.strftime("%Z") or now.strftime("%z")}
    return ToolResult(data, tctx.pick(f"It's {_spoken_time(now, 'en')}.", f"现在是{_spoken_time(now, 'zh')}。"))


async def get_date(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    now = tctx.env.now()
    data = {"date": now.date().isoformat(), "weekday": now.strftime("%A")}
    return ToolResult(data, tctx.pick(f"Today is {_spoken_date(now, 'en')}.", f"今天是{_spoken_date(now, 'zh')}。"))


# ---------------------------------------------------------------------------- timers


def _timers(tctx: ToolContext) -> "TimerService":
    if tctx.env.timers is None:
        raise ToolError("timers are not available", tctx.pick("Sorry, timers are not available.", "抱歉，计时器不可用。"))
    return tctx.env.timers


def _limit_error(tctx: ToolContext) -> ToolError:
    return ToolError("too many timers", tctx.pick("You have too many timers already.", "计时器太多了。"))


async def set_timer(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    seconds = float(args.get("hours", 0)) * 3600 + float(args.get("minutes", 0)) * 60 + float(args.get("seconds", 0))
    if seconds < 1:
        raise ToolError("the duration must be at least one second",
                        tctx.pick("How long should the timer be?", "计时多长时间？"))
    if seconds > 7 * 86400:
        raise ToolError("timers are limited to one week", tctx.pick("That timer is too long.", "计时时间太长了。"))
    label = str(args.get("label", "")).strip()
    try:
        timer = await _timers(tctx).add_timer(tctx.link.device_id, seconds, label, tctx.lang)
    except TimerLimitError:
        raise _limit_error(tctx) from None
    d = format_duration(int(round(seconds)), tctx.lang)
    say = tctx.pick(f"Timer set for {d}." if not label else f"OK, I'll remind you to {label} in {d}.",
                    f"好的，{d}后提醒你{label}。" if label else f"好的，计时{d}。")
    return ToolResult({"ok": True, "timer_id": timer.id, "seconds": int(seconds), "label": label}, say)


def next_occurrence(now: dt.datetime, hour: int, minute: int, ambiguous: bool = False) -> dt.datetime:
    """The next moment after ``now`` at hour:minute; with ``ambiguous`` (no am/pm said, hour 1-12)
    the earlier of the morning and the evening time that is still ahead."""
    candidates = [hour % 24]
    if ambiguous and 1 <= hour <= 12:
        candidates = [hour % 12, hour % 12 + 12]
    best: dt.datetime | None = None
    for h in candidates:
        at = now.replace(hour=h, minute=minute, second=0, microsecond=0)
        if at <= now:
            at += dt.timedelta(days=1)
        if best is None or at < best:
            best = at
    assert best is not None
    return best


async def set_alarm(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    now = tctx.env.now()
    at = next_occurrence(now, int(args["hour"]), int(args.get("minute", 0)), bool(args.get("ambiguous", False)))
    label = str(args.get("label", "")).strip()
    try:
        timer = await _timers(tctx).add_alarm(tctx.link.device_id, at.timestamp(), label, tctx.lang)
    except TimerLimitError:
        raise _limit_error(tctx) from None
    when = format_clock(at.hour, at.minute, tctx.lang)
    tomorrow = at.date() != now.date()
    say = tctx.pick(f"Alarm set for {when}{' tomorrow' if tomorrow else ''}.",
                    f"好的，闹钟定在{'明天' if tomorrow else ''}{when}。")
    return ToolResult({"ok": True, "alarm_id": timer.id, "at": at.isoformat(timespec="minutes"), "label": label}, say)


async def cancel_timer(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    label = str(args.get("label", "")).strip() or None
    cancelled = await _timers(tctx).cancel(tctx.link.device_id, label=label, kind=args.get("kind"),
                                          all_=bool(args.get("all", False)))
    if not cancelled:
        return ToolResult({"ok": False, "cancelled": 0},
                          tctx.pick("There is no timer to cancel.", "没有可以取消的计时器。"))
    n = len(cancelled)
    if n == 1:
        what = "alarm" if cancelled[0].kind == "alarm" else "timer"
        say = tctx.pick(f"The {what} is cancelled.", "已取消闹钟。" if what == "alarm" else "已取消计时器。")
    else:
        say = tctx.pick(f"Cancelled {n} timers.", f"已取消{n}个计时器。")
    return ToolResult({"ok": True, "cancelled": n}, say)


async def list_timers(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    timers = await _timers(tctx).active(tctx.link.device_id)
    now = tctx.env.timers.clock() if tctx.env.timers else 0.0
    data = [{"id": t.id, "kind": t.kind, "label": t.label, "seconds_left": int(t.remaining(now))} for t in timers]
    if not timers:
        return ToolResult({"timers": data}, tctx.pick("You have no timers.", "你没有计时器。"))
    parts = [t.describe(tctx.lang, now) for t in timers[:4]]
    if tctx.lang == "zh":
        say = f"你有{len(timers)}个：" + "；".join(parts) + "。"
    else:
        head = "You have one: " if len(timers) == 1 else f"You have {len(timers)}: "
        say = head + "; ".join(parts) + "."
    return ToolResult({"timers": data}, say)


# ---------------------------------------------------------------------------- device volume


def _has_mcp_tool(tctx: ToolContext, name: str) -> bool:
    return any(t.name == name for t in tctx.link.device_tools())


def _iot_speaker(tctx: ToolContext) -> Mapping[str, Any] | None:
    return tctx.link.iot_descriptors.get(IOT_SPEAKER)


async def set_device_volume(tctx: ToolContext, volume: int) -> None:
    """Set the speaker volume through MCP, or the legacy IoT Speaker thing."""
    volume = max(0, min(100, int(volume)))
    link = tctx.link
    if not _has_mcp_tool(tctx, MCP_SET_VOLUME) and _iot_speaker(tctx) is not None:
        await link.send_iot_command([{"name": IOT_SPEAKER, "method": "SetVolume", "parameters": {"volume": volume}}])
        return
    try:
        await link.call_device_tool(MCP_SET_VOLUME, {"volume": volume})
    except Exception as err:
        raise ToolError(f"set_volume failed: {err}",
                        tctx.pick("Sorry, I couldn't change the volume.", "抱歉，没能调节音量。")) from err


async def get_device_volume(tctx: ToolContext) -> int:
    """The speaker volume the device reports (MCP status, else the IoT state)."""
    link = tctx.link
    if _has_mcp_tool(tctx, MCP_DEVICE_STATUS) or _iot_speaker(tctx) is None:
        try:
            status = json.loads(await link.call_device_tool(MCP_DEVICE_STATUS, {}))
            return int(status["audio_speaker"]["volume"])
        except Exception as err:
            if _iot_speaker(tctx) is None:
                raise ToolError(f"device status failed: {err}",
                                tctx.pick("Sorry, I couldn't read the volume.", "抱歉，没能读取音量。")) from err
    state = link.iot_states.get(IOT_SPEAKER, {})
    if "volume" in state:
        return int(state["volume"])
    raise ToolError("device reports no volume", tctx.pick("Sorry, I couldn't read the volume.", "抱歉，没能读取音量。"))


def _volume_said(tctx: ToolContext, volume: int) -> str:
    return tctx.pick(f"Volume set to {volume}.", f"音量已调到{volume}。")


async def set_volume(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    volume = int(args["volume"])
    await set_device_volume(tctx, volume)
    return ToolResult({"ok": True, "volume": volume}, _volume_said(tctx, volume))


async def change_volume(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    step = int(args.get("step") or tctx.env.settings.agent.volume_step)
    current = await get_device_volume(tctx)
    volume = max(0, min(100, current + step))
    if volume == current:
        edge = tctx.pick("The volume is already at maximum." if step > 0 else "The volume is already at minimum.",
                         "音量已经最大了。" if step > 0 else "音量已经最小了。")
        return ToolResult({"ok": True, "volume": volume}, edge)
    await set_device_volume(tctx, volume)
    return ToolResult({"ok": True, "volume": volume}, tctx.pick(f"Volume {volume}.", f"音量{volume}。"))


async def volume_up(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    return await change_volume(tctx, {"step": abs(int(args.get("step") or tctx.env.settings.agent.volume_step))})


async def volume_down(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    return await change_volume(tctx, {"step": -abs(int(args.get("step") or tctx.env.settings.agent.volume_step))})


async def mute(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    try:
        current = await get_device_volume(tctx)
        if current > 0:
            tctx.env.volume_before_mute[tctx.link.device_id] = current
    except ToolError:
        pass  # muting must work even when the status cannot be read
    await set_device_volume(tctx, 0)
    return ToolResult({"ok": True, "volume": 0}, tctx.pick("Muted.", "已静音。"))


async def unmute(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    volume = tctx.env.volume_before_mute.pop(tctx.link.device_id, DEFAULT_UNMUTE_VOLUME)
    await set_device_volume(tctx, volume)
    return ToolResult({"ok": True, "volume": volume}, tctx.pick(f"Unmuted, volume {volume}.", f"已取消静音，音量{volume}。"))


async def get_volume(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    volume = await get_device_volume(tctx)
    return ToolResult({"volume": volume}, tctx.pick(f"The volume is {volume}.", f"音量是{volume}。"))


# ---------------------------------------------------------------------------- conversation


async def end_conversation(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    tctx.link.end_conversation()
    return ToolResult({"ok": True, "ended": True}, tctx.pick("Goodbye!", "再见！"))


async def forget_conversation(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    memory = tctx.env.memory
    n = await memory.forget(tctx.link.device_id) if memory is not None else 0
    return ToolResult({"ok": True, "forgotten_messages": n},
                      tctx.pick("Okay, I've forgotten our conversation.", "好的，我已经忘记了我们的对话。"))


# ---------------------------------------------------------------------------- home


def _home(tctx: ToolContext) -> HomeControl:
    return tctx.env.home if tctx.env.home is not None else NoHomeControl()


async def home_control(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    home = _home(tctx)
    name = str(args["entity"])
    entity = find_entity(home, name)
    if entity is None:
        raise ToolError(f"unknown entity {name}", tctx.pick(f"I don't know a device called {name}.",
                                                            f"我不知道叫{name}的设备。"))
    action = args["action"]
    try:
        if action == "turn_on":
            status = await home.turn_on(entity)
            say = tctx.pick(f"Turned on the {entity.name}.", f"已打开{entity.name}。")
        elif action == "turn_off":
            status = await home.turn_off(entity)
            say = tctx.pick(f"Turned off the {entity.name}.", f"已关闭{entity.name}。")
        else:
            if args.get("value") is None:
                raise ToolError("set needs a value", tctx.pick("To what value?", "调到多少？"))
            value = float(args["value"])
            status = await home.set_value(entity, value, args.get("attribute"))
            shown = int(value) if value == int(value) else value
            say = tctx.pick(f"Set the {entity.name} to {shown}.", f"已把{entity.name}调到{shown}。")
    except HomeControlError as err:
        raise ToolError(str(err), tctx.pick(f"Sorry, I couldn't control the {entity.name}.",
                                            f"抱歉，没能控制{entity.name}。")) from err
    return ToolResult({"ok": True, "entity_id": entity.entity_id, "status": status}, say)


def home_tool(names: list[str]) -> Tool:
    """The LLM's home tool, its entity names listed so a small model picks a valid one."""
    return Tool("home_control", "Turn a home device on or off, or set its value (brightness %, temperature).",
                schema({"entity": {"type": "string", "description": "device name", "enum": names},
                        "action": {"type": "string", "enum": ["turn_on", "turn_off", "set"]},
                        "value": {"type": "number", "description": "for set: the new value"}},
                       ["entity", "action"]),
                home_control)


# ---------------------------------------------------------------------------- registry


def builtin_registry(default_timeout: float) -> ToolRegistry:
    """Every built-in tool (home_control is registered without an entity list; the agent offers
    the LLM a per-call copy with the current entity names)."""
    reg = ToolRegistry(default_timeout)
    add = reg.register
    add(Tool("get_time", "Get the current local time, date and weekday.", schema(), get_time))
    add(Tool("get_date", "Get today's date.", schema(), get_date, for_llm=False))
    add(Tool("set_timer", "Start a countdown timer; the device announces it when it ends. Give the duration "
             "in hours, minutes and/or seconds; label is an optional reminder text.",
             schema({"hours": {"type": "number", "minimum": 0}, "minutes": {"type": "number", "minimum": 0},
                     "seconds": {"type": "number", "minimum": 0}, "label": {"type": "string"}}),
             set_timer))
    add(Tool("set_alarm", "Set an alarm at a time of day (24-hour clock); the device announces it.",
             schema({"hour": {"type": "integer", "minimum": 0, "maximum": 23},
                     "minute": {"type": "integer", "minimum": 0, "maximum": 59},
                     "label": {"type": "string"}}, ["hour"]),
             set_alarm))
    add(Tool("cancel_timer", "Cancel a timer or alarm: the one with this label, all of them, or the next one.",
             schema({"label": {"type": "string"}, "all": {"type": "boolean"},
                     "kind": {"type": "string", "enum": ["timer", "alarm"]}}),
             cancel_timer))
    add(Tool("list_timers", "List the active timers and alarms with the time left.", schema(), list_timers))
    add(Tool("end_conversation", "End the conversation when the user says goodbye or wants to stop talking.",
             schema(), end_conversation))
    add(Tool("set_volume", "Set the speaker volume 0-100.",
             schema({"volume": {"type": "integer", "minimum": 0, "maximum": 100}}, ["volume"]), set_volume,
             for_llm=False))
    add(Tool("volume_up", "Make the speaker louder.", schema({"step": {"type": "integer", "minimum": 1}}),
             volume_up, for_llm=False))
    add(Tool("volume_down", "Make the speaker quieter.", schema({"step": {"type": "integer", "minimum": 1}}),
             volume_down, for_llm=False))
    add(Tool("mute", "Mute the speaker.", schema(), mute, for_llm=False))
    add(Tool("unmute", "Unmute the speaker.", schema(), unmute, for_llm=False))
    add(Tool("get_volume", "Read the speaker volume.", schema(), get_volume, for_llm=False))
    add(Tool("forget_conversation", "Delete the stored conversation with this device.", schema(),
             forget_conversation, for_llm=False))
    add(Tool("home_control", "Control a home device.",
             schema({"entity": {"type": "string"}, "action": {"type": "string", "enum": ["turn_on", "turn_off", "set"]},
                     "value": {"type": "number"}, "attribute": {"type": "string"}}, ["entity", "action"]),
             home_control, for_llm=False))
    for tool in everyday_tools():
        add(tool)
    return reg
