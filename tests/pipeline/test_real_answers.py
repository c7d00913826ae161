"""The default answer with the real SmolLM2-135M (llama.cpp) through the whole pipeline: typed questions
from a simulated device, answered by the agent and spoken by the (fake) TTS. The model is offered no
tools (it cannot call them reliably), and whatever it writes, the device hears a short answer with
nothing of the prompt in it. Sampled at the default temperature: the answers vary, the guarantees not."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from xiaozhi_hub.app import Hub
from xiaozhi_hub.providers.tool_calls import tools_system_block
from xiaozhi_hub.settings import from_mapping
from xiaozhi_hub.simulator import SimulatedDevice

pytestmark = [pytest.mark.models, pytest.mark.asyncio(loop_scope="module")]

INSTALLED = Path(__file__).resolve().parents[2] / "models" / "installed"
MODEL = "smollm2-135m-instruct"
# Questions that made SmolLM2 read its instructions aloud, loop or talk for a minute (issue 16).
QUESTIONS = ["Good morning!", "I do. I think that America do it very well.", "Who wrote Romeo and Juliet?",
             "How many legs does a spider have?"]


def words(text: str) -> list[str]:
    """Lower-case words, apostrophes spelt out the simple way ("you're" → "you are")."""
    text = text.lower().replace("’", "'").replace("'re", " are").replace("'m", " am").replace("'s", " is")
    return re.findall(r"[a-z0-9]+", text)


def runs(text: str, n: int = 6) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    from xiaozhi_hub.models import load_manifest

    if not load_manifest().get(MODEL).main_path(INSTALLED).exists():
        pytest.skip(f"model {MODEL} not installed: run `xiaozhi-hub models install --defaults --llm-size tiny`")
    data = tmp_path_factory.mktemp("real-answers")
    hub = Hub(from_mapping({"server": {"host": "127.0.0.1", "ws_port": 0, "http_port": 0}, "mdns": {"enabled": False},
                            "wyoming": {"enabled": False}, "data_dir": str(data), "models_dir": str(INSTALLED),
                            "asr": {"provider": "fake"}, "tts": {"provider": "fake"},
                            "llm": {"provider": "llamacpp", "model": MODEL}}))
    await hub.start()
    yield hub
    await hub.stop()


class Prompts:
    """Records what the hub's LLM is given."""

    def __init__(self, llm: Any) -> None:
        self.seen: list[tuple[list[Any], list[Any]]] = []
        original = llm.stream

        def stream(messages: Any, tools: Any = ()) -> Any:
            self.seen.append((list(messages), list(tools)))
            return original(messages, tools)

        llm.stream = stream


async def test_smollm2_is_offered_no_tools_and_its_prompt_is_the_system_prompt_alone(hub: Hub):
    llm, agent = hub.ctx.providers.llm, hub.ctx.agent
    assert llm.calls_tools is False and agent.llm_tools is False
    prompts = Prompts(llm)
    url = f"ws://127.0.0.1:{hub.ctx.ws_port}/xiaozhi/v1/"
    async with SimulatedDevice(url) as dev:
        await dev.run_turn(text="Tell me something nice.", mode="manual", timeout=120)
    messages, tools = prompts.seen[0]
    assert tools == []
    assert [m.content for m in messages if m.role == "system"] == [hub.ctx.settings.llm.system_prompt]


async def test_the_default_answer_is_short_and_has_no_prompt_text(hub: Hub):
    settings = hub.ctx.settings
    prompt = runs(settings.llm.system_prompt) | runs(tools_system_block(hub.ctx.agent.registry.specs()))
    url = f"ws://127.0.0.1:{hub.ctx.ws_port}/xiaozhi/v1/"
    for question in QUESTIONS:
        async with SimulatedDevice(url) as dev:
            turn = await dev.run_turn(text=question, mode="manual", timeout=120)
        said = " ".join(turn.sentences)
        assert said.strip(), question
        assert len(words(said)) <= 40, (question, said)
        sentences = [s for s in turn.sentences if s.rstrip()[-1:] in ".!?"]     # pieces that end a sentence
        assert len(sentences) <= settings.agent.answer_sentences, (question, turn.sentences)
        leaked = runs(said) & (prompt - runs(question))
        assert not leaked, (question, said, leaked)
        assert "`" not in said and "<" not in said, (question, said)
