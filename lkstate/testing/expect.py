"""Expectations on a session, worded as the test they are.

::

    await expect(session).agent_says(r"sunny", timeout=20)
    await expect(session).agent_calls("get_weather", city="Paris")
    await expect(session).agent_reaches("listening")
    await expect(session).user_says(r"weather")

Each waits (up to its timeout) for the session's state to show what a user
of the UI would see: a final message of the agent matching a pattern, a tool
call the agent reported with the given arguments, the agent in a state. Each
returns what it found (the :class:`~lkstate.Message`, the tool call, the
snapshot), so a test can look closer.

When an expectation is not met, it raises :class:`ExpectationFailed` (an
``AssertionError``, so pytest shows it as a failed assertion) whose message
says what was expected and then what did happen: the session's timeline as
``lkstate inspect`` prints it — every event, and the state they folded into —
and the path of the session's recording, to replay or inspect at leisure.
Sessions made by the kit's ``make_session``/``agent_session`` fixtures are
recorded; any other session can be given a recording with :func:`watch`.

Anything with ``state``, ``store`` and ``wait_until`` works — a live
:class:`~lkstate.Session` or a :class:`~lkstate.recording.Replay`.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs

from .._core.messages import Message, Role
from .._core.remote_state import ToolCall
from .._core.state import AgentStatus, SessionState
from .._core.store import Store

__all__ = ["expect", "Expectations", "ExpectationFailed", "watch", "Watched", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 15.0
"""Seconds an expectation waits unless told otherwise: a real server and worker answer within it."""

_T = TypeVar("_T")

TIMELINE_EVENTS = 120
"""How many of the last events a failure message shows (the recording holds them all)."""


class _Expectable(Protocol):
    @property
    def state(self) -> SessionState: ...

    @property
    def store(self) -> Store: ...

    async def wait_until(
        self, predicate: Callable[[SessionState], bool], *, timeout: float | None = None
    ) -> SessionState: ...


class ExpectationFailed(AssertionError):
    """An expectation was not met; the message tells what happened instead.

    ``recording`` is the session's recording, when it has one.
    """

    def __init__(self, message: str, *, recording: Path | None = None) -> None:
        super().__init__(message)
        self.recording = recording


@attrs.define(eq=False)
class Watched:
    """What the kit keeps about a session it watches: its recording and every agent state it went through.

    ``agent_states`` lets :meth:`Expectations.agent_reaches` accept a state
    the agent was in for an instant before the expectation was asked (a
    ``thinking`` between two snapshots a test never saw). Call :meth:`close`
    when the session is over (the fixtures do).
    """

    recording: Path | None = None
    agent_states: list[str] = attrs.field(factory=lambda: list[str]())
    _remove: Callable[[], None] | None = None

    def close(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()


_watched: weakref.WeakKeyDictionary[Any, Watched] = weakref.WeakKeyDictionary()


def watch(session: _Expectable, *, recording: str | Path | None = None) -> Watched:
    """Keep ``session``'s agent-state history, and name its recording, for its expectations.

    The kit's fixtures do this for every session they make; call it yourself
    for a session you made and record (``lkstate.recording.record``).
    """
    watched = _watched.get(session)
    if watched is None:
        watched = Watched(recording=Path(recording) if recording is not None else None)
        seen = watched.agent_states
        seen.append(session.state.agent.state)

        def tap(event: object, state: SessionState) -> None:
            del event
            if state.agent.state != seen[-1]:
                seen.append(state.agent.state)

        watched._remove = session.store.add_tap(tap)  # pyright: ignore[reportPrivateUsage]
        _watched[session] = watched
    elif recording is not None:
        watched.recording = Path(recording)
    return watched


def expect(session: _Expectable, *, timeout: float = DEFAULT_TIMEOUT) -> Expectations:
    """Expectations on ``session``; ``timeout`` is each one's default wait in seconds."""
    return Expectations(session, timeout=timeout)


def _pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    return pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)


def _arguments(call: ToolCall) -> Mapping[str, object] | None:
    try:
        value: object = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None  # pyright: ignore[reportUnknownVariableType]


class Expectations:
    """What a test expects of one session. Made by :func:`expect`."""

    def __init__(self, session: _Expectable, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.session = session
        self.timeout = timeout

    # -- the expectations --------------------------------------------------------

    async def agent_says(self, pattern: str | re.Pattern[str], *, timeout: float | None = None) -> Message:
        """The agent says something matching ``pattern`` (``re.search`` on a final agent message).

        Spoken or typed by the agent, at any time in the session so far or
        within ``timeout`` seconds. Returns the first such message.
        """
        __tracebackhide__ = True
        return await self._says(Role.AGENT, pattern, "the agent to say", timeout)

    async def user_says(self, pattern: str | re.Pattern[str], *, timeout: float | None = None) -> Message:
        """The user's side shows a final message matching ``pattern``: their typed chat or the transcript of their speech.

        For speech this is what the agent's STT heard, as the UI shows it.
        """
        __tracebackhide__ = True
        return await self._says(Role.USER, pattern, "the user's side to show", timeout)

    async def _says(
        self, role: Role, pattern: str | re.Pattern[str], what: str, timeout: float | None
    ) -> Message:
        """The first final message of ``role`` matching ``pattern``; a failure names ``what`` was awaited."""
        __tracebackhide__ = True
        regex = _pattern(pattern)
        return await self._find(
            lambda s: next((m for m in s.messages if m.role is role and m.final and regex.search(m.text)), None),
            f"{what} something matching {regex.pattern!r}",
            timeout,
            lambda s: _said(s, role),
        )

    async def agent_calls(
        self,
        tool: str,
        arguments: Mapping[str, object] | None = None,
        *,
        timeout: float | None = None,
        **expected: object,
    ) -> ToolCall:
        """The agent calls ``tool``, with arguments including ``arguments``/``expected`` (``city="Paris"``).

        Only the arguments named are compared (by equality with the JSON the
        agent reported); others may be present. Returns the first such call.
        """
        __tracebackhide__ = True
        wanted = {**(arguments or {}), **expected}

        def matches(call: ToolCall) -> bool:
            if call.name != tool:
                return False
            given = _arguments(call)
            return given is not None and all(k in given and given[k] == v for k, v in wanted.items())

        described = ", ".join(f"{k}={v!r}" for k, v in wanted.items())
        return await self._find(
            lambda s: next((c for c in s.remote.tool_calls if matches(c)), None),
            f"the agent to call {tool}({described})",
            timeout,
            _calls,
        )

    async def agent_reaches(self, state: str | AgentStatus, *, timeout: float | None = None) -> SessionState:
        """The agent is (or, for a watched session, has been) in ``state``: ``"listening"``, ``"speaking"``…

        A session made by the kit's fixtures remembers every agent state it
        went through, so a brief ``thinking`` is not missed; for another
        session, the state must hold now or within ``timeout``.
        """
        __tracebackhide__ = True
        wanted = AgentStatus(state).value
        watched = _watched.get(self.session)
        if watched is not None and wanted in watched.agent_states:
            return self.session.state
        return await self._find(
            lambda s: s if s.agent.state == wanted else None,
            f"the agent to reach {wanted!r}",
            timeout,
            lambda s: "the agent went through: "
            + " → ".join(watched.agent_states if watched is not None else [s.agent.state]),
        )

    async def state_satisfies(
        self, predicate: Callable[[SessionState], object], description: str, *, timeout: float | None = None
    ) -> SessionState:
        """Anything else: ``predicate(state)`` becomes truthy; ``description`` words it for the failure."""
        __tracebackhide__ = True
        return await self._find(lambda s: s if predicate(s) else None, description, timeout, lambda s: "")

    # -- waiting and failing ------------------------------------------------------

    async def _find(
        self,
        find: Callable[[SessionState], _T | None],
        expected: str,
        timeout: float | None,
        seen: Callable[[SessionState], str],
    ) -> _T:
        __tracebackhide__ = True  # pytest shows the test's line and the message, not this machinery
        limit = self.timeout if timeout is None else timeout
        try:
            state = await self.session.wait_until(lambda s: find(s) is not None, timeout=limit)
        except TimeoutError:
            raise self.failure(f"Expected {expected} within {limit:g} s; it did not happen.", seen(self.session.state))
        found = find(state)
        assert found is not None
        return found

    def failure(self, headline: str, detail: str = "") -> ExpectationFailed:
        """The :class:`ExpectationFailed` for ``headline``: it, ``detail``, then what happened."""
        watched = _watched.get(self.session)
        recording = watched.recording if watched is not None else None
        parts = [headline]
        if detail:
            parts.append(detail)
        parts.append(what_happened(self.session, recording))
        return ExpectationFailed("\n\n".join(parts), recording=recording)


def _said(state: SessionState, role: Role) -> str:
    said = [m for m in state.messages if m.role is role]
    if not said:
        return f"The {role.value}'s side said nothing."
    lines = [f"The {role.value}'s side said:"]
    lines += [f"  {m.text!r}{'' if m.final else ' (not final)'}" for m in said]
    return "\n".join(lines)


def _calls(state: SessionState) -> str:
    calls = state.remote.tool_calls
    if not calls:
        return "The agent reported no tool calls."
    lines = ["The agent called:"]
    lines += [f"  {c.name}({c.arguments}) {c.status}" for c in calls]
    return "\n".join(lines)


def what_happened(session: _Expectable, recording: Path | None) -> str:
    """The session's timeline as ``lkstate inspect`` prints it, and where its recording is."""
    from .._session.recording import read_recording
    from .._tooling.cli import describe_state, inspection_text

    if recording is None:
        return (
            "What happened (the session is not recorded, so only its state is shown; sessions from the "
            "kit's fixtures are, or call lkstate.testing.watch(session, recording=path)):\n"
            + describe_state(session.state)
        )
    try:
        header, events = read_recording(recording)
    except Exception as error:  # a damaged recording must not hide the failure itself
        return f"What happened: the recording {recording} could not be read ({error}).\n" + describe_state(
            session.state
        )
    text = inspection_text(str(recording), header, events, last_events=TIMELINE_EVENTS)
    return (
        f"What happened (as `lkstate inspect {recording}` prints it):\n{text}\n\n"
        f"Recording: {recording}\n"
        f"  (inspect any step with `lkstate inspect {recording} --step N`, "
        f"or watch it with `lkstate replay {recording}`)"
    )
