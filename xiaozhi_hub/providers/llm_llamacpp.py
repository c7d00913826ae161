"""llama.cpp in process (llama-cpp-python): streaming chat with the model's own template, and tools.

One loaded model serves every device, one generation at a time: ``compute`` kind ``"llm"`` is set
to a single slot whose queue is fair (FIFO) and bounded by ``llm.max_wait`` — a device that would
wait longer gets :class:`BusyError` and hears a short "busy" answer instead of silence.

The generation runs on a compute thread and hands text to the event loop token by token. When the
consuming task is cancelled (barge-in, abort), a stop flag is set; llama.cpp checks it after every
token through a stopping criterion, so the slot is free again within a token or two.

Tools use the ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` convention of Qwen2.5 and
Hermes-style models. A model whose chat template knows ``tools`` (Qwen2.5) gets them through its
template; any other model (SmolLM2) gets the same convention described in the system message, and
earlier tool calls in the history are rendered in it, which is what small models imitate best.
:class:`ToolCallParser` turns the streamed text back into ``TextDelta`` and ``ToolCall`` events
(it also accepts a bare JSON object reply, which small models produce instead of the tags).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Mapping, Sequence

from ..models import DEFAULT_LLM, resolve_model
from .base import BusyError, ChatMessage, LLMEvent, ProviderError, TextDelta, ToolCall, ToolSpec

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"

# Used when a GGUF carries no chat template.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

_DONE = object()


# ---------------------------------------------------------------------------- tool calls


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


# ---------------------------------------------------------------------------- provider


def _token_text(llm: Any, token: int) -> str:
    return llm.detokenize([token], special=True).decode("utf-8", "replace") if token != -1 else ""


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    stopped: bool = False      # stopped early by cancellation or timeout


class LlamaCppLLM:
    """A GGUF model loaded once; :meth:`stream` runs one generation at a time through the compute pool."""

    name = "llamacpp"

    def __init__(self, llm: Any, compute: "ComputePool", *, system_prompt: str, max_tokens: int,
                 temperature: float, max_wait: float, timeout: float) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = llm
        self.compute = compute
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_wait = max_wait
        self.timeout = timeout
        template = llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        self.native_tools = "tools" in template
        self.eos_text = _token_text(llm, llm.token_eos())
        bos_text = _token_text(llm, llm.token_bos())
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=self.eos_text, bos_token=bos_text)
        self.tool_role = self.native_tools or self._renders_tool_role()
        self._lock = threading.Lock()    # belt and braces: the "llm" slot already serialises generations
        self.last_stats = GenerationStats()

    def _renders_tool_role(self) -> bool:
        """Whether the template shows a ``tool`` message (strict templates raise or drop unknown roles)."""
        try:
            prompt = self._formatter(messages=[{"role": "user", "content": "hi"},
                                               {"role": "tool", "content": "MARK-7f3a"}]).prompt
        except Exception:
            return False
        return "MARK-7f3a" in prompt

    # -- worker side (compute thread) -------------------------------------------------------

    def _prompt_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       max_tokens: int) -> list[int]:
        """Render with the chat template and tokenize; drop the oldest turns while it does not fit.

        A quarter of the context (or ``max_tokens`` if smaller) is kept free for the reply.
        """
        n_ctx = self.llm.n_ctx()
        budget = n_ctx - min(max_tokens, n_ctx // 4)
        msgs = list(messages)
        while True:
            prompt = self._formatter(messages=msgs, tools=tools).prompt
            tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) <= budget:
                return tokens
            if len(msgs) <= 2:   # system + the current message: nothing left to drop
                raise ProviderError(f"prompt of {len(tokens)} tokens does not fit llm.context_tokens ({n_ctx})")
            del msgs[1]

    def generate_blocking(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                          stop: threading.Event, emit: Callable[[str], None], max_tokens: int | None = None,
                          temperature: float | None = None) -> GenerationStats:
        """Run one generation, calling ``emit`` per text piece, until done, ``stop`` is set or timed out."""
        from llama_cpp import StoppingCriteriaList

        stats = GenerationStats()
        if stop.is_set():
            stats.stopped = True
            return stats
        t0 = time.monotonic()
        deadline = t0 + self.timeout

        def should_stop(_ids: Any, _logits: Any) -> bool:
            self.compute.pause_for_urgent()   # a first sentence is being synthesized: let it have the cores
            return stop.is_set() or time.monotonic() > deadline

        with self._lock:
            limit = max_tokens or self.max_tokens
            tokens = self._prompt_tokens(messages, tools, limit)
            stats.prompt_tokens = len(tokens)
            pieces: list[str] = []
            try:
                for chunk in self.llm.create_completion(
                        tokens, max_tokens=min(limit, self.llm.n_ctx() - len(tokens)),
                        temperature=self.temperature if temperature is None else temperature,
                        stream=True, stop=[self.eos_text] if self.eos_text else [],
                        stopping_criteria=StoppingCriteriaList([should_stop])):
                    text = chunk["choices"][0]["text"]
                    if text:
                        pieces.append(text)
                        emit(text)
                    if stop.is_set():
                        break
            except ValueError as err:
                raise ProviderError(f"llama.cpp: {err}") from err
            # Stream chunks can merge tokens (text held back while it could be a stop string): count tokens.
            generated = "".join(pieces)
            stats.completion_tokens = len(self.llm.tokenize(generated.encode("utf-8"), add_bos=False,
                                                            special=True)) if generated else 0
        stats.stopped = stop.is_set() or time.monotonic() > deadline
        stats.seconds = time.monotonic() - t0
        self.last_stats = stats
        return stats

    # -- event-loop side ---------------------------------------------------------------------

    async def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> AsyncIterator[LLMEvent]:
        """Stream text deltas and tool calls. Use ``contextlib.aclosing`` (or cancel the task) to stop early."""
        if self.llm is None:
            raise ProviderError("llama.cpp model is closed")
        msgs, tool_dicts = to_template_messages(messages, tools, native_tools=self.native_tools,
                                                default_system=self.system_prompt, tool_role=self.tool_role)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        parser = ToolCallParser()

        def emit(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        async with self.compute.slot("llm", max_wait=self.max_wait):
            worker = asyncio.ensure_future(
                self.compute.run_in_slot("llm", self.generate_blocking, msgs, tool_dicts, stop, emit))
            worker.add_done_callback(lambda _f: queue.put_nowait(_DONE))
            try:
                while True:
                    item = await queue.get()
                    if item is _DONE:
                        break
                    for event in parser.feed(item):  # type: ignore[arg-type]
                        yield event
                worker.result()
                for event in parser.finish():
                    yield event
            finally:
                stop.set()
                if not worker.done():
                    # Keep the slot until the thread has really stopped, so the next generation
                    # never runs concurrently on the same model (asyncio.wait raises nothing of the
                    # worker's and, unlike wait_for, never swallows a cancellation of this task).
                    await asyncio.wait({worker}, timeout=30)
                if worker.done() and not worker.cancelled():
                    worker.exception()   # retrieved: no "exception was never retrieved" noise

    async def warm_up(self, tools: Sequence[ToolSpec] = (), system: str | None = None) -> None:
        """Evaluate a prompt prefix once (system prompt and the tools the agent offers), so llama.cpp's
        prefix cache serves the first turn instead of it paying for the whole prompt."""
        first = [ChatMessage(role="system", content=system)] if system else []
        await self.prefill([*first, ChatMessage(role="user", content="Hi")], tools)

    async def prefill(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = (),
                      only_if_idle: bool = False) -> None:
        """Evaluate the prompt for ``messages`` now (one token is generated and dropped), so the next
        generation that starts with the same messages finds them in llama.cpp's prefix cache.
        ``only_if_idle``: raise :class:`BusyError` rather than queue behind another generation."""
        msgs, tool_dicts = to_template_messages(messages, tools, native_tools=self.native_tools,
                                                default_system=self.system_prompt, tool_role=self.tool_role)
        async with self.compute.slot("llm", max_wait=0.0 if only_if_idle else None):
            await self.compute.run_in_slot("llm", self.generate_blocking, msgs, tool_dicts, threading.Event(),
                                           lambda _t: None, 1)

    async def aclose(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            try:
                await self.compute.run("llm", llm.close)
            except BusyError:   # a generation still runs; the model is freed when it is collected
                log.warning("llama.cpp model closed while busy")


def load_model(path: str, n_ctx: int, threads: int) -> Any:
    """Load the GGUF (blocking; memory-mapped, ~0.2 s for 135M)."""
    from llama_cpp import Llama

    return Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                 n_batch=min(512, n_ctx), verbose=False)


async def create(settings: "Settings", compute: "ComputePool") -> LlamaCppLLM:
    """Resolve and load the model once (in the compute pool); one generation at a time from here on."""
    s = settings.llm
    path = resolve_model(s.model, role="llm", default_id=DEFAULT_LLM, models_dir=settings.models_dir)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not ggufs:
            raise ProviderError(f"llm model folder {path} has no .gguf file")
        path = ggufs[0]
    compute.set_limit("llm", 1, s.max_wait)
    # llama.cpp (OpenMP build) is ~1.8x slower per token once it has been driven from more than one
    # OS thread (each caller gets its own OpenMP team and libgomp throttles spinning when teams
    # outnumber cores: 100 -> 55 tok/s measured). A pool that can pin a kind to one thread fixes it.
    pin = getattr(compute, "pin", None)
    if callable(pin):
        pin("llm")
    t0 = time.monotonic()
    try:
        llm = await compute.run("llm", load_model, str(path), s.context_tokens, s.threads)
    except Exception as err:
        raise ProviderError(f"llm model {path}: cannot load with llama.cpp ({err})") from err
    provider = LlamaCppLLM(llm, compute, system_prompt=s.system_prompt, max_tokens=s.max_tokens,
                           temperature=s.temperature, max_wait=s.max_wait, timeout=s.timeout)
    await provider.warm_up()
    log.info("llama.cpp model %s loaded in %.2fs (native tools: %s)", path.name, time.monotonic() - t0,
             provider.native_tools)
    return provider
