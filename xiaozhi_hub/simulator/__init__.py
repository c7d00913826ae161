"""A simulated stock xiaozhi device (``python -m xiaozhi_hub.simulator --help``).

Library use from tests::

    async with SimulatedDevice("ws://127.0.0.1:8000/xiaozhi/v1/") as dev:
        turn = await dev.run_turn(pcm16k, mode="auto")
        assert turn.stt_text and turn.first_audio_latency < 1.5
"""

from .device import SimulatedDevice
from .records import (AudioArrival, DeviceClosed, DeviceCrash, DeviceState, HelloTimeout, ReceivedMessage,
                      SimulatorError, TurnRecord, random_mac)
from .mcp import FirmwareMcpServer, McpCall

__all__ = ["AudioArrival", "DeviceClosed", "DeviceCrash", "DeviceState", "FirmwareMcpServer",
           "HelloTimeout", "McpCall", "ReceivedMessage", "SimulatedDevice", "SimulatorError",
           "TurnRecord", "random_mac"]
