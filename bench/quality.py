"""Answer quality with each installed LLM: the project's question set through the real pipeline.

Every installed llama.cpp LLM of the manifest gets a hub of its own (otherwise the default models
and settings: Whisper, Piper joe, memory), and each question of ``bench/questions.yaml`` is typed to
it by a simulated device of its own (``listen detect`` with text, as a test client does; a fresh
device, so answers do not depend on each other and the order of the set). Questions start one at a
time, on an LLM that has been idle for ``SETTLE`` seconds; the next starts once the previous one's
first audio has arrived and the LLM has finished writing it, while at most ``DEVICES`` answers play
at once. So the run takes minutes rather than the sum of every answer's playing time, and each
first audio (question sent -> first audio frame at the device) is measured on a free LLM (its first
sentence may still share the synthesizer with answers that are playing).

What is judged is what reached the speech synthesizer (the ``tts sentence_start`` texts) and the
audio the device received; :mod:`bench.quality_checks` has the checks. Answers are sampled at the
hub's default temperature, so figures move a little between runs. Not covered: follow-up questions
in one conversation (history, summaries) and spoken (rather than typed) questions.

    python -m bench quality              # as part of make bench
    python -m bench.quality --answers    # also print every answer and what was flagged in it
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from xiaozhi_hub.app import Hub
from xiaozhi_hub.context import HubContext
from xiaozhi_hub.settings import from_mapping
from xiaozhi_hub.simulator import SimulatedDevice

from .common import ROOT, pct
from .quality_checks import LeakGuard, expected_pattern, find_loop, unspeakable, word_count

QUESTIONS = Path(__file__).with_name("questions.yaml")
INSTALLED = ROOT / "models" / "installed"
DEVICES = 5                        # answers playing at once (each question has a device of its own)
TURN_TIMEOUT = 180.0
SETTLE = 0.3                       # seconds of an idle LLM before the next question is asked
KINDS = ("fact", "command", "chit-chat", "story", "list")
MAY_RUN_LONG = ("story", "list")
MAX_WORDS, MAX_SECONDS = 40, 15.0


@dataclass(frozen=True)
class Question:
    q: str
    kind: str
    expect: str | None = None
    tag: str | None = None
    volume: int | None = None

    @property
    def zh(self) -> bool:
        return re.search(r"[\u4e00-\u9fff]", self.q) is not None


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for i, item in enumerate(raw, 1):
        if item.get("kind") not in KINDS:
            raise ValueError(f"{path.name} #{i}: kind must be one of {', '.join(KINDS)}")
        out.append(Question(q=str(item["q"]), kind=item["kind"], expect=item.get("expect"), tag=item.get("tag"),
                            volume=item.get("volume")))
    return out


@dataclass
class Answer:
    question: Question
    sentences: list[str]
    seconds: float                 # audio the device received
    first_audio: float | None      # question sent -> first audio frame at the device
    asked_at: dt.datetime
    volume: int                    # the device's speaker volume after the answer
    error: str | None = None
    leak: str | None = None
    loop: str | None = None
    unspeakable: dict[str, str] = field(default_factory=dict)
    right: bool | None = None      # None: nothing to check

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def words(self) -> float:
        return word_count(self.text)

    @property
    def too_long(self) -> bool:
        return self.question.kind not in MAY_RUN_LONG and (self.words > MAX_WORDS or self.seconds > MAX_SECONDS)

    def judge(self, guard: LeakGuard) -> None:
        self.leak = guard.find(self.text, self.question.q)
        self.loop = find_loop(self.text)
        self.unspeakable = unspeakable(self.sentences)
        q = self.question
        if q.expect is not None:
            self.right = expected_pattern(q.expect, self.asked_at).search(self.text) is not None
        if q.volume is not None:
            self.right = self.right is not False and self.volume == q.volume


class PromptRecorder:
    """Wraps the hub's LLM provider and feeds every instruction text it is given to a :class:`LeakGuard`:
    the first system message whole, the first line (a header) of later ones (the summary under it is
    conversation, not instructions), each tool's name and description, and the tool convention the
    provider adds (its own text, or the tool part of the model's chat template)."""

    def __init__(self, llm: Any, guard: LeakGuard) -> None:
        self.llm = llm
        self.guard = guard
        original = llm.stream

        def stream(messages: Sequence[Any], tools: Sequence[Any] = (), *args: Any, **kwargs: Any) -> Any:
            self.record(messages, tools)
            return original(messages, tools, *args, **kwargs)

        llm.stream = stream

    def record(self, messages: Sequence[Any], tools: Sequence[Any]) -> None:
        systems = [m.content for m in messages if m.role == "system" and m.content]
        for i, content in enumerate(systems):
            self.guard.add_text(content if i == 0 else content.splitlines()[0])
        for tool in tools:
            self.guard.add_tool(tool.name, tool.description)
        if tools:
            self.guard.add_text(self._tool_convention(tools))

    def _tool_convention(self, tools: Sequence[Any]) -> str:
        if getattr(self.llm, "native_tools", False):
            meta = getattr(getattr(self.llm, "llm", None), "metadata", None) or {}
            template = meta.get("tokenizer.chat_template", "")
            literals = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", template)
            return "\n".join(s.replace("\\n", "\n") for pair in literals for s in pair
                             if re.search(r"tool|function", s, re.IGNORECASE))
        block = getattr(sys.modules.get(type(self.llm).__module__), "tools_system_block", None)
        return block(tools) if callable(block) else ""


def installed_llms() -> list[str]:
    """Manifest LLMs for llama.cpp that are installed in the repository's models folder."""
    import importlib.util

    from xiaozhi_hub.models import load_manifest

    if importlib.util.find_spec("llama_cpp") is None:
        return []
    return [e.id for e in load_manifest().entries
            if e.role == "llm" and e.engine == "llamacpp" and e.main_path(INSTALLED).exists()]


def _ctx(hub: Hub) -> HubContext:
    assert hub.ctx is not None, "the hub is not started"
    return hub.ctx


def _llm_idle(hub: Hub) -> bool:
    lim = _ctx(hub).compute.limit("llm")
    return lim.active == 0 and lim.waiting == 0


async def _quiet(hub: Hub, dev: SimulatedDevice) -> None:
    """Wait until the LLM has been idle for ``SETTLE`` seconds: after an answer the hub may still
    use it briefly (a prompt-cache prefill), and a question asked then would measure that wait."""
    stats = _ctx(hub).compute.stats["llm"]
    while True:
        await dev.wait_until(lambda: _llm_idle(hub), TURN_TIMEOUT)
        calls = stats["calls"]
        await asyncio.sleep(SETTLE)
        if _llm_idle(hub) and stats["calls"] == calls:
            return


async def _ask(hub: Hub, url: str, question: Question, gate: asyncio.Lock) -> Answer:
    """One question on a device of its own (no conversation history), from hello to the end of the answer."""
    async with SimulatedDevice(url) as dev:
        # The hub lists the device's MCP tools right after the hello; let that finish first.
        await dev.wait_until(lambda: any(c.method == "tools/list" for c in dev.mcp_calls), 30)
        async with gate:   # one question starts at a time, on a quiet LLM
            await _quiet(hub, dev)
            asked_at = dt.datetime.now().astimezone()
            task = asyncio.create_task(dev.run_turn(text=question.q, mode="manual", timeout=TURN_TIMEOUT))

            def written() -> bool:
                turn = dev.turn
                return task.done() or (turn is not None and turn.first_audio_at is not None and _llm_idle(hub))

            with contextlib.suppress(TimeoutError):
                await dev.wait_until(written, TURN_TIMEOUT)
        try:
            turn = await task
        except TimeoutError:
            partial = dev.turn
            return Answer(question, partial.sentences if partial else [], partial.audio_seconds if partial else 0.0,
                          partial.first_audio_latency if partial else None, asked_at, dev.volume,
                          error=f"no complete answer within {TURN_TIMEOUT:g} s")
        return Answer(question, [s for s in turn.sentences if s.strip()], turn.audio_seconds,
                      turn.first_audio_latency, asked_at, dev.volume)


@dataclass
class Run:
    model: str
    answers: list[Answer]
    warm_up: float | None          # first audio of the first question after start-up (not in the figures)
    seconds: float
    fillers: int
    busy: int


async def run_llm(model: str, questions: list[Question], devices: int = DEVICES) -> Run:
    """One hub with ``model``; every question asked (at most ``devices`` answers playing at once) and judged."""
    with tempfile.TemporaryDirectory(prefix="xiaozhi-quality-") as tmp:
        hub = Hub(from_mapping({
            "server": {"host": "127.0.0.1", "ws_port": 0, "http_port": 0}, "mdns": {"enabled": False},
            "data_dir": tmp, "models_dir": str(INSTALLED),
            "llm": {"provider": "llamacpp", "model": model}, "session": {"idle_timeout": 900}}))
        await hub.start()
        try:
            guard = LeakGuard()
            ctx = _ctx(hub)
            PromptRecorder(ctx.providers.llm, guard)
            url = f"ws://127.0.0.1:{ctx.ws_port}/xiaozhi/v1/"
            gate, playing = asyncio.Lock(), asyncio.Semaphore(devices)
            t0 = time.monotonic()
            first = await _ask(hub, url, Question("Hello.", "chit-chat"), gate)
            counters = ctx.metrics.counters
            before = {k: counters.get(k, 0) for k in ("fillers", "busy_answers")}

            async def one(q: Question) -> Answer:
                async with playing:
                    return await _ask(hub, url, q, gate)

            answers = list(await asyncio.gather(*(one(q) for q in questions)))
            for a in answers:
                a.judge(guard)
            return Run(model, answers, first.first_audio, time.monotonic() - t0,
                       int(counters.get("fillers", 0) - before["fillers"]),
                       int(counters.get("busy_answers", 0) - before["busy_answers"]))
        finally:
            await hub.stop()


def _median_max(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} / {max(values):{fmt}}" if values else "-"


def summarize(run: Run) -> list[tuple[str, str, str]]:
    a = run.answers
    heard = [x for x in a if x.sentences]
    short = [x for x in a if x.question.kind not in MAY_RUN_LONG]
    facts = [x for x in a if x.right is not None and x.question.kind != "command" and x.question.tag is None]
    exact = [x for x in a if x.right is not None and x.question.tag is not None]
    commands = [x for x in a if x.right is not None and x.question.kind == "command"]
    latencies = [x.first_audio for x in a if x.first_audio is not None]
    kinds = ("code", "markdown", "url", "emoji")
    p = f"{run.model}:"
    return [
        (f"{p} answered with audio / 'One moment.' fillers / busy answers",
         f"{len(heard)}/{len(a)} / {run.fillers} / {run.busy}", "all / 0 / 0"),
        (f"{p} words per answer, median / max", _median_max([x.words for x in heard], ".0f"), ""),
        (f"{p} spoken seconds per answer, median / max", _median_max([x.seconds for x in heard], ".1f"), ""),
        (f"{p} answers over {MAX_WORDS} words or {MAX_SECONDS:g} s (story/list excluded)",
         f"{sum(x.too_long for x in short)}/{len(short)}", "0"),
        (f"{p} prompt or tool text spoken (leaks)", f"{sum(x.leak is not None for x in a)}", "0"),
        (f"{p} code / markdown / URLs / emoji reaching TTS",
         " / ".join(str(sum(k in x.unspeakable for x in a)) for k in kinds), "0 / 0 / 0 / 0"),
        (f"{p} repetition loops", f"{sum(x.loop is not None for x in a)}", "0"),
        (f"{p} facts right (incl. lists)", f"{sum(bool(x.right) for x in facts)}/{len(facts)}", ""),
        (f"{p} arithmetic, conversions, date, time exact", f"{sum(bool(x.right) for x in exact)}/{len(exact)}",
         "all"),
        (f"{p} commands confirmed (and volume set)", f"{sum(bool(x.right) for x in commands)}/{len(commands)}",
         "all"),
        (f"{p} question -> first audio p50 / p95", f"{pct(latencies, 50)} / {pct(latencies, 95)} ms", ""),
        (f"{p} first question after start-up -> first audio (not above)",
         f"{run.warm_up * 1000:.0f} ms" if run.warm_up is not None else "-", ""),
    ]


async def measure() -> tuple[list[Question], list[Run]]:
    questions = load_questions()
    # The hub's warnings (a small model's unparseable tool calls, with their code) would bury the
    # table; what they are about is judged and counted here.
    hub_log = logging.getLogger("xiaozhi_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        return questions, [await run_llm(model, questions) for model in installed_llms()]
    finally:
        hub_log.setLevel(level)


def _rows(questions: list[Question], runs: list[Run]) -> list[tuple[str, str, str]]:
    zh = sum(q.zh for q in questions)
    kinds = ", ".join(f"{k} {sum(q.kind == k for q in questions)}" for k in KINDS)
    rows = [("question set", f"{len(questions)} ({len(questions) - zh} en, {zh} zh: {kinds})", ">= 30"),
            ("answers playing at once (a fresh device per question, one starting at a time)", f"{DEVICES}", "")]
    if not runs:
        rows.append(("LLMs", "none installed: run `xiaozhi-hub models install --defaults`", ""))
    for run in runs:
        rows += summarize(run)
        rows.append((f"{run.model}: run time", f"{run.seconds:.0f} s", ""))
    return rows


async def run() -> list[tuple[str, str, str]]:
    return _rows(*await measure())


def _flags(x: Answer) -> list[str]:
    flags = [f for f, on in (("LONG", x.too_long), ("WRONG", x.right is False)) if on]
    if x.leak is not None:
        flags.append(f"LEAK {x.leak!r}")
    if x.loop is not None:
        flags.append(f"LOOP {x.loop}")
    flags += [f"{k.upper()} in {s!r}" for k, s in x.unspeakable.items()]
    if x.error is not None:
        flags.append(x.error)
    return flags


def print_answers(runs: list[Run]) -> None:
    for run in runs:
        print(f"\n## Answers of {run.model}\n")
        for i, x in enumerate(run.answers, 1):
            flags = "; ".join(_flags(x))
            latency = f"{x.first_audio * 1000:.0f} ms" if x.first_audio is not None else "-"
            print(f"{i:2}. [{x.question.kind}] {x.question.q}  ({x.words:.0f} words, {x.seconds:.1f} s, "
                  f"first audio {latency})  {flags}\n    -> {x.text}")


def main(argv: list[str]) -> int:
    from .common import print_table

    t0 = time.monotonic()
    questions, runs = asyncio.run(measure())
    print_table(f"Answer quality per installed LLM  ({time.monotonic() - t0:.0f} s)", _rows(questions, runs))
    if "--answers" in argv:
        print_answers(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
