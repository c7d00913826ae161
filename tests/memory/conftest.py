"""Helpers for the memory tests: the scripted device link, LLM, clock and database of tests/agent_helpers.py."""

from __future__ import annotations

from ..agent_helpers import FakeLink, ManualClock, ScriptedLLM, call, collect, db, settings

__all__ = ["FakeLink", "ManualClock", "ScriptedLLM", "call", "collect", "db", "settings"]
