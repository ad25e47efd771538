"""How `lkstate demo` finds, installs and starts livekit-server, and what it says when it cannot.

The real server is exercised by every wire test (the harness runs it through
:class:`lkstate._tooling.devserver.DevServer`). Here the edges are pinned down with
small stand-in programs: binaries that report a version, a ``go`` that
"builds" one, a server that dies at start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lkstate._tooling.devserver import (
    PINNED_VERSION,
    DevServer,
    find_livekit_server,
    install_livekit_server,
    server_version,
)
from lkstate._core.errors import DevServerError, LkstateError


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_server(directory: Path, version: str) -> Path:
    return script(directory / "livekit-server", f'echo "livekit-server version {version}"')


def test_the_version_a_binary_reports_is_read(tmp_path: Path) -> None:
    assert server_version(fake_server(tmp_path, "1.2.3")) == "1.2.3"
    assert server_version(tmp_path / "missing") is None


def test_livekit_server_bin_wins_whatever_its_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = fake_server(tmp_path / "explicit", "0.0.1")
    monkeypatch.setenv("LIVEKIT_SERVER_BIN", str(chosen))
    assert find_livekit_server() == chosen


def test_the_pinned_version_is_preferred_over_another_one_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVEKIT_SERVER_BIN", raising=False)
    fake_server(tmp_path / "bin", "1.0.0")
    fake_server(tmp_path / "cache" / "lkstate" / "bin", PINNED_VERSION)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    found = find_livekit_server()
    assert found is not None and found != tmp_path / "bin" / "livekit-server"
    assert server_version(found) == PINNED_VERSION


def test_installing_without_go_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no go here
    with pytest.raises(DevServerError) as caught:
        install_livekit_server(target_dir=tmp_path / "bin")
    assert "Go is not available" in caught.value.message
    assert "https://go.dev/dl/" in caught.value.remedy and isinstance(caught.value, LkstateError)


def test_installing_builds_with_go_install_at_the_pinned_tag_into_the_target(tmp_path: Path) -> None:
    log = tmp_path / "go-args"
    go = script(
        tmp_path / "go",
        f'echo "$@" > {log}\n'
        f'printf \'#!/bin/sh\\necho "livekit-server version {PINNED_VERSION}"\\n\' > "$GOBIN/server"\n'
        'chmod +x "$GOBIN/server"',
    )
    said: list[str] = []
    installed = install_livekit_server(target_dir=tmp_path / "bin", progress=said.append, go=str(go))
    assert installed == tmp_path / "bin" / "livekit-server"
    assert server_version(installed) == PINNED_VERSION
    assert log.read_text().split() == ["install", f"github.com/livekit/livekit-server/cmd/server@v{PINNED_VERSION}"]
    assert said[0].startswith("building livekit-server") and said[-1].startswith("installed livekit-server")


def test_a_build_that_fails_or_reports_another_version_is_refused(tmp_path: Path) -> None:
    failing = script(tmp_path / "go-fails", "echo 'go: network unreachable' >&2; exit 1")
    with pytest.raises(DevServerError, match="failed"):
        install_livekit_server(target_dir=tmp_path / "bin", go=str(failing))
    wrong = script(tmp_path / "go-wrong",
                   'printf \'#!/bin/sh\\necho "livekit-server version 9.9.9"\\n\' > "$GOBIN/server"; chmod +x "$GOBIN/server"')
    with pytest.raises(DevServerError, match="9.9.9"):
        install_livekit_server(target_dir=tmp_path / "bin", go=str(wrong))
    assert not (tmp_path / "bin" / "livekit-server").exists()


def test_a_server_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    dying = script(tmp_path / "livekit-server", "echo 'could not bind: address already in use'; exit 3")
    server = DevServer(dying, workdir=tmp_path / "work")
    with pytest.raises(DevServerError) as caught:
        server.start(timeout=10)
    assert "exited with status 3" in caught.value.message
    assert "address already in use" in caught.value.message and caught.value.remedy
    assert not server.is_running()


def test_the_generated_config_binds_loopback_only_on_free_ports(tmp_path: Path) -> None:
    server = DevServer(fake_server(tmp_path, PINNED_VERSION), workdir=tmp_path / "work")
    config = server.config()
    assert config["bind_addresses"] == ["127.0.0.1"]
    assert config["rtc"]["node_ip"] == "127.0.0.1" and config["rtc"]["use_external_ip"] is False
    assert config["keys"] == {server.api_key: server.api_secret} and len(server.api_secret) >= 32
