// The page's two audio processors, run on the browser's audio thread.
//
// lk-capture: the visitor's microphone, cut into 20 ms frames of 16-bit PCM
// (960 samples at 48 kHz), each posted as an ArrayBuffer to the channel's
// worker (static/voice-channel.js, over a MessagePort the page hands over),
// which sends it to the server unchanged.
//
// lk-player: the agent's voice, from 20 ms frames the channel's worker posts
// in over its MessagePort (the page's main thread is not on the way). A small,
// adaptive jitter buffer: playback starts once `target` seconds are queued
// (and again after running dry). The target starts at TARGET_MIN (three
// frames: a frame may come up to 40 ms late without a gap; with two, frames
// from a server on two loaded cores ran dry 7-13 times a minute, and the
// delay heard was no shorter once it had grown) and grows by TARGET_STEP
// each time the queue runs dry (frames came later than that), up to
// TARGET_MAX; after QUIET_SECONDS without running dry it shrinks a step
// again. Whatever is queued is the delay the visitor hears, so the player
// keeps it at the target: whenever more than CATCH_UP beyond it is
// queued (frames that arrived in a burst after a stall), it catches up by
// skipping *silences* — whole stretches of at least SKIP_RUN seconds below
// SILENT, the pauses between words, inaudible to skip — until it is back at
// the target, and past HARD_MAX it drops the oldest audio outright. (It once
// skipped every single quiet sample, which inside a word are its zero
// crossings and its fade-in: a word played during a catch-up came out with
// its waveform cut at every crossing. It once also waited for 150 ms queued
// before catching up, so after one burst the agent stayed up to 150 ms late
// for good: the agent's track is a steady stream, it never runs dry.) So the
// agent is heard about `target` behind, never more than HARD_MAX, and an
// interrupted agent stops within that: nothing queued can play on for
// seconds. "flush" empties the queue at once.
// With the tap on, every sample played is also kept (for tests and the
// benchmark: what the visitor actually heard, and when).

const TARGET_MIN = 0.06;
const TARGET_STEP = 0.02;
const TARGET_MAX = 0.12;
const QUIET_SECONDS = 10;
const CATCH_UP = 0.01; // queued beyond the target that starts a catch-up (in silences only)
const HARD_MAX = 0.4;
const SILENT = 0.002; // about -54 dBFS
const SKIP_RUN = 0.01; // the shortest silence skipped while catching up

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(sampleRate / 50);
    this.used = 0;
    this.out = null; // the channel's port (to its worker); frames captured before it is given are dropped
    this.first = true;
    this.port.onmessage = (event) => {
      if (event.data && event.data.port) this.out = event.data.port;
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.used++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      if (this.used === this.frame.length) {
        const out = this.frame.buffer;
        if (this.out) this.out.postMessage({ pcm: out, at: currentTime }, [out]);
        if (this.first) {
          this.first = false;
          this.port.postMessage({ first: true, at: currentTime });
        }
        this.frame = new Int16Array(sampleRate / 50);
        this.used = 0;
      }
    }
    return true;
  }
}

class Player extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ring = new Float32Array(sampleRate * 2);
    this.read = 0;
    this.count = 0;
    this.playing = false;
    this.target = Math.round(TARGET_MIN * sampleRate);
    this.targetMin = this.target;
    this.targetStep = Math.round(TARGET_STEP * sampleRate);
    this.targetMax = Math.round(TARGET_MAX * sampleRate);
    this.catchUp = Math.round(CATCH_UP * sampleRate);
    this.sinceDry = 0; // samples played since the queue last ran dry in the middle of audio
    this.hardMax = Math.round(HARD_MAX * sampleRate);
    this.catchingUp = false;
    this.skipRun = Math.round(SKIP_RUN * sampleRate);
    this.stats = { received: 0, underruns: 0, target: TARGET_MIN, droppedSamples: 0, skippedSilence: 0, flushed: 0 };
    this.tap = null;
    this.marking = null;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(data) {
    if (data && data.port && typeof data.port.postMessage === "function") {
      // The channel's port: frames come straight from its worker (static/voice-channel.js).
      data.port.onmessage = (event) => this.onMessage(event.data);
    } else if (data instanceof ArrayBuffer) {
      this.push(new Int16Array(data));
    } else if (data === "flush") {
      this.stats.flushed += this.count;
      if (this.tap) this.tap.taken += this.count;
      this.count = 0;
      this.playing = false;
    } else if (data === "tap") {
      // taken: samples taken from the queue since (played or skipped), less those queued before the tap:
      // the position in `received` of the next sample to play. underruns: where the queue ran dry.
      this.tap = {
        start: null, chunks: [], length: 0, received: [], receivedLength: 0, arrivals: [],
        taken: -this.count, underruns: [],
      };
    } else if (data === "dump") {
      const tap = this.tap || {
        start: currentTime, chunks: [], length: 0, received: [], receivedLength: 0, arrivals: [], taken: 0, underruns: [],
      };
      if (tap.start === null) tap.start = currentTime;
      const samples = new Float32Array(tap.length);
      let at = 0;
      for (const chunk of tap.chunks) {
        samples.set(chunk, at);
        at += chunk.length;
      }
      const received = new Int16Array(tap.receivedLength);
      at = 0;
      for (const chunk of tap.received) {
        received.set(chunk, at);
        at += chunk.length;
      }
      this.port.postMessage(
        {
          dump: samples.buffer, start: tap.start, rate: sampleRate, received: received.buffer, arrivals: tap.arrivals,
          underruns: tap.underruns,
        },
        [samples.buffer, received.buffer],
      );
    } else if (data === "marks") {
      // For the benchmark: post the audio-clock time each click (a loud sample after 100 ms of quiet) is played.
      this.marking = { quiet: 0, onset: null };
    } else if (data === "stats") {
      this.port.postMessage({ stats: { ...this.stats, buffered: this.count / sampleRate, now: currentTime } });
    }
  }

  push(pcm) {
    this.stats.received += pcm.length;
    if (this.tap && this.tap.receivedLength < sampleRate * 60) {
      this.tap.received.push(pcm.slice());
      this.tap.receivedLength += pcm.length;
      this.tap.arrivals.push(currentTime);
    }
    const size = this.ring.length;
    for (let i = 0; i < pcm.length; i++) {
      if (this.count === size) {
        this.read = (this.read + 1) % size;
        this.count--;
        this.stats.droppedSamples++;
        if (this.tap) this.tap.taken++;
      }
      this.ring[(this.read + this.count) % size] = pcm[i] / 32768;
      this.count++;
    }
    if (this.count > this.hardMax) {
      const drop = this.count - this.target;
      this.read = (this.read + drop) % size;
      this.count -= drop;
      this.stats.droppedSamples += drop;
      if (this.tap) this.tap.taken += drop;
    }
  }

  silence() {
    // Samples at the read position that may be skipped: a whole run of SKIP_RUN below SILENT, never
    // more than brings the queue back to the target; 0 when the audio there is not such a silence.
    const run = this.skipRun;
    if (this.count - this.target < run) return 0;
    const size = this.ring.length;
    for (let k = 0; k < run; k++) {
      const sample = this.ring[(this.read + k) % size];
      if (sample >= SILENT || sample <= -SILENT) return 0;
    }
    return run;
  }

  mark(out) {
    // A click starts with its first audible sample after 100 ms of quiet, confirmed by a loud one within 20 ms.
    const marking = this.marking;
    for (let k = 0; k < out.length; k++) {
      const level = Math.abs(out[k]);
      if (level >= 0.01) {
        if (marking.quiet >= 4800) marking.onset = { at: currentTime + k / sampleRate, left: 960 };
        marking.quiet = 0;
        if (level > 0.15 && marking.onset) {
          this.port.postMessage({ heard: marking.onset.at });
          marking.onset = null;
        }
      } else {
        marking.quiet++;
      }
      if (marking.onset && --marking.onset.left <= 0) marking.onset = null;
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    if (!out) return true;
    if (!this.playing && this.count >= this.target) this.playing = true;
    const size = this.ring.length;
    let i = 0;
    if (this.count > this.target + this.catchUp) this.catchingUp = true;
    if (this.playing) {
      for (; i < out.length && this.count > 0; ) {
        if (this.catchingUp) {
          if (this.count <= this.target) {
            this.catchingUp = false;
          } else {
            const skip = this.silence();
            if (skip > 0) {
              this.read = (this.read + skip) % size;
              this.count -= skip;
              this.stats.skippedSilence += skip;
              if (this.tap) this.tap.taken += skip;
              continue;
            }
          }
        }
        out[i++] = this.ring[this.read];
        this.read = (this.read + 1) % size;
        this.count--;
        if (this.tap) this.tap.taken++;
      }
      this.sinceDry += i;
      if (i < out.length) {
        this.playing = false;
        this.stats.underruns++;
        // Audio came later than the target allows: wait longer before playing from now on.
        this.target = Math.min(this.targetMax, this.target + this.targetStep);
        this.sinceDry = 0;
        if (this.tap && this.tap.underruns.length < 10000) this.tap.underruns.push(this.tap.taken);
      }
    }
    if (this.sinceDry > QUIET_SECONDS * sampleRate && this.target > this.targetMin) {
      this.target = Math.max(this.targetMin, this.target - this.targetStep);
      this.sinceDry = 0;
    }
    this.stats.target = this.target / sampleRate;
    for (; i < out.length; i++) out[i] = 0;
    if (this.marking) this.mark(out);
    if (this.tap && this.tap.length < sampleRate * 60) {
      if (this.tap.start === null) this.tap.start = currentTime;
      this.tap.chunks.push(out.slice());
      this.tap.length += out.length;
    }
    return true;
  }
}

registerProcessor("lk-capture", Capture);
registerProcessor("lk-player", Player);
