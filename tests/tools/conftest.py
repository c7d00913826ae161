"""Helpers for the tool tests. The device link, scripted LLM, clock and database the agent tests use
serve the tools too (a tool runs inside the agent's turn), so they are shared, not copied."""

from __future__ import annotations

from ..agent_helpers import FakeLink, ManualClock, ScriptedLLM, collect, db, settings

__all__ = ["FakeLink", "ManualClock", "ScriptedLLM", "collect", "db", "settings"]
