"""Tool calls as small local models write them: the ``<tool_call>`` convention, both ways.

Qwen2.5 and Hermes-style models wrap a call in ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
:func:`to_template_messages` renders the conversation for a chat template: natively (the template
knows ``tools``) or with the convention spelled out in the system message and earlier calls written
in it, which is what small models imitate best. :class:`ToolCallParser` turns the streamed text back
into ``TextDelta`` and ``ToolCall`` events; it also accepts a bare JSON object reply, which small
models produce instead of the tags.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Mapping, Sequence

from .base import ChatMessage, LLMEvent, TextDelta, ToolCall, ToolSpec

log = logging.getLogger(__name__)

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


def _as_tool_call(obj: Any) -> ToolCall | None:
    """``{"name": ..., "arguments": {...}}`` (arguments may be a JSON string) -> ToolCall."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    args: Any = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return None
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        return None
    return ToolCall(id=new_call_id(), name=obj["name"], arguments=dict(args))


def parse_tool_payload(payload: str) -> list[ToolCall]:
    """The text between ``<tool_call>`` tags: one JSON object, or several / a list of them."""
    payload = payload.strip()
    if payload.startswith("```"):
        payload = payload.strip("`").removeprefix("json").strip()
    calls: list[ToolCall] = []
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(payload):
        while pos < len(payload) and payload[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(payload):
            break
        try:
            obj, pos = decoder.raw_decode(payload, pos)
        except json.JSONDecodeError:
            break
        for item in obj if isinstance(obj, list) else [obj]:
            call = _as_tool_call(item)
            if call is not None:
                calls.append(call)
    return calls


def _partial_suffix(text: str, token: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``token``."""
    for n in range(min(len(token) - 1, len(text)), 0, -1):
        if token.startswith(text[-n:]):
            return n
    return 0


class ToolCallParser:
    """Incrementally split model output into text and tool calls.

    Text is released as soon as it cannot be the start of a ``<tool_call>`` tag, so speech starts
    without waiting for the whole reply. A reply that *starts* with ``{`` is held until it is
    known whether it is a bare tool-call object (nobody wants JSON read aloud either way).
    """

    def __init__(self) -> None:
        self._buf = ""
        self._inside = False
        self._started = False
        self._json = False
        self.dropped: list[str] = []     # unparseable tool-call payloads (for logs and tests)

    def feed(self, text: str) -> list[LLMEvent]:
        self._buf += text
        out: list[LLMEvent] = []
        while True:
            if not self._started:
                stripped = self._buf.lstrip()
                if not stripped:
                    return out
                self._started = True
                self._json = stripped.startswith(("{", "[", "```"))
            if self._json:
                done = self._try_bare_json(final=False)
                if done is None:
                    return out
                out.extend(done)
                continue
            if self._inside:
                end = self._buf.find(TOOL_CLOSE)
                if end < 0:
                    return out
                out.extend(self._payload(self._buf[:end]))
                self._buf = self._buf[end + len(TOOL_CLOSE):]
                self._inside = False
                continue
            start = self._buf.find(TOOL_OPEN)
            if start >= 0:
                if self._buf[:start].strip():
                    out.append(TextDelta(self._buf[:start]))
                self._buf = self._buf[start + len(TOOL_OPEN):]
                self._inside = True
                continue
            keep = _partial_suffix(self._buf, TOOL_OPEN)
            emit = self._buf[:len(self._buf) - keep]
            if emit:
                out.append(TextDelta(emit))
            self._buf = self._buf[len(self._buf) - keep:]
            return out

    def _try_bare_json(self, final: bool) -> list[LLMEvent] | None:
        text = self._buf.strip()
        body = text.strip("`").removeprefix("json").strip() if text.startswith("```") else text
        if text.startswith("```") and not final and text.count("```") < 2:
            return None
        try:
            obj, end = json.JSONDecoder().raw_decode(body)
        except json.JSONDecodeError:
            if not final:
                return None
            self._json = False
            out: list[LLMEvent] = [TextDelta(self._buf)] if self._buf.strip() else []
            self._buf = ""
            return out
        calls = [c for c in (_as_tool_call(o) for o in (obj if isinstance(obj, list) else [obj])) if c]
        self._json = False
        if calls:
            self._buf = body[end:].lstrip("`")
            return list(calls)
        return []  # JSON that is not a tool call: fall through and treat it as text

    def _payload(self, payload: str) -> list[LLMEvent]:
        calls = parse_tool_payload(payload)
        if not calls and payload.strip():
            self.dropped.append(payload)
            log.warning("unparseable tool call from the model: %.200s", payload)
        return list(calls)

    def finish(self) -> list[LLMEvent]:
        """End of the reply: flush held text; an unterminated tool call is parsed if it is complete JSON."""
        out: list[LLMEvent] = []
        if self._json:
            out.extend(self._try_bare_json(final=True) or [])
        if self._inside:
            out.extend(self._payload(self._buf))
        elif self._buf and (self._started or self._buf.strip()):
            out.append(TextDelta(self._buf))
        self._buf = ""
        self._inside = False
        return out


def tools_system_block(tools: Sequence[ToolSpec]) -> str:
    """The tool convention spelled out for a model whose template does not render tools."""
    lines = "\n".join(json.dumps({"name": t.name, "description": t.description,
                                  "parameters": dict(t.parameters)}, ensure_ascii=False) for t in tools)
    return ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n"
            f"<tools>\n{lines}\n</tools>\n\nTo call a function, reply with only this, and nothing else:\n"
            f'{TOOL_OPEN}\n{{"name": <function-name>, "arguments": <args-json-object>}}\n{TOOL_CLOSE}')


def _call_text(call: ToolCall) -> str:
    body = json.dumps({"name": call.name, "arguments": dict(call.arguments)}, ensure_ascii=False)
    return f"{TOOL_OPEN}\n{body}\n{TOOL_CLOSE}"


def to_template_messages(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, native_tools: bool,
                         default_system: str, tool_role: bool = True
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """ChatMessages -> (messages, tools) for the chat template, in native or prompted tool style.

    ``tool_role``: the template renders a ``tool`` message as such (generic ChatML templates do);
    otherwise tool results become a user turn wrapped in ``<tool_response>`` tags.
    """
    msgs = list(messages)
    if not msgs or msgs[0].role != "system":
        msgs.insert(0, ChatMessage(role="system", content=default_system))
    tool_dicts = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                    "parameters": dict(t.parameters)}} for t in tools] or None
    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        if native_tools:
            d: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_calls:
                d["tool_calls"] = [{"id": c.id, "type": "function",
                                    "function": {"name": c.name, "arguments": dict(c.arguments)}}
                                   for c in m.tool_calls]
            if m.role == "tool":
                d["tool_call_id"] = m.tool_call_id
                if m.name:
                    d["name"] = m.name
            out.append(d)
            continue
        content = m.content
        role = m.role
        if i == 0 and role == "system" and tools:
            content += tools_system_block(tools)
        elif m.tool_calls:
            content = "\n".join([*([content] if content else []), *(_call_text(c) for c in m.tool_calls)])
        elif role == "tool" and not tool_role:
            role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
        out.append({"role": role, "content": content})
    return out, (tool_dicts if native_tools else None)
