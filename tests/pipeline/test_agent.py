"""The Agent with a scripted device link and LLM: intent path, LLM tool loop, errors, depth, IoT,
cancellation, memory in the prompt."""

from __future__ import annotations

import asyncio
import json

import pytest

from xiaozhi_hub.pipeline.agent import Agent
from xiaozhi_hub.pipeline.device_tools import device_tool_specs
from xiaozhi_hub.protocol import mcp
from xiaozhi_hub.providers.base import ChatMessage, TextDelta
from xiaozhi_hub.providers.fake import FakeLLM
from xiaozhi_hub.settings import FakeSettings
from xiaozhi_hub.tools.home_assistant import HomeEntity

from .conftest import FakeLink, ScriptedLLM, call, collect, settings


class FakeHome:
    def __init__(self) -> None:
        self.done: list[tuple[str, str, float | None]] = []

    def entities(self):
        return (HomeEntity("light.kitchen", "kitchen light", ("厨房灯",)), HomeEntity("fan.bedroom", "bedroom fan"))

    async def turn_on(self, entity):
        self.done.append(("on", entity.entity_id, None))
        return "on"

    async def turn_off(self, entity):
        self.done.append(("off", entity.entity_id, None))
        return "off"

    async def set_value(self, entity, value, attribute=None):
        self.done.append(("set", entity.entity_id, value))
        return str(value)


# ---------------------------------------------------------------------------- intent path


async def test_intent_sets_the_volume_through_the_device_mcp_tool_without_the_llm():
    llm = ScriptedLLM()
    agent = Agent(settings(), llm)
    link = FakeLink()
    said = await collect(agent.reply(link, "Set the volume to thirty."))
    assert link.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
    assert said == "Volume set to 30."
    assert llm.seen == []


async def test_chinese_intent_answers_in_chinese():
    agent = Agent(settings(), ScriptedLLM())
    link = FakeLink()
    assert await collect(agent.reply(link, "音量调到三十")) == "音量已调到30。"
    assert link.volume == 30


async def test_volume_up_reads_the_status_then_sets_a_step_higher_and_clamps():
    agent = Agent(settings(agent={"volume_step": 10}), ScriptedLLM())
    link = FakeLink(volume=95)
    assert await collect(agent.reply(link, "turn the volume up")) == "Volume 100."
    assert link.calls == [("self.get_device_status", {}), ("self.audio_speaker.set_volume", {"volume": 100})]
    assert await collect(agent.reply(link, "louder")) == "The volume is already at maximum."


async def test_mute_then_unmute_restores_the_previous_volume():
    agent = Agent(settings(), ScriptedLLM())
    link = FakeLink(volume=40)
    await collect(agent.reply(link, "mute"))
    assert link.volume == 0
    assert await collect(agent.reply(link, "unmute")) == "Unmuted, volume 40."
    assert link.volume == 40


async def test_legacy_iot_device_gets_its_volume_through_an_iot_command():
    iot = {"Speaker": {"description": "speaker", "properties": {"volume": {"type": "number"}},
                       "methods": {"SetVolume": {"description": "set", "parameters": {"volume": {"type": "number"}}}}}}
    agent = Agent(settings(), ScriptedLLM())
    link = FakeLink(mcp_tools=False, iot=iot)
    link.iot_states["Speaker"] = {"volume": 50}
    assert await collect(agent.reply(link, "volume up")) == "Volume 60."
    assert link.iot_commands == [{"name": "Speaker", "method": "SetVolume", "parameters": {"volume": 60}}]
    assert link.calls == []


async def test_stop_ends_the_conversation_with_a_goodbye():
    agent = Agent(settings(), ScriptedLLM())
    link = FakeLink()
    assert await collect(agent.reply(link, "Goodbye!")) == "Goodbye!"
    assert link.ended


async def test_device_error_becomes_a_short_spoken_answer():
    agent = Agent(settings(), ScriptedLLM())
    link = FakeLink()
    link.fail = "Unknown tool: self.audio_speaker.set_volume"
    assert await collect(agent.reply(link, "set the volume to 30")) == "Sorry, I couldn't change the volume."


async def test_home_entities_are_matched_as_intents_only_when_the_hook_knows_them():
    agent = Agent(settings(), ScriptedLLM(default="I can't do that."))
    link = FakeLink()
    # No home connected: not an intent, the LLM answers.
    assert await collect(agent.reply(link, "turn off the kitchen light")) == "I can't do that."
    home = FakeHome()
    agent.env.home = home  # without a hub context the agent uses env.home
    assert await collect(agent.reply(link, "turn off the kitchen light")) == "Turned off the kitchen light."
    assert await collect(agent.reply(link, "打开厨房灯")) == "已打开kitchen light。"
    assert await collect(agent.reply(link, "set the bedroom fan to 3")) == "Set the bedroom fan to 3."
    assert home.done == [("off", "light.kitchen", None), ("on", "light.kitchen", None), ("set", "fan.bedroom", 3)]


async def test_intents_disabled_sends_everything_to_the_llm():
    llm = ScriptedLLM(default="Sure.")
    agent = Agent(settings(intents={"enabled": False}), llm)
    link = FakeLink()
    assert await collect(agent.reply(link, "set the volume to thirty")) == "Sure."
    assert link.calls == [] and len(llm.seen) == 1


# ---------------------------------------------------------------------------- LLM path


def volume_by_llm() -> tuple[Agent, FakeLink]:
    """An agent whose LLM (intents off) sets the device volume to 30, then says so."""
    fake = FakeLLM(FakeSettings(llm_reply="Done, volume is thirty.",
                                llm_tool_call=json.dumps({"name": "self_audio_speaker_set_volume",
                                                          "arguments": {"volume": 30}})))
    return Agent(settings(intents={"enabled": False}), fake), FakeLink()


async def test_llm_tool_call_reaches_the_device_with_the_original_mcp_name():
    agent, link = volume_by_llm()
    said = await collect(agent.reply(link, "make it quieter, like thirty"))
    assert link.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
    assert said == "Done, volume is thirty."


async def test_llm_sees_builtin_device_and_iot_tools_with_valid_unique_names():
    iot = {"Lamp": {"description": "a lamp", "properties": {"power": {"type": "boolean"}},
                    "methods": {"TurnOn": {"description": "on", "parameters": {}},
                                "SetBrightness": {"description": "b", "parameters": {"level": {"type": "number"}}}}}}
    llm = ScriptedLLM()
    agent = Agent(settings(), llm)
    link = FakeLink(iot=iot)
    await collect(agent.reply(link, "tell me a story"))
    names = [spec.name for spec in llm.seen[0][1]]
    assert {"get_time", "set_timer", "set_alarm", "cancel_timer", "list_timers", "end_conversation",
            "self_get_device_status", "self_audio_speaker_set_volume", "Lamp_TurnOn", "Lamp_SetBrightness",
            "Lamp_get_state"} <= set(names)
    assert "set_volume" not in names and "forget_conversation" not in names  # intent-only tools
    assert len(names) == len(set(names))
    brightness = next(s for s in llm.seen[0][1] if s.name == "Lamp_SetBrightness")
    assert brightness.parameters["properties"]["level"]["type"] == "number"


async def test_llm_iot_tool_sends_an_iot_command():
    iot = {"Lamp": {"description": "a lamp", "methods": {"SetBrightness": {
        "description": "b", "parameters": {"level": {"type": "number"}}}}}}
    llm = ScriptedLLM(scripts=[[call("Lamp_SetBrightness", level="40")], [TextDelta("Lamp at 40.")]])
    agent = Agent(settings(), llm)
    link = FakeLink(iot=iot)
    assert await collect(agent.reply(link, "dim the lamp a bit")) == "Lamp at 40."
    assert link.iot_commands == [{"name": "Lamp", "method": "SetBrightness", "parameters": {"level": 40.0}}]


async def test_tool_error_goes_back_to_the_llm_and_silence_becomes_a_spoken_error():
    llm = ScriptedLLM(scripts=[[call("self_audio_speaker_set_volume", volume=30)], []])
    agent = Agent(settings(intents={"enabled": False}), llm)
    link = FakeLink()
    link.fail = "device on fire"
    said = await collect(agent.reply(link, "volume thirty"))
    tool_msg = llm.seen[1][0][-1]
    assert tool_msg.role == "tool" and "device on fire" in tool_msg.content
    assert said == "Sorry, I couldn't do that."


async def test_tool_result_is_spoken_when_the_llm_says_nothing_after_it():
    llm = ScriptedLLM(scripts=[[call("get_time")], []])
    agent = Agent(settings(intents={"enabled": False}), llm)
    said = await collect(agent.reply(FakeLink(), "time?"))
    assert said.startswith("It's ")


async def test_unknown_tool_and_bad_arguments_are_reported_to_the_llm():
    llm = ScriptedLLM(scripts=[[call("no_such_tool"), call("set_alarm", hour=99)], [TextDelta("Hmm.")]])
    agent = Agent(settings(), llm)
    await collect(agent.reply(FakeLink(), "something"))
    results = [m.content for m in llm.seen[1][0] if m.role == "tool"]
    assert "unknown tool no_such_tool" in results[0]
    assert "hour must be between 0 and 23" in results[1]


async def test_tool_depth_is_limited_and_the_last_round_offers_no_tools():
    loop_call = [call("get_time")]
    llm = ScriptedLLM(scripts=[loop_call, loop_call, [TextDelta("Enough.")]])
    agent = Agent(settings(agent={"max_tool_depth": 2}), llm)
    said = await collect(agent.reply(FakeLink(), "loop forever"))
    assert said == "Enough."
    assert len(llm.seen) == 3
    assert llm.seen[0][1] and llm.seen[1][1] and llm.seen[2][1] == []


async def test_a_tool_call_in_the_last_round_is_ignored_and_the_last_result_is_spoken():
    loop_call = [call("get_time")]
    llm = ScriptedLLM(scripts=[loop_call, loop_call])
    agent = Agent(settings(agent={"max_tool_depth": 1}), llm)
    said = await collect(agent.reply(FakeLink(), "loop forever"))
    assert len(llm.seen) == 2 and said.startswith("It's ")


async def test_slow_device_tool_times_out_into_an_error_result():
    llm = ScriptedLLM(scripts=[[call("self_get_device_status")], [TextDelta("The device is slow.")]])
    agent = Agent(settings(session={"mcp_call_timeout": 0.1}), llm)
    link = FakeLink()
    link.delay = 5
    t0 = asyncio.get_running_loop().time()
    assert await collect(agent.reply(link, "how is the device")) == "The device is slow."
    assert asyncio.get_running_loop().time() - t0 < 2
    assert "timed out" in [m.content for m in llm.seen[1][0] if m.role == "tool"][0]


async def test_cancelling_the_turn_cancels_a_device_tool_call_in_flight():
    llm = ScriptedLLM(scripts=[[call("self_get_device_status")]])
    agent = Agent(settings(), llm)
    link = FakeLink()
    link.delay = 30
    task = asyncio.ensure_future(collect(agent.reply(link, "status please")))
    while not link.calls:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)


def test_device_tool_names_are_sanitised_unique_and_mapped_back():
    tools = [mcp.McpTool("self.audio_speaker.set_volume"), mcp.McpTool("self/audio_speaker.set_volume"),
             mcp.McpTool("get_time")]
    specs = device_tool_specs(tools, taken=["get_time"])
    assert {n: d for n, (_, d) in specs.items()} == {
        "self_audio_speaker_set_volume": "self.audio_speaker.set_volume",
        "self_audio_speaker_set_volume_2": "self/audio_speaker.set_volume",
        "get_time_2": "get_time"}


# ---------------------------------------------------------------------------- memory (in process)


async def test_without_a_database_the_context_is_kept_in_process():
    llm = ScriptedLLM(scripts=[[TextDelta("Hi Ann.")], [TextDelta("You are Ann.")]])
    agent = Agent(settings(), llm)
    link = FakeLink()
    await collect(agent.reply(link, "I am Ann"))
    await collect(agent.reply(link, "who am I"))
    prompt = [(m.role, m.content) for m in llm.seen[1][0]]
    assert prompt[1:] == [("user", "I am Ann"), ("assistant", "Hi Ann."), ("user", "who am I")]


# ---------------------------------------------------------------------------- speculation (the gate)


async def test_a_gated_reply_generates_but_stores_and_calls_nothing_until_the_gate_opens():
    agent, link = volume_by_llm()
    gate = asyncio.Event()
    out: list[str] = []

    async def run() -> None:
        async for delta in agent.reply(link, "make it thirty", gate=gate):
            out.append(delta)

    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)
    # The LLM asked for the tool at once: the reply waits at the gate, having done nothing.
    assert not task.done() and link.calls == [] and await agent.dialogue.messages(link.device_id) == \
        [ChatMessage("system", agent.settings.llm.system_prompt)]
    gate.set()
    await task
    assert link.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
    assert "".join(out) == "Done, volume is thirty."
    history = [(m.role, m.content) for m in await agent.dialogue.messages(link.device_id)][1:]
    assert history == [("user", "make it thirty"), ("assistant", "Done, volume is thirty.")]


async def test_a_gated_reply_closed_before_the_gate_opens_leaves_no_trace():
    llm = ScriptedLLM(scripts=[[TextDelta("Hello "), TextDelta("there.")]])
    agent = Agent(settings(), llm)
    link = FakeLink()
    gate = asyncio.Event()
    reply = agent.reply(link, "hello", gate=gate)
    # The whole text is generated ahead (that is the point of speculating): the LLM's first token
    # (an empty piece, for the turn's timing), then the sentence...
    assert [await reply.__anext__(), await reply.__anext__()] == ["", "Hello there."]
    # ...but the reply is discarded: nothing reaches the conversation.
    await reply.aclose()
    await asyncio.sleep(0)
    assert await agent.dialogue.messages(link.device_id) == [ChatMessage("system", agent.settings.llm.system_prompt)]
    assert link.calls == []


async def test_a_gated_intent_does_not_act_before_the_gate_opens():
    agent = Agent(settings(), ScriptedLLM())
    link = FakeLink()
    gate = asyncio.Event()
    task = asyncio.create_task(collect(agent.reply(link, "set the volume to thirty", gate=gate)))
    await asyncio.sleep(0.05)
    assert link.calls == [] and not task.done()
    gate.set()
    assert await task                    # the spoken confirmation
    assert link.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
