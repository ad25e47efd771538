"""Property-based and fuzz tests: what arrives from the wire never breaks the state.

Three parsers take input straight from other parties, and all three must
turn anything into either a correct reading or a problem in words:

- the ``lk.agent.session`` decoder (protobuf), reached through the reducer as
  :class:`AgentSessionPayload` events — here with real payloads, damaged real
  payloads and schema-driven random events (``_payloads.py``), beyond the
  random bytes and single-byte corruptions of tests/unit;
- participant attributes, which decide who the agent is and what state it is
  in — arbitrary keys and values, avatars, renamed and departing agents;
- token claims, read from a string the app (or a token endpoint) hands over —
  arbitrary strings and JWTs whose JSON is anything JSON can say.

The atheris harnesses in ``fuzz/`` run the first and last under coverage
guidance; a short run is part of every test run, a long one is opt-in
(``--soak``). Counts are printed (``-s`` shows them) and recorded as test
properties.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api
from livekit.protocol.agent_pb import agent_session as pb

from lkstate import AgentStatus, Limits, SessionState
from lkstate.lowlevel import reduce
from lkstate._core import events as ev
from lkstate._core.errors import TokenSourceError
from lkstate._core.remote_state import MAX_ERRORS, MAX_PROBLEMS, MAX_TOOL_PROGRESS, RemoteSessionState
from lkstate._core.state import AGENT_WIRE_STATES, READY_WIRE_STATES, attribute, attributes_of
from lkstate._wire.tokens import decode_claims
from tests.reliability._payloads import SEEDS, any_payloads, event_payload, random_events

REPO = Path(__file__).resolve().parents[2]
USER = "user-1"
AGENT = "agent-AJ_1"
BUG = "This is a bug in lkstate"
FINAL_TOOL_STATUSES = {"done", "error", "cancelled"}


def with_agent() -> SessionState:
    state = SessionState()
    for event in (
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=1.1, room_name="room", local_identity=USER, server_url="ws://x"),
        ev.ParticipantJoined(
            at=2.0, identity=AGENT, name="", kind="agent", attributes=(("lk.agent.state", "listening"),)
        ),
    ):
        state = reduce(state, event)
    return state


def fold_payloads(payloads: Iterable[bytes], state: SessionState | None = None) -> SessionState:
    state = with_agent() if state is None else state
    for i, payload in enumerate(payloads):
        state = reduce(state, ev.AgentSessionPayload(at=10.0 + i, sender=AGENT, payload=payload))
    return state


def item_ids(remote: RemoteSessionState) -> list[str]:
    return [item.id for item in remote.items if item.id]


# --- the agent-session decoder, through the reducer ---------------------------------


def test_the_seed_corpus_is_real_and_reads_without_a_problem() -> None:
    # The seeds are the starting point of every mutation below; if they did not
    # decode cleanly, the mutations would explore the wrong code.
    assert len(SEEDS) >= 20
    state = fold_payloads(SEEDS)
    assert state.problems == () and state.remote.problems == ()
    assert len(state.remote.items) >= 5 and state.remote.tool_call("call_1") is not None


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_payloads(), min_size=1, max_size=12))
def test_whatever_the_agent_sends_only_its_own_report_changes_and_nothing_is_lost(payloads: list[bytes]) -> None:
    state = fold_payloads(SEEDS[:6])  # some conversation already there
    for i, payload in enumerate(payloads):
        before = state
        state = reduce(state, ev.AgentSessionPayload(at=100.0 + i, sender=AGENT, payload=payload))

        # Never an internal failure (the decoder's last-resort catch says "bug").
        assert not any(BUG in p for p in state.remote.problems), state.remote.problems[-1]
        # Only the agent's report, the problems and the time can change.
        assert attrs.evolve(state, remote=before.remote, problems=before.problems, updated_at=before.updated_at) == before
        # Conversation items are never dropped or reordered.
        ids_before, ids_after = item_ids(before.remote), item_ids(state.remote)
        assert ids_after[: len(ids_before)] == ids_before
        # A finished tool call stays finished.
        for call in before.remote.tool_calls:
            if call.status in FINAL_TOOL_STATUSES:
                after = state.remote.tool_call(call.call_id)
                assert after is not None and after.status == call.status
        # Everything that can repeat is bounded.
        assert len(state.remote.problems) <= MAX_PROBLEMS and len(state.remote.errors) <= MAX_ERRORS
        assert all(len(c.progress) <= MAX_TOOL_PROGRESS for c in state.remote.tool_calls)
        assert len(state.problems) <= Limits().max_problems
        # A problem reading the payload is also shown with the session's problems.
        if state.remote.problem_count > before.remote.problem_count:
            assert state.problems and state.problems[-1].source == "lk.agent.session"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_payloads(), min_size=1, max_size=8))
def test_replaying_the_same_payloads_gives_equal_snapshots(payloads: list[bytes]) -> None:
    # Recordings replay the raw payloads: every snapshot must come out equal,
    # whatever numbers (NaN, infinities, extreme timestamps) the agent sent.
    first, second = with_agent(), with_agent()
    for i, payload in enumerate(payloads):
        event = ev.AgentSessionPayload(at=10.0 + i, sender=AGENT, payload=payload)
        first, second = reduce(first, event), reduce(second, event)
        assert first == second
        assert hash(first) == hash(second)


_STATE_KINDS = st.sampled_from(
    ["agent_state_changed", "user_state_changed", "conversation_item_added", "user_input_transcribed",
     "session_usage_updated"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(random_events(), _STATE_KINDS)
def test_an_agent_repeating_a_report_changes_nothing_the_second_time(event: pb.AgentSessionEvent, kind: str) -> None:
    # State reports (as opposed to counted incidents like errors, and
    # problems) are idempotent: the second copy returns the identical snapshot,
    # so a UI is not asked to redraw for nothing. Items are matched by id; an
    # item without one cannot be recognised as the same item again.
    if event.WhichOneof("event") != kind:
        event = pb.AgentSessionEvent(**{kind: getattr(event, kind)})
    if not event.HasField("created_at"):  # else our receive time stands in, and it moves
        event.created_at.FromSeconds(1_700_000_000)
    payload = event_payload(event)
    once = fold_payloads([payload])
    if once.remote.problems:
        return
    if kind == "conversation_item_added" and not once.remote.items[-1].id:
        return
    twice = reduce(once, ev.AgentSessionPayload(at=99.0, sender=AGENT, payload=payload))
    assert twice is once


@settings(max_examples=200, deadline=None)
@given(st.lists(any_payloads(), min_size=1, max_size=6), st.sampled_from(["user-1", "bob", "agent-other", ""]))
def test_payloads_from_anyone_but_the_agent_change_only_the_problems(payloads: list[bytes], sender: str) -> None:
    state = with_agent()
    for payload in payloads:
        before = state
        state = reduce(state, ev.AgentSessionPayload(at=20.0, sender=sender, payload=payload))
        assert state.remote is before.remote
        assert len(state.problems) <= Limits().max_problems


# --- participant attributes → the agent ----------------------------------------------

IDENTITIES = ["agent-a", "agent-b", "avatar-a", "bob"]
_STATE_VALUES = st.one_of(st.sampled_from(sorted(AGENT_WIRE_STATES)), st.text(max_size=10))
_ATTRIBUTES = st.dictionaries(
    st.one_of(
        st.sampled_from(["lk.agent.state", "lk.agent.name", "lk.publish_on_behalf", "lk.agent_name"]),
        st.text(max_size=8),
    ),
    st.one_of(_STATE_VALUES, st.sampled_from(IDENTITIES + ["lkstate-demo", "other"])),
    max_size=4,
)


@st.composite
def presence(draw: st.DrawFn) -> ev.Event:
    identity = draw(st.sampled_from(IDENTITIES))
    attributes = attributes_of(draw(_ATTRIBUTES))
    which = draw(st.sampled_from(["join", "join", "change", "change", "change", "leave"]))
    if which == "join":
        kind = draw(st.sampled_from(["agent", "agent", "standard", "sip"]))
        return ev.ParticipantJoined(at=3.0, identity=identity, name=draw(st.text(max_size=4)), kind=kind,
                                    attributes=attributes)
    if which == "change":
        return ev.ParticipantAttributesChanged(at=4.0, identity=identity, attributes=attributes)
    return ev.ParticipantLeft(at=5.0, identity=identity)


def connected(requested: str | None) -> SessionState:
    state = reduce(SessionState(), ev.StartRequested(at=1.0, requested_agent=requested))
    return reduce(state, ev.RoomConnected(at=1.1, room_name="r", local_identity=USER, server_url="ws://x"))


@settings(max_examples=250, deadline=None)
@given(st.lists(presence(), max_size=25), st.sampled_from([None, "lkstate-demo", "other"]))
def test_the_agent_status_follows_the_primary_agents_attributes(events: list[ev.Event], requested: str | None) -> None:
    state = connected(requested)
    for event in events:
        state = reduce(state, event)
        agent = state.agent
        assert isinstance(agent.status, AgentStatus)
        assert sum([agent.is_finished, agent.is_pending, agent.is_ready]) <= 1
        proper = [p for p in state.participants if p.kind == "agent" and not attribute(p.attributes, "lk.publish_on_behalf")]
        if not proper:
            assert agent.identity is None
            assert agent.status in (AgentStatus.CONNECTING, AgentStatus.FAILED)
            continue
        # The primary agent: the requested one if present, else the first to arrive; never an avatar.
        named = [p for p in proper if requested and attribute(p.attributes, "lk.agent.name") == requested]
        primary = (named or proper)[0]
        assert agent.identity == primary.identity
        assert agent.attributes == primary.attributes
        if agent.failure is not None:
            assert agent.status is AgentStatus.FAILED and agent.failure_reasons
            continue
        raw = attribute(primary.attributes, "lk.agent.state")
        if raw in AGENT_WIRE_STATES:
            assert agent.status.value == raw and agent.unknown_state is None
        elif raw is None:
            assert agent.status is AgentStatus.INITIALIZING
        else:  # a value this version does not know: shown as such, the status kept or initializing
            assert agent.unknown_state == raw
            assert agent.status.value in AGENT_WIRE_STATES
        assert agent.is_ready == (agent.status.value in READY_WIRE_STATES)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=8))
def test_attributes_keep_every_key_and_value_in_one_canonical_order(mapping: dict[str, str]) -> None:
    pairs = attributes_of(mapping)
    assert pairs == attributes_of(dict(reversed(list(mapping.items()))))
    assert len(pairs) == len(mapping)
    for key, value in mapping.items():
        assert attribute(pairs, key) == value
    hash(pairs)  # hashable, as everything in a snapshot is


# --- token claims ---------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
claim_keys = st.sampled_from(["sub", "name", "nbf", "exp", "iat", "video", "roomConfig", "room_config", "iss"])
claim_payloads = st.dictionaries(claim_keys | st.text(max_size=6), json_values, max_size=6)
video_grants = st.fixed_dictionaries({"room": json_values | st.text(max_size=8)}, optional={"roomJoin": st.booleans()})
room_configs = st.fixed_dictionaries(
    {}, optional={"name": st.text(max_size=8) | json_values, "agents": json_values | st.lists(
        st.fixed_dictionaries({}, optional={"agentName": json_values, "agent_name": st.text(max_size=6)}), max_size=3
    )}
)


def claims_or_refusal(token: str) -> None:
    """Reading ``token`` gives well-typed claims, or a TokenSourceError that does not quote it."""
    try:
        claims = decode_claims(token)
    except TokenSourceError as error:
        assert "malformed" in str(error) and error.remedy
        if len(token) > 12:
            assert token not in str(error)
        return
    assert isinstance(claims.identity, str)
    assert claims.name is None or isinstance(claims.name, str)
    assert claims.room is None or isinstance(claims.room, str)
    for bound in (claims.not_before, claims.expires_at):
        assert bound is None or (isinstance(bound, float) and math.isfinite(bound))
    assert all(isinstance(name, str) for name in claims.dispatched_agents)
    claims.is_valid_at(1_700_000_000.0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[A-Za-z0-9_\-=.]{0,60}", fullmatch=True))
def test_any_string_reads_as_claims_or_is_refused_in_words(token: str) -> None:
    claims_or_refusal(token)


@settings(max_examples=300, deadline=None)
@given(
    json_values,
    st.one_of(claim_payloads, st.builds(lambda p, v, r: {**p, "video": v, "roomConfig": r}, claim_payloads,
                                        video_grants, room_configs), json_values),
    st.text(max_size=10),
)
def test_any_json_inside_a_jwt_reads_as_claims_or_is_refused_in_words(header: object, payload: object, sig: str) -> None:
    def encode(value: object) -> str:
        return b64url(json.dumps(value, allow_nan=True).encode())

    claims_or_refusal(f"{encode(header)}.{encode(payload)}.{sig}")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"exp": 1' + b"0" * 400 + b"}",  # a number too large for a float
        b'{"nbf": 1e999}',  # infinity
        b'{"exp": NaN}',  # Python's json accepts it; JWT's NumericDate does not
        b'{"exp": -Infinity}',
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than the JSON parser recurses
        b'{"video": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    ],
    ids=["huge-int", "infinity", "nan", "minus-infinity", "deep-list", "deep-object"],
)
def test_numbers_and_nesting_json_allows_but_a_jwt_cannot_hold_are_refused_in_words(payload: bytes) -> None:
    token = f"{b64url(b'{}')}.{b64url(payload)}.sig"
    with pytest.raises(TokenSourceError, match="malformed"):
        decode_claims(token)


@settings(max_examples=150, deadline=None)
@given(
    identity=st.text(min_size=1, max_size=24),
    name=st.text(max_size=24),
    room=st.text(min_size=1, max_size=24),
    agents=st.lists(st.text(max_size=12), max_size=3),
    ttl=st.integers(60, 10 * 365 * 86400),
)
def test_claims_of_a_token_minted_by_livekit_api_read_back_exactly(
    identity: str, name: str, room: str, agents: list[str], ttl: int
) -> None:
    import datetime

    token = (
        api.AccessToken("key", "a-secret-of-at-least-thirty-two-characters")
        .with_identity(identity)
        .with_name(name)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_ttl(datetime.timedelta(seconds=ttl))
    )
    if agents:
        token = token.with_room_config(
            api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=a) for a in agents])
        )
    claims = decode_claims(token.to_jwt())
    assert claims.identity == identity and claims.name == (name or None) and claims.room == room
    assert claims.dispatched_agents == tuple(agents)
    assert claims.expires_at is not None and claims.not_before is not None
    assert claims.expires_at - claims.not_before == pytest.approx(ttl, abs=1)


# --- atheris: coverage-guided fuzzing of the two parsers --------------------------------


def run_harness(harness: str, runs: int, tmp_path: Path, *, max_seconds: int) -> dict[str, int]:
    """Run ``fuzz/<harness>.py`` for ``runs`` inputs; return libFuzzer's counts. Fails on a crash."""
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    command = [
        sys.executable,
        str(REPO / "fuzz" / f"{harness}.py"),
        f"-runs={runs}",
        "-seed=1",
        f"-max_total_time={max_seconds}",
        "-max_len=4096",
        f"-artifact_prefix={tmp_path}/",
        str(corpus),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=max_seconds + 120, check=False)
    output = result.stdout + result.stderr
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert result.returncode == 0 and not crashes, f"the fuzzer found a failure ({crashes}):\n{output[-6000:]}"
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", output)
    assert done, output[-3000:]
    counts = {
        "runs": int(done.group(1)),
        "seconds": int(done.group(2)),
        "coverage": int(coverage[-1][0]) if coverage else 0,
        "features": int(coverage[-1][1]) if coverage else 0,
        "corpus": len(list(corpus.iterdir())),
    }
    print(f"\natheris {harness}: {counts}")
    return counts


def test_atheris_finds_no_crash_in_the_agent_session_decoder(tmp_path: Path, record_property: object) -> None:
    counts = run_harness("remote_payload", 20_000, tmp_path, max_seconds=15)
    record_property("atheris_remote_payload", counts)  # type: ignore[operator]
    assert counts["runs"] >= 20_000 or counts["seconds"] >= 15


def test_atheris_finds_no_crash_in_token_claims(tmp_path: Path, record_property: object) -> None:
    counts = run_harness("token_claims", 20_000, tmp_path, max_seconds=15)
    record_property("atheris_token_claims", counts)  # type: ignore[operator]
    assert counts["runs"] >= 20_000 or counts["seconds"] >= 15


LONG_FUZZ_SECONDS = int(os.environ.get("LKSTATE_FUZZ_SECONDS", "600"))


@pytest.mark.soak
@pytest.mark.timeout(LONG_FUZZ_SECONDS + 300)
@pytest.mark.parametrize("harness", ["remote_payload", "token_claims"])
def test_atheris_long_run(harness: str, tmp_path: Path, record_property: object) -> None:
    counts = run_harness(harness, 2_000_000_000, tmp_path, max_seconds=LONG_FUZZ_SECONDS)
    record_property(f"atheris_{harness}", counts)  # type: ignore[operator]
