"""Dialogue memory on a real SQLite file: commits, the bounded window, rolling summaries, forget,
retention, and survival across a restart of the agent."""

from __future__ import annotations

import asyncio

import pytest

from xiaozhi_hub.memory.conversation import SUMMARY_HEADER, ConversationMemory
from xiaozhi_hub.memory.store import DialogueStore
from xiaozhi_hub.memory.summary import ExtractiveSummarizer, LLMSummarizer, make_summarizer
from xiaozhi_hub.pipeline.agent import Agent
from xiaozhi_hub.providers.base import ProviderError, TextDelta
from xiaozhi_hub.providers.fake import FakeLLM
from xiaozhi_hub.settings import FakeSettings, MemorySettings
from xiaozhi_hub.store.db import Database

from .conftest import FakeLink, ManualClock, ScriptedLLM, collect, settings

DEV = "aa:bb:cc:dd:ee:01"


async def fill(store: DialogueStore, n_pairs: int, device: str = DEV, first: int = 0) -> None:
    for i in range(first, first + n_pairs):
        await store.append(device, "user", f"Question {i}. More words here.")
        await store.append(device, "assistant", f"Answer {i}. Details follow.")


async def test_messages_are_committed_at_once_and_survive_reopening(tmp_path, db):
    store = DialogueStore(db, MemorySettings())
    await store.append(DEV, "user", "hello")
    await store.append(DEV, "assistant", "hi", interrupted=True)
    # A second connection sees the rows: they are committed, not pending in a transaction.
    import sqlite3
    with sqlite3.connect(tmp_path / "hub.db") as other:
        assert other.execute("SELECT role, content, interrupted FROM dialogue ORDER BY id").fetchall() == [
            ("user", "hello", 0), ("assistant", "hi", 1)]
    await db.close()
    reopened = await Database(tmp_path / "hub.db").open()
    try:
        msgs = await DialogueStore(reopened, MemorySettings()).messages(DEV)
        assert [(m.role, m.content, m.interrupted) for m in msgs] == [("user", "hello", False), ("assistant", "hi", True)]
    finally:
        await reopened.close()


async def test_window_is_bounded_by_count_and_characters_and_starts_with_the_user(db):
    store = DialogueStore(db, MemorySettings(window_messages=5, max_context_chars=10_000))
    await fill(store, 4)
    w = await store.window(DEV)
    assert [m.content for m in w.messages] == ["Question 2. More words here.", "Answer 2. Details follow.",
                                               "Question 3. More words here.", "Answer 3. Details follow."]
    small = DialogueStore(db, MemorySettings(window_messages=8, max_context_chars=60))
    assert [m.role for m in (await small.window(DEV)).messages] == ["user", "assistant"]
    assert (await store.window("other-device")).messages == ()


async def test_overflow_is_folded_into_an_extractive_summary_deterministically(db):
    cfg = MemorySettings(window_messages=4, summary_chars=400)
    store = DialogueStore(db, cfg)
    memory = ConversationMemory(store, ExtractiveSummarizer(), cfg)
    await fill(store, 2)
    assert not await memory.summarize_now(DEV)           # 4 messages fit the window
    await fill(store, 1, first=2)
    assert await memory.summarize_now(DEV)
    summary, upto = await store.summary(DEV)
    assert summary == ("User: Question 0.\nAssistant: Answer 0.\nUser: Question 1.\nAssistant: Answer 1.")
    w = await store.window(DEV)
    assert w.summary == summary and [m.content[:10] for m in w.messages] == ["Question 2", "Answer 2. "]
    chat = await memory.chat_messages(DEV, "You are helpful.")
    assert chat[0].content == "You are helpful."           # unchanged: the provider's cached prefix
    assert chat[1].content == f"{SUMMARY_HEADER}\n{summary}"
    assert [m.role for m in chat[1:]] == ["system", "user", "assistant"]


async def test_summary_keeps_the_newest_lines_under_the_limit():
    from xiaozhi_hub.memory.store import DialogueMessage

    msgs = [DialogueMessage(i, DEV, "user", f"Message number {i}.", 0.0) for i in range(20)]
    text = await ExtractiveSummarizer().summarize("", msgs, 100)
    assert len(text) <= 100 and text.endswith("User: Message number 19.")


async def test_llm_summary_and_its_fallback():
    from xiaozhi_hub.memory.store import DialogueMessage

    msgs = [DialogueMessage(1, DEV, "user", "My name is Ann.", 0.0)]
    llm = ScriptedLLM(scripts=[[TextDelta("The user is "), TextDelta("Ann.")]])
    assert await LLMSummarizer(llm).summarize("", msgs, 200) == "The user is Ann."
    assert "My name is Ann." in llm.seen[0][0][1].content and llm.seen[0][1] == []

    class Failing:
        name = "x"

        async def stream(self, messages, tools=()):
            raise ProviderError("busy")
            yield  # pragma: no cover

    assert await LLMSummarizer(Failing()).summarize("", msgs, 200) == "User: My name is Ann."
    assert isinstance(make_summarizer("auto", FakeLLM(FakeSettings()), remote=True), ExtractiveSummarizer)
    assert isinstance(make_summarizer("auto", llm), ExtractiveSummarizer)        # in-process: keep the cache
    assert isinstance(make_summarizer("auto", llm, remote=True), LLMSummarizer)
    assert isinstance(make_summarizer("llm", llm), LLMSummarizer)


async def test_forget_removes_everything_and_a_late_summary_is_discarded(db):
    cfg = MemorySettings(window_messages=2)
    store = DialogueStore(db, cfg)
    await fill(store, 3)
    await fill(store, 1, device="other")
    job = await store.summary_job(DEV)
    assert job is not None
    assert await ConversationMemory(store, ExtractiveSummarizer(), cfg).forget(DEV) == 6
    assert not await store.save_summary(DEV, "stale", job.upto_id)
    assert await store.messages(DEV) == [] and await store.summary(DEV) == ("", 0)
    assert len(await store.messages("other")) == 2


async def test_retention_deletes_old_dialogue_only(db):
    clock = ManualClock()
    store = DialogueStore(db, MemorySettings(retention_days=1), clock=clock)
    await store.append(DEV, "user", "old")
    clock.t += 2 * 86400
    await store.append(DEV, "user", "new")
    assert await store.prune() == 1
    assert [m.content for m in await store.messages(DEV)] == ["new"]
    keep = DialogueStore(db, MemorySettings(retention_days=0), clock=clock)
    clock.t += 100 * 86400
    assert await keep.prune() == 0


async def test_conversation_survives_an_agent_restart_on_the_same_database(tmp_path):
    cfg = settings(tmp_path, memory={"window_messages": 6})
    db = await Database(tmp_path / "hub.db").open()
    llm = ScriptedLLM(scripts=[[TextDelta("Nice to meet you, Ann.")]])
    agent = Agent(cfg, llm, db=db)
    await collect(agent.reply(FakeLink(), "My name is Ann."))
    await agent.close()
    await db.close()

    db = await Database(tmp_path / "hub.db").open()
    try:
        llm2 = ScriptedLLM(scripts=[[TextDelta("You are Ann.")]])
        agent2 = Agent(cfg, llm2, db=db)
        assert await collect(agent2.reply(FakeLink(), "What is my name?")) == "You are Ann."
        prompt = [(m.role, m.content) for m in llm2.seen[0][0][1:]]
        assert prompt == [("user", "My name is Ann."), ("assistant", "Nice to meet you, Ann."),
                          ("user", "What is my name?")]
        await agent2.close()
    finally:
        await db.close()


async def test_long_conversations_stay_bounded_with_a_background_summary(tmp_path, db):
    cfg = settings(tmp_path, memory={"window_messages": 4, "summary_chars": 1000})
    llm = FakeLLM(FakeSettings(llm_reply="Sure thing."))
    agent = Agent(cfg, llm, db=db)
    link = FakeLink()
    for i in range(6):
        await collect(agent.reply(link, f"Tell me fact number {i}."))
        await agent.memory.wait_idle()
    summary, upto = await agent.memory.store.summary(link.device_id)
    assert summary.startswith("User: Tell me fact number 0.\nAssistant: Sure thing.")
    window = await agent.memory.store.window(link.device_id)
    assert len(window.messages) <= 4 and window.messages[-1].content == "Sure thing."
    await agent.close()


async def test_spoken_forget_clears_the_stored_conversation(tmp_path, db):
    agent = Agent(settings(tmp_path), ScriptedLLM(), db=db)
    link = FakeLink()
    await collect(agent.reply(link, "I like green tea."))
    assert len(await agent.memory.store.messages(link.device_id)) == 2
    said = await collect(agent.reply(link, "Forget our conversation."))
    assert said == "Okay, I've forgotten our conversation."
    assert await agent.memory.store.messages(link.device_id) == []
    await agent.close()


async def test_a_reply_cut_off_by_barge_in_is_kept_and_marked_interrupted(tmp_path, db):
    class Slow:
        name = "slow"
        calls_tools = True

        async def stream(self, messages, tools=()):
            yield TextDelta("Once upon a time there was a fox. It")
            await asyncio.sleep(30)
            yield TextDelta(" lived happily.")

    agent = Agent(settings(tmp_path), Slow(), db=db)
    link = FakeLink()
    first = asyncio.Event()

    async def consume() -> None:
        async for piece in agent.reply(link, "Tell me a story."):
            if piece:             # the first sentence (an empty piece marks the LLM's first token)
                first.set()

    task = asyncio.ensure_future(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    msgs = await agent.memory.store.messages(link.device_id)
    assert [(m.role, m.content, m.interrupted) for m in msgs] == [
        ("user", "Tell me a story.", False), ("assistant", "Once upon a time there was a fox.", True)]
    chat = await agent.memory.chat_messages(link.device_id, "sys")
    assert chat[-1].content == "Once upon a time there was a fox. (interrupted)"
    await agent.close()


async def test_memory_disabled_stores_nothing(tmp_path, db):
    agent = Agent(settings(tmp_path, memory={"enabled": False}), ScriptedLLM(), db=db)
    link = FakeLink()
    await collect(agent.reply(link, "hello"))
    assert await agent.memory.store.messages(link.device_id) == []
    await agent.close()


async def test_a_new_turn_stops_a_running_llm_summary_and_it_resumes_afterwards(tmp_path, db):
    class Gate:
        """An LLM whose summaries block until released; chat replies are instant."""

        name = "gate"
        calls_tools = True

        def __init__(self) -> None:
            self.release = asyncio.Event()
            self.summaries_started = 0

        async def stream(self, messages, tools=()):
            if messages[0].content.startswith("You keep the memory"):
                self.summaries_started += 1
                await self.release.wait()
                yield TextDelta("Summary.")
                return
            yield TextDelta("Reply.")

    llm = Gate()
    agent = Agent(settings(tmp_path, memory={"window_messages": 2, "summarizer": "llm"}), llm, db=db)
    link = FakeLink()
    await collect(agent.reply(link, "one"))
    await collect(agent.reply(link, "two"))          # 4 messages > window 2: a summary starts
    await asyncio.sleep(0.05)
    assert llm.summaries_started == 1
    t0 = asyncio.get_running_loop().time()
    assert await collect(agent.reply(link, "three")) == "Reply."   # not stuck behind the summary
    assert asyncio.get_running_loop().time() - t0 < 1
    await asyncio.sleep(0.05)
    assert llm.summaries_started == 2                 # rescheduled after the turn
    llm.release.set()
    await agent.memory.wait_idle()
    assert (await agent.memory.store.summary(link.device_id))[0] == "Summary."
    await agent.close()


class PrefillingLLM(ScriptedLLM):
    """Records the prompts the agent asks it to pre-evaluate (llama.cpp's prefix cache); like
    llama.cpp it is a PromptCacheLLM (warm_up and prefill)."""

    def __init__(self) -> None:
        super().__init__()
        self.prefilled: list[tuple[list[tuple[str, str]], bool]] = []

    async def warm_up(self, tools=(), system=None) -> None:
        pass

    async def prefill(self, messages, tools=(), only_if_idle=False) -> None:
        self.prefilled.append(([(m.role, m.content) for m in messages], only_if_idle))


async def test_after_a_summary_folds_messages_the_next_prompt_is_prefilled(tmp_path, db):
    cfg = settings(tmp_path, memory={"window_messages": 4, "summarizer": "extractive"})
    llm = PrefillingLLM()
    agent = Agent(cfg, llm, db=db)
    link = FakeLink()
    for i in range(2):                          # 4 messages: they fit the window, nothing folds
        await collect(agent.reply(link, f"question {i}"))
        await agent.memory.wait_idle()
    assert llm.prefilled == []
    await collect(agent.reply(link, "question 2"))   # 6 messages: the oldest are summarised
    await agent.memory.wait_idle()
    assert len(llm.prefilled) == 1
    prompt, only_if_idle = llm.prefilled[0]
    assert only_if_idle                          # never queue ahead of a device's turn
    # Exactly what the next turn's prompt will start with: system, the new summary, the window.
    assert prompt == [(m.role, m.content) for m in await agent.dialogue.messages(link.device_id)]
    assert prompt[1][0] == "system" and prompt[1][1].startswith(SUMMARY_HEADER)
    assert prompt[-1] == ("assistant", "Okay.")
    await collect(agent.reply(link, "question 3"))
    assert [(m.role, m.content) for m in llm.seen[-1][0]][:-1] == prompt
