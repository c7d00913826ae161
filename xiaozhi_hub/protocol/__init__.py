"""The device protocol, pure: typed messages, the JSON/binary codec and MCP shapes.

No asyncio and no providers here, so the simulator and the Home Assistant component can import it.
"""

from .binary import AudioFrame, decode_audio, encode_audio
from .codec import decode, encode, parse_json_object
from .messages import *  # noqa: F403
from .messages import Direction, Message, ProtocolError

__all__ = ["AudioFrame", "decode_audio", "encode_audio", "decode", "encode", "parse_json_object",
           "Direction", "Message", "ProtocolError"]
