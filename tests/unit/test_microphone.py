"""The microphone's decisions: where each frame goes, when the recording is sent, and to whom.

The rules live in ``_Handover``, which takes frames, facts and a clock reading
and answers with effects; these tests drive it with a hand-held clock. The
last section runs the real :class:`MicrophoneController` on real inputs and a
real ``rtc.AudioSource``, without a server (wire behaviour is in
``tests/integration/test_microphone_wire.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import attrs
import numpy as np
import pytest
from livekit import rtc

from lkstate._core import events as ev
from lkstate._media.audio import GeneratorInput
from lkstate._media.microphone import (
    DELIVERY_GRACE,
    HANDOVER_DELAY,
    PROGRESS_INTERVAL,
    SETTLE_WINDOW,
    MicrophoneController,
    _CancelSend,
    _Effect,
    _Handover,
    _Report,
    _Republish,
    _Send,
)
from lkstate._core.options import PreConnectCodec, PreConnectLimits
from lkstate._core.state import (
    AgentState,
    ConnectionState,
    ConnectionStatus,
    PreConnectState,
    PreConnectStatus,
    SessionState,
)

RATE = 24000
FRAME_BYTES = RATE // 100 * 2


def frame(value: int) -> rtc.AudioFrame:
    """10 ms of mono 24 kHz audio, every sample equal to ``value``."""
    return rtc.AudioFrame(np.full(RATE // 100, value, dtype=np.int16).tobytes(), RATE, 1, RATE // 100)


def pcm(*values: int) -> bytes:
    return b"".join(bytes(frame(v).data.cast("B")) for v in values)


class Clocked:
    """A handover with a hand-held clock, collecting every effect it produces.

    The rules do not depend on how the recording is coded, so by default it
    is sent as PCM and sizes are plain arithmetic; the Opus tests say
    ``codec="opus"``.
    """

    def __init__(
        self, limits: PreConnectLimits | None = None, *, record: bool = True, codec: PreConnectCodec = "pcm"
    ) -> None:
        self.now = 100.0
        self.limits = attrs.evolve(limits or PreConnectLimits(agent_wait_timeout=10.0), codec=codec)
        self.h = _Handover(self.limits)
        self.effects: list[_Effect] = []
        self.h.start(record=record, sample_rate=RATE, num_channels=1, now=self.now)
        self.collect()

    def collect(self) -> list[_Effect]:
        new = self.h.drain()
        self.effects += new
        return new

    def advance(self, seconds: float) -> list[_Effect]:
        self.now += seconds
        self.h.tick(self.now)
        return self.collect()

    def speak(self, *values: int) -> list[bool]:
        """Feed one 10 ms frame per value, 10 ms apart; return where each went (True: recording)."""
        kept: list[bool] = []
        for value in values:
            self.now += 0.01
            kept.append(self.h.frame(frame(value), self.now))
            self.h.tick(self.now)
        self.collect()
        return kept

    def agent(self, identity: str | None, *, connected: bool = True) -> list[_Effect]:
        self.h.observe(identity, connected=connected, now=self.now)
        return self.collect()

    def publish(self, sid: str, *, flagged: bool = True) -> list[_Effect]:
        self.h.published(sid, flagged=flagged, now=self.now)
        return self.collect()

    def subscribe(self, sid: str, *, then_wait: bool = True) -> list[_Effect]:
        """The publication's first subscription; by default also the handover delay that follows it."""
        self.h.subscribed(sid, self.now)
        effects = self.collect()
        if then_wait:
            effects += self.advance(HANDOVER_DELAY)
        return effects

    def sent(self, error: str | None = None) -> list[_Effect]:
        self.h.send_finished(error, self.now)
        return self.collect()

    def sends(self) -> list[_Send]:
        return [e for e in self.effects if isinstance(e, _Send)]

    def reports(self) -> list[PreConnectState]:
        return [e.state for e in self.effects if isinstance(e, _Report)]

    @property
    def state(self) -> PreConnectState:
        return self.h.state


def only_send(effects: list[_Effect]) -> _Send:
    sends = [e for e in effects if isinstance(e, _Send)]
    assert len(sends) == 1, effects
    return sends[0]


def connected_with_agent(c: Clocked, *, sid: str = "TR_1", agent: str = "agent-a") -> _Send:
    """The usual order: published, the agent appears, then it subscribes."""
    c.publish(sid)
    c.agent(agent)
    return only_send(c.subscribe(sid))


# ------------------------------------------------------------------------ recording


def test_capture_starts_recording_and_the_state_says_so() -> None:
    c = Clocked()

    assert c.reports() == [PreConnectState(status=PreConnectStatus.RECORDING)]
    assert c.h.recording


def test_while_recording_every_frame_goes_to_the_buffer_only() -> None:
    c = Clocked()

    assert c.speak(1, 2, 3) == [True, True, True]


def test_progress_is_reported_at_most_four_times_a_second_not_per_frame() -> None:
    c = Clocked()

    c.speak(*range(1, 201))  # two seconds of frames

    progress = c.reports()[1:]
    assert 1 / PROGRESS_INTERVAL * 2 - 1 <= len(progress) <= 1 / PROGRESS_INTERVAL * 2
    assert all(r.status is PreConnectStatus.RECORDING for r in progress)
    assert [r.bytes for r in progress] == sorted(r.bytes for r in progress)
    assert progress[-1].seconds == pytest.approx(progress[-1].bytes / 2 / RATE)


def test_a_full_buffer_keeps_the_start_of_the_speech_and_says_it_is_full() -> None:
    c = Clocked(PreConnectLimits(max_bytes=3 * FRAME_BYTES))

    kept = c.speak(1, 2, 3, 4, 5)

    assert kept == [True, True, True, False, False]
    assert c.state.detail is not None and "full" in c.state.detail
    send = connected_with_agent(c)
    assert send.pcm == pcm(1, 2, 3)


def test_without_preconnect_every_frame_goes_to_the_track_and_nothing_is_sent() -> None:
    c = Clocked(record=False)

    assert c.speak(1, 2) == [False, False]
    c.publish("TR_1", flagged=False)
    c.agent("agent-a")
    c.subscribe("TR_1")
    assert c.sends() == []
    assert c.state.status is PreConnectStatus.IDLE


# ------------------------------------------------------------------------ when to send


def test_the_recording_goes_to_the_agent_when_it_subscribes_to_the_microphone() -> None:
    c = Clocked()
    c.speak(1, 2, 3)

    send = connected_with_agent(c)

    assert (send.destination, send.track_sid, send.sample_rate, send.num_channels) == ("agent-a", "TR_1", RATE, 1)
    assert send.pcm == pcm(1, 2, 3) and not send.release
    assert c.state == PreConnectState(
        status=PreConnectStatus.SENDING, seconds=0.03, bytes=3 * FRAME_BYTES, destination="agent-a"
    )
    c.sent()
    assert c.state.status is PreConnectStatus.SENT and c.state.destination == "agent-a"


def test_after_the_handover_every_frame_goes_to_the_track_only() -> None:
    c = Clocked()
    c.speak(1, 2)
    connected_with_agent(c)

    assert c.speak(3, 4) == [False, False]
    c.sent()
    assert c.speak(5) == [False]


def test_an_agent_that_has_not_subscribed_yet_is_waited_for_while_recording_goes_on() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.agent("agent-a")

    assert c.speak(1, 2) == [True, True]
    assert c.sends() == [] and c.h.recording


def test_an_agent_active_before_the_publish_completes_gets_nothing_until_the_track_has_a_sid() -> None:
    c = Clocked()
    c.agent("agent-a")
    c.speak(1)
    assert c.sends() == []

    c.publish("TR_1")
    send = only_send(c.subscribe("TR_1"))

    assert send.track_sid == "TR_1"
    assert all(s.track_sid for s in c.sends())


def test_nothing_is_sent_while_the_room_is_not_connected() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.agent("agent-a", connected=False)
    c.subscribe("TR_1")
    assert c.sends() == []

    send = only_send(c.agent("agent-a", connected=True))
    assert send.destination == "agent-a"


def test_a_subscription_from_before_the_agent_appeared_sends_after_a_grace_instead_of_at_once() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.subscribe("TR_1")  # someone else was first; the server will not tell us about the agent
    c.advance(1.0)
    c.agent("agent-a")
    assert c.sends() == []

    assert c.speak(1) == [True]  # still recording during the grace
    c.advance(DELIVERY_GRACE)
    send = only_send(c.effects)
    assert send.destination == "agent-a" and send.pcm == pcm(1)


def test_a_subscription_reported_before_its_subscriber_was_announced_is_the_agents_when_it_names_it() -> None:
    c = Clocked()
    c.publish("TR_1")
    subscribed_at = c.now
    c.advance(0.05)
    c.agent("agent-a")  # announced just after the server reported the subscription
    c.h.subscribed("TR_1", subscribed_at, subscriber="agent-a")
    assert c.collect() == [], "the handover waits for the agent's stream to open"

    send = only_send(c.advance(HANDOVER_DELAY - 0.05))  # counted from the subscription
    assert send.destination == "agent-a"


def test_frames_after_the_subscription_still_go_to_the_recording_until_the_handover() -> None:
    # The agent opens its stream a moment after the server reports the subscription:
    # frames put on the track in that moment would reach nobody, so they are recorded.
    c = Clocked()
    c.speak(1, 2)
    c.publish("TR_1")
    c.agent("agent-a")
    assert c.subscribe("TR_1", then_wait=False) == []
    during = list(range(3, 3 + round(HANDOVER_DELAY * 100) - 1))  # 10 ms frames, short of the delay
    assert all(c.speak(*during)), "recorded, not put on the track"
    later = [100, 101, 102]
    kept = c.speak(*later)
    assert kept[-1] is False, "after the handover, frames go to the track"
    send = only_send(c.effects)
    assert send.pcm == pcm(1, 2, *during, *[v for v, k in zip(later, kept) if k]), "each frame in one place"


def test_a_first_subscription_by_another_participant_falls_back_to_the_grace() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.agent("agent-a")
    c.h.subscribed("TR_1", c.now, subscriber="agent-other")
    assert c.collect() == []

    c.advance(DELIVERY_GRACE)
    assert only_send(c.effects).destination == "agent-a"


def test_the_buffer_goes_to_the_session_agent_only() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.agent("agent-b")
    send = only_send(c.subscribe("TR_1"))

    assert send.destination == "agent-b"


# ------------------------------------------------------------------------ no agent


def test_no_agent_within_the_timeout_discards_the_recording_and_says_so() -> None:
    c = Clocked(PreConnectLimits(agent_wait_timeout=10.0))
    c.speak(1, 2)
    c.publish("TR_1")

    c.advance(10.0)

    assert c.state.status is PreConnectStatus.EXPIRED
    assert c.state.detail == "No agent was ready within 10 s; the buffered audio was discarded."
    assert c.state.bytes == 2 * FRAME_BYTES
    assert c.speak(3) == [False]  # live from now on
    assert c.sends() == []


def test_an_agent_that_never_subscribes_to_the_microphone_is_named_when_the_recording_expires() -> None:
    c = Clocked(PreConnectLimits(agent_wait_timeout=10.0))
    c.speak(1)
    c.publish("TR_1")
    c.agent("agent-a")  # present (a text-only agent, or one listening to someone else), never subscribes

    c.advance(10.0)

    assert c.state.status is PreConnectStatus.EXPIRED
    assert c.state.detail == (
        "The agent agent-a did not listen to the microphone within 10 s; the buffered audio was discarded."
    )
    release = only_send(c.effects)  # should it subscribe later, it is not kept waiting for a buffer
    assert release.release and release.destination == "agent-a" and release.track_sid == "TR_1"


def test_an_agent_arriving_after_expiry_is_told_there_is_no_buffer_once() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.advance(10.0)

    c.agent("agent-a")
    c.subscribe("TR_1")
    c.agent("agent-a")

    release = only_send(c.effects)
    assert release.release and release.pcm == b"" and release.track_sid == "TR_1"
    assert c.state.status is PreConnectStatus.EXPIRED


# ------------------------------------------------------------------------ agents that leave


def test_an_agent_that_leaves_before_the_send_leaves_the_whole_recording_for_the_next() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.speak(1)
    c.agent("agent-a")  # never subscribed
    c.speak(2)
    c.agent(None)
    c.speak(3)
    c.agent("agent-b")
    send = only_send(c.subscribe("TR_1"))

    assert send.destination == "agent-b"
    assert send.pcm == pcm(1, 2, 3)


def test_an_agent_that_leaves_during_the_send_has_everything_resent_to_the_next_agent() -> None:
    c = Clocked()
    c.speak(1, 2)
    connected_with_agent(c, sid="TR_1", agent="agent-a")
    assert c.speak(3) == [False]  # live, but kept as the tail until the send settles

    c.h.suspect("agent-a", c.now)
    c.h.departed("agent-a", c.now)
    assert any(isinstance(e, _CancelSend) for e in c.collect())
    effects = c.sent("the send was cancelled")
    assert any(isinstance(e, _Republish) for e in effects)
    assert c.state.status is PreConnectStatus.RECORDING
    assert c.state.detail is not None and "agent-a left" in c.state.detail
    assert c.speak(4) == [True]  # recording again

    c.h.unpublished(c.now)
    c.publish("TR_2")
    c.agent("agent-b")
    send = only_send(c.subscribe("TR_2"))
    assert (send.destination, send.track_sid) == ("agent-b", "TR_2")
    assert send.pcm == pcm(1, 2, 3, 4)


def test_an_agent_that_leaves_right_after_the_send_has_everything_resent_to_the_next_agent() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)
    c.sent()
    c.speak(2)
    assert c.state.status is PreConnectStatus.SENT

    c.h.suspect("agent-a", c.now)
    c.advance(SETTLE_WINDOW * 2)  # a departure under investigation holds the audio
    c.h.departed("agent-a", c.now)
    c.collect()

    assert c.state.status is PreConnectStatus.RECORDING
    c.h.unpublished(c.now)
    c.publish("TR_2")
    c.agent("agent-b")
    assert only_send(c.subscribe("TR_2")).pcm == pcm(1, 2)


def test_an_agent_that_left_with_the_audio_and_no_successor_is_reported_as_failed() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)
    c.h.departed("agent-a", c.now)
    c.sent("the send was cancelled")
    c.agent(None)

    c.advance(10.0)

    assert c.state.status is PreConnectStatus.FAILED
    assert c.state.detail == (
        "The agent agent-a left before it could use the buffered audio, and no other agent was ready "
        "within 10 s; the audio was discarded."
    )


def test_an_agent_that_stays_past_the_settle_window_keeps_what_it_was_sent() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)
    c.sent()

    c.advance(SETTLE_WINDOW)
    c.h.departed("agent-a", c.now)
    c.collect()

    assert c.state.status is PreConnectStatus.SENT
    assert len([s for s in c.sends() if not s.release]) == 1


def test_a_participant_that_a_reconnect_re_adds_did_not_leave() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)
    c.sent()

    c.h.suspect("agent-a", c.now)
    c.h.cleared("agent-a", c.now)
    c.advance(SETTLE_WINDOW)

    assert c.state.status is PreConnectStatus.SENT
    assert not any(isinstance(e, _Republish) for e in c.effects)


def test_a_failed_send_is_reported_in_words() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)

    c.sent("data channel closed")

    assert c.state.status is PreConnectStatus.FAILED
    assert c.state.detail == "Could not send the buffered audio to agent-a: data channel closed"
    assert c.speak(2) == [False]


def test_a_microphone_that_failed_before_recording_anything_shows_no_early_speech_not_an_empty_hand_over() -> None:
    c = Clocked()
    c.h.input_failed(c.now)  # e.g. the browser was not allowed to open the microphone
    c.collect()

    assert c.state.status is PreConnectStatus.IDLE
    assert c.state.detail == "Nothing was recorded before the agent was ready: the microphone was unavailable."
    # The empty recording is still handed over (an agent waiting for a flagged track's buffer is released),
    # but the state never says "0.0 s handed over".
    send = connected_with_agent(c)
    assert send.audio.seconds == 0
    c.sent()
    assert c.state.status is PreConnectStatus.IDLE
    assert all(r.status is PreConnectStatus.IDLE for r in c.reports()[1:])


def test_a_microphone_that_failed_after_an_empty_hand_over_shows_no_early_speech_either() -> None:
    # The browser's note that it could not open the microphone came after the agent had the empty recording.
    c = Clocked()
    connected_with_agent(c)
    c.sent()
    assert (c.state.status, c.state.seconds) == (PreConnectStatus.SENT, 0)

    c.h.input_failed(c.now)
    c.collect()

    assert c.state.status is PreConnectStatus.IDLE
    assert c.state.detail == "Nothing was recorded before the agent was ready: the microphone was unavailable."


def test_a_microphone_that_failed_after_recording_speech_still_hands_that_speech_over() -> None:
    c = Clocked()
    c.speak(1, 2, 3)
    c.h.input_failed(c.now)
    c.collect()
    assert c.state.status is PreConnectStatus.RECORDING

    connected_with_agent(c)
    c.sent()
    assert c.state.status is PreConnectStatus.SENT and c.state.seconds == 0.03


# ------------------------------------------------------------------------ reconnects and later agents


def test_a_full_reconnect_never_sends_the_audio_twice_only_an_empty_buffer_for_the_new_sid() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c, sid="TR_1")
    c.sent()
    c.advance(SETTLE_WINDOW)

    c.agent(None, connected=False)  # everyone is removed and re-added
    c.h.republished("TR_2", c.now)
    c.agent("agent-a", connected=True)
    c.subscribe("TR_2")

    real = [s for s in c.sends() if not s.release]
    releases = [s for s in c.sends() if s.release]
    assert len(real) == 1 and real[0].track_sid == "TR_1"
    assert [(r.destination, r.track_sid, r.pcm) for r in releases] == [("agent-a", "TR_2", b"")]
    assert c.state.status is PreConnectStatus.SENT


def test_a_full_reconnect_while_recording_waits_for_the_subscription_to_the_new_sid() -> None:
    c = Clocked()
    c.publish("TR_1")
    c.agent("agent-a")
    c.speak(1)

    c.h.republished("TR_2", c.now)
    c.subscribe("TR_1")  # a stale signal for the old publication
    assert c.sends() == []

    send = only_send(c.subscribe("TR_2"))
    assert send.track_sid == "TR_2" and send.pcm == pcm(1)


def test_a_second_agent_after_the_send_is_released_once_and_not_sent_the_audio() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)
    c.sent()
    c.advance(SETTLE_WINDOW)

    c.agent("agent-b")
    c.agent("agent-b")

    releases = [s for s in c.sends() if s.release]
    assert [(r.destination, r.pcm) for r in releases] == [("agent-b", b"")]


def test_a_second_agent_while_the_send_settles_is_released_at_once_and_gets_it_all_if_the_first_leaves() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c, sid="TR_1", agent="agent-a")
    c.sent()
    c.speak(2)

    c.agent("agent-b")  # it waits for a buffer when it subscribes: do not make it wait out the settle window
    assert [(r.destination, r.track_sid, r.pcm) for r in c.sends() if r.release] == [("agent-b", "TR_1", b"")]

    c.h.suspect("agent-a", c.now)
    c.h.departed("agent-a", c.now)
    c.collect()
    c.h.unpublished(c.now)
    c.publish("TR_2")
    send = only_send(c.subscribe("TR_2"))
    assert (send.destination, send.track_sid, send.pcm, send.release) == ("agent-b", "TR_2", pcm(1, 2), False)


def test_a_departure_seen_three_seconds_late_still_counts_as_leaving_with_the_audio() -> None:
    # livekit-server announces a participant without tracks in 3 s batches, leaving included.
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)
    c.sent()

    c.advance(3.2)
    c.h.suspect("agent-a", c.now)
    c.h.departed("agent-a", c.now)
    c.collect()

    assert c.state.status is PreConnectStatus.RECORDING
    assert any(isinstance(e, _Republish) for e in c.effects)


# ------------------------------------------------------------------------ ending


def test_ending_while_recording_discards_the_buffer_and_says_so() -> None:
    c = Clocked()
    c.speak(1, 2)

    c.h.end("The session ended before an agent was ready", failed=False, now=c.now)
    c.collect()

    assert c.state.status is PreConnectStatus.IDLE
    assert c.state.detail == "The session ended before an agent was ready; the buffered audio was discarded."
    assert c.state.bytes == 2 * FRAME_BYTES
    assert c.h.next_deadline() is None


def test_losing_the_connection_while_recording_is_a_failure() -> None:
    c = Clocked()
    c.speak(1)

    c.h.end("The connection was lost before an agent was ready", failed=True, now=c.now)
    c.collect()

    assert c.state.status is PreConnectStatus.FAILED


def test_ending_during_the_send_cancels_it_and_says_so() -> None:
    c = Clocked()
    c.speak(1)
    connected_with_agent(c)

    c.h.end("The session ended", failed=False, now=c.now)

    assert any(isinstance(e, _CancelSend) for e in c.collect())
    assert c.state.status is PreConnectStatus.FAILED
    assert c.state.detail == "The session ended while the buffered audio was being sent to agent-a."


# ------------------------------------------------------------------------ sent as Opus


def test_an_opus_recording_is_sent_encoded_and_the_state_counts_the_bytes_sent() -> None:
    c = Clocked(codec="opus")
    c.speak(*range(1000, 1050))  # half a second
    recording = c.state
    assert 0 < recording.bytes < 50 * FRAME_BYTES // 6 and recording.seconds == pytest.approx(0.5, abs=0.01)

    send = connected_with_agent(c)

    assert (send.audio.codec, send.audio.sample_rate, send.audio.num_channels) == ("opus", RATE, 1)
    assert send.audio.data.startswith(b"OggS") and send.pcm == pcm(*range(1000, 1050))
    assert c.state == PreConnectState(
        status=PreConnectStatus.SENDING, seconds=0.5, bytes=len(send.audio.data), destination="agent-a"
    )


def test_an_opus_recording_an_agent_left_with_is_encoded_again_whole_for_the_next_agent() -> None:
    c = Clocked(codec="opus")
    c.speak(1, 2)
    first = connected_with_agent(c, sid="TR_1", agent="agent-a")
    assert c.speak(3) == [False]
    c.h.suspect("agent-a", c.now)
    c.h.departed("agent-a", c.now)
    c.sent("the send was cancelled")
    assert c.speak(4) == [True]

    c.h.unpublished(c.now)
    c.publish("TR_2")
    c.agent("agent-b")
    send = only_send(c.subscribe("TR_2"))

    assert send.audio.codec == "opus" and send.pcm == pcm(1, 2, 3, 4)
    assert send.audio.data.startswith(b"OggS") and send.audio.data != first.audio.data
    assert (c.state.bytes, c.state.seconds) == (len(send.audio.data), 0.04)


def test_the_empty_buffer_that_releases_an_agent_is_pcm_even_when_recordings_are_opus() -> None:
    c = Clocked(PreConnectLimits(agent_wait_timeout=1.0), codec="opus")
    c.speak(1)
    c.advance(1.0)  # expired
    c.publish("TR_1")

    (release,) = [e for e in c.agent("agent-a") if isinstance(e, _Send)]

    assert release.release and (release.audio.codec, release.audio.data) == ("pcm", b"")


# ------------------------------------------------------------------------ the controller, without a server


class Collected:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)

    def preconnect(self) -> list[PreConnectState]:
        return [e.preconnect for e in self.events if isinstance(e, ev.PreConnectChanged)]

    def tracks(self) -> list[ev.LocalTrackChanged]:
        return [e for e in self.events if isinstance(e, ev.LocalTrackChanged)]


def tone(seconds: float) -> Iterator[bytes]:
    samples = (3000 * np.sin(np.arange(int(RATE * seconds)) / 10)).astype(np.int16)
    yield samples.tobytes()


def controller(
    emit: Collected, audio_input: GeneratorInput | None, *, preconnect: bool = True, timeout: float = 10.0
) -> MicrophoneController:
    return MicrophoneController(
        audio_input=audio_input,
        emit=emit,
        clock=lambda: 1234.5,
        preconnect=preconnect,
        limits=PreConnectLimits(agent_wait_timeout=timeout),
    )


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def own_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("lkstate-")]


async def test_capture_records_before_any_room_and_the_state_says_what_feeds_it() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(0.5), sample_rate=RATE, realtime=False))

    await mic.start_capture()
    await asyncio.sleep(0.05)

    tracks = emit.tracks()
    assert tracks[0].track.enabled and tracks[0].track.device == "GeneratorInput" and not tracks[0].track.published
    assert emit.preconnect()[0].status is PreConnectStatus.RECORDING
    assert all(e.at == 1234.5 for e in emit.events)
    await mic.aclose()


async def test_ending_while_buffering_stops_capture_releases_the_buffer_and_leaves_no_task() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(5.0), sample_rate=RATE, realtime=True))
    await mic.start_capture()
    await asyncio.sleep(0.6)

    await mic.aclose()
    await mic.aclose()  # idempotent

    final = emit.preconnect()[-1]
    assert final.status is PreConnectStatus.IDLE
    assert final.detail == "The session ended before an agent was ready; the buffered audio was discarded."
    assert final.bytes > 0
    assert own_tasks() == []


async def test_recording_progress_reaches_the_state_a_few_times_a_second() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(1.0), sample_rate=RATE, realtime=True))
    await mic.start_capture()
    await asyncio.sleep(1.2)
    await mic.aclose()

    recording = [s for s in emit.preconnect() if s.status is PreConnectStatus.RECORDING]
    assert 2 <= len(recording) <= 1 + 1.2 / PROGRESS_INTERVAL + 1  # not one per 10 ms frame (100 of them)
    assert recording[-1].bytes > recording[1].bytes > 0


async def test_an_input_that_ends_while_recording_leaves_the_state_showing_all_it_recorded() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(1.0), sample_rate=RATE, realtime=False))
    await mic.start_capture()

    await wait_for(lambda: emit.preconnect()[-1].seconds == 1.0)  # not the last progress report's figure

    assert emit.preconnect()[-1].status is PreConnectStatus.RECORDING
    # Encoded as it is recorded: the bytes are the Ogg/Opus written so far, far fewer than the PCM's.
    assert 0 < emit.preconnect()[-1].bytes < RATE * 2 // 4
    await mic.aclose()


async def test_the_wait_timeout_expires_the_recording_on_the_loop_clock() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(2.0), sample_rate=RATE, realtime=True), timeout=0.3)
    await mic.start_capture()

    await wait_for(lambda: mic.preconnect_state.status is PreConnectStatus.EXPIRED)

    assert mic.preconnect_state.detail == "No agent was ready within 0.3 s; the buffered audio was discarded."
    await mic.aclose()
    assert emit.preconnect()[-1].status is PreConnectStatus.EXPIRED  # ending after expiry changes nothing


async def test_an_agent_in_the_state_before_the_room_is_attached_gets_nothing() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(1.0), sample_rate=RATE, realtime=True))
    await mic.start_capture()
    state = SessionState(
        connection=ConnectionState(status=ConnectionStatus.CONNECTED), agent=AgentState(identity="agent-a")
    )

    mic.on_state(state)
    await asyncio.sleep(0.2)

    assert [s.status for s in emit.preconnect()] == [PreConnectStatus.RECORDING] * len(emit.preconnect())
    await mic.aclose()


async def test_a_muted_microphone_records_nothing() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(0.5), sample_rate=RATE, realtime=False))
    await mic.set_enabled(False)
    await mic.start_capture()
    await asyncio.sleep(0.1)

    assert mic.track_state.enabled is False and mic.track_state.muted
    await mic.aclose()
    assert emit.preconnect()[-1].bytes == 0


async def test_muting_is_reported_as_a_local_track_change() -> None:
    emit = Collected()
    mic = controller(emit, GeneratorInput(tone(0.2), sample_rate=RATE, realtime=False), preconnect=False)
    await mic.start_capture()

    await mic.set_enabled(False)
    await mic.set_enabled(True)

    assert [(t.track.enabled, t.track.muted) for t in emit.tracks()] == [(True, False), (False, True), (True, False)]
    assert emit.preconnect()[-1].status is PreConnectStatus.IDLE
    await mic.aclose()


async def test_no_audio_input_means_no_track_and_a_state_that_says_nothing_is_recorded() -> None:
    emit = Collected()
    mic = controller(emit, None)

    await mic.start_capture()

    assert emit.tracks()[-1].track.enabled is False
    assert emit.preconnect()[-1].status is PreConnectStatus.IDLE
    assert emit.preconnect()[-1].detail == "There is no microphone, so nothing is recorded before the agent listens."
    await mic.aclose()


def _machine_has_a_microphone() -> bool:
    try:
        import sounddevice as sd  # pyright: ignore[reportMissingTypeStubs]
    except (ImportError, OSError):
        return False
    devices = sd.query_devices()  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return any(d.get("max_input_channels", 0) > 0 for d in devices)  # pyright: ignore


@pytest.mark.skipif(_machine_has_a_microphone(), reason="this machine has a real microphone")
async def test_the_default_input_without_a_device_is_an_error_in_the_state_not_a_crash() -> None:
    emit = Collected()
    mic = MicrophoneController(
        audio_input="default", emit=emit, clock=lambda: 0.0, preconnect=True, limits=PreConnectLimits()
    )

    await mic.start_capture()

    track = emit.tracks()[-1].track
    assert track.error is not None and track.error.startswith("No microphone found")
    assert "WavFileInput" in track.error
    assert not track.enabled
    await mic.aclose()
