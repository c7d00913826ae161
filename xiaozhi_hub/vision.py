"""The vision model: asks an OpenAI-compatible chat endpoint about a photo from a device camera.

Devices with a camera expose ``self.camera.take_photo``; the firmware uploads the photo to the URL and
token the hub put in MCP ``initialize`` (docs/protocol.md, MCP), the HTTP side (:mod:`.net.vision`)
checks it, and this client asks the configured model (``vision.base_url``: llama.cpp's
``llama-server`` with a multimodal model and its projector, Ollama's ``/v1``, any server that takes
``image_url`` content parts). The image travels as a ``data:`` URL in one non-streamed
``/chat/completions`` request; the answer's text goes back to the device, which hands it to the LLM.

Network I/O, not CPU work: no compute pool, but at most :data:`CONCURRENT` questions are in flight at
once (the rest wait their turn within ``vision.timeout``). ``vision.api_key`` is sent as a bearer
token and never logged; failures are :class:`VisionError` with a message a user can act on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .settings import Settings, VisionSettings

log = logging.getLogger(__name__)

EXPLAIN_PATH = "/mcp/vision/explain"     # where the hub serves the camera's uploads (the reference server's path)
CAMERA_OVERHEAD = 15.0                   # capture, JPEG encoding and upload on the device, seconds
CONCURRENT = 2
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def camera_call_timeout(settings: "Settings") -> float:
    """How long the hub waits for the camera tool: the device waits for the vision model inside it."""
    return max(settings.session.mcp_call_timeout, settings.vision.timeout + CAMERA_OVERHEAD)


class VisionError(Exception):
    """The vision model could not answer; the message says why (without secrets)."""


def sniff_image(data: bytes) -> str | None:
    """The MIME type of a JPEG, PNG, GIF or WebP image from its first bytes, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def public_url(url: str) -> str:
    """A URL fit for logs and messages: no user name, password or query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class VisionModel:
    """One configured vision model, shared by every device."""

    def __init__(self, settings: VisionSettings) -> None:
        assert settings.base_url is not None, "build a VisionModel only when vision.base_url is set"
        self.settings = settings
        self.url = f"{settings.base_url.rstrip('/')}/chat/completions"
        self._gate = asyncio.Semaphore(CONCURRENT)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp sessions belong to one loop).
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    def request_body(self, image: bytes, mime: str, question: str) -> dict[str, Any]:
        data_url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
        return {
            "model": self.settings.model or "default",
            "messages": [
                {"role": "system", "content": self.settings.prompt},
                {"role": "user", "content": [{"type": "text", "text": question},
                                             {"type": "image_url", "image_url": {"url": data_url}}]},
            ],
            "max_tokens": self.settings.max_tokens,
            "stream": False,
        }

    async def explain(self, image: bytes, mime: str, question: str) -> str:
        """The model's answer to ``question`` about the image; raises :class:`VisionError`."""
        where = public_url(self.url)
        try:
            async with asyncio.timeout(self.settings.timeout):
                async with self._gate:
                    async with self._client().post(self.url, json=self.request_body(image, mime, question)) as resp:
                        if resp.status != 200:
                            raise VisionError(f"the vision model at {where} answered HTTP {resp.status}: "
                                              f"{self._detail(await resp.text())}")
                        reply = await resp.json(content_type=None)
        except TimeoutError:
            raise VisionError(f"the vision model at {where} did not answer within {self.settings.timeout:g} s") from None
        except aiohttp.ClientError as err:
            raise VisionError(f"the vision model at {where} is not reachable ({type(err).__name__})") from None
        except ValueError:
            raise VisionError(f"the vision model at {where} did not answer with JSON") from None
        return _answer_text(reply, where)

    def _detail(self, text: str) -> str:
        """The start of an error body, with the API key cut out in case the server echoes it."""
        detail = text[:200].strip().replace("\n", " ")
        return detail.replace(self.settings.api_key, "***") if self.settings.api_key else detail

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _answer_text(reply: Any, where: str) -> str:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise VisionError(f"the vision model at {where} sent no answer (no choices[0].message.content)") from None
    if isinstance(content, list):       # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise VisionError(f"the vision model at {where} sent an empty answer")
    return content.strip()
