"""An OpenAI-compatible chat server as the LLM (llama.cpp ``llama-server``, Ollama, vLLM, ...).

For homes that outgrow one box: the hub streams ``/chat/completions`` with ``stream: true`` over
Server-Sent Events and turns ``delta.content`` into :class:`TextDelta` and the fragments of
``delta.tool_calls`` (assembled per ``index``) into :class:`ToolCall` events. It is network I/O, not
CPU work, so it does not use the compute pool; the remote server does its own queueing, and its
"too busy" answers (429/503) become :class:`BusyError` so the device hears the busy message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Sequence

import aiohttp

from .base import BusyError, ChatMessage, LLMEvent, ProviderError, TextDelta, ToolCall, ToolSpec

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)


def to_openai_messages(messages: Sequence[ChatMessage], default_system: str) -> list[dict[str, Any]]:
    msgs = list(messages)
    if not msgs or msgs[0].role != "system":
        msgs.insert(0, ChatMessage(role="system", content=default_system))
    out: list[dict[str, Any]] = []
    for m in msgs:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [{"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))}}
                               for c in m.tool_calls]
            if not m.content:
                d["content"] = None
        if m.role == "tool":
            d["tool_call_id"] = m.tool_call_id
            if m.name:
                d["name"] = m.name
        out.append(d)
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": dict(t.parameters)}} for t in tools]


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def build(self, index: int) -> ToolCall:
        raw = "".join(self.arguments).strip()
        try:
            args = json.loads(raw) if raw else {}
        except json.JSONDecodeError as err:
            raise ProviderError(f"tool call {self.name!r}: arguments are not JSON ({err}): {raw[:200]}") from None
        if not isinstance(args, dict):
            raise ProviderError(f"tool call {self.name!r}: arguments must be a JSON object")
        return ToolCall(id=self.id or f"call_{index}", name=self.name, arguments=args)


class ToolCallAssembler:
    """Collects ``delta.tool_calls`` fragments (id and name first, arguments in pieces) per index."""

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}

    def add(self, deltas: list[dict[str, Any]]) -> None:
        for d in deltas:
            idx = int(d.get("index", len(self._calls)))
            call = self._calls.setdefault(idx, _PendingCall())
            if d.get("id"):
                call.id = d["id"]
            fn = d.get("function") or {}
            if fn.get("name"):
                call.name += fn["name"]
            if fn.get("arguments"):
                call.arguments.append(fn["arguments"])

    def flush(self) -> list[ToolCall]:
        calls = [c.build(i) for i, c in sorted(self._calls.items()) if c.name]
        self._calls.clear()
        return calls


class OpenAILLM:
    """Streams chat completions from a remote OpenAI-compatible server."""

    name = "openai"
    calls_tools = True     # a server model is assumed to handle tools; llm.tools: off says otherwise

    def __init__(self, base_url: str, *, model: str | None, api_key: str | None, system_prompt: str,
                 max_tokens: int, temperature: float, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp sessions belong to one loop).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def _model_name(self) -> str:
        """The configured model, else the server's first model (llama-server serves exactly one)."""
        if self.model:
            return self.model
        try:
            async with self._client().get(f"{self.base_url}/models") as resp:
                if resp.status == 200:
                    data = await resp.json()
                    models = data.get("data") or data.get("models") or []
                    if models:
                        self.model = str(models[0].get("id") or models[0].get("name"))
                        return self.model
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
        return "default"

    async def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> AsyncIterator[LLMEvent]:
        body: dict[str, Any] = {
            "model": await self._model_name(),
            "messages": to_openai_messages(messages, self.system_prompt),
            "stream": True,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if tools:
            body["tools"] = to_openai_tools(tools)
        url = f"{self.base_url}/chat/completions"
        assembler = ToolCallAssembler()
        try:
            async with self._client().post(url, json=body) as resp:
                if resp.status != 200:
                    detail = (await resp.text())[:300].strip().replace("\n", " ")
                    cls = BusyError if resp.status in (429, 503) else ProviderError
                    raise cls(f"LLM server {url}: HTTP {resp.status}: {detail}")
                async for event in self._events(resp, assembler):
                    yield event
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ProviderError(f"LLM server {url}: {err.__class__.__name__}: {err}") from err
        for call in assembler.flush():
            yield call

    async def _events(self, resp: aiohttp.ClientResponse, assembler: ToolCallAssembler) -> AsyncIterator[LLMEvent]:
        """Parse the SSE stream: ``data: {json}`` lines until ``data: [DONE]``."""
        data_lines: list[str] = []
        async for raw in resp.content:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                data_lines.append(line[5:].lstrip())
                continue
            if line or not data_lines:
                continue           # comments (": ping"), event names, blank keep-alives
            data, data_lines = "\n".join(data_lines), []
            if data == "[DONE]":
                return
            for event in self._chunk(data, assembler):
                yield event
        if data_lines and data_lines[0] != "[DONE]":
            for event in self._chunk("\n".join(data_lines), assembler):
                yield event

    @staticmethod
    def _chunk(data: str, assembler: ToolCallAssembler) -> list[LLMEvent]:
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise ProviderError(f"LLM server sent a malformed event: {data[:200]}") from None
        if "error" in chunk:
            err = chunk["error"]
            raise ProviderError(f"LLM server error: {err.get('message', err) if isinstance(err, dict) else err}")
        out: list[LLMEvent] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.append(TextDelta(delta["content"]))
            if delta.get("tool_calls"):
                assembler.add(delta["tool_calls"])
            if choice.get("finish_reason") in ("tool_calls", "function_call"):
                out.extend(assembler.flush())
        return out

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def create(settings: "Settings", compute: "ComputePool") -> OpenAILLM:
    """Configure the remote client; nothing is loaded here (the server owns the model)."""
    s = settings.llm
    if not s.base_url:
        raise ProviderError("llm.provider openai needs llm.base_url, e.g. http://127.0.0.1:8080/v1 "
                            "(llama-server) or http://127.0.0.1:11434/v1 (Ollama)")
    return OpenAILLM(s.base_url, model=s.model, api_key=s.api_key, system_prompt=s.system_prompt,
                     max_tokens=s.max_tokens, temperature=s.temperature, timeout=s.timeout)
