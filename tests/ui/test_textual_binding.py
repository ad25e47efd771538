"""The Textual binding: snapshots reach widgets paced, latest-wins, and widgets cannot break it.

These run a real Textual app (headless) bound to a real :class:`lkstate.Session`
that is not connected: the snapshots are made by dispatching events into the
session's store, the way the room would, so no server is needed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from lkstate import (
    AgentStatus,
    DevelopmentTokenSource,
    LocalTrackState,
    PreConnectState,
    PreConnectStatus,
    Session,
    SessionState,
)
from lkstate._core import events as ev
from lkstate_textual import (
    SessionBinding,
    SessionStateChanged,
    StateView,
    StateWidget,
    describe_agent,
    describe_microphone,
    describe_preconnect,
)
from lkstate_textual.testing import screen_text


def offline_session() -> Session:
    """A real Session that is never connected; tests feed its store events."""
    return Session(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"))


def problem(session: Session, n: int) -> None:
    session.store.dispatch(ev.ProblemObserved(at=time.time(), source="test", message=f"problem {n}"))


class LastProblem(StateView[str | None], Static):
    """Shows the newest problem; counts how often it was asked to show something."""

    def __init__(self) -> None:
        super().__init__("")
        self.shown: list[str | None] = []

    def select(self, state: SessionState) -> str | None:
        return state.problems[-1].message if state.problems else None

    def show_slice(self, value: str | None) -> None:
        self.shown.append(value)
        self.update(value or "no problems")


class AgentStatusView(StateView[AgentStatus], Static):
    def __init__(self) -> None:
        super().__init__("")
        self.shown: list[AgentStatus] = []

    def select(self, state: SessionState) -> AgentStatus:
        return state.agent.status

    def show_slice(self, value: AgentStatus) -> None:
        self.shown.append(value)
        self.update(f"agent: {value.value}")


class ExplodesOnProblems(StateWidget[int]):
    """Renders fine until there is a problem, then raises while rendering."""

    def select(self, state: SessionState) -> int:
        return len(state.problems)

    def render_slice(self, value: int) -> str:
        if value:
            raise RuntimeError("this widget is broken")
        return "all quiet"


class RaisesWhenShown(StateView[int], Static):
    def __init__(self) -> None:
        super().__init__("")
        self.calls = 0

    def select(self, state: SessionState) -> int:
        return len(state.problems)

    def show_slice(self, value: int) -> None:
        self.calls += 1
        if value:
            raise ValueError("cannot show this")


class Harness(App[None]):
    def __init__(self, session: Session, *views: Any, max_rate: float | None = 30.0) -> None:
        super().__init__()
        self.views = views
        self.binding = SessionBinding(self, session, max_rate=max_rate)
        self.messages_seen: list[SessionState] = []

    def compose(self) -> ComposeResult:
        yield from self.views

    def on_mount(self) -> None:
        self.binding.start()

    def on_session_state_changed(self, message: SessionStateChanged) -> None:
        self.messages_seen.append(message.state)


async def settle(pilot: Any, binding: SessionBinding, session: Session) -> None:
    """Wait until the binding has delivered the session's current snapshot."""
    for _ in range(200):
        if binding.state is session.state:
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def test_a_thousand_rapid_changes_reach_widgets_at_most_at_the_cap_and_end_on_the_latest() -> None:
    session = offline_session()
    view = LastProblem()
    app = Harness(session, view, max_rate=30.0)
    async with app.run_test() as pilot:
        await settle(pilot, app.binding, session)
        before = app.binding.delivered
        started = time.monotonic()
        for n in range(1000):
            problem(session, n)
            if n % 20 == 19:
                await asyncio.sleep(0.002)  # the room delivers in bursts, the loop runs between them
        await settle(pilot, app.binding, session)
        elapsed = time.monotonic() - started
        delivered = app.binding.delivered - before

        assert session.state.problems[-1].message == "problem 999"
        assert view.shown[-1] == "problem 999", "the widget ends on the latest snapshot"
        assert app.messages_seen[-1] is session.state, "the app's last message is the latest snapshot"
        # At most one delivery per 1/30 s, plus the one at the start of the burst.
        assert 1 <= delivered <= elapsed * 30 + 2
        assert delivered < 1000
        assert len(view.shown) - 1 <= delivered
        assert len(app.messages_seen) <= app.binding.delivered
        assert "problem 999" in screen_text(app)


async def test_without_a_cap_each_batch_of_changes_is_delivered_once() -> None:
    session = offline_session()
    view = LastProblem()
    app = Harness(session, view, max_rate=None)
    async with app.run_test() as pilot:
        await settle(pilot, app.binding, session)
        before = app.binding.delivered
        for n in range(300):
            problem(session, n)  # one synchronous batch: the mailbox keeps only the newest
        await settle(pilot, app.binding, session)
        assert app.binding.delivered - before == 1
        assert view.shown[-1] == "problem 299"


async def test_a_widget_is_shown_its_slice_only_when_that_slice_changes() -> None:
    session = offline_session()
    status, problems = AgentStatusView(), LastProblem()
    app = Harness(session, status, problems, max_rate=None)
    async with app.run_test() as pilot:
        await settle(pilot, app.binding, session)
        assert status.shown == [AgentStatus.DISCONNECTED]
        for n in range(5):
            problem(session, n)
            await settle(pilot, app.binding, session)
        assert status.shown == [AgentStatus.DISCONNECTED], "problems do not touch the agent status view"
        assert problems.shown[-1] == "problem 4" and len(problems.shown) == 6

        session.store.dispatch(ev.StartRequested(at=time.time()))
        await settle(pilot, app.binding, session)
        assert status.shown == [AgentStatus.DISCONNECTED, AgentStatus.CONNECTING]
        assert "agent: connecting" in screen_text(app)


async def test_a_widget_that_raises_while_rendering_shows_a_notice_and_nothing_else_breaks() -> None:
    session = offline_session()
    broken, healthy, grumpy = ExplodesOnProblems(), LastProblem(), RaisesWhenShown()
    app = Harness(session, broken, grumpy, healthy, max_rate=None)
    async with app.run_test() as pilot:
        await settle(pilot, app.binding, session)
        assert "all quiet" in screen_text(app)

        problem(session, 1)
        await settle(pilot, app.binding, session)
        text = screen_text(app)
        assert "ExplodesOnProblems could not draw this" in text
        assert "this widget is broken" in text
        assert broken.render_failures >= 1
        assert app.binding.view_errors == 1, "the view that raised in show_slice was counted"

        # The session and the other widgets carry on, and so does the broken one next time.
        problem(session, 2)
        await settle(pilot, app.binding, session)
        assert healthy.shown[-1] == "problem 2"
        assert grumpy.calls == 3
        assert app.is_running and app.return_code is None
        assert not any(p.source == "subscriber" for p in session.state.problems), (
            "the binding's subscription never raised into the session"
        )
        session.store.dispatch(ev.ProblemsDismissed(at=time.time()))
        await settle(pilot, app.binding, session)
        assert "all quiet" in screen_text(app)


async def test_views_mounted_later_are_shown_the_current_snapshot_at_once() -> None:
    session = offline_session()
    app = Harness(session, max_rate=None)
    async with app.run_test() as pilot:
        problem(session, 7)
        await settle(pilot, app.binding, session)
        late = LastProblem()
        await app.mount(late)
        await pilot.pause()
        assert late.shown == ["problem 7"]
        await late.remove()
        assert late not in app.binding.views


async def test_a_closed_binding_delivers_nothing_more() -> None:
    session = offline_session()
    view = LastProblem()
    app = Harness(session, view, max_rate=None)
    async with app.run_test() as pilot:
        problem(session, 1)
        await settle(pilot, app.binding, session)
        app.binding.close()
        problem(session, 2)
        await pilot.pause(0.1)
        assert view.shown[-1] == "problem 1"


def test_a_newer_snapshot_message_replaces_an_older_one_waiting_in_the_queue() -> None:
    session = offline_session()
    app = App[None]()
    binding, other = SessionBinding(app, session), SessionBinding(App[None](), session)
    old = SessionStateChanged(SessionState(), binding)
    new = SessionStateChanged(SessionState(), binding)
    assert new.can_replace(old)
    assert not new.can_replace(SessionStateChanged(SessionState(), other))


def test_max_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SessionBinding(App[None](), offline_session(), max_rate=0)


# -- the words the widgets use ------------------------------------------------------


def scene(*events: ev.Event) -> SessionState:
    session = offline_session()
    for event in events:
        session.store.dispatch(event)
    return session.state


def connected(*more: ev.Event) -> SessionState:
    return scene(
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=2.0, room_name="room", local_identity="me", server_url="ws://x"),
        *more,
    )


def test_the_agent_indicator_says_each_phase_in_words() -> None:
    assert describe_agent(SessionState()).headline == "Not connected"
    assert describe_agent(scene(ev.StartRequested(at=1.0))).headline == "Connecting…"
    assert describe_agent(connected()).headline == "Waiting for the agent…"
    ready = connected(
        ev.ParticipantJoined(at=3.0, identity="agent-1", name="", kind="agent",
                             attributes=(("lk.agent.name", "demo"), ("lk.agent.state", "listening"))),
    )
    assert (describe_agent(ready).headline, describe_agent(ready).name) == ("Listening", "demo")
    failed = connected(ev.AgentWaitTimedOut(at=30.0, timeout=20.0))
    described = describe_agent(failed)
    assert described.headline == "Agent unavailable" and described.tone == "error"
    assert described.reasons == failed.agent.failure_reasons and described.reasons
    refused = scene(ev.StartRequested(at=1.0), ev.ConnectFailed(at=2.0, error="Could not connect to ws://x: refused"))
    assert describe_agent(refused).headline == "Could not connect"
    assert "refused" in describe_agent(refused).detail


def test_pre_connect_buffering_is_told_apart_from_waiting() -> None:
    state = connected(
        ev.PreConnectChanged(at=3.0, preconnect=PreConnectState(status=PreConnectStatus.RECORDING, seconds=1.5))
    )
    assert state.agent.status is AgentStatus.PRE_CONNECT_BUFFERING
    assert describe_agent(state).headline == "Listening (buffering)"
    words = describe_preconnect(state.preconnect)
    assert words is not None and words.headline == "Early speech" and "1.5 s kept" in words.detail
    assert describe_preconnect(PreConnectState()) is None
    expired = describe_preconnect(PreConnectState(status=PreConnectStatus.EXPIRED, detail="The agent never came."))
    assert expired is not None and "dropped" in expired.headline and expired.detail == "The agent never came."


def test_the_microphone_toggle_names_each_state() -> None:
    assert describe_microphone(LocalTrackState()).headline == "○ Mic off"
    assert describe_microphone(LocalTrackState(enabled=True, published=True)).headline == "● Mic on"
    assert describe_microphone(LocalTrackState(enabled=True)).headline == "◌ Mic on", "on, not sent yet"
    no_device = describe_microphone(LocalTrackState(enabled=True, error="No microphone was found."))
    assert no_device.headline == "✗ No microphone" and no_device.detail == "No microphone was found."
