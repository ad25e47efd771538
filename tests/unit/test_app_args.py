"""The connection flags every front end shares, and the session they describe."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from lkstate import DevelopmentTokenSource, EndpointTokenSource, Session
from lkstate.errors import LkstateError
from lkstate.ui import DEFAULT_MAX_RATE
from lkstate._tooling import app_args as _app_args
from lkstate._tooling.app_args import add_connection_arguments, session_from_args, token_source_from_args

SECRET = "a-development-secret-that-is-32-chars-long"
ENVIRONMENT = ("LKSTATE_TOKEN_ENDPOINT", "LIVEKIT_URL", "LIVEKIT_TOKEN", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET",
               "LKSTATE_AGENT_NAME")


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def parse(*argv: str, **options: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser, **options)
    return parser.parse_args(argv)


def test_every_connection_flag_is_read() -> None:
    args = parse("--url", "ws://h:7880", "--token", "T", "--token-endpoint", "https://e/t", "--api-key", "k",
                 "--api-secret", SECRET, "--agent-name", "helper", "--room", "kitchen", "--identity", "ada",
                 "--name", "Ada", "--agent-timeout", "5", "--max-rate", "12")
    assert (args.url, args.token, args.token_endpoint, args.api_key, args.api_secret) == (
        "ws://h:7880", "T", "https://e/t", "k", SECRET
    )
    assert (args.agent_name, args.room, args.identity, args.name, args.agent_timeout, args.max_rate) == (
        "helper", "kitchen", "ada", "Ada", 5.0, 12.0
    )


def test_defaults_wait_twenty_seconds_and_draw_at_the_default_rate() -> None:
    args = parse()
    assert (args.agent_name, args.agent_timeout, args.max_rate) == (None, 20.0, DEFAULT_MAX_RATE)


def test_the_agent_comes_from_the_environment_then_the_front_ends_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse(agent_name="lkstate-demo").agent_name == "lkstate-demo"
    assert parse("--agent-name", "", agent_name="lkstate-demo").agent_name == ""
    monkeypatch.setenv("LKSTATE_AGENT_NAME", "from-env")
    assert parse(agent_name="lkstate-demo").agent_name == "from-env"
    assert parse("--agent-name", "flag").agent_name == "flag"


def test_a_front_end_can_leave_out_the_participant_and_the_rate() -> None:
    args = parse(participant=False, max_rate=None)
    assert not hasattr(args, "identity") and not hasattr(args, "name") and not hasattr(args, "max_rate")
    with pytest.raises(SystemExit):
        parse("--identity", "ada", participant=False)


def test_flags_choose_the_token_source_first_match_wins() -> None:
    minting = token_source_from_args(parse("--url", "ws://h:7880", "--api-key", "k", "--api-secret", SECRET))
    assert isinstance(minting, DevelopmentTokenSource)
    endpoint = token_source_from_args(parse("--token-endpoint", "https://e/t", "--url", "ws://h:7880"))
    assert isinstance(endpoint, EndpointTokenSource)
    with pytest.raises(LkstateError, match="No way to reach a LiveKit server"):
        token_source_from_args(parse())


def test_the_session_is_what_the_flags_say_and_keywords_win(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    def recording_session(tokens: object, **kwargs: Any) -> Session:
        made.append({"tokens": tokens, **kwargs})
        return Session(DevelopmentTokenSource("ws://h", "k", SECRET), audio_input=None)

    monkeypatch.setattr(_app_args, "Session", recording_session)
    args = parse("--url", "ws://h:7880", "--api-key", "k", "--api-secret", SECRET, "--agent-name", "helper",
                 "--room", "kitchen", "--identity", "ada", "--name", "Ada", "--agent-timeout", "5")
    session_from_args(args, audio_input=None, room_name="override")
    (kwargs,) = made
    assert isinstance(kwargs.pop("tokens"), DevelopmentTokenSource)
    assert kwargs == {"agent_name": "helper", "agent_connect_timeout": 5.0, "room_name": "override",
                      "participant_identity": "ada", "participant_name": "Ada", "audio_input": None}
    made.clear()
    session_from_args(parse("--url", "ws://h", "--api-key", "k", "--api-secret", SECRET, "--agent-name", "",
                            participant=False))
    assert made[0]["agent_name"] is None and made[0]["participant_identity"] is None


def test_a_real_session_waits_for_the_agent_as_long_as_the_flag_says() -> None:
    session = session_from_args(parse("--url", "ws://h", "--api-key", "k", "--api-secret", SECRET,
                                      "--agent-timeout", "7"), audio_input=None)
    assert isinstance(session, Session) and session.options.agent_connect_timeout == 7.0
