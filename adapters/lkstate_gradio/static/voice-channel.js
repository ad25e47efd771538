// The page's audio channel, run in a Web Worker of its own.
//
// Why a worker: the page's main thread also renders every update the server
// streams (the agent's state, the transcript growing word by word), and
// exactly when the agent starts to speak it has the most of them to render.
// Relayed by the main thread, the agent's frames reached the player in
// bursts after stalls of 60-100 ms — longer than the player's 60 ms jitter
// buffer — so the first word of an utterance was cut by a gap (measured in
// Chromium: arrivals at the player against what the server sent; see
// tests/ui/test_web_voice.py). Here the WebSocket's frames go straight to the
// player's AudioWorklet, and the microphone's frames straight from the
// capture worklet to the socket, over MessagePorts: the main thread only
// opens and closes the channel and hears what happened.
//
// Messages from the page: {type: "open", url, hello, player?: MessagePort, capture?: MessagePort},
// {type: "note", text}, {type: "mic", on}, {type: "close", code, reason}.
// To the page: {type: "ready"}, {type: "count", sent, received}, {type: "closed", code, sent, received}.
// For the benchmark (`lkstate bench --voice`): {type: "marks", on} makes it note, for every click in the
// microphone (a loud sample after 100 ms of quiet), the wall-clock time its first sample was captured:
// when its frame reached this worker, less the rest of the frame after it (the 20 ms framing counts).
// {type: "marks?"} answers {type: "marks", captured: [ms since the epoch, ...]}.
"use strict";

const MAX_PENDING = 500; // 10 s of 20 ms frames captured before the channel is ready

let ws = null;
let ready = false;
let pending = [];
let notes = [];
let player = null;
let capture = null;
let micOn = true;
let sent = 0;
let received = 0;
let marking = null; // {quiet, marks} while the benchmark asks

function mark(pcm) {
  // A click starts with its first audible sample after 100 ms of quiet, confirmed by a loud one within 20 ms.
  const samples = new Int16Array(pcm);
  const now = performance.timeOrigin + performance.now();
  for (let k = 0; k < samples.length; k++) {
    const level = Math.abs(samples[k]);
    if (level >= 330) {
      if (marking.quiet >= 4800) marking.onset = { at: now - ((samples.length - k) / 48000) * 1000, left: 960 };
      marking.quiet = 0;
      if (level > 4900 && marking.onset) {
        marking.marks.push(marking.onset.at);
        marking.onset = null;
      }
    } else {
      marking.quiet++;
    }
    if (marking.onset && --marking.onset.left <= 0) marking.onset = null;
  }
}

function counts(type, extra) {
  postMessage({ type: type, sent: sent, received: received, ...extra });
}

function send(pcm) {
  if (!ws || !micOn) return;
  if (marking) mark(pcm);
  if (ready && ws.readyState === WebSocket.OPEN) {
    ws.send(pcm);
    sent++;
    if (sent % 25 === 0) counts("count");
  } else {
    pending.push(pcm);
    if (pending.length > MAX_PENDING) pending.shift();
  }
}

function open(message) {
  close(1000, "Replaced.");
  sent = received = 0;
  micOn = message.mic !== false;
  player = message.player || null;
  capture = message.capture || null;
  if (capture) capture.onmessage = (event) => send(event.data.pcm);
  const socket = new WebSocket(message.url);
  socket.binaryType = "arraybuffer";
  ws = socket;
  ready = false;
  socket.onopen = () => socket.send(JSON.stringify(message.hello));
  socket.onmessage = (event) => {
    if (typeof event.data === "string") {
      let answer = {};
      try {
        answer = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (answer.type === "ready" && ws === socket) {
        ready = true;
        for (const text of notes.splice(0)) socket.send(text);
        for (const pcm of pending.splice(0)) {
          socket.send(pcm);
          sent++;
        }
        postMessage({ type: "ready" });
      }
      return;
    }
    received++;
    if (player) player.postMessage(event.data, [event.data]);
  };
  socket.onclose = (event) => {
    if (ws !== socket) return;
    ws = null;
    ready = false;
    counts("closed", { code: event.code });
  };
}

function close(code, reason) {
  const socket = ws;
  ws = null;
  ready = false;
  pending = [];
  notes = [];
  if (capture) capture.onmessage = null;
  capture = null;
  player = null;
  if (socket) {
    counts("count"); // final: nothing is sent after this
    socket.close(code, reason);
  }
}

onmessage = (event) => {
  const message = event.data;
  if (message.type === "open") open(message);
  else if (message.type === "mic") micOn = !!message.on;
  else if (message.type === "marks") marking = message.on ? { quiet: 0, onset: null, marks: [] } : null;
  else if (message.type === "marks?") postMessage({ type: "marks", captured: marking ? marking.marks.slice() : [] });
  else if (message.type === "close") close(message.code || 1000, message.reason || "");
  else if (message.type === "note") {
    if (ws && ready && ws.readyState === WebSocket.OPEN) ws.send(message.text);
    else if (ws) notes.push(message.text);
  }
};
