// The page's voice: the visitor's microphone to the tab's session, the agent's
// voice from it, and a visualizer of both. See lkstate_gradio/_voice.py for the
// channel's wire format and limits.
//
// The server renders a hidden element (#lk-voice-link) with this tab's secret
// and what the session wants: data-connection (the session's connection),
// data-mic ("on"/"off": the microphone toggle), data-mic-source ("browser",
// or "server"/"none" when the browser's microphone is not used) and
// data-speaker. This script follows it: when the session connects it opens
// the audio channel and the microphone, when it disconnects it closes both.
// Pressing Connect also starts them at once, inside the click, which is what
// browsers need to allow sound, and so that speech from that moment on is
// captured (the server's pre-connect buffer keeps it for the agent).
(function () {
  "use strict";
  if (window.lkVoice) return;

  const base = (function () {
    let p = location.pathname;
    if (!p.endsWith("/")) p = p.slice(0, p.lastIndexOf("/") + 1);
    return p;
  })();
  const ACTIVE = new Set(["connecting", "connected", "reconnecting"]);

  const WORDS = {
    idle: "Press Connect to talk: your browser will ask to use your microphone.",
    starting: "Starting your microphone…",
    live: "Your microphone is on: speak to the agent.",
    muted: "Your microphone is off: press “Turn microphone on” to speak.",
    listenOnly: "You hear the agent here; type to talk to it.",
    insecure:
      "Voice cannot work here because this page is not served over https (browsers allow the microphone and " +
      "the page's audio only on https:// pages and on localhost). Open it with https, or as " +
      "http://localhost on this machine. You can still type.",
    denied:
      "The browser was not allowed to use your microphone. Allow it with the microphone icon in the address " +
      "bar (or the site settings), then press Disconnect and Connect again. You can still type.",
    noDevice:
      "No microphone was found. Plug one in or choose one in your system's sound settings, then press " +
      "Disconnect and Connect again. You can still type.",
    busy:
      "Your microphone could not be started (another program may be using it). Close that program, then " +
      "press Disconnect and Connect again. You can still type.",
    unsupported:
      "This browser cannot run the page's audio (no AudioWorklet). Use a current Chrome, Edge, Firefox or " +
      "Safari. You can still type.",
    dropped:
      "The audio channel to the server dropped: the agent can neither hear you nor be heard. Press " +
      "Disconnect and Connect again, or reload the page. You can still type.",
    refused: "The server refused this page's audio channel (this tab's key is no longer valid). Reload the page to talk again.",
    suspended: "Click anywhere on the page to turn on the sound.",
  };

  const voice = {
    ctx: null,
    loaded: null,
    player: null,
    capture: null,
    stream: null,
    source: null,
    agentAnalyser: null,
    micAnalyser: null,
    channel: null,
    open: false,
    ready: false,
    running: false,
    key: null,
    micWanted: true,
    problem: null,
    status: "idle",
    sent: 0,
    received: 0,
    bars: [],
    micLevel: 0,
    agentLevel: 0,
    waiters: [],
    heard: [],
    timing: {},
  };

  function link() {
    return document.querySelector("#lk-voice-link .lk-voice-link");
  }

  function say(status, words) {
    voice.status = status;
    const el = document.querySelector("#lk-voice .lk-voice-words");
    if (el) {
      el.textContent = words || WORDS[status] || "";
      el.dataset.voice = status;
      el.classList.toggle("lk-voice-problem", !!voice.problem);
    }
  }

  function fail(kind) {
    voice.problem = kind;
    say(kind);
  }

  function note(state, detail) {
    // The server puts microphone trouble in the session's problems too; held until the channel is ready.
    const text = JSON.stringify({ type: "mic", state: state, detail: String(detail || "").slice(0, 200) });
    if (voice.channel && voice.open) voice.channel.postMessage({ type: "note", text: text });
  }

  // -- audio context ----------------------------------------------------------------

  function context() {
    if (!voice.ctx) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (!Context || !("audioWorklet" in Context.prototype)) return null;
      voice.ctx = new Context({ sampleRate: 48000, latencyHint: "interactive" });
      voice.loaded = voice.ctx.audioWorklet.addModule(base + "lkstate/static/voice-worklet.js");
    }
    return voice.ctx;
  }

  function resumeOnGesture() {
    const resume = () => {
      if (voice.ctx) voice.ctx.resume().then(() => {
        if (voice.status === "suspended") voice.stream ? applyMicrophone() : say(voice.running ? "listenOnly" : "idle");
      });
      document.removeEventListener("pointerdown", resume, true);
      document.removeEventListener("keydown", resume, true);
    };
    document.addEventListener("pointerdown", resume, true);
    document.addEventListener("keydown", resume, true);
  }

  // -- start and stop ----------------------------------------------------------------

  async function start() {
    if (voice.running) return;
    const el = link();
    if (!el || !el.dataset.key) return;
    voice.running = true;
    voice.problem = null;
    voice.key = el.dataset.key;
    if (!window.isSecureContext) {
      cannotRun("insecure", el);
      return;
    }
    const ctx = context();
    if (!ctx) {
      cannotRun("unsupported", el);
      return;
    }
    if (ctx.state !== "running") {
      ctx.resume();
      if (ctx.state !== "running") {
        say("suspended");
        resumeOnGesture();
      }
    }
    try {
      await voice.loaded;
    } catch (error) {
      cannotRun("unsupported", el);
      return;
    }
    if (!voice.running) return;
    if (el.dataset.speaker === "browser") startPlayer(ctx);
    let capturePort = null;
    if (el.dataset.micSource === "browser") {
      // The capture node exists from the start, so its frames go to the channel without the main thread.
      startCapture(ctx);
      const pipe = new MessageChannel();
      voice.capture.port.postMessage({ port: pipe.port1 }, [pipe.port1]);
      capturePort = pipe.port2;
    }
    openChannel(true, capturePort);
    if (el.dataset.micSource === "browser") {
      await startMicrophone(ctx, el);
    } else if (!voice.problem) {
      say("listenOnly");
    }
  }

  function cannotRun(kind, el) {
    // No audio at all on this page. Say why here, and tell the server on a channel without audio,
    // so the session's microphone says so too (no "Mic on" over a microphone that sends nothing).
    fail(kind);
    if (el.dataset.micSource === "browser") {
      openChannel(false);
      note(kind);
    } else {
      voice.running = false;
    }
  }

  function startCapture(ctx) {
    voice.capture = new AudioWorkletNode(ctx, "lk-capture", { numberOfOutputs: 1, outputChannelCount: [1] });
    voice.capture.port.onmessage = (event) => {
      if (event.data && event.data.first && voice.timing.firstFrameAt === undefined) {
        voice.timing.firstFrameAt = performance.now();
      }
    };
    // The capture node runs only when pulled: to the speakers, silenced.
    const mute = ctx.createGain();
    mute.gain.value = 0;
    voice.capture.connect(mute);
    mute.connect(ctx.destination);
    voice.mute = mute;
  }

  function startPlayer(ctx) {
    if (voice.player) return;
    voice.player = new AudioWorkletNode(ctx, "lk-player", { numberOfInputs: 0, outputChannelCount: [1] });
    voice.player.port.onmessage = (event) => {
      if (event.data && event.data.heard !== undefined) {
        // The audio clock, as wall-clock time: when the device plays that sample (output latency included).
        const stamp = voice.ctx.getOutputTimestamp();
        voice.heard.push(performance.timeOrigin + stamp.performanceTime + (event.data.heard - stamp.contextTime) * 1000);
        return;
      }
      const waiter = voice.waiters.shift();
      if (waiter) waiter(event.data);
    };
    voice.agentAnalyser = ctx.createAnalyser();
    voice.agentAnalyser.fftSize = 1024;
    voice.agentAnalyser.smoothingTimeConstant = 0.6;
    voice.player.connect(voice.agentAnalyser);
    voice.agentAnalyser.connect(ctx.destination);
  }

  async function startMicrophone(ctx, el) {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail("insecure");
      note("insecure");
      return;
    }
    say("starting");
    const processing = el.dataset.processing !== "off";
    let stream;
    voice.timing.askedAt = performance.now();
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          echoCancellation: processing,
          noiseSuppression: processing,
          autoGainControl: processing,
          channelCount: 1,
        },
      });
    } catch (error) {
      const name = error && error.name;
      const kind =
        name === "NotAllowedError" || name === "SecurityError" ? "denied"
        : name === "NotFoundError" || name === "OverconstrainedError" ? "noDevice"
        : "busy";
      fail(kind);
      note(kind, name);
      return;
    }
    if (!voice.running) {
      stream.getTracks().forEach((t) => t.stop());
      return;
    }
    voice.timing.openedAt = performance.now();
    voice.stream = stream;
    voice.source = ctx.createMediaStreamSource(stream);
    voice.micAnalyser = ctx.createAnalyser();
    voice.micAnalyser.fftSize = 1024;
    voice.source.connect(voice.capture);
    voice.source.connect(voice.micAnalyser);
    applyMicrophone();
    note("on");
  }

  function channel() {
    if (!voice.channel) {
      voice.channel = new Worker(base + "lkstate/static/voice-channel.js");
      voice.channel.onmessage = (event) => {
        const message = event.data;
        if (message.sent !== undefined) {
          voice.sent = message.sent;
          voice.received = message.received;
        }
        if (message.type === "ready") {
          voice.ready = true;
        } else if (message.type === "closed") {
          const wasOpen = voice.open;
          voice.open = voice.ready = false;
          if (wasOpen && voice.running) fail(message.code === 4401 ? "refused" : "dropped");
        }
      };
    }
    return voice.channel;
  }

  function openChannel(audio, capturePort) {
    // The socket lives in a worker (static/voice-channel.js): frames pass between it and the worklets
    // over MessagePorts, never waiting for the main thread.
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const hello = audio ? { key: voice.key, rate: voice.ctx ? voice.ctx.sampleRate : 0 } : { key: voice.key, audio: false };
    const message = {
      type: "open",
      url: scheme + "//" + location.host + base + "lkstate/voice",
      hello: hello,
      mic: voice.micWanted,
    };
    const transfer = [];
    if (audio && voice.player) {
      const pipe = new MessageChannel();
      voice.player.port.postMessage({ port: pipe.port1 }, [pipe.port1]);
      message.player = pipe.port2;
      transfer.push(pipe.port2);
    }
    if (capturePort) {
      message.capture = capturePort;
      transfer.push(capturePort);
    }
    voice.sent = voice.received = 0;
    voice.ready = false;
    voice.open = true;
    channel().postMessage(message, transfer);
  }

  function stop() {
    voice.running = false;
    if (voice.open && voice.channel) voice.channel.postMessage({ type: "close", code: 1000, reason: "Disconnected." });
    voice.open = voice.ready = false;
    if (voice.stream) voice.stream.getTracks().forEach((t) => t.stop());
    for (const node of [voice.source, voice.capture, voice.mute]) if (node) node.disconnect();
    voice.stream = voice.source = voice.capture = voice.mute = voice.micAnalyser = null;
    if (voice.player) voice.player.port.postMessage("flush");
    voice.micLevel = 0;
    if (!voice.problem) say("idle");
  }

  function applyMicrophone() {
    const el = link();
    const wanted = !el || el.dataset.mic !== "off";
    if (wanted !== voice.micWanted && voice.channel) voice.channel.postMessage({ type: "mic", on: wanted });
    voice.micWanted = wanted;
    if (voice.stream) voice.stream.getAudioTracks().forEach((t) => (t.enabled = voice.micWanted));
    if (voice.stream && !voice.problem) say(voice.micWanted ? "live" : "muted");
  }

  // -- following the session -----------------------------------------------------------

  let lastConnection = null;
  function sync() {
    const el = link();
    if (!el) return;
    const connection = el.dataset.connection;
    if (el.dataset.key !== voice.key && voice.running) stop(); // a new session for this tab
    if (ACTIVE.has(connection) && !voice.running && lastConnection !== connection && !voice.problem) start();
    if (connection === "disconnected" && lastConnection && lastConnection !== "disconnected" && voice.running) stop();
    if (connection === "disconnected" && !voice.running) voice.problem = null;
    lastConnection = connection;
    applyMicrophone();
  }

  document.addEventListener(
    "click",
    (event) => {
      const target = event.target instanceof Element ? event.target : null;
      if (!target) return;
      if (target.closest("#lk-connect")) {
        voice.problem = null;
        context(); // inside the click: the browser lets it play
        if (voice.ctx) voice.ctx.resume();
        start();
      } else if (target.closest("#lk-disconnect")) {
        stop();
      }
    },
    true,
  );

  // -- the visualizer ------------------------------------------------------------------

  // The agent's voice as BARS bars over log-spaced bands from 100 Hz to 4 kHz (where speech lives, so a
  // voice spreads over all of them), rising at once and falling smoothly; at rest, a row of dots. At the
  // right, the visitor's microphone as a level meter (grey when muted or absent). The canvas follows its
  // CSS size and the screen's pixel density, so it is sharp at any size.
  const BARS = 15;
  const LOW_HZ = 100;
  const HIGH_HZ = 4000;
  const FALL = 0.82; // per frame (~60/s): a bar falls to a fifth in about 130 ms
  let shown = new Array(BARS).fill(0);
  let shownMic = 0;

  function bands(bins, rate, size) {
    const out = new Array(BARS).fill(0);
    const hz = rate / size;
    for (let b = 0; b < BARS; b++) {
      const lo = LOW_HZ * Math.pow(HIGH_HZ / LOW_HZ, b / BARS);
      const hi = LOW_HZ * Math.pow(HIGH_HZ / LOW_HZ, (b + 1) / BARS);
      let peak = 0;
      for (let k = Math.floor(lo / hz); k <= Math.ceil(hi / hz) && k < bins.length; k++) peak = Math.max(peak, bins[k]);
      // getByteFrequencyData maps -100..-30 dB to 0..255; below about -75 dB is nothing to show.
      out[b] = Math.max(0, (peak / 255 - 0.35) / 0.65);
    }
    return out;
  }

  function roundedBar(g, x, y, w, h) {
    const r = Math.min(w / 2, h / 2);
    g.beginPath();
    g.moveTo(x + r, y);
    g.arcTo(x + w, y, x + w, y + h, r);
    g.arcTo(x + w, y + h, x, y + h, r);
    g.arcTo(x, y + h, x, y, r);
    g.arcTo(x, y, x + w, y, r);
    g.closePath();
    g.fill();
  }

  function draw() {
    requestAnimationFrame(draw);
    const panel = document.querySelector("#lk-voice .lk-voice");
    if (!panel || panel.dataset.place !== "browser") return;
    let canvas = panel.querySelector("canvas.lk-voice-bars");
    if (!canvas) {
      canvas = document.createElement("canvas");
      canvas.className = "lk-voice-bars";
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", "The agent's voice and your microphone level");
      panel.prepend(canvas);
    }
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    let bars = new Array(BARS).fill(0);
    if (voice.agentAnalyser) {
      const bins = new Uint8Array(voice.agentAnalyser.frequencyBinCount);
      voice.agentAnalyser.getByteFrequencyData(bins);
      bars = bands(bins, voice.ctx.sampleRate, voice.agentAnalyser.fftSize);
      const wave = new Float32Array(voice.agentAnalyser.fftSize);
      voice.agentAnalyser.getFloatTimeDomainData(wave);
      voice.agentLevel = rms(wave);
    } else {
      voice.agentLevel = 0;
    }
    shown = shown.map((old, b) => Math.max(bars[b], old * FALL));
    voice.bars = shown.slice();
    if (voice.micAnalyser) {
      const wave = new Float32Array(voice.micAnalyser.fftSize);
      voice.micAnalyser.getFloatTimeDomainData(wave);
      voice.micLevel = voice.micWanted ? rms(wave) : 0;
    } else {
      voice.micLevel = 0;
    }
    // About -50 dBFS at the bottom, 0 dBFS at the top.
    const micDb = voice.micLevel > 0 ? 20 * Math.log10(voice.micLevel) : -100;
    shownMic = Math.max(Math.min(1, Math.max(0, (micDb + 50) / 50)), shownMic * FALL);

    const style = getComputedStyle(panel);
    const agentColour = style.getPropertyValue("--lk-voice-agent").trim() || "#2563eb";
    const micColour = style.getPropertyValue("--lk-voice-mic").trim() || "#16a34a";
    const restColour = style.getPropertyValue("--lk-voice-rest").trim() || "rgba(100,116,139,0.35)";
    const pad = 6 * ratio;
    const meterWidth = 14 * ratio;
    const area = width - meterWidth - 4 * pad;
    const step = area / BARS;
    const barWidth = Math.max(2 * ratio, step * 0.62);
    const tallest = height - 2 * pad;
    const dot = Math.min(barWidth, 8 * ratio);
    for (let b = 0; b < BARS; b++) {
      const h = Math.max(dot, shown[b] * tallest);
      g.fillStyle = shown[b] > 0.02 ? agentColour : restColour;
      roundedBar(g, pad + b * step + (step - barWidth) / 2, (height - h) / 2, barWidth, h);
    }
    // The microphone: a track and its level, bottom up.
    const mx = width - pad - meterWidth;
    g.fillStyle = restColour;
    roundedBar(g, mx, pad, meterWidth, tallest);
    if (voice.micAnalyser && voice.micWanted && shownMic > 0.01) {
      const mh = Math.max(meterWidth, shownMic * tallest);
      g.fillStyle = micColour;
      roundedBar(g, mx, pad + tallest - mh, meterWidth, mh);
    }
  }

  function rms(wave) {
    let sum = 0;
    for (let i = 0; i < wave.length; i++) sum += wave[i] * wave[i];
    return Math.sqrt(sum / wave.length);
  }

  // -- for tests and the benchmark --------------------------------------------------------

  function base64(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }

  function ask(message) {
    return new Promise((resolve) => {
      if (!voice.player) return resolve(null);
      voice.waiters.push(resolve);
      voice.player.port.postMessage(message);
    });
  }

  window.lkVoice = {
    get status() {
      return voice.status;
    },
    get running() {
      return voice.running;
    },
    get ready() {
      return voice.ready;
    },
    get sent() {
      return voice.sent;
    },
    get received() {
      return voice.received;
    },
    get bars() {
      return voice.bars.slice();
    },
    get micLevel() {
      return voice.micLevel;
    },
    get agentLevel() {
      return voice.agentLevel;
    },
    get timing() {
      return { ...voice.timing };
    },
    now: () => (voice.ctx ? voice.ctx.currentTime : null),
    // What the browser says its audio output adds, in ms (AudioContext.baseLatency + outputLatency).
    outputLatency: () => (voice.ctx ? ((voice.ctx.baseLatency || 0) + (voice.ctx.outputLatency || 0)) * 1000 : null),
    tap: () => (voice.player ? (voice.player.port.postMessage("tap"), true) : false),
    played: async () => {
      const answer = await ask("dump");
      if (!answer) return null;
      // As base64 of 16-bit PCM: a minute of audio crosses to a test in a few MB, not a JSON array.
      const floats = new Float32Array(answer.dump);
      const pcm = new Int16Array(floats.length);
      for (let i = 0; i < floats.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(floats[i] * 32768)));
      return {
        start: answer.start,
        rate: answer.rate,
        pcm: base64(pcm.buffer),
        received: base64(answer.received),
        arrivals: answer.arrivals,
        underruns: answer.underruns,
      };
    },
    // For `lkstate bench --voice`: clicks captured from the microphone and played from the agent, as
    // milliseconds since the epoch (comparable with Python's time.time() on the same machine).
    markClicks: () => {
      voice.heard = [];
      if (voice.player) voice.player.port.postMessage("marks");
      if (voice.channel) voice.channel.postMessage({ type: "marks", on: true });
      return !!(voice.player && voice.channel);
    },
    clicks: () =>
      new Promise((resolve) => {
        const worker = voice.channel;
        if (!worker) return resolve({ sent: [], heard: voice.heard.slice() });
        const answer = (event) => {
          if (event.data && event.data.type === "marks") {
            worker.removeEventListener("message", answer);
            resolve({ sent: event.data.captured, heard: voice.heard.slice() });
          }
        };
        worker.addEventListener("message", answer);
        worker.postMessage({ type: "marks?" });
      }),
    stats: async () => {
      const answer = await ask("stats");
      return answer && answer.stats;
    },
  };

  say("idle");
  setInterval(sync, 100);
  requestAnimationFrame(draw);
  const firstWords = setInterval(() => {
    if (document.querySelector("#lk-voice .lk-voice-words")) {
      if (voice.status === "idle") say("idle");
      clearInterval(firstWords);
    }
  }, 100);
})();
