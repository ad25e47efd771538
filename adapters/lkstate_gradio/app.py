"""The Gradio web demo: talk to a LiveKit agent from a browser tab.

::

    python examples/gradio_web/main.py --url ws://127.0.0.1:7880 --api-key devkey --api-secret secret
    # or: LIVEKIT_URL=… LIVEKIT_API_KEY=… LIVEKIT_API_SECRET=… python -m lkstate_gradio.app

Each browser tab is its own conversation: its own :class:`~lkstate.Session`,
room and identity (see :class:`~lkstate_gradio.BrowserSessions`). The page
shows the agent's state in words and colour (connecting, buffering early
speech, failed and why), the transcript with interim speech set apart from
final text and the delivery of typed messages, tool calls and usage as the
agent reports them, and problems; it has Connect/Disconnect, microphone and
camera toggles (a camera that cannot work says why under the agent's
state), and a chat box.

How the page stays current: when a tab loads, one streaming event starts for
it (an async generator). It iterates the session's snapshots — latest wins,
at most ``max_rate`` a second — and yields an update for each component whose
rendering changed (``gr.skip()`` for the rest), so an unchanged transcript is
never sent twice. The generator ends when the tab closes and the session is
released. Buttons and the text box send commands, which run on the sessions'
own loop thread.

The microphone and the speaker are the visitor's: the page captures the
browser's microphone and plays the agent's voice, over an audio channel of
its own to the tab's session (see :mod:`lkstate_gradio._voice`), with a
visualizer of both. ``--server-audio`` uses the microphone and speaker of the
machine running the server instead (a local demo, where that machine is the
user's). The camera is the server machine's; ``--camera pattern`` sends
generated colour bars instead (each tab its own), for machines without a
camera.
"""

from __future__ import annotations

import argparse
import html
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal, TypeAlias

import attrs
import gradio as gr
from gradio.themes import Base as ThemeBase
from gradio.themes import Soft

from lkstate import AudioInput, AudioOutput, ConnectionStatus, Session, SessionState, TokenSource
from lkstate.errors import LkstateError
from lkstate.media import PatternVideoInput, VideoInput
from lkstate.apps import (
    CONNECTION_HELP,
    add_camera_argument,
    add_connection_arguments,
    token_source_from_args,
)

from ._render import activity_html, camera_label, chat_messages, microphone_label, problems_html, status_html
from ._sessions import DEFAULT_WEB_MAX_RATE, BrowserSessions, SessionLike
from ._voice import BrowserVoice, VoiceLink, link_html, voice_panel_html

__all__ = [
    "CSS",
    "CameraChoice",
    "DEFAULT_AGENT_NAME",
    "DEFAULT_PORT",
    "GradioDemo",
    "MicrophoneChoice",
    "SpeakerChoice",
    "build_demo",
    "free_port",
    "main",
    "run",
    "theme",
]

logger = logging.getLogger(__name__)

DEFAULT_AGENT_NAME = "lkstate-demo"

MicrophoneChoice: TypeAlias = Literal["browser", "default"] | Callable[[], AudioInput] | None
"""``"browser"``: the visitor's microphone, captured by the page; ``"default"``: the
microphone of the machine running the server (a local demo only); a callable: a new
:class:`~lkstate.AudioInput` for each tab (an input is consumed once); ``None``: no microphone."""

SpeakerChoice: TypeAlias = Literal["browser", "default"] | Callable[[], AudioOutput] | None
"""``"browser"``: the agent's voice plays in the visitor's page; ``"default"``: on the
speaker of the machine running the server (a local demo only); a callable: a new
:class:`~lkstate.AudioOutput` for each tab; ``None``: the agent is not played."""

CameraChoice: TypeAlias = Literal["default"] | Callable[[], VideoInput] | None
"""``"default"``: the system camera; a callable: a new :class:`~lkstate.VideoInput`
for each tab (``PatternVideoInput`` for colour bars); ``None``: no camera."""
DEFAULT_PORT = 7860

CSS = """
.lk-status { border-left: 6px solid var(--lk-color); padding: 10px 14px; border-radius: 8px;
  background: color-mix(in srgb, var(--lk-color) 8%, transparent); }
.lk-status-head { display: flex; align-items: center; gap: 10px; }
.lk-dot { width: 14px; height: 14px; border-radius: 50%; background: var(--lk-color); flex: none;
  box-shadow: 0 0 0 4px color-mix(in srgb, var(--lk-color) 25%, transparent); }
.lk-title { font-size: 1.35em; font-weight: 600; color: var(--lk-color); }
.lk-detail { margin-top: 4px; }
.lk-reasons { margin: 6px 0 0 1.2em; color: var(--lk-color); }
.lk-early { margin-top: 4px; font-style: italic; }
.lk-facts { margin-top: 6px; font-size: 0.9em; opacity: 0.8; }
.lk-camera-error { margin-top: 6px; font-size: 0.9em; color: #b91c1c; }
.lk-interim { opacity: 0.65; }
.lk-meta { font-size: 0.8em; opacity: 0.7; }
.lk-failed { color: #dc2626; opacity: 1; }
.lk-panel { font-size: 0.92em; }
.lk-panel-title { font-weight: 600; margin: 6px 0 4px 0; }
.lk-panel ul { margin: 0; padding-left: 1.1em; }
.lk-panel li { margin-bottom: 4px; }
.lk-empty { opacity: 0.6; font-style: italic; }
.lk-badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 0.8em; color: white;
  background: var(--lk-color); }
.lk-tool-result { opacity: 0.8; }
.lk-expression { font-style: italic; margin-left: 6px; }
.lk-rpc-calls li { list-style: none; margin-left: -1.1em; padding-left: 8px; border-left: 3px solid var(--lk-color); }
.lk-rpc-calls code { font-size: 0.95em; }
.lk-took { font-size: 0.8em; opacity: 0.7; }
.lk-rpc-error { color: var(--lk-color); font-size: 0.9em; }
.lk-rpc-foot { font-size: 0.85em; opacity: 0.7; }
.lk-problems li { color: #b91c1c; }
#lk-controls button { min-width: 0; }
#lk-chat button[aria-label="Clear"] { display: none; }
/* Toasts bottom right, so that "press Connect" never covers the Connect button. */
.toast-wrap { top: auto !important; bottom: var(--size-4); }
"""
"""Styles of the page; pass to ``launch(css=...)`` (Gradio 6 takes them there, not on ``Blocks``)."""


def theme() -> ThemeBase:
    """A quiet theme with system fonts: the page loads nothing from outside this server."""
    return Soft(
        primary_hue="blue",
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )


# -- one frame of the page ------------------------------------------------------


def _warn(words: str) -> None:
    """A short toast. Gradio renders its text as HTML, so it is escaped first."""
    gr.Warning(html.escape(words), duration=6)


def _skip() -> dict[str, Any]:
    """``gr.skip()``: leave this output as it is."""
    return gr.skip()  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


@attrs.frozen
class _Frame:
    """What was last sent to a tab, per component, so unchanged parts are skipped."""

    status: str
    messages: object
    tools: str
    problems: str
    connected: bool
    disconnected: bool
    mic_label: str
    mic_unavailable: bool
    camera_label: str


def _frame(state: SessionState) -> _Frame:
    status = state.connection.status
    return _Frame(
        status=status_html(state),
        messages=state.messages,
        tools=activity_html(state),
        problems=problems_html(state),
        connected=status is ConnectionStatus.CONNECTED,
        disconnected=status is ConnectionStatus.DISCONNECTED,
        mic_label=microphone_label(state.local_media.microphone),
        mic_unavailable=state.local_media.microphone.error is not None,
        camera_label=camera_label(state.local_media.camera),
    )


def _updates(previous: _Frame | None, state: SessionState) -> tuple[_Frame, tuple[Any, ...]]:
    """The outputs of one streamed frame: a value for what changed, ``gr.skip()`` for the rest.

    Order: status, chatbot, tools, problems, connect, disconnect, send, microphone, camera.
    """
    frame = _frame(state)
    skip = _skip

    def changed(field: str) -> bool:
        return previous is None or getattr(previous, field) != getattr(frame, field)

    connection_changed = changed("connected") or changed("disconnected")
    updates = (
        frame.status if changed("status") else skip(),
        chat_messages(state.messages) if changed("messages") else skip(),
        frame.tools if changed("tools") else skip(),
        frame.problems if changed("problems") else skip(),
        gr.Button(interactive=frame.disconnected) if connection_changed else skip(),
        gr.Button(interactive=not frame.disconnected) if connection_changed else skip(),
        gr.Button(interactive=frame.connected) if connection_changed else skip(),
        gr.Button(value=frame.mic_label, interactive=not frame.mic_unavailable) if changed("mic_label") else skip(),
        gr.Button(value=frame.camera_label) if changed("camera_label") else skip(),
    )
    return frame, updates


# -- the app --------------------------------------------------------------------


@attrs.define
class GradioDemo:
    """The page (``blocks``) and the sessions behind it.

    ``launch()`` serves it (blocking unless ``block=False``); ``close()`` stops
    the server and ends every session. To serve it from your own FastAPI app,
    ``demo.mount(app, "/talk")`` (which calls ``gr.mount_gradio_app`` with the
    page's styles, script and audio channel) and call ``demo.sessions.close()``
    on shutdown.
    """

    blocks: gr.Blocks
    sessions: BrowserSessions[SessionLike]
    title: str = "lkstate · voice agent"
    voice: BrowserVoice = attrs.field(factory=BrowserVoice)
    """Every tab's audio channel; its routes are served beside the page."""

    def app_kwargs(self) -> dict[str, Any]:
        """What the Gradio app needs besides the page: the audio channel's routes."""
        return {"routes": self.voice.routes()}

    def head(self) -> str:
        """The page's ``<head>`` additions: the voice script and its styles."""
        return self.voice.head()

    def mount(self, app: Any, path: str) -> Any:
        """Serve the page (and its audio channel) at ``path`` of your FastAPI ``app``; returns ``app``."""
        return gr.mount_gradio_app(
            app, self.blocks, path, css=CSS, theme=theme(), head=self.head(), app_kwargs=self.app_kwargs(),
            ssr_mode=False, footer_links=["gradio", "settings"],
        )

    def launch(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        block: bool = True,
        quiet: bool = False,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> str:
        """Serve on ``http://host:port`` (``https`` with a certificate); returns that URL (when ``block=False``, at once).

        Browsers give a page the microphone only over https or on localhost:
        to serve remote visitors, pass ``ssl_certfile``/``ssl_keyfile`` or put
        an https reverse proxy (that forwards WebSocket upgrades) in front.
        """
        self.blocks.launch(
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            ssl_verify=False,
            server_name=host,
            server_port=port,
            prevent_thread_lock=not block,
            quiet=quiet,
            share=False,
            ssr_mode=False,
            show_error=True,
            css=CSS,
            theme=theme(),
            head=self.head(),
            app_kwargs=self.app_kwargs(),
            run_history=False,
            footer_links=["gradio", "settings"],
        )
        return f"{'https' if ssl_certfile else 'http'}://{host}:{port}/"

    def close(self) -> None:
        """Stop serving, then end every browser session's lkstate session."""
        try:
            self.blocks.close()
        finally:
            self.sessions.close()


def build_demo(
    token_source_factory: Callable[[], TokenSource] | None = None,
    agent_name: str | None = DEFAULT_AGENT_NAME,
    *,
    session_factory: Callable[[], SessionLike] | None = None,
    room_name: str | None = None,
    agent_connect_timeout: float | None = 20.0,
    max_rate: float | None = DEFAULT_WEB_MAX_RATE,
    auto_connect: bool = False,
    audio_input: MicrophoneChoice = "browser",
    audio_output: SpeakerChoice = "browser",
    video_input: CameraChoice = "default",
    title: str = "lkstate · voice agent",
    browser_audio_processing: bool = True,
) -> GradioDemo:
    """The web demo, ready to ``launch()``.

    Each browser tab gets a session of its own, made by one of two factories.
    ``token_source_factory()`` is called once per tab and must return a new
    token source each time (so tabs get their own room and identity); the
    session is then made here from ``agent_name`` (dispatched when a tab's
    join creates its room), ``room_name`` (every tab in one named room, as
    tests do to bring an agent into the same room; by default each tab gets
    a fresh room), ``agent_connect_timeout`` and ``audio_input`` (each tab's
    microphone, see :data:`MicrophoneChoice`: the microphone of the machine
    running the server; a missing device just shows as such), ``audio_output``
    (where the agent's voice plays, see :data:`SpeakerChoice`) and
    ``video_input`` (each tab's camera, see :data:`CameraChoice`; off until
    the tab's camera button turns it on). Or
    ``session_factory()`` makes each tab's session itself: a
    :class:`~lkstate.Session` made your way, or a :class:`~lkstate.recording.Replay`
    (which plays when the tab connects and refuses commands in a toast);
    the session options above are then not used.

    By default the microphone and speaker are the visitor's browser's
    (``"browser"``): the page captures its microphone with the browser's echo
    cancellation, noise suppression and gain control
    (``browser_audio_processing=False`` turns them off, for measurements) and
    plays the agent. Web visitors never get the server machine's devices
    unless ``"default"`` asks for them.

    ``max_rate`` caps the frames per second sent to each tab (``None``: no
    cap). ``auto_connect`` connects (or plays) as soon as a tab opens instead
    of waiting for the Connect button.
    """
    if (token_source_factory is None) == (session_factory is None):
        raise TypeError("build_demo() takes either a token_source_factory or a session_factory, not both or neither.")

    voice = BrowserVoice()
    links: dict[int, VoiceLink] = {}
    """The audio link of each session made here, by ``id(session)``, until its tab goes."""
    uses_browser = audio_input == "browser" or audio_output == "browser"

    def new_session() -> SessionLike:
        if session_factory is not None:
            return session_factory()
        assert token_source_factory is not None
        link = voice.new_link() if uses_browser else None
        microphone: AudioInput | Literal["default"] | None
        if audio_input == "browser":
            assert link is not None
            microphone = link.microphone
        else:
            microphone = audio_input() if callable(audio_input) else audio_input
        speaker: AudioOutput | Literal["default"] | None
        if audio_output == "browser":
            assert link is not None
            speaker = link.speaker
        else:
            speaker = audio_output() if callable(audio_output) else audio_output
        session = Session(
            token_source_factory(),
            agent_name=agent_name,
            room_name=room_name,
            agent_connect_timeout=agent_connect_timeout,
            audio_input=microphone,
            audio_output=speaker,
            video_input=video_input() if callable(video_input) else video_input,
        )
        if link is not None:
            links[id(session)] = link
        return session

    sessions = BrowserSessions[SessionLike](new_session, max_rate=max_rate)
    mic_source = "browser" if audio_input == "browser" else "none" if audio_input is None else "server"
    speaker_place = "browser" if audio_output == "browser" else "none" if audio_output is None else "server"

    def voice_link(request: gr.Request, session: SessionLike) -> VoiceLink | None:
        """The tab's audio link, bound to the tab (its problems go to its session's state)."""
        link = links.get(id(session))
        key = request.session_hash
        if link is None or key is None:
            return None
        if voice.get(key) is not link:
            report = getattr(session, "report_problem", None)

            def to_state(words: str) -> None:
                if report is not None:
                    sessions.loop_thread.call_soon(report, "browser audio", words)

            voice.bind(key, link, to_state)
        return link

    def link_update(link: VoiceLink | None, state: SessionState) -> str:
        return link_html(
            link.secret if link is not None else "",
            connection=state.connection.status.value,
            microphone_on=state.local_media.microphone.enabled,
            microphone_source=mic_source if link is not None else "server",
            speaker=speaker_place if link is not None else "server",
            processing=browser_audio_processing,
        )
    initial = SessionState()

    async def connect(session: SessionLike) -> None:
        if session.room is not None:
            return  # already started (a double click)
        try:
            await session.start()
        except LkstateError as error:
            logger.info("connect: %s", error)  # the state shows it

    async def stream(request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        link = voice_link(request, sessions.session(request))
        if auto_connect:
            sessions.submit(request, connect)
        previous: _Frame | None = None
        previous_link: str | None = None
        async for state in sessions.states(request):
            previous, updates = _updates(previous, state)
            linked = link_update(link, state)
            yield (*updates, linked if linked != previous_link else _skip())
            previous_link = linked

    async def on_connect(request: gr.Request) -> None:
        sessions.submit(request, connect)

    async def on_disconnect(request: gr.Request) -> None:
        await sessions.run(request, lambda s: s.end())

    async def on_send(text: str, request: gr.Request) -> Any:
        text = text.strip()
        if not text:
            return _skip()
        session = sessions.session(request)
        if not session.state.connection.is_connected:
            _warn("Not connected yet: press Connect, then send your message.")
            return _skip()
        try:
            await sessions.send_text(request, text)  # in the transcript now; delivered in the background
        except LkstateError as error:
            _warn(str(error))
            return _skip()  # keep the text: it was not sent
        return ""

    async def on_microphone(request: gr.Request) -> None:
        # Before Connect this is a choice the session acts on when it starts (off: start muted).
        enable = not sessions.session(request).state.local_media.microphone.enabled
        try:
            await sessions.run(request, lambda s: s.set_microphone_enabled(enable))
        except LkstateError as error:
            _warn(str(error))

    async def on_camera(request: gr.Request) -> None:
        # Before Connect this is a choice the session acts on when it starts.
        enable = not sessions.session(request).state.local_media.camera.enabled
        try:
            await sessions.run(request, lambda s: s.set_camera_enabled(enable))
        except LkstateError as error:
            _warn(str(error))

    async def on_dismiss(request: gr.Request) -> None:
        async def dismiss(session: SessionLike) -> None:
            session.dismiss_problems()

        try:
            await sessions.run(request, dismiss)
        except LkstateError as error:
            _warn(str(error))

    async def on_unload(request: gr.Request) -> None:
        session = sessions.get(request)
        try:
            await sessions.release(request)
        finally:
            link = links.pop(id(session), None) if session is not None else None
            if link is not None:
                await voice.forget(link)

    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f"## {title}")
        with gr.Row(equal_height=True):
            with gr.Column(scale=3):
                status = gr.HTML(status_html(initial), elem_id="lk-status")
            with gr.Column(scale=1, min_width=220, elem_id="lk-controls"):
                connect_button = gr.Button("Connect", variant="primary", elem_id="lk-connect")
                disconnect_button = gr.Button("Disconnect", interactive=False, elem_id="lk-disconnect")
                mic_button = gr.Button(microphone_label(initial.local_media.microphone), elem_id="lk-mic")
                camera_button = gr.Button(camera_label(initial.local_media.camera), elem_id="lk-camera")
        voice_panel = gr.HTML(voice_panel_html(mic_source, speaker_place), elem_id="lk-voice", padding=False)
        voice_state = gr.HTML(link_html(""), elem_id="lk-voice-link", padding=False)
        del voice_panel
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="lk-chat",
                    height=440,
                    buttons=["copy"],
                    feedback_options=None,
                    placeholder="The conversation appears here: what the agent says, and what you say or type.",
                )
                with gr.Row(equal_height=True):
                    text_box = gr.Textbox(
                        show_label=False,
                        placeholder="Type a message to the agent and press Enter…",
                        elem_id="lk-input",
                        scale=5,
                        container=False,
                    )
                    send_button = gr.Button("Send", variant="primary", interactive=False, elem_id="lk-send", scale=1, min_width=90)
            with gr.Column(scale=2, min_width=260):
                with gr.Group():
                    gr.Markdown("**Agent activity**", padding=True)
                    tools = gr.HTML(activity_html(initial), elem_id="lk-tools", padding=True)
                with gr.Group():
                    gr.Markdown("**Problems**", padding=True)
                    problems = gr.HTML(problems_html(initial), elem_id="lk-problems", padding=True)
                dismiss_button = gr.Button("Dismiss problems", size="sm", elem_id="lk-dismiss")

        outputs = [
            status, chatbot, tools, problems, connect_button, disconnect_button, send_button, mic_button, camera_button,
            voice_state,
        ]
        # Handlers only await the session's loop thread, so none needs a concurrency
        # limit; the page is the only client (no public API).
        quiet: dict[str, Any] = {"show_progress": "hidden", "concurrency_limit": None, "api_visibility": "private"}
        blocks.load(stream, inputs=None, outputs=outputs, **quiet)
        connect_button.click(on_connect, **quiet)
        disconnect_button.click(on_disconnect, **quiet)
        mic_button.click(on_microphone, **quiet)
        camera_button.click(on_camera, **quiet)
        dismiss_button.click(on_dismiss, **quiet)
        send_button.click(on_send, inputs=[text_box], outputs=[text_box], **quiet)
        text_box.submit(on_send, inputs=[text_box], outputs=[text_box], **quiet)
        blocks.unload(on_unload)

    return GradioDemo(blocks=blocks, sessions=sessions, title=title, voice=voice)


# -- command line -----------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lkstate-gradio",
        description="A web page to talk to a LiveKit agent (one conversation per browser tab).",
        epilog=CONNECTION_HELP + " A literal token is one identity in one room: with it, open a single tab.",
    )
    add_connection_arguments(
        parser,
        agent_name=DEFAULT_AGENT_NAME,
        participant=False,  # every tab joins as someone of its own
        max_rate=DEFAULT_WEB_MAX_RATE,
        max_rate_help="page updates per second, at most",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to serve on; 0 picks a free one (default %(default)s)")
    parser.add_argument("--auto-connect", action="store_true", help="connect as soon as a tab opens")
    parser.add_argument("--ssl-certfile", help="serve https with this certificate (browsers allow microphones only on https or localhost)")
    parser.add_argument("--ssl-keyfile", help="the certificate's private key")
    parser.add_argument("--no-microphone", action="store_true", help="no microphone: visitors type")
    parser.add_argument(
        "--server-audio",
        action="store_true",
        help="use the microphone and speaker of the machine running this server instead of each "
        "visitor's browser (a local demo only: remote visitors would neither speak nor hear)",
    )
    add_camera_argument(parser)
    return parser


def run(
    token_source_factory: Callable[[], TokenSource] | None = None,
    *,
    agent_name: str | None = DEFAULT_AGENT_NAME,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    **options: Any,
) -> None:
    """Serve the demo until interrupted (Ctrl-C), then end every session.

    ``options`` are :func:`build_demo`'s keyword arguments; pass
    ``session_factory=`` instead of a token source factory to serve sessions
    (or replays) made your way.
    """
    demo = build_demo(token_source_factory, agent_name, **options)
    port = port or free_port(host)
    try:
        url = demo.launch(host=host, port=port, block=False, quiet=True, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
        print(f"lkstate gradio demo on {url} (Ctrl-C to stop)", flush=True)  # once the page is served
        demo.blocks.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()


def _camera_choice(camera: str) -> CameraChoice:
    """``--camera`` as :data:`CameraChoice`: a pattern is made anew for each tab."""
    if camera == "pattern":
        return lambda: PatternVideoInput()
    return "default" if camera == "default" else None


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m lkstate_gradio.app [flags]`` — see ``--help``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own startup checks
    try:
        token_source_from_args(args)  # fail now, in words, rather than on the first Connect
    except LkstateError as error:
        raise SystemExit(f"lkstate-gradio: {error}") from None
    place: Literal["browser", "default"] = "default" if args.server_audio else "browser"
    microphone: MicrophoneChoice = None if args.no_microphone else place
    run(
        token_source_factory=lambda: token_source_from_args(args),
        agent_name=args.agent_name or None,
        room_name=args.room,
        agent_connect_timeout=args.agent_timeout,
        audio_input=microphone,
        audio_output=place,
        video_input=_camera_choice(args.camera),
        host=args.host,
        port=args.port,
        max_rate=args.max_rate,
        auto_connect=args.auto_connect,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )


if __name__ == "__main__":
    main()
