"""Headless Chromium and the Gradio demo, for the tests that use the page as a person does.

Shared by ``tests/ui/test_gradio_browser.py`` and ``tests/ui/test_web_voice.py``:

- :func:`launching_chromium`: Debian's Chromium through Playwright's Python package
  (``executable_path``: no browser is ever downloaded; each launch gets a fresh
  temporary profile), optionally with a fake microphone that plays a WAV once;
- :func:`serve_demo`: ``lkstate_gradio``'s demo served in this process (Gradio's
  own uvicorn thread) on a free loopback port, against the real livekit-server,
  closed on exit;
- small page helpers: :func:`open_tab`, :func:`status`, :func:`eventually`,
  :func:`screenshot_path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from lkstate import DevelopmentTokenSource, TokenSource
from lkstate.tokens import Credentials, TokenRequest
from lkstate._tooling.bench_voice import _find_chromium
from tests.harness.server import LiveKitServer

from lkstate_gradio.app import GradioDemo, build_demo, free_port

try:
    from playwright.async_api import async_playwright
except ImportError:  # the tests that need it fail, in words
    async_playwright = None  # type: ignore[assignment]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage")
"""What every launch gets: no sandbox (containers), no GPU, no background traffic, no /dev/shm limits."""
FAKE_MICROPHONE_ARGS = ("--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required")
"""A fake microphone (playing a WAV, or a beep) and audio that plays without a click."""


find_chromium = _find_chromium
"""Where Chromium is: ``$LKSTATE_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on PATH (as the benchmark looks)."""


def chromium_missing() -> str | None:
    """Why Chromium cannot be driven here, in words, or ``None``."""
    if async_playwright is None:
        return "the playwright Python package is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return "chromium not found (apt-get install chromium, or set LKSTATE_CHROMIUM)"
    return None


def chromium_args(*, microphone: bool = False, wav: Path | None = None, grant: bool = True,
                  extra: tuple[str, ...] = ()) -> list[str]:
    """A launch's arguments: with ``microphone`` (or a ``wav`` for it to play once), a fake one, granted if ``grant``."""
    args: list[str] = [*CHROMIUM_ARGS]
    if microphone or wav is not None:
        args.extend(FAKE_MICROPHONE_ARGS)
        if grant:
            args.append("--use-fake-ui-for-media-stream")
        if wav is not None:
            args.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
    return [*args, *extra]


Launch = Callable[..., Awaitable[Any]]


@contextlib.asynccontextmanager
async def launching_chromium() -> AsyncIterator[Launch]:
    """``launch(**chromium_args_options)`` -> a headless Chromium browser; all of them closed on exit.

    Fails the test, in words, without Chromium or Playwright (skips instead with ``LKSTATE_ALLOW_SKIP=1``).
    """
    executable = find_chromium()
    missing = chromium_missing()
    if missing is not None or executable is None or async_playwright is None:
        message = missing or "chromium not found"
        if os.environ.get("LKSTATE_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    async with async_playwright() as playwright:
        launched: list[Any] = []

        async def launch(**options: Any) -> Any:
            browser = await playwright.chromium.launch(executable_path=executable, headless=True,
                                                       args=chromium_args(**options))
            launched.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in launched:
                await browser.close()


ServeDemo = Callable[..., Awaitable[tuple[GradioDemo, str]]]


@attrs.frozen
class InRoom:
    """A token source that always asks for one room."""

    inner: DevelopmentTokenSource
    room: str

    async def fetch(self, request: TokenRequest) -> Credentials:
        return await self.inner.fetch(attrs.evolve(request, room_name=self.room))

    def invalidate(self) -> None:
        self.inner.invalidate()


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.asynccontextmanager
async def serve_demo(livekit_server: LiveKitServer) -> AsyncIterator[ServeDemo]:
    """``await serve(rooms=None, **build_demo_options)`` -> (demo, url), each demo served until the block ends.

    ``rooms``: the first tab joins the first room, the next the next… (default: one fresh room each).
    """
    # Gradio notices a closed tab when its heartbeat stream breaks; the default
    # heartbeat is 15 s, which would make the unload tests slow.
    with _environment(GRADIO_HEARTBEAT_INTERVAL="0.5", GRADIO_ANALYTICS_ENABLED="False"):
        served: list[GradioDemo] = []

        def tokens() -> DevelopmentTokenSource:
            return DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)

        async def serve(*, rooms: list[str] | None = None, **options: Any) -> tuple[GradioDemo, str]:
            queue = list(rooms or [])

            def next_tokens() -> TokenSource:
                return InRoom(tokens(), queue.pop(0)) if queue else tokens()

            demo = build_demo(next_tokens, "lkstate-demo", **options)
            port = free_port()
            served.append(demo)
            url = await asyncio.to_thread(lambda: demo.launch(port=port, block=False, quiet=True))
            return demo, url

        try:
            yield serve
        finally:
            for demo in served:
                await asyncio.to_thread(demo.close)


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name


async def open_tab(context: Any, url: str) -> Any:
    """A new page at ``url``, once the demo's status header is there."""
    page = await context.new_page()
    await page.goto(url)
    await page.locator("#lk-status .lk-title").wait_for()
    return page


def status(page: Any) -> Any:
    return page.locator("#lk-status .lk-status")


async def eventually(check: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)
