"""A local LiveKit server and the demo agent, for ``lkstate demo`` and the tests.

``lkstate demo`` has to work on a fresh machine with nothing running, so it
brings its own world: a ``livekit-server`` of the pinned version (built with
``go install`` the first time, when none is found), started from a generated
config on free loopback ports, and the offline demo agent
(``python -m lkstate.demo_agent``) registered with it as a worker. The wire
tests run against exactly the same server, started the same way
(``tests/harness/server.py`` is a thin layer over :class:`DevServer`).

Nothing here reaches beyond 127.0.0.1: HTTP and WebSocket bind to loopback,
no STUN lookups (``use_external_ip`` off, the node IP pinned to loopback,
only loopback ICE candidates, and clients handed a STUN server by address,
never a hostname to resolve). One wart of v1.13.5: the ICE/TCP listener binds
every interface; only 127.0.0.1 is ever advertised, and ``ice_tcp=False``
turns it off.

Processes started here run in their own session (so a Ctrl-C in the terminal
reaches only ``lkstate``, which then stops them in order) and, with
``die_with_parent``, are told by the kernel to stop if ``lkstate`` itself is
killed, so a demo leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from .._core.errors import DevServerError

__all__ = [
    "PINNED_VERSION",
    "SERVER_MODULE",
    "DevServer",
    "DemoWorker",
    "Progress",
    "find_livekit_server",
    "server_version",
    "install_livekit_server",
    "ensure_livekit_server",
    "install_dir",
    "parent_death_signal",
    "checkout_root",
    "free_port",
    "dev_environment",
]

logger = logging.getLogger(__name__)

PINNED_VERSION = "1.13.5"
"""The livekit-server release lkstate is tested against (behaviour differs between releases)."""
SERVER_MODULE = "github.com/livekit/livekit-server/cmd/server"
BINARY_NAME = "livekit-server"

Progress = Callable[[str], None]
"""Receives one line of progress, in words (``lkstate demo`` prints them on stderr)."""


def _quiet(message: str) -> None:
    del message


# ---------------------------------------------------------------------------
# Finding and installing the server binary


def checkout_root() -> Path | None:
    """The lkstate source checkout this module runs from, or ``None`` when installed normally."""
    root = Path(__file__).resolve().parents[2]  # <root>/lkstate/_tooling/devserver.py
    if (root / "pyproject.toml").is_file() and (root / "scripts" / "install-livekit-server").is_file():
        return root
    return None


def install_dir() -> Path:
    """Where an installed livekit-server goes: ``<checkout>/.tools/bin``, else ``~/.cache/lkstate/bin``."""
    root = checkout_root()
    if root is not None:
        return root / ".tools" / "bin"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lkstate" / "bin"


def server_version(binary: str | os.PathLike[str]) -> str | None:
    """What ``binary --version`` reports (``"1.13.5"``), or ``None`` if it does not run."""
    try:
        result = subprocess.run(
            [os.fspath(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+\.\d+\.\d+)", result.stdout + result.stderr)
    return match.group(1) if match else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_livekit_server(version: str | None = PINNED_VERSION) -> Path | None:
    """The livekit-server binary to use, or ``None``.

    ``$LIVEKIT_SERVER_BIN`` wins whatever its version. Otherwise the first of
    PATH, ``<checkout>/.tools/bin`` and ``~/.cache/lkstate/bin`` that reports
    ``version``; failing that, the first that exists at all (with a warning
    in the log). ``version=None`` takes the first that exists.
    """
    explicit = os.environ.get("LIVEKIT_SERVER_BIN")
    if explicit:
        path = Path(explicit)
        return path if _executable(path) else None
    candidates: list[Path] = []
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        candidates.append(Path(on_path))
    root = checkout_root()
    if root is not None:
        candidates.append(root / ".tools" / "bin" / BINARY_NAME)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    candidates.append(Path(cache) / "lkstate" / "bin" / BINARY_NAME)
    existing = [c for c in dict.fromkeys(candidates) if _executable(c)]
    if version is None or not existing:
        return existing[0] if existing else None
    for candidate in existing:
        if server_version(candidate) == version:
            return candidate
    logger.warning("no livekit-server %s found; using %s (%s)", version, existing[0], server_version(existing[0]))
    return existing[0]


def install_livekit_server(
    version: str = PINNED_VERSION,
    *,
    target_dir: Path | None = None,
    progress: Progress = _quiet,
    go: str | None = None,
) -> Path:
    """Build livekit-server ``version`` with ``go install`` into ``target_dir``; return the binary.

    Needs Go (the server asks for a recent toolchain; with ``GOTOOLCHAIN=auto``
    an older Go fetches it). The first build downloads modules and takes a few
    minutes; Go's caches make later ones quick.
    """
    go_binary = go or shutil.which("go")
    if go_binary is None:
        raise DevServerError(
            f"livekit-server {version} is not installed, and Go is not available to build it.",
            remedy="Install Go 1.26 or newer (https://go.dev/dl/) and run this again, or install "
            "livekit-server yourself and put it on PATH (or set LIVEKIT_SERVER_BIN).",
        )
    target_dir = target_dir or install_dir()
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DevServerError(
            f"Could not create {target_dir} to install livekit-server: {error.strerror or error}.",
            remedy="Set XDG_CACHE_HOME to a writable directory, or install livekit-server yourself.",
        ) from error
    target = target_dir / BINARY_NAME
    progress(f"building livekit-server {version} with `go install` (the first build takes a few minutes)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="livekit-server-build-") as gobin:
        env = {**os.environ, "GOBIN": gobin, "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -buildvcs=false").strip()}
        try:
            result = subprocess.run(
                [go_binary, "install", f"{SERVER_MODULE}@v{version}"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=2,  # Go's own progress goes to our stderr, next to ours
                stderr=2,
                check=False,
            )
        except OSError as error:
            raise DevServerError(
                f"Could not run {go_binary}: {error.strerror or error}.",
                remedy="Check your Go installation (`go version`).",
            ) from error
        built = Path(gobin) / "server"
        if result.returncode != 0 or not _executable(built):
            raise DevServerError(
                f"`go install {SERVER_MODULE}@v{version}` failed (exit status {result.returncode}).",
                remedy="Read Go's messages above; a network problem or an old Go are the usual causes. "
                "Alternatively install livekit-server yourself and put it on PATH.",
            )
        reported = server_version(built)
        if reported != version:
            raise DevServerError(
                f"The livekit-server that was built reports version {reported!r}, not {version}.",
                remedy="Remove Go's build cache entry (`go clean -cache`) and try again.",
            )
        staging = target.with_name(f"{BINARY_NAME}.tmp.{os.getpid()}")
        shutil.move(str(built), staging)
        os.replace(staging, target)  # atomic: a concurrent reader never sees half a file
    progress(f"installed livekit-server {version} at {target} in {time.monotonic() - started:.0f} s")
    return target


def ensure_livekit_server(version: str = PINNED_VERSION, *, progress: Progress = _quiet) -> Path:
    """A usable livekit-server binary: the one found, or one installed now."""
    found = find_livekit_server(version)
    if found is not None:
        return found
    progress(f"livekit-server {version} was not found on PATH or in {install_dir()}")
    return install_livekit_server(version, progress=progress)


# ---------------------------------------------------------------------------
# Processes


def free_port(kind: Literal["tcp", "udp"] = "tcp") -> int:
    """A port on 127.0.0.1 that nothing is bound to right now.

    The kernel picks it; another process could take it before the server
    binds it, in which case the start fails and the log names the port.
    """
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PORT_ATTEMPTS = 3
"""How many sets of free ports a start tries when one turns out to be taken."""

_PR_SET_PDEATHSIG = 1


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies (``None`` elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl

    def set_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return set_signal


def _stop_group(process: subprocess.Popen[bytes], *, drain: float, grace: float, second_term: bool) -> None:
    """SIGTERM the process's group, then (optionally) SIGTERM again after ``drain``, SIGKILL after ``grace``."""

    def signal_group(sig: int) -> None:
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    if process.poll() is None:
        signal_group(signal.SIGTERM)
        try:
            process.wait(timeout=drain)
        except subprocess.TimeoutExpired:
            if second_term:
                signal_group(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                signal_group(signal.SIGKILL)
                process.wait(timeout=5.0)
    # Anything the process left behind in its group (job subprocesses) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class DevServer:
    """One livekit-server process with a generated config on free loopback ports.

    >>> server = DevServer().start()
    >>> server.url            # 'ws://127.0.0.1:41234'
    >>> server.stop()

    ``redis_address`` ("host:port") is written into the config as-is, for
    multi-node setups; without it the server runs standalone.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        api_key: str = "lkstate-dev",
        api_secret: str | None = None,
        redis_address: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        log_level: str = "info",
        ice_tcp: bool = True,
        extra_config: Mapping[str, Any] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        found = Path(binary) if binary is not None else find_livekit_server()
        if found is None:
            raise DevServerError(
                "livekit-server was not found (looked at $LIVEKIT_SERVER_BIN, PATH, .tools/bin and ~/.cache/lkstate/bin).",
                remedy="Run scripts/install-livekit-server (or `lkstate demo`, which installs it).",
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
        self.extra_config: dict[str, Any] = dict(extra_config or {})
        self.die_with_parent = die_with_parent
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="livekit-server-"))
        self.port = 0
        self.rtc_tcp_port = 0
        self.rtc_udp_port = 0
        self.config_path = self.workdir / "livekit.yaml"
        self.log_path = self.workdir / "livekit-server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

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

    def env(self) -> dict[str, str]:
        """``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` for subprocesses."""
        return {"LIVEKIT_URL": self.url, "LIVEKIT_API_KEY": self.api_key, "LIVEKIT_API_SECRET": self.api_secret}

    # -- lifecycle ------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The config as a dict (written as JSON, which YAML parsers accept)."""
        rtc: dict[str, Any] = {
            "udp_port": self.rtc_udp_port,
            "node_ip": "127.0.0.1",
            "use_external_ip": False,
            "enable_loopback_candidate": True,
            # Never empty: with no STUN server configured, the server hands
            # clients Google's, and offline every client connection then starts
            # DNS lookups that hang for seconds, each on its own thread (about
            # eight per connection). The server's own RTC port, by address,
            # needs no lookup and no internet.
            "stun_servers": [f"127.0.0.1:{self.rtc_udp_port}"],
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

    def start(self, timeout: float = 20.0) -> DevServer:
        """Start the process and return once it answers HTTP on its port.

        Ports are picked on the first start and kept on later ones, so a
        stop/start pair looks like a server restart to connected clients.
        """
        if self.is_running():
            return self
        if self.port:
            return self._start_once(timeout)
        # Ports chosen here are free when chosen, but another process (or the
        # other node of a cluster, opening connections from ephemeral ports)
        # can take one before the server binds it. Then choose again.
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_port("tcp")
            self.rtc_tcp_port = free_port("tcp")
            self.rtc_udp_port = free_port("udp")
            try:
                return self._start_once(timeout)
            except DevServerError:
                if attempt == _PORT_ATTEMPTS or "address already in use" not in self.log_tail(5):
                    raise
                logger.info("a port chosen for livekit-server was taken before it could bind it; choosing again")
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> DevServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self._log_file = open(self.log_path, "ab")
        try:
            self._process = subprocess.Popen(
                [str(self.binary), "--config", str(self.config_path), "--bind", "127.0.0.1"],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl+C in the terminal must not race our SIGTERM
                preexec_fn=parent_death_signal() if self.die_with_parent else None,
            )
        except OSError as error:
            self._close_log()
            raise DevServerError(
                f"Could not run {self.binary}: {error.strerror or error}.",
                remedy="Reinstall it with scripts/install-livekit-server, or point LIVEKIT_SERVER_BIN at a working binary.",
            ) from error
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
                raise DevServerError(
                    f"livekit-server exited with status {self._process.returncode} while starting.\n"
                    f"--- {self.log_path} ---\n{self.log_tail()}",
                    remedy="The server's log above says why; a port taken by another program is the usual cause.",
                )
            try:
                with urllib.request.urlopen(self.http_url + "/", timeout=1.0) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.05)
        raise DevServerError(
            f"livekit-server did not answer on {self.http_url} within {timeout:.0f} s "
            f"(last error: {last_error}).\n--- {self.log_path} ---\n{self.log_tail()}",
            remedy="Check that nothing blocks loopback connections, and read the server's log above.",
        )

    def stop(self, grace: float = 5.0, *, drain: float = 0.3) -> None:
        """Stop the server; safe to call twice.

        The first SIGTERM asks for a graceful stop, which waits (polling every
        5 s) until every participant has left; the second SIGTERM forces it. So:
        SIGTERM, ``drain`` seconds to finish on its own, SIGTERM again, and
        SIGKILL if it is still alive ``grace`` seconds later.
        """
        process, self._process = self._process, None
        if process is not None:
            _stop_group(process, drain=drain, grace=grace, second_term=True)
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

    def __enter__(self) -> DevServer:
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


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _deep_merge(current, value)  # pyright: ignore[reportUnknownArgumentType]
        else:
            base[key] = value


# ---------------------------------------------------------------------------
# The demo agent worker


_REGISTERED = "lkstate-demo: registered worker "


class DemoWorker:
    """``python -m lkstate.demo_agent`` registered with a server as a worker for ``agent_name``.

    The worker is dispatched into every room whose creating token names
    ``agent_name``. It needs the ``agent`` extra (``livekit-agents``).
    """

    def __init__(
        self,
        server: DevServer,
        *,
        agent_name: str = "lkstate-demo",
        greeting: str | None = None,
        log_path: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.server = server
        self.agent_name = agent_name
        self.greeting = greeting
        self.log_path = log_path or server.workdir / f"worker-{agent_name}.log"
        self.extra_env = dict(extra_env or {})
        self.die_with_parent = die_with_parent
        self.worker_id: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> DemoWorker:
        """Start the worker and return once it has registered with the server."""
        if self.is_running():
            return self
        _require_agent_extra()
        env = {**os.environ, **self.server.env(), "PYTHONUNBUFFERED": "1", **self.extra_env}
        root = checkout_root()
        if root is not None:  # run this checkout's code, whatever is installed
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "lkstate.demo_agent", "--agent-name", self.agent_name]
        if self.greeting is not None:
            command += ["--greeting", self.greeting]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root or self.server.workdir,
                start_new_session=True,
                preexec_fn=parent_death_signal() if self.die_with_parent else None,
            )
        try:
            self._wait_registered(timeout)
        except BaseException:
            self.stop(grace=2.0)
            raise
        return self

    def _wait_registered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(_REGISTERED):
                    self.worker_id = line[len(_REGISTERED) :].strip()
                    return
            if process.poll() is not None:
                raise DevServerError(
                    f"The demo agent exited with status {process.returncode} before registering.\n"
                    f"--- {self.log_path} ---\n{self.log_tail()}",
                    remedy="Its log above says why.",
                )
            time.sleep(0.05)
        raise DevServerError(
            f"The demo agent did not register with the server within {timeout:.0f} s.\n"
            f"--- {self.log_path} ---\n{self.log_tail()}",
            remedy="Its log above says why; a very slow first import of livekit-agents can also take this long.",
        )

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM (the worker closes its jobs), SIGKILL after ``grace`` seconds. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            _stop_group(process, drain=grace, grace=2.0, second_term=False)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> DemoWorker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _require_agent_extra() -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec("livekit.agents") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise DevServerError(
            "The demo agent needs livekit-agents, which is not installed.",
            remedy='Install it with: pip install "lkstate[agent]"',
        )


@contextlib.contextmanager
def dev_environment(
    *,
    agent_name: str = "lkstate-demo",
    greeting: str | None = None,
    progress: Progress = _quiet,
    die_with_parent: bool = True,
) -> Generator[tuple[DevServer, DemoWorker]]:
    """A running local server with the demo agent registered; both stopped on exit, in order.

    Installs livekit-server first when none is found. Progress is reported
    line by line through ``progress``.
    """
    _require_agent_extra()
    binary = ensure_livekit_server(progress=progress)
    server = DevServer(binary, die_with_parent=die_with_parent)
    worker: DemoWorker | None = None
    try:
        progress(f"starting livekit-server {server_version(binary) or ''} ({binary})".replace("  ", " "))
        began = time.monotonic()
        server.start()
        progress(f"livekit-server is up on {server.url} ({time.monotonic() - began:.1f} s)")
        progress(f"starting the demo agent {agent_name!r} (python -m lkstate.demo_agent)")
        began = time.monotonic()
        worker = DemoWorker(server, agent_name=agent_name, greeting=greeting, die_with_parent=die_with_parent)
        worker.start()
        progress(f"the demo agent is registered ({time.monotonic() - began:.1f} s)")
        yield server, worker
    finally:
        with contextlib.suppress(Exception):  # the terminal may be gone (SIGHUP): stop anyway
            progress("stopping the demo agent and livekit-server")
        try:
            if worker is not None:
                worker.stop()
        finally:
            server.cleanup()
