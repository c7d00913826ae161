"""llama.cpp in process (llama-cpp-python): streaming chat with the model's own template, and tools.

One loaded model serves every device, one generation at a time: ``compute`` kind ``"llm"`` is set
to a single slot whose queue is fair (FIFO) and bounded by ``llm.max_wait`` — a device that would
wait longer gets :class:`BusyError` and hears a short "busy" answer instead of silence.

The generation runs on a compute thread and hands text to the event loop token by token. When the
consuming task is cancelled (barge-in, abort), a stop flag is set; llama.cpp checks it after every
token through a stopping criterion, so the slot is free again within a token or two.

**Taking turns.** The LLM writes far faster than speech plays, so a reply does not need the model
until it is done: once it has written ``YIELD_AFTER_CHARS`` (about three seconds of speech) past
the end of a sentence and another device is waiting for the model, it gives the slot up (at most
``YIELDS`` times a reply), queues again at the back, and continues from its prompt plus the text
so far. Four devices asking at once each hear their first sentence after the others' first
sentences, not after their whole answers; the speech already written covers the wait for the rest
(yielding after a one-word sentence left audible gaps). It gives the model up only once the next
sentence's first word is written (:func:`may_give_up`): whether a full stop ends a sentence ("3.5",
"Mr. Smith") is known only from what follows, so the reply's sentence splitter holds the last
sentence until then, and a reply that stopped right at the full stop left that sentence unspoken
for the whole wait (gaps of 0.7-1.4 s mid-answer with 2 and 4 devices).

Tools use the ``<tool_call>`` convention of Qwen2.5 and Hermes-style models (:mod:`.tool_calls`): a
model whose chat template knows ``tools`` (Qwen2.5) gets them through its template; any other model
(SmolLM2) gets the same convention described in the system message, if it is offered tools at all
(``llm.tools: auto`` offers them only to a model whose template knows them: ``calls_tools``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncGenerator, AsyncIterator, Callable, Sequence

from ..models import DEFAULT_LLM, resolve_model
from .base import BusyError, ChatMessage, LLMEvent, ProviderError, ToolSpec
from .tool_calls import ToolCallParser, parse_tool_payload, to_template_messages, tools_system_block

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)

# Used when a GGUF carries no chat template.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

_DONE = object()
YIELDS = 2                 # times one reply gives the model up to a waiting device
YIELD_AFTER_CHARS = 40     # text written in one hold before it may give the model up (~3 s of speech)
# The end of a sentence and the first letters of the next word: a full stop followed by closing quotes,
# brackets or emoji, white space, then a word ("light. The", "done!\" 😊 Now"; not "3.5", not "<tool_call>").
_NEXT_SENTENCE_BEGUN = re.compile(r"[.!?…][^\w<]*\s[^\W_]+$")
_CJK_SENTENCE_END = ("。", "！", "？")     # these end a sentence at once: nothing to wait for
_CLOSING = " \"'”’)」』）】》"

# The tool-call convention is part of this provider's surface (tests and the quality bench read it here).
__all__ = ["LlamaCppLLM", "ToolCallParser", "create", "load_model", "may_give_up", "parse_tool_payload",
           "to_template_messages", "tools_system_block"]


# ---------------------------------------------------------------------------- taking turns


def may_give_up(text: str) -> bool:
    """Whether a reply that has written ``text`` in this hold of the model may give it up here.

    At least ``YIELD_AFTER_CHARS`` written, outside a tool call, and every sentence before the last
    word complete *as a sentence splitter sees it*: an English full stop counts once the next word
    has begun (a splitter must see what follows it: "3.5", "Mr. Smith"), a Chinese one at once.
    The first letters of the next word belong to the text so far; the continuation goes on from them.
    """
    if len(text) < YIELD_AFTER_CHARS or text.rfind("<tool_call>") > text.rfind("</tool_call>"):
        return False
    return _NEXT_SENTENCE_BEGUN.search(text) is not None or text.rstrip(_CLOSING).endswith(_CJK_SENTENCE_END)


# ---------------------------------------------------------------------------- provider


def _token_text(llm: Any, token: int) -> str:
    return llm.detokenize([token], special=True).decode("utf-8", "replace") if token != -1 else ""


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    stopped: bool = False      # stopped early by cancellation or timeout
    yielded: bool = False      # stopped after a sentence to let a waiting device have the model
    text: str = ""


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
        # A chat template that renders tools belongs to a model trained to call them (Qwen2.5); one
        # without (SmolLM2) only imitates the convention, often by reading it back to the user.
        self.calls_tools = self.native_tools
        self.eos_text = _token_text(llm, llm.token_eos())
        bos_text = _token_text(llm, llm.token_bos())
        # Fed the plain message dicts of tool_calls.to_template_messages (the template reads them as
        # JSON); llama_cpp's TypedDicts for OpenAI-style requests do not describe those.
        self._formatter: Callable[..., Any] = Jinja2ChatFormatter(template=template, eos_token=self.eos_text,
                                                                  bos_token=bos_text)
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
                          temperature: float | None = None, prefix: str = "",
                          yield_when: Callable[[str], bool] | None = None) -> GenerationStats:
        """Run one generation, calling ``emit`` per text piece, until done, ``stop`` is set or timed out.

        ``prefix``: the answer's text so far (a continuation after yielding); ``yield_when(text)``
        is asked after every token with this call's text: True stops here (``stats.yielded``)."""
        from llama_cpp import StoppingCriteriaList

        stats = GenerationStats()
        if stop.is_set():
            stats.stopped = True
            return stats
        t0 = time.monotonic()
        deadline = t0 + self.timeout

        pieces: list[str] = []

        def should_stop(_ids: Any, _logits: Any) -> bool:
            self.compute.pause_for_urgent()   # a first sentence is being synthesized: let it have the cores
            if yield_when is not None and not stats.yielded and yield_when("".join(pieces)):
                stats.yielded = True
            return stats.yielded or stop.is_set() or time.monotonic() > deadline

        with self._lock:
            limit = max_tokens or self.max_tokens
            tokens = self._prompt_tokens(messages, tools, limit)
            if prefix:
                done = self.llm.tokenize(prefix.encode("utf-8"), add_bos=False, special=False)
                tokens += done
                limit = max(1, limit - len(done))
            stats.prompt_tokens = len(tokens)
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
            generated = stats.text = "".join(pieces)
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
        parser = ToolCallParser()
        said = ""
        for turn in range(YIELDS + 1):
            stats = GenerationStats()
            rule = self._yield_rule() if turn < YIELDS else None
            async with contextlib.aclosing(self._segment(msgs, tool_dicts, said, rule, stats, turn)) as texts:
                async for text in texts:
                    for event in parser.feed(text):
                        yield event
            said += stats.text
            if not stats.yielded:
                break
        for event in parser.finish():
            yield event

    def _yield_rule(self) -> Callable[[str], bool]:
        """When a generation gives the model up (asked on the compute thread after every token): at a
        point :func:`may_give_up` allows, while a device is queued for the model."""
        lim = self.compute.limit("llm")

        def rule(text: str) -> bool:
            return may_give_up(text) and lim.queued() > 0
        return rule

    async def _segment(self, msgs: list[dict[str, Any]], tool_dicts: list[dict[str, Any]] | None, prefix: str,
                       rule: Callable[[str], bool] | None, stats: GenerationStats, turn: int) -> AsyncGenerator[str, None]:
        """One stretch of a generation in one hold of the slot (the first is bounded by ``llm.max_wait``;
        a continuation queues like anyone, but is never answered "busy": its answer has begun)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        # A continuation is patient. It used to get the kind's default limit (max_wait=None), so a
        # long queue could end an answer halfway with "Sorry, I'm busy".
        async with self.compute.slot("llm", max_wait=self.max_wait, patient=turn > 0):
            worker = asyncio.ensure_future(self.compute.run_in_slot(
                "llm", self.generate_blocking, msgs, tool_dicts, stop, emit, None, None, prefix, rule))
            worker.add_done_callback(lambda _f: queue.put_nowait(_DONE))
            try:
                while True:
                    item = await queue.get()
                    if item is _DONE:
                        break
                    yield item  # type: ignore[misc]
                result = worker.result()
                stats.text, stats.yielded = result.text, result.yielded
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
        async with self.compute.slot("llm", max_wait=0.0 if only_if_idle else None, background=True):
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
    # outnumber cores: 100 -> 55 tok/s measured). Pinning the kind to one thread fixes it.
    compute.pin("llm")
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
