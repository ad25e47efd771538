"""Test a LiveKit agent as its users meet it: a real server, your real worker, a real client.

The agents framework's own test helpers run an ``AgentSession`` in-process,
without a room, audio or client — right for the agent's logic. This kit tests
what your users get: your agent dispatched by name into a real room on a real
``livekit-server`` (the version lkstate pins, on loopback), a real client
(:class:`~lkstate.Session`) speaking from a WAV file and typing, and what the
UI shows — transcripts, agent states, tool calls — checked with expectations
that read like the test::

    from lkstate.testing import expect

    async def test_weather(agent_session):
        session = await agent_session()                     # your agent, dispatched and ready
        await session.send_text("What's the weather in Paris?")
        await expect(session).agent_calls("get_weather", city="Paris")
        await expect(session).agent_says(r"sunny")

A failed expectation prints what did happen: the session's timeline as
``lkstate inspect`` prints it and the path of its recording.

The pieces:

- the pytest plugin (:mod:`lkstate_pytest`, loaded automatically once
  lkstate is installed) with the fixtures ``livekit_server``, ``room_name``,
  ``user_token``, ``agent_worker`` / ``worker_factory``, ``make_session`` and
  ``agent_session`` (see docs/testing.md);
- :mod:`lkstate.testing.expect`: :func:`expect` and :func:`watch`;
- :mod:`lkstate.testing.server`: :class:`LiveKitServer`, the dev server of
  ``lkstate demo`` with test credentials;
- :mod:`lkstate.testing.workers`: :func:`start_worker`, your agent as a
  registered worker subprocess;
- :mod:`lkstate.testing.sessions`: :class:`SessionMaker`, sessions with no
  devices, recorded;
- :mod:`lkstate.testing.models`: the offline scripted STT, LLM and TTS
  (imported on its own: it needs ``livekit-agents``).

This package sits on top of lkstate: it may use anything in it, and nothing
in lkstate imports it.
"""

from __future__ import annotations

from .expect import DEFAULT_TIMEOUT, ExpectationFailed, Expectations, Watched, expect, watch
from .server import LiveKitServer, LiveKitServerError, ensure_livekit_server, find_livekit_server
from .sessions import SessionMaker
from .workers import WorkerProcess, entrypoint_spec, start_worker

__all__ = [
    "DEFAULT_TIMEOUT",
    "ExpectationFailed",
    "Expectations",
    "LiveKitServer",
    "LiveKitServerError",
    "SessionMaker",
    "Watched",
    "WorkerProcess",
    "ensure_livekit_server",
    "entrypoint_spec",
    "expect",
    "find_livekit_server",
    "start_worker",
    "watch",
]
