"""The session state machine: states and the allowed transitions (pure, table-tested)."""

from __future__ import annotations

import enum


class SessionState(enum.Enum):
    CONNECTED = "connected"   # socket open, waiting for the device hello
    IDLE = "idle"             # hello done; the device is not streaming the microphone
    LISTENING = "listening"   # the microphone is streaming; VAD/ASR are running
    THINKING = "thinking"     # end of speech seen; ASR final / LLM running, nothing spoken yet
    SPEAKING = "speaking"     # "tts start" sent; audio is being paced to the device
    CLOSED = "closed"


S = SessionState

# state -> states it may move to. Everything may close.
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    S.CONNECTED: frozenset({S.IDLE, S.CLOSED}),
    S.IDLE: frozenset({S.LISTENING, S.THINKING, S.SPEAKING, S.CLOSED, S.IDLE}),  # THINKING: a typed question
    S.LISTENING: frozenset({S.LISTENING, S.THINKING, S.SPEAKING, S.IDLE, S.CLOSED}),
    S.THINKING: frozenset({S.SPEAKING, S.LISTENING, S.IDLE, S.CLOSED}),
    S.SPEAKING: frozenset({S.LISTENING, S.IDLE, S.SPEAKING, S.CLOSED}),
    S.CLOSED: frozenset({S.CLOSED}),
}


class InvalidTransition(RuntimeError):
    pass


def check_transition(current: SessionState, new: SessionState) -> None:
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"{current.value} -> {new.value} is not allowed")
