"""The session transition table."""

import pytest

from xiaozhi_hub.session.state import TRANSITIONS, InvalidTransition, SessionState as S, check_transition

ALLOWED = [
    (S.CONNECTED, S.IDLE), (S.IDLE, S.LISTENING), (S.LISTENING, S.THINKING), (S.THINKING, S.SPEAKING),
    (S.SPEAKING, S.LISTENING), (S.SPEAKING, S.IDLE), (S.IDLE, S.SPEAKING), (S.LISTENING, S.IDLE),
    (S.THINKING, S.LISTENING), (S.SPEAKING, S.SPEAKING),
    (S.IDLE, S.THINKING),   # a typed question (listen detect with text) while idle
]
REFUSED = [(S.CONNECTED, S.LISTENING), (S.CONNECTED, S.SPEAKING), (S.SPEAKING, S.THINKING), (S.CLOSED, S.IDLE),
           (S.CLOSED, S.LISTENING), (S.THINKING, S.THINKING)]


@pytest.mark.parametrize("a, b", ALLOWED)
def test_allowed(a, b):
    check_transition(a, b)


@pytest.mark.parametrize("a, b", REFUSED)
def test_refused(a, b):
    with pytest.raises(InvalidTransition):
        check_transition(a, b)


def test_every_state_can_close_and_has_a_row():
    for state in S:
        assert S.CLOSED in TRANSITIONS[state]
