"""The tool registry: argument validation, timeouts, errors, cancellation with the turn."""

from __future__ import annotations

import asyncio

import pytest

from xiaozhi_hub.tools.registry import (Tool, ToolContext, ToolEnv, ToolError, ToolRegistry, ToolResult, schema,
                                        unique_name, validate_arguments)

from .conftest import FakeLink, settings

PARAMS = schema({"volume": {"type": "integer", "minimum": 0, "maximum": 100},
                 "label": {"type": "string"}, "on": {"type": "boolean"},
                 "mode": {"type": "string", "enum": ["a", "b"]}, "level": {"type": "number", "default": 1.5}},
                ["volume"])


def test_arguments_are_coerced_the_way_small_models_send_them():
    assert validate_arguments(PARAMS, {"volume": "30", "on": "true", "label": 7, "junk": 1}) == {
        "volume": 30, "on": True, "label": "7", "level": 1.5}
    assert validate_arguments(PARAMS, {"volume": 29.6})["volume"] == 30


@pytest.mark.parametrize("args, message", [
    ({}, "missing argument: volume"), ({"volume": 101}, "between 0 and 100"),
    ({"volume": "loud"}, "must be an integer"), ({"volume": True}, "must be an integer"),
    ({"volume": 1, "on": "yes"}, "true or false"), ({"volume": 1, "mode": "c"}, "one of a, b"),
])
def test_bad_arguments_raise_a_precise_tool_error(args, message):
    with pytest.raises(ToolError, match=message):
        validate_arguments(PARAMS, args)


def ctx() -> ToolContext:
    return ToolContext(FakeLink(), ToolEnv(settings()), "en")


async def test_a_slow_tool_times_out_with_a_spoken_message():
    async def slow(tctx, args):
        await asyncio.sleep(10)
        return ToolResult()

    reg = ToolRegistry(default_timeout=0.05)
    reg.register(Tool("slow", "", schema(), slow))
    with pytest.raises(ToolError) as info:
        await reg.call("slow", {}, ctx())
    assert "timed out" in str(info.value) and info.value.say == "Sorry, that took too long."


async def test_an_exception_in_a_tool_becomes_a_tool_error():
    async def broken(tctx, args):
        raise KeyError("x")

    reg = ToolRegistry()
    reg.register(Tool("broken", "", schema(), broken))
    with pytest.raises(ToolError):
        await reg.call("broken", {}, ctx())
    with pytest.raises(ToolError, match="unknown tool"):
        await reg.call("missing", {}, ctx())


async def test_cancelling_the_caller_cancels_the_tool():
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def waits(tctx, args):
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ToolResult()

    reg = ToolRegistry(default_timeout=30)
    reg.register(Tool("waits", "", schema(), waits))
    task = asyncio.ensure_future(reg.call("waits", {}, ctx()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


def test_registration_rules_and_llm_specs():
    async def h(tctx, args):
        return ToolResult()

    reg = ToolRegistry()
    reg.register(Tool("a", "A", schema(), h))
    reg.register(Tool("b", "B", schema(), h, for_llm=False))
    with pytest.raises(ValueError):
        reg.register(Tool("a", "again", schema(), h))
    with pytest.raises(ValueError):
        reg.register(Tool("bad.name", "", schema(), h))
    assert [s.name for s in reg.specs()] == ["a"]
    more = reg.with_tools([Tool("c", "C", schema(), h)])
    assert [t.name for t in more] == ["a", "b", "c"] and "c" not in reg


def test_unique_names():
    assert unique_name("self.a.b", set()) == "self_a_b"
    assert unique_name("self.a.b", {"self_a_b"}) == "self_a_b_2"
    assert len(unique_name("x" * 80, {"x" * 64})) == 64


def test_result_for_llm():
    assert ToolResult({"volume": 3}).for_llm() == '{"volume": 3}'
    assert ToolResult("raw text").for_llm() == "raw text"
    assert ToolResult(None, "Done.").for_llm() == '{"ok": true, "message": "Done."}'
