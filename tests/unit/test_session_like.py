"""Every front end drives a live session and a replay through one protocol, with every command in it.

``lkstate.ui.SessionLike`` is what the Textual, Qt, Gradio and trio adapters
call; they never ask a session whether it has a command. So a live
:class:`~lkstate.Session` and a :class:`~lkstate.recording.Replay` must both
have each member with the same parameters and the same kind (a coroutine, a
plain method or a property), and a replay refuses each command in words.
(Pyright checks the same in ``lkstate/ui.py``; this checks what runs.)
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from lkstate import DevelopmentTokenSource, Session
from lkstate.errors import LkstateError, ReplayReadOnlyError
from lkstate.recording import Replay
from lkstate.ui import SessionLike

COMMANDS = {
    "send_text": ("hello",),
    "set_microphone_enabled": (True,),
    "set_speaker_enabled": (True,),
    "set_camera_enabled": (True,),
    "set_screen_share_enabled": (False,),
}


def _members() -> list[str]:
    return sorted(
        name
        for name, value in vars(SessionLike).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    )


def _kind(value: object) -> str:
    if isinstance(value, property):
        return "property"
    if inspect.iscoroutinefunction(value):
        return "coroutine"
    return "method"


def _parameters(value: object) -> list[tuple[str, Any, Any]]:
    if isinstance(value, property):
        return []
    signature = inspect.signature(value)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_the_protocol_holds_the_read_api_the_lifecycle_and_every_command() -> None:
    assert set(_members()) == {
        "state",
        "states",
        "levels",
        "select",
        "wait_until",
        "room",
        "start",
        "end",
        "dismiss_problems",
        *COMMANDS,
    }


@pytest.mark.parametrize("implementation", [Session, Replay], ids=["Session", "Replay"])
@pytest.mark.parametrize("member", _members())
def test_a_session_and_a_replay_have_each_member_as_the_protocol_declares_it(
    implementation: type, member: str
) -> None:
    declared = vars(SessionLike)[member]
    actual = inspect.getattr_static(implementation, member, None)
    assert actual is not None, f"{implementation.__name__} has no {member}"
    assert _kind(actual) == _kind(declared), f"{implementation.__name__}.{member} is a {_kind(actual)}"
    assert _parameters(actual) == _parameters(declared), f"{implementation.__name__}.{member} takes other parameters"


@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_a_replay_refuses_each_command_in_words(command: str) -> None:
    replay = Replay([])
    with pytest.raises(ReplayReadOnlyError, match="A replay is read-only") as caught:
        await getattr(replay, command)(*COMMANDS[command])
    assert caught.value.remedy


async def test_a_replay_refuses_dismissing_problems_and_has_no_room() -> None:
    replay = Replay([])
    with pytest.raises(ReplayReadOnlyError):
        replay.dismiss_problems()
    assert replay.room is None


async def test_a_live_session_refuses_a_microphone_it_was_not_given_in_words() -> None:
    session = Session(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"), audio_input=None)
    with pytest.raises(LkstateError, match="no microphone input") as caught:
        await session.set_microphone_enabled(True)
    assert "audio_input" in (caught.value.remedy or "")
    await session.aclose()
