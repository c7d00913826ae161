"""What Home Assistant 2025.4's Wyoming integration does against a server, run with the wyoming
library it pins (1.5.4) in a venv of its own: ``python ha_2025_4_client.py PORT``.

The calls follow that release's components/wyoming: data.py (describe → Info.from_event, the platforms
it picks from ``installed``), stt.py (transcribe with the pipeline language, audio-start, 16 kHz
chunks, audio-stop, read until transcript), tts.py (synthesize with the chosen voice, read chunks
until audio-stop). Prints one JSON line with what it got; exits non-zero on any failure.
"""

import asyncio
import json
import math
import struct
import sys

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice


async def describe(port):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await asyncio.wait_for(client.write_event(Describe().event()), 1)
        while True:
            event = await asyncio.wait_for(client.read_event(), 1)
            if Info.is_type(event.type):
                return Info.from_event(event)


async def stt(port, language, audio):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(audio), 2048):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio[i:i + 2048]).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if event is None:
                return None
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text


async def tts(port, text, voice_name):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=voice_name)).event())
        frames, rate = 0, None
        while True:
            event = await client.read_event()
            if event is None:
                return None
            if AudioStop.is_type(event.type):
                return {"rate": rate, "seconds": frames / rate if rate else 0}
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                rate = chunk.rate
                frames += len(chunk.audio) // (chunk.width * chunk.channels)


def voice_like(seconds):
    """A crude voiced signal (the fake ASR only needs energy)."""
    n = int(16000 * seconds)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 140 * i / 16000))) for i in range(n))


async def main(port):
    import wyoming

    info = await describe(port)
    asr = [a for a in info.asr if a.installed]
    voices = [v for t in info.tts if t.installed for v in t.voices if v.installed]
    languages = sorted({lang for a in asr for m in a.models if m.installed for lang in m.languages})
    text = await stt(port, languages[0], voice_like(1.0))
    audio = await tts(port, "Hello from Home Assistant.", voices[0].name)
    print(json.dumps({"library": getattr(wyoming, "__version__", None), "asr": asr[0].name, "languages": languages,
                      "voices": [v.name for v in voices], "transcript": text, "tts": audio}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
