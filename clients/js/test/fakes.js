// Fakes for the SDK's injectable browser globals: a manual clock driving performance and the
// timers, a WebSocket whose far end is a scripted ingest, and WebAudio/WebRTC stand-ins.

export const TIME_ORIGIN = 1_700_000_000_000; // the page's performance.timeOrigin (epoch ms)

export class Clock {
  constructor() {
    this.now = 0; // performance.now()
    this.timers = new Map();
    this.nextId = 1;
    this.performance = { timeOrigin: TIME_ORIGIN, now: () => this.now };
  }

  setTimeout = (fn, ms = 0) => {
    const id = this.nextId++;
    this.timers.set(id, { fn, at: this.now + Math.max(0, ms), every: null });
    return id;
  };

  setInterval = (fn, ms) => {
    const id = this.nextId++;
    this.timers.set(id, { fn, at: this.now + ms, every: ms });
    return id;
  };

  clearTimeout = (id) => { this.timers.delete(id); };
  clearInterval = (id) => { this.timers.delete(id); };

  /** Run every timer due within the next ms, in time order; microtasks settle between. */
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let nextId = null;
      let next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === null || t.at < next.at)) { next = t; nextId = id; }
      }
      if (next === null) break;
      this.now = Math.max(this.now, next.at);
      if (next.every === null) this.timers.delete(nextId);
      else next.at += next.every;
      next.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

export async function settle() {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/**
 * A scripted ingest behind FakeWebSocket: answers auth, clock (server clock = page clock +
 * trueOffset, with up/down delays) and acks each event message with `status(n, events)`.
 */
export class FakeIngest {
  constructor(clock, { trueOffset = 0, up = () => 5, down = () => 5, status = () => 202,
    answerClock = true } = {}) {
    Object.assign(this, { clock, trueOffset, up, down, status, answerClock });
    this.sockets = [];
    this.received = []; // every event message's raw text, in arrival order
    this.accepted = []; // events acked 202, in order
    this.clockSamples = 0;
    const ingest = this;
    this.WebSocket = class extends FakeWebSocket {
      constructor(url) { super(url, ingest); ingest.sockets.push(this); }
    };
  }

  get socket() { return this.sockets[this.sockets.length - 1]; }

  /** The ingest process dies: every open socket closes abnormally. */
  crash() { for (const s of this.sockets) s.serverClose(1006); }

  deliver(ws, text) {
    const message = JSON.parse(text);
    if (!Array.isArray(message) && message.type === "auth") {
      ws.reply({ type: "auth", ok: message.token === "good" || message.token.startsWith("good") });
      if (!message.token.startsWith("good")) ws.serverClose(4401);
      return;
    }
    if (!Array.isArray(message) && message.type === "clock") {
      this.clockSamples += 1;
      if (this.answerClock === "ack") { // an ingest from before the clock message
        const number = ws.count++;
        this.clock.setTimeout(() => ws.reply({ type: "ack", message: number, status: 422, accepted: 0,
          errors: [{ index: 0, field: "type", error: "not an array of events" }] }), 2);
        return;
      }
      if (!this.answerClock) return;
      // The server reads its clock when the probe arrives, `up` ms after it left.
      const upMs = this.up();
      const downMs = this.down();
      this.clock.setTimeout(() => {
        const serverMs = Math.round(TIME_ORIGIN + this.clock.now + this.trueOffset);
        this.clock.setTimeout(() => ws.reply({ ...message, server_ms: serverMs }), downMs);
      }, upMs);
      return;
    }
    const number = ws.count++;
    this.received.push(text);
    const status = this.status(number, message, ws);
    if (status === null) return; // never acked (the ingest dies before storing it)
    if (status === 202) this.accepted.push(...message);
    const ack = { type: "ack", message: number, status, accepted: status === 202 ? message.length : 0 };
    if (status === 429) ack.retry_after_s = 2;
    this.clock.setTimeout(() => ws.reply(ack), 2);
  }
}

export class FakeWebSocket {
  constructor(url, ingest) {
    this.url = url;
    this.ingest = ingest;
    this.readyState = 0;
    this.count = 0;
    this.sent = [];
    ingest.clock.setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      if (this.onopen) this.onopen({});
    }, 1);
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(text);
    if (!text.includes('"type":"auth"')) {
      this.pending = (this.pending || 0) + 1; // probes and messages not yet answered
      this.maxPending = Math.max(this.maxPending || 0, this.pending);
    }
    this.ingest.deliver(this, text);
  }

  reply(value) {
    if (value.type === "ack" || value.type === "clock") this.pending -= 1;
    if (this.readyState === 1 && this.onmessage) this.onmessage({ data: JSON.stringify(value) });
  }

  serverClose(code) {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    if (this.onclose) this.onclose({ code });
  }

  close(code = 1000) { this.serverClose(code); }
}

/** An AnalyserNode whose time-domain data is a sine of amplitude `level()`. */
export class FakeAudioContext {
  static level = () => 0;
  constructor() { this.sampleRate = 48000; this.state = "running"; }
  createMediaStreamSource() { return { connect() {}, disconnect() {} }; }
  createAnalyser() {
    return {
      fftSize: 2048,
      smoothingTimeConstant: 0.8,
      getFloatTimeDomainData(data) {
        const a = FakeAudioContext.level();
        for (let i = 0; i < data.length; i++) data[i] = a * Math.sin((2 * Math.PI * i) / 48);
      },
    };
  }
  async close() {}
}

export class FakeMediaStream { constructor(tracks) { this.tracks = tracks; } }

/** An RTCRtpReceiver whose one SSRC gets a packet every `packetMs` with `level(now)`. */
export class FakeReceiver {
  constructor(clock, { level = () => 0.5, packetMs = 20, ssrc = 1234 } = {}) {
    Object.assign(this, { clock, level, packetMs, ssrc });
    this.stats = new Map();
  }
  getSynchronizationSources() {
    const last = Math.floor(this.clock.now / this.packetMs) * this.packetMs;
    return [{ source: this.ssrc, timestamp: last, audioLevel: this.level(last), rtpTimestamp: last * 48 }];
  }
  getContributingSources() { return []; }
  async getStats() { return this.stats; }
}

export function globals(clock, ingest, extra = {}) {
  return {
    WebSocket: ingest.WebSocket,
    performance: clock.performance,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    setInterval: clock.setInterval,
    clearInterval: clock.clearInterval,
    AudioContext: FakeAudioContext,
    MediaStream: FakeMediaStream,
    random: () => 0.5,
    fetch: async () => { throw new Error("no fetch in this test"); },
    ...extra,
  };
}

/** Every event the ingest accepted, of one type (parsed). */
export function eventsOf(ingest, type) {
  return ingest.accepted.filter((e) => e.type === type);
}
