"""A real livekit-server on loopback, one per test session.

The wire tests talk to the same server binary users deploy, pinned by
``scripts/install-livekit-server``. Each instance gets its own config file,
fresh free ports and its own log file, so several servers (a cluster later,
or a second session) can run side by side without colliding with a developer's
``livekit-server --dev`` on 7880.

Nothing here reaches beyond 127.0.0.1: no STUN lookups (``use_external_ip``
off, the node IP pinned to loopback, only loopback ICE candidates), HTTP and
WebSocket bound to 127.0.0.1. One wart of v1.13.5: the ICE/TCP listener binds
every interface (``net.ListenTCP`` with no address in mediatransportutil);
only 127.0.0.1 is ever advertised, and ``ice_tcp=False`` turns it off.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from livekit import api

__all__ = ["LiveKitServer", "LiveKitServerError", "find_livekit_server", "free_port"]

REPO_ROOT = Path(__file__).resolve().parents[2]
PINNED_VERSION = "1.13.5"


class LiveKitServerError(RuntimeError):
    """The server binary is missing, would not start, or stopped answering."""


def find_livekit_server() -> Path | None:
    """The livekit-server binary: ``$LIVEKIT_SERVER_BIN``, then PATH, then ``.tools/bin``."""
    explicit = os.environ.get("LIVEKIT_SERVER_BIN")
    if explicit:
        path = Path(explicit)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    on_path = shutil.which("livekit-server")
    if on_path:
        return Path(on_path)
    local = REPO_ROOT / ".tools" / "bin" / "livekit-server"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    return None


def free_port(kind: Literal["tcp", "udp"] = "tcp") -> int:
    """A port on 127.0.0.1 that nothing is bound to right now.

    The kernel picks it; there is a short window before the server binds it in
    which another process could take it. Good enough for tests, and the start
    failure then names the port in the log.
    """
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveKitServer:
    """One livekit-server process with a generated config on free loopback ports.

    >>> server = LiveKitServer().start()
    >>> server.url            # 'ws://127.0.0.1:41234'
    >>> server.stop()

    ``redis_address`` ("host:port") is written into the config as-is, for
    multi-node tests; without it the server runs standalone.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        api_key: str = "lkstate-test-key",
        api_secret: str | None = None,
        redis_address: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        log_level: str = "info",
        ice_tcp: bool = True,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        found = Path(binary) if binary is not None else find_livekit_server()
        if found is None:
            raise LiveKitServerError(
                "livekit-server was not found on PATH or in .tools/bin. "
                "Run scripts/install-livekit-server (or scripts/setup) to build it."
            )
        self.binary = found
        self.api_key = api_key
        # 32+ characters: shorter HMAC keys make PyJWT warn on every token.
        self.api_secret = api_secret or secrets.token_urlsafe(36)
        if len(self.api_secret) < 32:
            raise ValueError("api_secret must be at least 32 characters long")
        self.redis_address = redis_address
        self.log_level = log_level
        self.ice_tcp = ice_tcp
        self.extra_config = dict(extra_config or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(
            tempfile.mkdtemp(prefix="livekit-server-")
        )
        self.port = 0
        self.rtc_tcp_port = 0
        self.rtc_udp_port = 0
        self.config_path = self.workdir / "livekit.yaml"
        self.log_path = self.workdir / "livekit-server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # -- addresses ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """WebSocket URL for ``rtc.Room.connect`` and agent workers."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """HTTP URL for the server APIs (``livekit.api.LiveKitAPI``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The config as a dict (written as JSON, which YAML parsers accept)."""
        rtc: dict[str, Any] = {
            "udp_port": self.rtc_udp_port,
            "node_ip": "127.0.0.1",
            "use_external_ip": False,
            "enable_loopback_candidate": True,
            "stun_servers": [],
            "ips": {"includes": ["127.0.0.1/32"]},
        }
        if self.ice_tcp:
            rtc["tcp_port"] = self.rtc_tcp_port
        config: dict[str, Any] = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": rtc,
            "keys": {self.api_key: self.api_secret},
            "logging": {"level": self.log_level, "json": False},
            "turn": {"enabled": False},
        }
        if self.redis_address:
            config["redis"] = {"address": self.redis_address}
        _deep_merge(config, self.extra_config)
        return config

    def start(self, timeout: float = 20.0) -> LiveKitServer:
        """Start the process and return once it answers HTTP on its port.

        Ports are picked on the first start and kept on later ones, so a
        stop/start pair looks like a server restart to connected clients.
        """
        if self.is_running():
            return self
        if not self.port:  # a restart keeps its ports, so clients can come back
            self.port = free_port("tcp")
            self.rtc_tcp_port = free_port("tcp")
            self.rtc_udp_port = free_port("udp")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self._log_file = open(self.log_path, "ab")
        self._process = subprocess.Popen(
            [str(self.binary), "--config", str(self.config_path), "--bind", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # a Ctrl+C in the terminal must not race our SIGTERM
        )
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise LiveKitServerError(
                    f"livekit-server exited with status {self._process.returncode} while starting.\n"
                    f"--- {self.log_path} ---\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.http_url + "/", timeout=1.0) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.05)
        raise LiveKitServerError(
            f"livekit-server did not answer on {self.http_url} within {timeout:.0f} s "
            f"(last error: {last_error}).\n--- {self.log_path} ---\n{self.log_tail()}"
        )

    def stop(self, grace: float = 5.0, *, drain: float = 0.3) -> None:
        """Stop the server; safe to call twice.

        The first SIGTERM asks for a graceful stop, which waits (polling every
        5 s) until every participant has left; the second SIGTERM forces it. So:
        SIGTERM, ``drain`` seconds to finish on its own, SIGTERM again, and
        SIGKILL if it is still alive ``grace`` seconds later.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=drain)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5.0)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the server at once, as a crash would (for failure tests)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5.0)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """Stop, and delete the working directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LiveKitServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- diagnostics ----------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server log (empty when none yet)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, max_lines: int = 80, max_line_chars: int | None = None) -> str:
        """Log lines written after byte ``offset`` (the last ``max_lines`` of them).

        ``max_line_chars`` shortens long lines (the server logs whole SDPs).
        """
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()[-max_lines:]
        if max_line_chars is not None:
            lines = [
                line if len(line) <= max_line_chars else f"{line[:max_line_chars]}... [{len(line)} chars]"
                for line in lines
            ]
        return "\n".join(lines)

    # -- credentials ----------------------------------------------------------------

    def token(
        self,
        room: str,
        identity: str,
        *,
        kind: Literal["standard", "agent"] = "standard",
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
        room_config: api.RoomConfiguration | None = None,
        grants: api.VideoGrants | None = None,
        ttl: datetime.timedelta = datetime.timedelta(hours=1),
    ) -> str:
        """A join token for ``room``.

        ``kind="agent"`` mints what the agent framework itself uses: participant
        kind AGENT and ``VideoGrants(agent=True)``. Only then does the server let
        the holder publish transcriptions on behalf of another identity.
        """
        video = grants or api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            can_update_own_metadata=True,
            agent=True if kind == "agent" else None,
        )
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_kind(kind)
            .with_grants(video)
            .with_ttl(ttl)
        )
        if name is not None:
            token = token.with_name(name)
        if metadata is not None:
            token = token.with_metadata(metadata)
        if attributes:
            token = token.with_attributes(dict(attributes))
        if room_config is not None:
            token = token.with_room_config(room_config)
        return token.to_jwt()

    def api(self) -> api.LiveKitAPI:
        """A server API client; the caller must ``await client.aclose()``."""
        return api.LiveKitAPI(self.http_url, self.api_key, self.api_secret)

    def env(self) -> dict[str, str]:
        """``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` for subprocesses."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)  # type: ignore[arg-type]
        else:
            base[key] = value
