"""The README's usage example works as printed, against a dispatched example agent."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

from tests.harness.server import LiveKitServer

README = Path(__file__).resolve().parents[2] / "README.md"


def usage_example() -> str:
    section = README.read_text().split("## Use", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has a python example under ## Use"
    return match.group(1)


async def test_the_readme_example_runs_as_printed(livekit_server: LiveKitServer, worker_factory: Any) -> None:
    await worker_factory(agent_name="lkstate-demo", greeting=None)  # the demo worker as users run it
    env = {**os.environ, **livekit_server.env()}
    env.pop("LIVEKIT_TOKEN", None)
    env.pop("LKSTATE_TOKEN_ENDPOINT", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", usage_example(), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    output = stdout.decode()
    assert process.returncode == 0, output + stderr.decode()[-1500:]
    lines = output.splitlines()
    assert lines[0] == "disconnected" and "listening" in lines, output
    replies = [line for line in lines if "Paris" in line]
    assert replies, output
