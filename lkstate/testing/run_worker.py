"""``python -m lkstate.testing.run_worker SPEC --agent-name NAME``: your agent as a registered worker.

What :func:`lkstate.testing.workers.start_worker` runs in a subprocess. SPEC
names the agent (see :mod:`lkstate.testing.workers`); the server's URL and
keys come from ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET``.
Once the worker has registered it prints ``lkstate-testing: registered worker
<id>``, the line the test side waits for. SIGTERM or SIGINT stop it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["load_agent", "main"]

logger = logging.getLogger(__name__)

_MARKER = "lkstate-testing: registered worker "


def _import_target(target: str) -> ModuleType:
    if target.endswith(".py") or os.sep in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise SystemExit(f"lkstate-testing: there is no agent file at {path}")
        sys.path.insert(0, str(path.parent))  # its sibling modules import as they do when run directly
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"lkstate-testing: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def load_agent(spec: str) -> object:
    """The object ``spec`` names: an AgentServer, an entrypoint function or a server factory."""
    from livekit.agents import AgentServer

    target, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    module = _import_target(target)
    if attr:
        value: object = module
        for part in attr.split("."):
            try:
                value = getattr(value, part)
            except AttributeError:
                raise SystemExit(f"lkstate-testing: {target} has no {attr!r}") from None
        return value
    servers = [v for v in vars(module).values() if isinstance(v, AgentServer)]
    chosen = getattr(module, "server", None)
    if isinstance(chosen, AgentServer):
        return chosen
    if len(servers) == 1:
        return servers[0]
    entry = getattr(module, "entrypoint", None)
    if callable(entry):
        return entry
    raise SystemExit(
        f"lkstate-testing: {target} has no 'server' (AgentServer) and no 'entrypoint'; "
        "name it, like 'my_agent:my_entrypoint'"
    )


def _build_server(found: object, agent_name: str, executor: str) -> Any:
    from livekit.agents import AgentServer, JobExecutorType

    if callable(found) and not isinstance(found, AgentServer):
        required = [
            p for p in inspect.signature(found).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if not required:  # a factory: create_server()
            found = found()
    if isinstance(found, AgentServer):
        server = found
        server.update_options(
            ws_url=os.environ["LIVEKIT_URL"],
            api_key=os.environ["LIVEKIT_API_KEY"],
            api_secret=os.environ["LIVEKIT_API_SECRET"],
        )
        server.load_fnc = _no_load
        return server
    if not callable(found):
        raise SystemExit(f"lkstate-testing: {found!r} is neither an AgentServer nor an entrypoint function")
    server = AgentServer(
        job_executor_type=JobExecutorType(executor),
        ws_url=os.environ["LIVEKIT_URL"],
        api_key=os.environ["LIVEKIT_API_KEY"],
        api_secret=os.environ["LIVEKIT_API_SECRET"],
        host="127.0.0.1",
        port=0,
        num_idle_processes=1,
        load_threshold=math.inf,
        drain_timeout=5,
        shutdown_process_timeout=5.0,
    )
    server.rtc_session(found, agent_name=agent_name)  # pyright: ignore[reportArgumentType, reportUnknownMemberType]
    server.load_fnc = _no_load
    return server


def _no_load() -> float:
    """The load a test worker reports: none.

    The default is the machine's CPU load, and livekit-server stops sending
    jobs to a worker whose load is high ("no servers available"): on a busy
    CI machine a worker kept for a whole test session would soon get no more
    jobs. A test worker serves one test's rooms; it is never really full.
    """
    return 0.0


async def _serve(server: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def registered(worker_id: str, *_: object) -> None:
        print(f"{_MARKER}{worker_id}", flush=True)

    server.on("worker_registered", registered)
    # development mode: a free port for the health endpoint, no load shedding
    run = asyncio.create_task(server.run(devmode=True))
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if run in done:
        run.result()
        return
    await server.aclose()
    await asyncio.gather(run, return_exceptions=True)
    stopped.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkstate.testing.run_worker")
    parser.add_argument("spec", help="module:function, path/to/file.py:name, or a module with a server")
    parser.add_argument("--agent-name", required=True)
    parser.add_argument("--executor", choices=("thread", "process"), default="thread")
    parser.add_argument("--log-level", default=os.environ.get("LKSTATE_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    missing = [n for n in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET") if not os.environ.get(n)]
    if missing:
        parser.error(f"{', '.join(missing)} not set")
    # Wins over the name a server object registered itself under (livekit-agents reads it in rtc_session).
    os.environ["LIVEKIT_AGENT_NAME_OVERRIDE"] = args.agent_name
    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    server = _build_server(load_agent(args.spec), args.agent_name, args.executor)
    try:
        asyncio.run(_serve(server))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
