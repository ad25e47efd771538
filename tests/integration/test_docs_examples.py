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

The example agent runs as one worker per name for the whole module (``lkstate-demo``
for the pages, ``my-agent`` for the docstrings), as a reader's would keep running
between scripts: each example still gets its own room and so its own job, and
starting a worker (a process importing livekit-agents) cost more than most
examples take.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lkstate import Session, SessionState, token_source_from_env
from lkstate.testing import WorkerProcess
from lkstate_pytest import _WORKER_LOGS_KEY  # pyright: ignore[reportPrivateUsage]
from tests.harness.agent import start_worker
from tests.harness.docs import ROOT, DocstringExample, Example, docstring_examples, of_kind
from tests.harness.server import LiveKitServer

pytestmark = pytest.mark.agent  # every example talks to the example agent (a module-scoped worker)

QUESTION = "What's the weather in Paris?"


def answered(state: SessionState) -> bool:
    return any(m.role == "agent" and m.final and "Paris" in m.text for m in state.messages)


def run_as_module(example: Example) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(example.code, example.id, "exec"), namespace)
    assert example.name is not None and example.name in namespace
    return namespace


@pytest.fixture(scope="module")
def example_workers(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, WorkerProcess]]:
    """The example agent with its own greeting, registered once per name the examples ask for."""
    log_dir = tmp_path_factory.mktemp("example-agents")
    workers: dict[str, WorkerProcess] = {}
    try:
        for name in ("lkstate-demo", "my-agent"):
            workers[name] = asyncio.run(start_worker(livekit_server, agent_name=name, greeting=None, log_dir=log_dir))
        yield workers
    finally:
        for worker in workers.values():
            asyncio.run(worker.stop())


@pytest.fixture
def example_agent(example_workers: dict[str, WorkerProcess], request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``example_agent(name)``: the module's worker for ``name`` is serving this test (its log joins a failure's report)."""

    def serving(name: str) -> None:
        worker = example_workers[name]
        assert worker.process.poll() is None, f"the {name} worker has exited; see {worker.log_path}"
        request.node.stash.setdefault(_WORKER_LOGS_KEY, []).append(worker.log_path)

    return serving


@pytest.fixture
def server_env(livekit_server: LiveKitServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a reader would have: the server's URL, key and secret, nothing else."""
    for name in ("LIVEKIT_TOKEN", "LKSTATE_TOKEN_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in livekit_server.env().items():
        monkeypatch.setenv(name, value)
    return livekit_server.env()


@pytest.mark.parametrize("example", of_kind("agent"), ids=lambda e: e.id)
async def test_an_agent_example_runs_as_printed(
    example: Example, server_env: dict[str, str], example_agent: Callable[[str], None]
) -> None:
    example_agent("lkstate-demo")  # the demo worker as users run it
    env = {**os.environ, **server_env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", example.code, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, stdout.decode() + stderr.decode()[-2000:]
    assert stdout.strip(), "the example prints what it shows"


@pytest.mark.parametrize("example", of_kind("textual"), ids=lambda e: e.id)
async def test_a_textual_example_shows_the_agents_reply(
    example: Example, server_env: dict[str, str], example_agent: Callable[[str], None]
) -> None:
    from lkstate_textual.testing import screen_text
    from lkstate_textual.widgets import ChatInput

    example_agent("lkstate-demo")
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
def test_a_qt_example_shows_the_agents_reply(
    example: Example, server_env: dict[str, str], example_agent: Callable[[str], None], qtbot: Any
) -> None:
    from lkstate_qt import TranscriptView

    example_agent("lkstate-demo")
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


@pytest.mark.parametrize("example", of_kind("gradio"), ids=lambda e: e.id)
async def test_a_gradio_example_serves_a_tab_that_talks_to_the_agent(
    example: Example, server_env: dict[str, str], example_agent: Callable[[str], None]
) -> None:
    from lkstate_gradio.app import free_port

    example_agent("lkstate-demo")
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
    example: DocstringExample, server_env: dict[str, str], example_agent: Callable[[str], None],
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

    example_agent("my-agent")
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
