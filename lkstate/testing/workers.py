"""Your agent, as a real worker registered with the test server and dispatched by name.

A deployed LiveKit agent is a worker process: it registers with the server
under an agent name, and the server hands it a job whenever a participant's
token asks for that agent (``RoomConfiguration(agents=[RoomAgentDispatch(...)])``)
in a room it creates. Testing what users get means taking that same road, so
:func:`start_worker` runs your agent in a subprocess of its own
(:mod:`lkstate.testing.run_worker`), registers it under a fresh agent name,
and waits until the server knows it. A :class:`~lkstate.Session` made with
that ``agent_name`` then gets your agent dispatched into its room.

The agent is named by its entrypoint, the way ``lk agent`` and the agents CLI
name it:

- ``"my_agent:entrypoint"`` or ``"path/to/agent.py:entrypoint"`` — an
  ``async def entrypoint(ctx: JobContext)``; the worker wraps it in an
  :class:`~livekit.agents.AgentServer` (jobs in threads, health endpoint on a
  free port, no load shedding);
- ``"my_agent:server"`` — your own ``AgentServer`` object, run as it is (in
  development mode, so it takes a free port), re-registered under the test's
  agent name through ``LIVEKIT_AGENT_NAME_OVERRIDE``;
- ``"my_agent:create_server"`` — a function of no arguments returning one;
- ``"my_agent"`` or ``"path/to/agent.py"`` alone — its ``server`` (or only
  ``AgentServer``), else its ``entrypoint``;
- the function or server object itself, when it is a global of an importable
  module (the worker imports that module; an object made inside a test
  cannot cross into another process).

``entrypoint=None`` runs lkstate's own offline demo agent exactly as ``lkstate
demo`` does (``python -m lkstate.demo_agent``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .._tooling.devserver import parent_death_signal
from .server import LiveKitServer

__all__ = ["WorkerProcess", "start_worker", "entrypoint_spec", "DEMO_MARKER", "WORKER_MARKER"]

DEMO_MARKER = "lkstate-demo: registered worker "
"""The line ``python -m lkstate.demo_agent`` prints once registered."""

WORKER_MARKER = "lkstate-testing: registered worker "
"""The line :mod:`lkstate.testing.run_worker` prints once registered."""


class WorkerProcess:
    """A worker subprocess registered with the test server for :attr:`agent_name`.

    Its output (your agent's logs included) goes to :attr:`log_path`; the
    pytest plugin attaches the end of it to the report of a failed test.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], agent_name: str, log_path: Path, *, marker: str = DEMO_MARKER
    ) -> None:
        self.process = process
        self.agent_name = agent_name
        self.log_path = log_path
        self.marker = marker
        self.worker_id: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the worker's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_registered(self, timeout: float = 60.0) -> str:
        """Wait for the worker to announce its registration with the server; return its id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(self.marker):
                    self.worker_id = line[len(self.marker) :].strip()
                    return self.worker_id
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The agent worker exited with status {self.process.returncode} before registering. "
                    f"Its output ({self.log_path}):\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)
        raise TimeoutError(
            f"The agent worker did not register within {timeout:.0f} s. Its output ({self.log_path}):\n"
            f"{self.log_tail()}"
        )

    async def stop(self, grace: float = 8.0) -> None:
        """SIGTERM (the worker closes its jobs), SIGKILL after ``grace`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.process.poll() is None:
                self.process.kill()
        await asyncio.to_thread(self.process.wait)

    async def kill(self) -> None:
        """SIGKILL: the agent disappears without saying goodbye."""
        if self.process.poll() is None:
            self.process.kill()
        await asyncio.to_thread(self.process.wait)


def entrypoint_spec(entrypoint: object) -> str:
    """``"module:name"`` for an entrypoint given as a spec, a function or a server object.

    Raises :class:`ValueError` in words when the object is not a global of an
    importable module (the worker process must be able to import it).
    """
    if isinstance(entrypoint, str):
        if not entrypoint.strip():
            raise ValueError("The agent entrypoint is empty; name it like 'my_agent:entrypoint'.")
        return entrypoint
    if isinstance(entrypoint, os.PathLike):
        return os.fspath(entrypoint)  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    module_name = getattr(entrypoint, "__module__", None)
    qualname = getattr(entrypoint, "__qualname__", None)
    if isinstance(module_name, str) and isinstance(qualname, str) and "<" not in qualname and module_name != "__main__":
        return f"{module_name}:{qualname}"
    # an instance (an AgentServer): find the module global that holds it
    for name, module in list(sys.modules.items()):
        if name == "__main__":
            continue
        namespace: dict[str, object] = getattr(module, "__dict__", None) or {}  # a stub in sys.modules may be anything
        for attr, value in list(namespace.items()):
            if value is entrypoint and not attr.startswith("_"):
                return f"{name}:{attr}"
    raise ValueError(
        f"Cannot start {entrypoint!r} in a worker process: it is not a global of an importable module. "
        "Define it at module level in your agent's module and pass it (or 'module:name')."
    )


async def start_worker(
    server: LiveKitServer,
    entrypoint: object = None,
    *,
    agent_name: str | None = None,
    log_dir: Path | None = None,
    greeting: str | None = "",
    executor: str = "thread",
    extra_env: dict[str, str] | None = None,
    cwd: Path | None = None,
    wait: bool = True,
    timeout: float = 60.0,
) -> WorkerProcess:
    """Start a worker for ``entrypoint`` (``None``: the demo agent) registered under ``agent_name``.

    ``agent_name`` defaults to a fresh unique one, so concurrent tests never
    get each other's agents. ``greeting`` is for the demo agent only: what it
    says on joining (nothing by default, ``None`` for the demo's own).
    ``executor`` (``"thread"`` or ``"process"``) is how an entrypoint
    function's jobs run. The worker's ``sys.path`` is this process's, so it
    imports your agent the way your tests do. Waits (by default) until the
    worker has registered, so a token dispatching ``agent_name`` made
    afterwards gets a job.
    """
    agent_name = agent_name or f"lkstate-test-{uuid.uuid4().hex[:6]}"
    log_dir = log_dir or server.workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{agent_name}.log"
    path = [p for p in sys.path if p and os.path.isdir(p)]
    env = {
        **os.environ,
        **server.env(),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys([*path, *filter(None, [os.environ.get("PYTHONPATH")])])),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    if entrypoint is None:
        command = [sys.executable, "-m", "lkstate.demo_agent", "--agent-name", agent_name]
        command += [] if greeting is None else ["--greeting", greeting]
        marker = DEMO_MARKER
    else:
        spec = entrypoint_spec(entrypoint)
        command = [sys.executable, "-m", "lkstate.testing.run_worker", spec,
                   "--agent-name", agent_name, "--executor", executor]
        marker = WORKER_MARKER
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or os.getcwd(),
            env=env,
            start_new_session=True,
            # Killed with the test run that started it, not left registered and busy.
            preexec_fn=parent_death_signal(),
        )
    worker = WorkerProcess(process, agent_name, log_path, marker=marker)
    if wait:
        try:
            await worker.wait_registered(timeout)
        except BaseException:
            await worker.kill()
            raise
    return worker
