"""The `lkstate` command line, without a server: inspect, replay, token, and its errors.

Most tests call ``main([...])`` in-process and read what it printed; the
ones about the installed ``lkstate`` command and about missing front ends run
it as a subprocess, as a user would. The ``--camera`` test alone connects to
the test server, to see what the front end's camera button would send.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import sys
import urllib.request
from pathlib import Path

import pytest
from tests.harness.cli import ctrl_c_works, lkstate_command

from lkstate import Session
from lkstate.errors import LkstateError
from lkstate.media import PatternVideoInput
from lkstate.tokens import decode_claims
from lkstate._tooling import cli as _cli
from lkstate._tooling.cli import main
from lkstate._session.recording import read_recording

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "recordings" / "demo.jsonl"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*lkstate_command(), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, **(env or {})},
    )


# -- the shipped example recording ------------------------------------------------------


def test_the_shipped_recording_is_a_real_demo_session_with_no_secrets() -> None:
    header, events = read_recording(EXAMPLE)
    names = {type(e).__name__ for e in events}
    assert {"RoomConnected", "ParticipantJoined", "ChatSendRequested", "TranscriptReceived",
            "AgentSessionPayload", "RoomDisconnected"} <= names
    assert dict(header.metadata)["command"] == "lkstate demo"
    text = EXAMPLE.read_text()
    assert not re.search(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", text), "no token in the example"


def test_replay_headless_plays_the_shipped_recording_to_the_end_without_a_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["replay", str(EXAMPLE), "--headless"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "connection: connecting" in lines[0]
    assert any(line.endswith("agent said: The weather in Paris is sunny and 21 degrees.") for line in lines)
    assert lines[-1].endswith("agent: disconnected")
    _, events = read_recording(EXAMPLE)
    assert f"replayed {len(events)} events" in err


def test_inspect_prints_the_timeline_and_the_final_state(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    _, events = read_recording(EXAMPLE)
    assert "format lkstate-recording v1" in out
    assert "timeline (step, seconds since the first event, event):" in out
    assert f"▶{len(events):5d}" in out, "the step shown is marked in the timeline"
    assert "StartRequested" in out and "AgentSessionPayload" in out and "event conversation_item_added" in out
    assert f"state after step {len(events)} of {len(events)}:" in out
    assert "[agent, transcript] The weather in Paris is sunny and 21 degrees." in out
    assert "tool get_weather" in out


def test_inspect_travels_to_any_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(EXAMPLE), "--step", "2", "--no-timeline"]) == 0
    out = capsys.readouterr().out
    assert "timeline" not in out
    assert "state after step 2 of" in out
    assert "connection: connected" in out and "messages (0):" in out
    assert main(["inspect", str(EXAMPLE), "--step", "0", "--no-timeline"]) == 0
    assert "state before the first event:" in capsys.readouterr().out


def test_inspect_a_step_that_does_not_exist_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(EXAMPLE), "--step", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lkstate: There is no step 100000") and "Choose --step" in err


# -- errors ---------------------------------------------------------------------------------


def test_a_file_that_is_not_a_recording_is_a_message_and_exit_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    result = run_cli("inspect", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("lkstate: ") and "not JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 2, "the message, then the remedy"


def test_a_damaged_recording_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = EXAMPLE.read_text().splitlines()
    lines[5] = lines[5][:-7]
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(damaged), "--headless"]) == 2
    assert "line 6" in capsys.readouterr().err


def test_connect_without_any_way_to_reach_a_server_says_what_to_pass(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_TOKEN", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LKSTATE_TOKEN_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["connect", "--headless"]) == 2
    err = capsys.readouterr().err
    assert "No way to reach a LiveKit server" in err and "--token-endpoint" in err


class FakeFrontEnd:
    """Stands in for ``lkstate_<ui>.app``: keeps what the CLI hands a front end, shows nothing."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self.gradio_options: list[dict[str, object]] = []
        front_end = self

        class VoiceAgentApp:
            def __init__(self, session: Session, **options: object) -> None:
                front_end.sessions.append(session)

            def run(self) -> None:
                pass

        self.VoiceAgentApp = VoiceAgentApp

    def run(self, *args: object, **options: object) -> None:
        self.gradio_options.append(options)


def test_the_camera_flag_picks_what_the_camera_button_sends(
    monkeypatch: pytest.MonkeyPatch, livekit_server: object
) -> None:
    import asyncio

    from tests.harness.server import LiveKitServer

    assert isinstance(livekit_server, LiveKitServer)
    front_end = FakeFrontEnd()
    monkeypatch.setattr(_cli, "_load_ui", lambda ui: front_end)
    server = ["--url", livekit_server.url, "--api-key", livekit_server.api_key,
              "--api-secret", livekit_server.api_secret, "--agent-name", ""]
    assert _cli._parser().parse_args(["demo"]).camera == "default"
    assert _cli._parser().parse_args(["connect"]).camera == "default"
    with pytest.raises(SystemExit):
        _cli._parser().parse_args(["demo", "--camera", "webcam"])

    assert main(["connect", *server, "--camera", "pattern"]) == 0
    assert main(["connect", *server, "--camera", "none"]) == 0
    pattern, none = front_end.sessions

    async def camera_button(session: Session) -> str | None:
        await session.start(wait_for_agent=False)
        try:
            await session.set_camera_enabled(True)
            return session.state.local_media.camera.device
        finally:
            await session.end()

    assert asyncio.run(camera_button(pattern)) == "test pattern 640×360 at 15 fps"
    with pytest.raises(LkstateError, match="no camera input"):
        asyncio.run(camera_button(none))

    # The web front end makes a session per browser tab: each gets a pattern of its own.
    assert main(["connect", *server, "--ui", "gradio", "--camera", "pattern"]) == 0
    assert main(["connect", *server, "--ui", "gradio", "--camera", "none"]) == 0
    assert main(["connect", *server, "--ui", "gradio"]) == 0
    per_tab, no_camera, default = (options["video_input"] for options in front_end.gradio_options)
    assert callable(per_tab)
    first, second = per_tab(), per_tab()
    assert isinstance(first, PatternVideoInput) and isinstance(second, PatternVideoInput) and first is not second
    assert no_camera is None and default == "default"


def run_cli_without(modules: list[str], *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a Python where ``modules`` cannot be imported (as if not installed)."""
    code = (
        "import sys\n"
        f"for name in {modules!r}: sys.modules[name] = None\n"
        "from lkstate._tooling.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, **(env or {})})


def test_a_front_end_that_is_not_installed_is_a_clear_error() -> None:
    result = run_cli_without(["lkstate_qt", "lkstate_qt.app"], "replay", str(EXAMPLE), "--ui", "qt")
    assert result.returncode == 2
    assert "The qt front end is not installed" in result.stderr and 'pip install "lkstate[qt]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_a_front_end_whose_framework_is_missing_names_the_package() -> None:
    result = run_cli_without(["textual"], "replay", str(EXAMPLE), "--ui", "textual")
    assert result.returncode == 2
    assert "needs the Python package 'textual'" in result.stderr and 'pip install "lkstate[textual]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_the_qt_front_end_without_a_display_is_an_error_in_words_not_an_abort() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([*lkstate_command(), "replay", str(EXAMPLE), "--ui", "qt"], capture_output=True,
                            text=True, timeout=60, cwd=REPO, env=env)
    assert result.returncode == 2
    assert "no display to open the Qt window" in result.stderr and "QT_QPA_PLATFORM=offscreen" in result.stderr


def test_replay_in_the_gradio_front_end_serves_the_recording_until_interrupted() -> None:
    process = subprocess.Popen(
        [*lkstate_command(), "replay", str(EXAMPLE), "--ui", "gradio"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
        preexec_fn=ctrl_c_works,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the address, once the page is served
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, f"no address in {line!r}"
        with urllib.request.urlopen(match.group(1), timeout=30) as page:
            assert page.status == 200 and "lkstate · replay of demo.jsonl" in page.read().decode()
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the CLI prints every thread's stack: where is it stuck?
            time.sleep(2)
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"the replay did not stop within 60 s of Ctrl-C; its stacks:\n{err}")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "serving the replay in the gradio front end" in err and "Traceback" not in err


def test_a_replay_speed_must_be_a_positive_number() -> None:
    result = run_cli("replay", str(EXAMPLE), "--headless", "--speed", "fast-ish")
    assert result.returncode == 2 and "is not a speed" in result.stderr


def test_without_a_command_the_help_is_shown() -> None:
    result = run_cli()
    assert result.returncode == 2
    for command in ("demo", "serve", "connect", "record", "replay", "inspect", "token", "bench"):
        assert command in result.stderr


# -- token ------------------------------------------------------------------------------------


def test_token_mints_a_development_token_with_the_room_identity_and_agent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "a-development-secret-that-is-32-chars-long"
    assert main(["token", "--api-key", "devkey", "--api-secret", secret, "--room", "kitchen",
                 "--identity", "alice", "--agent-name", "lkstate-demo"]) == 0
    out, err = capsys.readouterr()
    claims = decode_claims(out.strip())
    assert (claims.room, claims.identity, claims.dispatched_agents) == ("kitchen", "alice", ("lkstate-demo",))
    assert "room 'kitchen', identity 'alice'" in err and secret not in out + err


def test_token_can_name_the_deployment_of_the_agent(capsys: pytest.CaptureFixture[str]) -> None:
    from livekit.api import TokenVerifier

    secret = "a-development-secret-that-is-32-chars-long"
    assert main(["token", "--api-key", "devkey", "--api-secret", secret, "--agent-name", "chef",
                 "--agent-deployment", "staging"]) == 0
    verified = TokenVerifier("devkey", secret).verify(capsys.readouterr().out.strip())
    assert verified.room_config is not None
    assert [(a.agent_name, a.deployment) for a in verified.room_config.agents] == [("chef", "staging")]
    assert main(["token", "--api-key", "devkey", "--api-secret", secret, "--agent-deployment", "staging"]) == 2
    assert "no agent is named" in capsys.readouterr().err


def test_token_json_is_a_token_endpoint_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--api-key", "devkey", "--api-secret", "s" * 40, "--url", "wss://example.test", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["server_url"] == "wss://example.test"
    assert decode_claims(answer["participant_token"]).room.startswith("lkstate-")


def test_token_without_a_key_and_secret_explains_where_they_come_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LIVEKIT_API_KEY", raising=False)
    monkeypatch.delenv("LIVEKIT_API_SECRET", raising=False)
    assert main(["token", "--api-key", "", "--api-secret", ""]) == 2
    assert "needs an API key and an API secret" in capsys.readouterr().err


def test_lkstate_bench_runs_the_benchmark_and_prints_one_json_object() -> None:
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "lkstate", "bench", "--quick", "--no-server", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    assert isinstance(figures["reduce_p99_us"], (int, float))
    assert "targets" in figures
