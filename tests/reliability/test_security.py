"""Secrets stay secret and requests go only where they should.

- Participant tokens, API secrets and the headers given to a token endpoint
  never appear in a ``repr``, a log line (at DEBUG, the SDK's own debug output
  included), an exception, a problem in the state or a recording — over a
  whole session with a real agent and its failures.
- The token endpoint source refuses plain ``http://`` beyond this machine,
  however the URL is dressed up, unless told ``allow_insecure_http=True``.
- Requests on ``lk.agent.session`` go to the agent alone: other participants
  listening on that topic hear the agent's broadcasts, never our questions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from livekit import api, rtc

from lkstate import DevelopmentTokenSource, EndpointTokenSource, Session
from lkstate.errors import ConnectionFailedError, RemoteSessionError, TokenSourceError
from lkstate.tokens import Credentials, TokenRequest
from lkstate._session.recording import record
from lkstate.demo_agent import ScriptedLLM
from tests.harness.http import serve
from tests.harness.server import LiveKitServer, free_port
from tests.reliability._wire import REPLY, Figures, agent_messages, agent_sees_user, figures_fixture, new_session

figures = figures_fixture("security checks")


class TokenEndpoint:
    """A token endpoint on loopback that wants a bearer secret, remembering every token it minted."""

    def __init__(self, server: LiveKitServer, bearer: str) -> None:
        self.server = server
        self.bearer = bearer
        self.mode = "ok"
        self.minted: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != self.bearer:
            return web.Response(status=401, text="who are you?")
        body = await request.json()
        room, identity = body.get("room_name") or "room", body.get("participant_identity") or "visitor"
        token = self.server.token(room, identity)
        if self.mode == "foreign":  # a token this server cannot verify
            token = (
                api.AccessToken("someone-else", secrets.token_urlsafe(36))
                .with_identity(identity)
                .with_grants(api.VideoGrants(room_join=True, room=room))
                .to_jwt()
            )
        self.minted.append(token)
        if self.mode == "echo":  # a broken backend that quotes everything it has
            return web.Response(status=500, text=f"failed for {self.bearer}: token was {token}")
        return web.json_response({"server_url": self.server.url, "participant_token": token})


@pytest.fixture
async def token_endpoint(livekit_server: LiveKitServer) -> AsyncIterator[TokenEndpoint]:
    state = TokenEndpoint(livekit_server, "Bearer " + secrets.token_urlsafe(24))
    app = web.Application()
    app.router.add_post("/token", state.handle)
    async with serve(app) as base:
        state.url = f"{base}/token"
        yield state


class RememberingDevSource(DevelopmentTokenSource):
    """The development source, keeping each token it mints (so the test knows what to look for)."""

    minted: list[str]

    def mint(self, request: TokenRequest) -> Credentials:
        credentials = super().mint(request)
        self.__dict__.setdefault("minted", []).append(credentials.participant_token)
        return credentials


def described(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


async def test_no_token_or_secret_reaches_a_log_a_repr_an_error_a_problem_or_a_recording(
    room_name: str, agent_factory: Any, token_endpoint: TokenEndpoint, livekit_server: LiveKitServer,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, figures: Figures,
) -> None:
    monkeypatch.setenv("LIVEKIT_RTC_DEBUG", "1")  # the SDK's own debug output too
    caplog.set_level(logging.DEBUG)
    agent = await agent_factory(room_name, llm=ScriptedLLM([REPLY]))
    tokens = EndpointTokenSource(token_endpoint.url, headers={"Authorization": token_endpoint.bearer})
    session = Session(tokens, room_name=room_name, audio_input=None, audio_output=None)
    recording = tmp_path / "session.jsonl"
    recorder = record(session, recording)  # told no secrets: it must not need to be
    seen: list[str] = []

    def keep(value: object) -> None:
        seen.append(repr(value))
        seen.append(str(value))

    session.states.subscribe(keep)

    # a whole session: join, talk, ask the agent, reconnect, leave
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("hello")
    await session.wait_until(lambda s: any(m.final for m in agent_messages(s)), timeout=30)
    await session.remote.ping()
    await session.remote.get_chat_history()
    assert session.room is not None
    await session.room.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_SIGNAL_RECONNECT)
    await session.wait_until(lambda s: s.connection.is_connected and s.agent.is_ready, timeout=20)
    keep(session)
    keep(tokens)
    keep(await tokens.fetch(TokenRequest(room_name=room_name)))
    await session.end()

    # and its failures
    token_endpoint.mode = "echo"
    with pytest.raises(TokenSourceError) as echoed:
        await session.start()
    token_endpoint.mode = "foreign"
    with pytest.raises(ConnectionFailedError) as refused:
        await asyncio.wait_for(session.start(), timeout=30)
    keep(session.state)
    recorder.close()

    dev = RememberingDevSource(f"ws://127.0.0.1:{free_port()}", livekit_server.api_key, livekit_server.api_secret)
    lost = Session(dev, audio_input=None, audio_output=None)
    with pytest.raises(ConnectionFailedError) as unreachable:
        await asyncio.wait_for(lost.start(), timeout=30)
    keep(dev)
    keep(lost.state)

    everything = "\n".join(
        [
            *seen,
            caplog.text,
            recording.read_text(),
            described(echoed.value),
            described(refused.value),
            described(unreachable.value),
        ]
    )
    secret_values = {
        "the API secret": livekit_server.api_secret,
        "the endpoint's bearer secret": token_endpoint.bearer.split()[1],
        **{f"endpoint token {n}": t for n, t in enumerate(token_endpoint.minted)},
        **{f"endpoint token {n} signature": t.rsplit(".", 1)[1] for n, t in enumerate(token_endpoint.minted)},
        **{f"development token {n}": t for n, t in enumerate(dev.minted)},
    }
    figures.add("secrets looked for", len(secret_values))
    figures.add("characters of logs, reprs, errors and recording searched", len(everything))
    assert len(token_endpoint.minted) >= 3 and dev.minted
    assert "Minted a development token" in caplog.text and "rtc_engine" in caplog.text, "the logs were captured"
    assert "[redacted token]" in echoed.value.message, "the endpoint's echo was scrubbed"
    for name, value in secret_values.items():
        assert value not in everything, f"{name} leaked"


# --- plain http ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/token",
        "http://127.0.0.1@evil.example/token",  # userinfo that looks like a host
        "http://evil.example#@127.0.0.1/token",
        "http://evil.example?@127.0.0.1/token",
        "http://localhost.evil.example/token",
        "http://127.0.0.1.nip.io/token",
        "http://0.0.0.0/token",
        "http://[::ffff:127.0.0.1]/token",
        "http://127.1/token",
        "http://user:hunter22@example.com/token?api_key=sekrit-key",
    ],
)
def test_the_token_endpoint_source_refuses_plain_http_beyond_this_machine_however_the_url_is_dressed(
    url: str, figures: Figures
) -> None:
    figures.add("insecure endpoint URLs tried")
    with pytest.raises(TokenSourceError) as refused:
        EndpointTokenSource(url)
    assert "unencrypted" in refused.value.message
    assert "allow_insecure_http=True" in refused.value.remedy
    for secret in ("hunter22", "sekrit-key"):
        assert secret not in str(refused.value)
    EndpointTokenSource(url, allow_insecure_http=True)  # unless explicitly allowed


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/token", "http://localhost:9/token", "http://[::1]:9/token"])
def test_plain_http_on_this_machine_is_allowed(url: str) -> None:
    EndpointTokenSource(url)


async def test_a_url_whose_host_two_parsers_read_differently_is_never_requested() -> None:
    # urllib reads the host as 127.0.0.1, so the source accepts it; the HTTP client
    # refuses the URL outright, so no request leaves for evil.example either.
    source = EndpointTokenSource("http://evil.example\\@127.0.0.1/token")
    with pytest.raises(TokenSourceError) as refused:
        await source.fetch(TokenRequest())
    assert "could not be used" in refused.value.message


# --- who hears our questions -----------------------------------------------------------------------


async def test_requests_to_the_agent_reach_the_agent_alone_and_others_on_the_topic_hear_none(
    room_name: str, agent_factory: Any, peer_factory: Any, livekit_server: LiveKitServer, figures: Figures
) -> None:
    agent = await agent_factory(room_name, llm=ScriptedLLM([REPLY]))
    session = new_session(livekit_server, room_name)
    try:
        await asyncio.wait_for(session.start(), timeout=15)
        await agent_sees_user(agent, session)  # the agent is linked to the user before the others come
        user = session.state.connection.local_identity
        eve = await peer_factory(room_name, "eve", byte_topics=["lk.agent.session"])
        agent_eve = await peer_factory(room_name, "agent-eve", kind="agent", byte_topics=["lk.agent.session"],
                                       attributes={"lk.publish_on_behalf": "nobody"})
        await session.wait_until(lambda s: {"eve", "agent-eve"} <= {p.identity for p in s.participants}, timeout=15)
        assert session.state.agent.identity == agent.identity

        remote = session.remote
        await remote.ping()
        await remote.get_chat_history()
        await remote.get_agent_info()
        await remote.get_session_state()
        await remote.get_session_usage()
        await remote.get_framework_info()
        await remote.get_rtc_stats()
        await remote.run_input("Hello there", timeout=30)
        figures.add("requests to the agent", 8)

        await agent.leave_abruptly("kick")
        await session.wait_until(lambda s: s.agent.identity is None, timeout=15)
        with pytest.raises(RemoteSessionError):
            await remote.ping(timeout=1.0)  # no agent: refused, not broadcast
        await asyncio.sleep(0.5)
    finally:
        await session.end()

    for listener in (eve, agent_eve):
        senders = {stream.sender for stream in listener.byte_streams}
        assert agent.identity in senders, f"{listener.identity} was listening (it heard the agent's broadcasts)"
        assert user not in senders, f"{listener.identity} heard none of our requests"
