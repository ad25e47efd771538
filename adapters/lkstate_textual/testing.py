"""Looking at a running Textual app the way a person would: its text and its picture.

Tests of a TUI should assert on what is on the screen, not on widget
internals. :func:`screen_text` gives the screen as plain text, line by line;
:func:`save_screenshot` writes the SVG Textual renders and, when
``rsvg-convert`` (Debian ``librsvg2-bin``) is installed, a PNG beside it that
an image viewer opens.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.app import App

__all__ = ["save_screenshot", "screen_text", "svg_to_png"]

logger = logging.getLogger(__name__)


def screen_text(app: App[Any]) -> str:
    """The current screen as plain text (what a person reads), one line per row."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    # The same render export_screenshot() makes, kept as text instead of SVG.
    update = app.screen._compositor.render_update(  # pyright: ignore[reportPrivateUsage]
        full=True, screen_stack=app._background_screens  # pyright: ignore[reportPrivateUsage]
    )
    console.print(update)
    return console.export_text(styles=False)


def svg_to_png(svg: Path, png: Path | None = None, *, zoom: float = 1.0) -> Path | None:
    """Convert ``svg`` to PNG with ``rsvg-convert``; ``None`` when it is not installed."""
    converter = shutil.which("rsvg-convert")
    if converter is None:
        logger.info("rsvg-convert is not installed (Debian: librsvg2-bin); keeping %s only", svg)
        return None
    target = png or svg.with_suffix(".png")
    # Rich writes runs of spaces as no-break spaces; librsvg collapses them
    # unless the document asks to preserve white space, which shifts columns.
    text = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    subprocess.run(
        [converter, "--zoom", str(zoom), "--background-color", "#000000", "-o", str(target)],
        input=text.encode("utf-8"),
        check=True,
        timeout=60,
    )
    return target


def save_screenshot(app: App[Any], name: str, directory: Path | str) -> tuple[Path, Path | None]:
    """Save the current screen as ``<name>.svg`` (and ``<name>.png`` when possible)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    svg = Path(app.save_screenshot(f"{name}.svg", str(folder)))
    return svg, svg_to_png(svg)
