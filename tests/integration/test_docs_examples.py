"""Every example on the reference site that talks to an agent works as printed.

Each runs against the real local livekit-server and the offline example agent
registered as ``lkstate-demo``, as a reader would run it after ``lkstate demo``:

- ``agent`` examples run as scripts, in a subprocess whose environment points
  ``token_source_from_env()`` at the test server;
- GUI examples run as a module (their ``if __name__ == "__main__":`` launch line
  is the only part not executed), and the test then drives what they define the
  way that launch line would — headless — until the agent's reply is on screen.

Which blocks are which is said by a marker on each block (tests/harness/docs.py);
tests/unit/test_docs_site.py fails on a block without one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lkstate import LoopThread, Session, SessionState, token_source_from_env
from tests.harness.agent import start_worker
from tests.harness.docs import ROOT, DocstringExample, Example, docstring_examples, of_kind
from tests.harness.server import LiveKitServer

QUESTION = "What's the weather in Paris?"


def answered(state: SessionState) -> bool:
    return any(m.role == "agent" and m.final and "Paris" in m.text for m in state.messages)


def run_as_module(example: Example) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(example.code, example.id, "exec"), namespace)
    assert example.name is not None and example.name in namespace
    return namespace


@pytest.fixture
def server_env(livekit_server: LiveKitServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a reader would have: the server's URL, key and secret, nothing else."""
    for name in ("LIVEKIT_TOKEN", "LKSTATE_TOKEN_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in livekit_server.env().items():
        monkeypatch.setenv(name, value)
    return livekit_server.env()


@pytest.mark.parametrize("example", of_kind("agent"), ids=lambda e: e.id)
async def test_an_agent_example_runs_as_printed(example: Example, server_env: dict[str, str], worker_factory: Any) -> None:
    await worker_factory(agent_name="lkstate-demo", greeting=None)  # the demo worker as users run it
    env = {**os.environ, **server_env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", example.code, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, stdout.decode() + stderr.decode()[-2000:]
    assert stdout.strip(), "the example prints what it shows"


@pytest.mark.parametrize("example", of_kind("textual"), ids=lambda e: e.id)
async def test_a_textual_example_shows_the_agents_reply(example: Example, server_env: dict[str, str], worker_factory: Any) -> None:
    from lkstate_textual.testing import screen_text
    from lkstate_textual.widgets import ChatInput

    await worker_factory(agent_name="lkstate-demo", greeting=None)
    app_class = run_as_module(example)[example.name or ""]
    # What the __main__ line builds, minus the sound card (CI has none).
    session = Session(token_source_from_env(), agent_name="lkstate-demo", audio_input=None, audio_output=None)
    app = app_class(session)
    async with app.run_test(size=(100, 40)) as pilot:
        await session.wait_until(lambda s: s.agent.is_ready, timeout=30)
        app.query_one(ChatInput).focus()
        await pilot.press(*QUESTION, "enter")
        reply = await session.wait_until(answered, timeout=30)
        text = next(m.text for m in reply.messages if m.role == "agent" and "Paris" in m.text)
        deadline = time.monotonic() + 10
        while text.split()[0] not in screen_text(app) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert QUESTION in screen_text(app) and text.split()[0] in screen_text(app)
    await session.end()


@pytest.mark.parametrize("example", of_kind("qt"), ids=lambda e: e.id)
def test_a_qt_example_shows_the_agents_reply(example: Example, server_env: dict[str, str], livekit_server: LiveKitServer, qtbot: Any, tmp_path: Path) -> None:
    from lkstate_qt import TranscriptView

    with LoopThread() as agents:
        worker = agents.run(start_worker(livekit_server, agent_name="lkstate-demo", greeting=None, log_dir=tmp_path))
        try:
            build_window: Callable[[Session], Any] = run_as_module(example)[example.name or ""]
            session = Session(token_source_from_env(), agent_name="lkstate-demo", audio_input=None, audio_output=None)
            window, bridge = build_window(session)
            qtbot.addWidget(window)
            try:
                window.show()
                bridge.start()
                qtbot.waitUntil(lambda: bridge.state.agent.is_ready, timeout=30_000)
                bridge.send_text(QUESTION)
                transcript = window.findChild(TranscriptView)
                qtbot.waitUntil(
                    lambda: any(role == "agent" and "Paris" in text for role, text, _ in transcript.bubble_texts()),
                    timeout=30_000,
                )
            finally:
                bridge.close()
        finally:
            agents.run(worker.stop())


@pytest.mark.parametrize("example", of_kind("gradio"), ids=lambda e: e.id)
async def test_a_gradio_example_serves_a_tab_that_talks_to_the_agent(example: Example, server_env: dict[str, str], worker_factory: Any) -> None:
    from lkstate_gradio.app import free_port

    await worker_factory(agent_name="lkstate-demo", greeting=None)
    demo = run_as_module(example)[example.name or ""]
    try:
        url = demo.launch(host="127.0.0.1", port=free_port(), block=False, quiet=True)
        page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read().decode())
        assert "lkstate" in page
        # One browser tab's session, driven as the page's handlers drive it.
        await demo.sessions.run("tab-1", lambda s: s.start())
        await demo.sessions.run("tab-1", lambda s: s.send_text(QUESTION))
        deadline = time.monotonic() + 30
        while not answered(demo.sessions.session("tab-1").state):
            assert time.monotonic() < deadline, "the agent answered the tab"
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(demo.close)


# -- the examples in the docstrings of the API pages -------------------------------------


@pytest.mark.parametrize("example", docstring_examples(), ids=lambda e: e.id)
async def test_a_docstring_example_runs_as_printed(
    example: DocstringExample, server_env: dict[str, str], worker_factory: Any,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Like a doctest: in its module's namespace, plus the names its prose takes as given.

    Those are the server (``url``, ``api_key``/``key``, ``api_secret``/``secret``,
    ``token_source``), an unstarted ``session`` and ``argparse``; the agent they
    dispatch, ``my-agent``, is the example worker registered under that name.
    """
    import argparse
    import ast
    import importlib

    from lkstate import DevelopmentTokenSource

    await worker_factory(agent_name="my-agent", greeting=None)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setattr(sys, "argv", ["example"])
    url, key, secret = server_env["LIVEKIT_URL"], server_env["LIVEKIT_API_KEY"], server_env["LIVEKIT_API_SECRET"]
    session = Session(DevelopmentTokenSource(url, key, secret), audio_input=None, audio_output=None)
    namespace: dict[str, Any] = {
        **vars(importlib.import_module(example.module)),
        "__name__": "docstring_example",
        "argparse": argparse,
        "url": url, "api_key": key, "key": key, "api_secret": secret, "secret": secret,
        "token_source": DevelopmentTokenSource(url, key, secret),
        "session": session,
    }
    code = compile(example.code, example.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & 0x80:  # CO_COROUTINE: it awaits at the top level
        await asyncio.wait_for(eval(code, namespace), timeout=60)
    else:  # blocking code (a LoopThread example): off this test's loop
        await asyncio.wait_for(asyncio.to_thread(exec, code, namespace), timeout=60)
    # No exception is the check: start() (and so ``async with session``) raises unless the agent is ready.
    assert isinstance(namespace.get("session"), Session)
    await session.end()
