"""End-to-end encryption over the wire: who can hear and read the session, and who cannot.

``Session(..., encryption=KEY)`` against the real livekit-server: raw peers
(``livekit.rtc`` rooms) join with the same key, a wrong key or none, and
listen to the session's microphone (a 440 Hz tone) and read its chat; the
session's state must say what is encrypted and, in words, whose key does not
match. Last, the demo agent run by the real livekit-agents worker joins with
the key through the framework's own ``JobContext.connect(encryption=...)``
and hears the user. ``set_encryption_enabled`` turns media encryption off and
on while a peer without the key listens: it hears the tone only while off,
and never reads the chat (the SDK keeps data streams encrypted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import numpy.typing as npt
from livekit import rtc

from lkstate import AgentStatus, EncryptionState, GeneratorInput, Role, Session, SessionOptions
from lkstate.media import AudioLevels, SilentOutput
from lkstate.errors import LkstateError
from lkstate.tokens import Encryption
from tests.harness.peer import Peer, wait_until

pytestmark = pytest.mark.serial

SessionFactory = Callable[..., Session]

KEY = "correct horse battery staple"

NO_AGENT = SessionOptions(preconnect_audio=False)
"""No agent comes to these rooms: the microphone goes straight to its track rather than into a pre-connect buffer."""


def e2ee(key: str) -> rtc.E2EEOptions:
    return rtc.E2EEOptions(
        key_provider_options=rtc.KeyProviderOptions(shared_key=key.encode(), failure_tolerance=3)
    )


def tone(seconds: float, rate: int = 48000) -> Iterator[npt.NDArray[np.int16]]:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    for start in range(0, len(pcm), 480):
        yield pcm[start : start + 480]


async def listen(peer: Peer, identity: str, seconds: float) -> npt.NDArray[np.float64]:
    """What ``peer`` hears of ``identity``'s microphone for ``seconds``."""
    publication = await peer.wait_for_track(identity)
    await wait_until(lambda: publication.track is not None, timeout=10)
    assert publication.track is not None
    stream = rtc.AudioStream(publication.track, sample_rate=48000, num_channels=1)
    chunks: list[npt.NDArray[np.float64]] = []

    async def read() -> None:
        async for event in stream:
            chunks.append(np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64))

    task = asyncio.create_task(read())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await stream.aclose()
    return np.concatenate(chunks) if chunks else np.zeros(0)


def dominant(samples: npt.NDArray[np.float64]) -> int:
    """The loudest frequency heard, to the nearest 10 Hz."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / 48000)
    return int(round(float(frequencies[int(np.argmax(spectrum))]), -1))


def share_at_440(samples: npt.NDArray[np.float64]) -> float:
    """How much of what was heard is the 440 Hz tone (1.0: nothing else)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / 48000)
    return float(spectrum[(frequencies > 420) & (frequencies < 460)].sum() / max(float(spectrum.sum()), 1e-9))


async def test_a_peer_with_the_key_hears_and_reads_the_session_and_one_without_gets_noise_and_nothing(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    bob = await peer_factory(room_name, "bob", encryption=e2ee(KEY))
    carol = await peer_factory(room_name, "carol")
    session = make_session(
        audio_input=GeneratorInput(tone(15.0), sample_rate=48000), audio_output=None, encryption=KEY, options=NO_AGENT
    )
    await session.start(wait_for_agent=False)
    assert session.state.connection.encryption == EncryptionState(enabled=True, media=True, data=True, has_key=True)
    me = session.state.connection.local_identity
    assert me is not None

    heard_by_bob, heard_by_carol = await asyncio.gather(listen(bob, me, 3.0), listen(carol, me, 3.0))
    assert len(heard_by_bob) > 48000 and dominant(heard_by_bob) == 440, "bob, with the key, hears the tone"
    assert share_at_440(heard_by_bob) > 0.2
    assert share_at_440(heard_by_carol) < 0.05, "carol, without it, hears noise (or nothing), never the tone"
    assert carol.remote(me) is not None
    assert all(
        p.encryption_type == rtc.EncryptionType.GCM for p in carol.remote(me).track_publications.values()  # type: ignore[union-attr]
    ), "the server relays the track marked as encrypted"

    await session.send_text("the password is swordfish")
    received = await bob.wait_for_text("lk.chat")
    assert received.text == "the password is swordfish"
    await asyncio.sleep(1.0)
    assert carol.texts_on("lk.chat") == [], "without the key the chat never arrives"
    assert session.state.connection.encryption.error is None, "everyone whose media we receive can be read"


async def test_a_peer_with_another_key_is_named_in_words_and_cannot_hear_the_session(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    session = make_session(
        audio_input=GeneratorInput(tone(15.0), sample_rate=48000),
        audio_output=SilentOutput(),
        encryption=Encryption(KEY),
        options=NO_AGENT,
    )
    await session.start(wait_for_agent=False)
    # An agent with another key: the session follows its voice, and cannot decrypt it.
    dave = await peer_factory(room_name, "dave", kind="agent", encryption=e2ee("not the key"))
    await dave.publish_audio(np.concatenate(list(tone(15.0))))

    state = await session.wait_until(lambda s: s.connection.encryption.error is not None, timeout=20)
    encryption = state.connection.encryption
    assert encryption.failing == ("dave",)
    assert encryption.error == (
        "Cannot decrypt dave's audio and video: its encryption key is not this session's. Give both the same key."
    )
    assert any(p.message == encryption.error for p in state.problems), "and it is among the problems shown"
    me = state.connection.local_identity
    assert me is not None
    heard = await listen(dave, me, 1.5)
    assert len(heard) == 0 or share_at_440(heard) < 0.05, "dave does not hear the tone"

    await dave.disconnect()
    cleared = await session.wait_until(lambda s: s.connection.encryption.error is None, timeout=10)
    assert cleared.connection.encryption.failing == ()


async def test_a_session_without_the_key_says_that_the_room_is_encrypted(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    alice = await peer_factory(room_name, "alice", encryption=e2ee(KEY))
    await alice.publish_audio(np.concatenate(list(tone(10.0))))
    session = make_session(audio_input=None, audio_output=None)
    await session.start(wait_for_agent=False)

    state = await session.wait_until(lambda s: s.connection.encryption.error is not None, timeout=10)
    encryption = state.connection.encryption
    assert (encryption.enabled, encryption.media, encryption.data, encryption.failing) == (False, False, False, ("alice",))
    assert encryption.error is not None and "alice's audio and video are end-to-end encrypted" in encryption.error
    assert "no key" in encryption.error and "encryption=" in encryption.error


async def test_the_agent_framework_with_the_key_hears_the_user_and_is_heard(
    make_session: SessionFactory, worker_factory: Any
) -> None:
    worker = await worker_factory(extra_env={"LKSTATE_AGENT_E2EE_KEY": KEY})
    session = make_session(
        agent_name=worker.agent_name,
        audio_input=GeneratorInput(tone(3.0), sample_rate=48000),
        audio_output=SilentOutput(),
        encryption=KEY,
    )
    levels: list[AudioLevels] = []
    session.levels.subscribe(levels.append)
    await session.start()  # the agent's state comes as participant attributes: not encrypted
    assert session.state.agent.status in (AgentStatus.LISTENING, AgentStatus.THINKING, AgentStatus.SPEAKING)

    # The agent transcribes what it decrypted of our microphone, and answers (in encrypted streams).
    state = await session.wait_until(
        lambda s: any(m.role is Role.AGENT and m.final and m.text.startswith("You said") for m in s.messages),
        timeout=30,
    )
    # ScriptedSTT turned the tone it decrypted into "Hello there.", and the agent answered it.
    assert [(m.role, m.text) for m in state.messages if m.final][-2:] == [
        (Role.USER, "Hello there."),
        (Role.AGENT, "You said: Hello there."),
    ]
    await session.wait_until(lambda s: s.agent.status is AgentStatus.LISTENING, timeout=20)
    assert max(v.agent for v in levels) > 0.4, "and the agent's encrypted voice was decrypted here"
    assert session.state.connection.encryption == EncryptionState(enabled=True, media=True, data=True, has_key=True)


async def test_encryption_turned_off_and_on_at_runtime_shows_in_the_state_and_in_what_a_peer_without_the_key_hears(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    carol = await peer_factory(room_name, "carol")
    session = make_session(
        audio_input=GeneratorInput(tone(30.0), sample_rate=48000), audio_output=None, encryption=KEY, options=NO_AGENT
    )
    await session.start(wait_for_agent=False)
    me = session.state.connection.local_identity
    assert me is not None
    encrypted = await listen(carol, me, 2.0)

    await session.set_encryption_enabled(False)
    assert session.state.connection.encryption == EncryptionState(
        enabled=False, media=False, data=True, has_key=True
    ), "turned off: media is not encrypted, data still is, and the key is there to turn it on again"
    await asyncio.sleep(0.5)
    clear = await listen(carol, me, 2.0)
    await session.send_text("still under the key")

    await session.set_encryption_enabled(True)
    assert session.state.connection.encryption == EncryptionState(enabled=True, media=True, data=True, has_key=True)
    await asyncio.sleep(0.5)
    encrypted_again = await listen(carol, me, 2.0)
    assert share_at_440(encrypted) < 0.05, "with encryption on, carol hears noise"
    assert share_at_440(clear) > 0.2, "turned off, carol (without the key) hears the tone"
    assert share_at_440(encrypted_again) < 0.05, "on again, noise again"
    assert carol.texts_on("lk.chat") == [], "chat stays encrypted even while media is not (the SDK's choice)"


async def test_a_session_without_a_key_cannot_turn_encryption_on_and_says_how(
    make_session: SessionFactory, room_name: str
) -> None:
    del room_name
    session = make_session(audio_output=None, options=NO_AGENT)
    await session.start(wait_for_agent=False)
    with pytest.raises(LkstateError, match="no encryption key") as raised:
        await session.set_encryption_enabled(True)
    assert "encryption=" in raised.value.remedy
    assert session.state.connection.encryption == EncryptionState()
