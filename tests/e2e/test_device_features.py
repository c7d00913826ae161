"""MCP paging and legacy IoT descriptors/states as kept per session."""

from __future__ import annotations

import asyncio

from xiaozhi_hub.simulator import SimulatedDevice
from xiaozhi_hub.simulator.mcp import DeviceTool, FirmwareMcpServer, IntProperty

from ..conftest import ws_url


async def test_tools_list_pages_are_followed_with_next_cursor(start_hub):
    hub = await start_hub()
    server = FirmwareMcpServer(page_size=2)
    for i in range(5):
        server.tools.append(DeviceTool(f"self.lamp.set_level_{i}", "Set a lamp level", (IntProperty("level", "", 0, 9),),
                                       lambda args: True))
    async with SimulatedDevice(ws_url(hub), mcp_server=server) as dev:
        session = hub.ctx.registry.by_device(dev.device_id)
        await asyncio.wait_for(session.link.mcp.ready.wait(), 5)
        names = [t.name for t in session.link.device_tools()]
        assert names == [t.name for t in server.tools]          # all 7 tools, in order, over 4 pages
        lists = [c for c in dev.mcp_calls if c.method == "tools/list"]
        assert len(lists) == 4
        assert [c.params.get("cursor") for c in lists] == ["", "self.lamp.set_level_0", "self.lamp.set_level_2",
                                                            "self.lamp.set_level_4"]
        ids = [c.id for c in dev.mcp_calls]
        assert ids == sorted(set(ids)) and all(isinstance(i, int) for i in ids)


async def test_device_tool_errors_are_the_devices_messages(start_hub):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub)) as dev:
        session = hub.ctx.registry.by_device(dev.device_id)
        await asyncio.wait_for(session.link.mcp.ready.wait(), 5)
        from xiaozhi_hub.session.mcp_client import McpCallError
        try:
            await session.link.call_device_tool("self.audio_speaker.set_volume", {"volume": 300})
        except McpCallError as err:
            assert str(err) == "Value exceeds maximum allowed: 100"   # the device's error.message, verbatim
        else:
            raise AssertionError("out-of-range volume must be an error")
        try:
            await session.link.call_device_tool("self.no_such_tool", {})
        except McpCallError as err:
            assert "Unknown tool" in str(err)
        else:
            raise AssertionError("unknown tool must be an error")


class SilentServer(FirmwareMcpServer):
    """A device that advertises MCP but never answers tool calls."""

    def handle(self, payload):
        if isinstance(payload, dict) and payload.get("method") == "tools/call":
            return None
        return super().handle(payload)


async def test_device_tool_call_times_out(start_hub):
    hub = await start_hub(session={"mcp_call_timeout": 0.3})
    async with SimulatedDevice(ws_url(hub), mcp_server=SilentServer()) as dev:
        session = hub.ctx.registry.by_device(dev.device_id)
        await asyncio.wait_for(session.link.mcp.ready.wait(), 5)
        from xiaozhi_hub.session.mcp_client import McpCallError
        t0 = asyncio.get_running_loop().time()
        try:
            await session.link.call_device_tool("self.audio_speaker.set_volume", {"volume": 10})
        except McpCallError as err:
            assert "did not answer" in str(err)
        else:
            raise AssertionError("expected a timeout")
        assert 0.25 < asyncio.get_running_loop().time() - t0 < 1.5
        assert session.link.mcp._pending == {}


async def test_legacy_iot_descriptors_and_states_are_kept(start_hub):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub), mcp=False) as dev:
        await dev.send_json({"session_id": dev.session_id, "type": "iot", "update": True, "descriptors": [
            {"name": "Speaker", "description": "speaker", "properties": {"volume": {"description": "v", "type": "number"}},
             "methods": {"SetVolume": {"description": "set", "parameters": {"volume": {"description": "v", "type": "number"}}}}}]})
        await dev.send_json({"session_id": dev.session_id, "type": "iot", "update": True,
                             "states": [{"name": "Speaker", "state": {"volume": 40}}]})
        await dev.send_json({"session_id": dev.session_id, "type": "iot", "update": True,
                             "states": [{"name": "Speaker", "state": {"volume": 55}}]})
        session = hub.ctx.registry.by_device(dev.device_id)
        for _ in range(50):
            if session.link.iot_states.get("Speaker", {}).get("volume") == 55:
                break
            await asyncio.sleep(0.02)
        assert "Speaker" in session.link.iot_descriptors
        assert session.link.iot_states["Speaker"] == {"volume": 55}
        assert session.link.mcp is None                 # no features.mcp → the hub does not speak MCP
        await session.link.send_iot_command([{"name": "Speaker", "method": "SetVolume", "parameters": {"volume": 10}}])
        msg = await dev.wait_for("iot", timeout=2)
        assert msg.data["commands"][0]["method"] == "SetVolume"
