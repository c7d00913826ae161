"""Conversation memory: per-device dialogue in SQLite (``store``), rolling summaries (``summary``)
and the agent-facing window and background summarisation (``conversation``). Text only, no audio."""
