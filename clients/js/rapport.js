// Rapport browser SDK (issue 18): forwards voice activity — never audio — from a WebRTC page
// to Rapport's ingest WebSocket, and shows the therapist a private coach.
//
// One plain ES module, no dependencies, no build step: Rapport serves this file verbatim at
// /sdk/rapport.js. Wire format: METRICS.md §9 (v1.1); protocol: /v1/stream in docs/ingest.md
// plus the clock and coach messages of docs/sdk.md ("Browser SDK").
//
//   import { attach } from "https://RAPPORT/sdk/rapport.js";
//   const tap = attach({ endpoint: "https://RAPPORT", token, session: "s1", clinic: "c1" });
//   tap.local(micTrack, { participant: "t1", role: "therapist" });
//   tap.remote(receiver, { participant: "c1", role: "client" });
//   tap.network(peerConnection);
//   tap.coach(document.querySelector("#coach"));
//   await tap.close({ endSession: true });

export const VERSION = "1.0.0";

const DEFAULTS = Object.freeze({
  sampleMs: 20, // levels sampling period, 20..50 ms (issue 18)
  batchMs: 500, // one levels batch per participant this often
  networkMs: 5000, // one network event per remote participant this often
  clockProbes: 5, // clock samples at each connection; the one with the smallest RTT wins
  clockRefreshMs: 30000,
  clockTimeoutMs: 2000, // a server without the clock message: fall back to offset 0
  bufferMs: 120000, // undelivered events older than this are dropped (and reported)
  maxBufferedEvents: 5000,
  maxMessageEvents: 200,
  maxMessageBytes: 256 * 1024,
  backoffMs: 500, // reconnect: 0.5 s doubling to 15 s, with jitter
  maxBackoffMs: 15000,
  closeTimeoutMs: 10000, // close(): wait this long for the last acks
  startSession: true,
  // Declared on session.start (METRICS.md §9): no event of this session spans more, so the
  // engine finalizes its numbers that much sooner and holds that much less (10 s instead of
  // the default 600 s: 623 KiB -> 34 KiB per levels session at 15 min, bench/engine.py 4b).
  // The SDK's own events span at most one batch; set null when another source sends long
  // speech segments into the same session.
  maxSegmentMs: 10000,
});

// Ack statuses (services/ingest/stream.py). 202/200: stored. 207/422: stored apart from the
// rejected events, which the ingest dead-letters — resending cannot change that, so the
// message is done and its rejections are reported. 429/503: nothing stored, resend later.
const DELIVERED = new Set([200, 202]);
const PARTLY_REJECTED = new Set([207, 422]);
const RETRY = new Set([429, 503]);
const FATAL_CLOSE = new Set([4401, 4403]);

const NUDGE_TEXT = Object.freeze({
  therapist_dominance: {
    started: "You have done most of the talking in the last 10 minutes. Leaving more room may help your client speak.",
    ended: "The conversation is more balanced again.",
  },
  interruption_burst: {
    started: "You have talked over your client several times in the last few minutes.",
    ended: "No recent interruptions.",
  },
  long_monologue: {
    started: "You have been speaking for over two minutes without a break.",
    ended: "Your long stretch of talking has ended.",
  },
  long_silence: {
    started: "A long silence — this can be therapeutic; no action needed.",
    ended: "The silence has ended.",
  },
  network_degraded: {
    started: "The connection is poor: delays may cause talk-over that nobody intended.",
    ended: "The connection has recovered.",
  },
});

/** Options for attach(); see rapport.d.ts for the documented shape. */
export function attach(options) {
  return new Tap(options);
}

function required(options, name) {
  const value = options[name];
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`attach: ${name} must be a non-empty string`);
  }
  return value;
}

function defaultGlobals() {
  const g = globalThis;
  return {
    WebSocket: g.WebSocket,
    fetch: g.fetch ? g.fetch.bind(g) : undefined,
    performance: g.performance,
    AudioContext: g.AudioContext || g.webkitAudioContext,
    MediaStream: g.MediaStream,
    setInterval: g.setInterval.bind(g),
    clearInterval: g.clearInterval.bind(g),
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    random: Math.random,
    document: g.document,
  };
}

/** ws(s)://host/v1/stream for an http(s)://host endpoint (a path prefix is kept). */
export function streamUrl(endpoint) {
  const url = new URL(endpoint);
  url.protocol = url.protocol === "https:" ? "wss:" : url.protocol === "http:" ? "ws:" : url.protocol;
  url.pathname = url.pathname.replace(/\/$/, "") + "/v1/stream";
  url.search = "";
  return url.toString();
}

/**
 * Offset of the ingest's clock from the page's, from one clock round trip (docs/sdk.md):
 * the server read its clock at some instant between c0 and c1, so
 * offset = s - (c0 + c1) / 2 with |error| <= (c1 - c0) / 2.
 */
export function clockSample(c0, s, c1) {
  return { offsetMs: s - (c0 + c1) / 2, errorMs: (c1 - c0) / 2, rttMs: c1 - c0, at: c1 };
}

/** Linear RMS amplitude (0..1, 1 = full scale) of float PCM samples. */
export function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}

function level4(value) {
  // 4 decimals: 1e-4 is -80 dBov, far below the voiced threshold (-50 dBov = 0.00316).
  return Math.round(Math.min(1, Math.max(0, value)) * 1e4) / 1e4;
}

class Tap {
  constructor(options) {
    if (!options || typeof options !== "object") throw new TypeError("attach: options required");
    this.endpoint = required(options, "endpoint").replace(/\/$/, "");
    // The coach stream is served with the reports (rapport run's port); when the ingest runs
    // apart (rapport ingest), give its base URL here. Default: endpoint.
    this.coachEndpoint = (options.coachEndpoint || this.endpoint).replace(/\/$/, "");
    this.token = required(options, "token");
    this.session = required(options, "session");
    this.clinic = options.clinic;
    this.config = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS)) {
      if (options[key] !== undefined) this.config[key] = options[key];
    }
    const c = this.config;
    if (!(Number.isFinite(c.sampleMs) && c.sampleMs >= 20 && c.sampleMs <= 50)) {
      throw new RangeError(`attach: sampleMs must be 20..50, got ${c.sampleMs}`);
    }
    if (c.maxSegmentMs !== null
        && !(Number.isInteger(c.maxSegmentMs) && c.maxSegmentMs >= c.batchMs)) {
      // Shorter than a batch: the SDK's own levels batches would be rejected.
      throw new RangeError(`attach: maxSegmentMs must be null or an integer >= batchMs `
        + `(${c.batchMs}), got ${c.maxSegmentMs}`);
    }
    if (c.startSession && (typeof this.clinic !== "string" || this.clinic === "")) {
      throw new TypeError("attach: clinic must be a non-empty string when startSession is true");
    }
    this.g = { ...defaultGlobals(), ...(options.globals || {}) };
    this.ownAudioContext = options.audioContext || null; // the platform's running context
    this.listeners = new Map();
    for (const [name, key] of [["drop", "onDrop"], ["error", "onError"], ["state", "onState"],
      ["rejected", "onRejected"], ["coach", "onCoach"]]) {
      if (typeof options[key] === "function") this.on(name, options[key]);
    }
    this.participants = new Map(); // participant id -> {role, kind, samples, lastClientMs, lastTs}
    this.networks = [];
    this.drafts = []; // events made before the first clock offset: stamped once it is known
    this.buffer = []; // sealed events {json, type, knownMs, createdAt}, oldest first
    this.inFlight = null; // {entries, number}
    this.offset = null; // best clock sample {offsetMs, errorMs, rttMs, at}
    this.ws = null;
    this.number = 0; // message number on this connection
    this.attempt = 0;
    this.state = "connecting";
    this.closed = false;
    this.retryAt = 0;
    this.timers = [];
    this.coaches = [];
    this.stats = {
      messagesSent: 0, bytesSent: 0, eventsDelivered: 0, eventsRejected: 0,
      eventsDropped: 0, reconnects: 0, resentEvents: 0,
    };
    if (c.startSession) {
      const start = { type: "session.start", session_id: this.session, ts_ms: this._nowClient(),
        clinic_id: this.clinic, participants: [] };
      if (c.maxSegmentMs !== null) start.max_segment_ms = c.maxSegmentMs;
      this._event(start);
    }
    this._every(c.sampleMs, () => this._sample());
    this._every(c.batchMs, () => this._flushLevels());
    this._every(c.networkMs, () => this._pollNetwork());
    this._every(c.clockRefreshMs, () => this._probeClock(c.clockProbes));
    this._every(1000, () => this._expire());
    this._connect();
  }

  // ----- public API -----

  /** Subscribe to "drop" | "error" | "state" | "rejected" | "coach"; returns an unsubscribe. */
  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    return () => this.listeners.get(type).delete(listener);
  }

  /** The local microphone (a MediaStreamTrack): WebAudio analyser RMS, linear 0..1. */
  local(track, { participant, role } = {}) {
    const p = this._join(participant, role, "local");
    const ctx = this.audioContext || (this.audioContext = this.ownAudioContext || new this.g.AudioContext());
    if (ctx.state === "suspended" && typeof ctx.resume === "function") {
      // Browsers start an AudioContext suspended until the page had a user gesture: the
      // analyser would read silence. Say so; resume at the first gesture.
      ctx.resume().catch(() => {});
      const doc = this.g.document;
      if (ctx.state === "suspended") {
        this._emit("error", { field: "local", error: "AudioContext suspended until a user gesture: the microphone reads as silence until then (call tap.local from a click, or pass audioContext)" });
        if (doc && typeof doc.addEventListener === "function") {
          const resume = () => ctx.resume().catch(() => {});
          for (const type of ["pointerdown", "keydown"]) doc.addEventListener(type, resume, { once: true });
        }
      }
    }
    const source = ctx.createMediaStreamSource(new this.g.MediaStream([track]));
    const analyser = ctx.createAnalyser();
    // A window of about one sampling period: each sample measures its own stretch of audio.
    const want = (ctx.sampleRate || 48000) * this.config.sampleMs / 1000;
    let size = 32;
    while (size < want && size < 32768) size *= 2;
    analyser.fftSize = size;
    analyser.smoothingTimeConstant = 0;
    source.connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    p.read = () => {
      analyser.getFloatTimeDomainData(data);
      return [[this._nowClient(), rms(data)]];
    };
    p.stop = () => source.disconnect();
    return this;
  }

  /**
   * A remote participant's RTCRtpReceiver: getSynchronizationSources() polled (or, for a
   * mixer's stream, getContributingSources() with `contributing: true`, narrowed to that
   * participant's CSRC with `source`). Any object with those methods will do (docs/sdk.md,
   * "Platforms": adapters for SDKs that give levels but no receiver).
   */
  remote(receiver, { participant, role, contributing = false, source } = {}) {
    const p = this._join(participant, role, "remote");
    p.receiver = receiver;
    const seen = new Map(); // source -> last timestamp
    p.read = () => {
      const sources = contributing ? receiver.getContributingSources()
        : receiver.getSynchronizationSources();
      let best = null;
      for (const s of sources || []) {
        if (typeof s.audioLevel !== "number" || typeof s.timestamp !== "number") continue;
        if (source !== undefined && s.source !== source) continue;
        if (seen.get(s.source) === s.timestamp) continue; // no new packet since the last poll
        seen.set(s.source, s.timestamp);
        const at = this._sourceTime(s.timestamp);
        if (best === null || s.audioLevel > best[1]) best = [at, s.audioLevel];
      }
      return best ? [best] : [];
    };
    return this;
  }

  /** RTT, jitter and loss per remote participant of this RTCPeerConnection (getStats). */
  network(pc) {
    this.networks.push({ pc, last: new Map() });
    return this;
  }

  /** Render the private coach stream (therapist's session token only) into element. */
  coach(element, { onUpdate } = {}) {
    const view = element ? new CoachView(element, this.g) : null;
    const handle = new CoachStream(this, view, onUpdate);
    this.coaches.push(handle);
    handle.start();
    return handle;
  }

  /** Clock estimate, counters and connection state (docs/sdk.md). */
  status() {
    return {
      state: this.state,
      offsetMs: this.offset ? this.offset.offsetMs : null,
      offsetErrorMs: this.offset ? this.offset.errorMs : null,
      pendingEvents: this.buffer.length + this.drafts.length
        + (this.inFlight ? this.inFlight.entries.length : 0),
      ...this.stats,
    };
  }

  /** Flush, optionally end the session, wait for the acks (closeTimeoutMs), disconnect. */
  async close({ endSession = false, leave = false } = {}) {
    if (this.closed) return this.status();
    this._flushLevels();
    const now = this._nowClient();
    if (leave) {
      for (const id of this.participants.keys()) {
        this._event({ type: "participant.leave", session_id: this.session, participant_id: id,
          ts_ms: now });
      }
    }
    if (endSession) this._event({ type: "session.end", session_id: this.session, ts_ms: now });
    for (const p of this.participants.values()) if (p.stop) p.stop();
    for (const id of this.timers) this.g.clearInterval(id);
    this.timers = [];
    this.closing = true;
    this._pump();
    const deadline = this._perfNow() + this.config.closeTimeoutMs;
    while ((this.buffer.length || this.drafts.length || this.inFlight) && this.state !== "failed"
      && this._perfNow() < deadline) {
      await new Promise((resolve) => this.g.setTimeout(resolve, 20));
    }
    const undelivered = this.buffer.length + this.drafts.length + (this.inFlight ? this.inFlight.entries.length : 0);
    if (undelivered) this._drop("closed", [...this.drafts, ...(this.inFlight ? this.inFlight.entries : []), ...this.buffer]);
    this.closed = true;
    for (const coach of this.coaches) coach.stop();
    if (this.reconnectTimer) this.g.clearTimeout(this.reconnectTimer);
    if (this.ws) { try { this.ws.close(1000); } catch { /* already closed */ } }
    if (this.audioContext && !this.ownAudioContext && typeof this.audioContext.close === "function") {
      this.audioContext.close().catch(() => {});
    }
    this._setState("closed");
    return this.status();
  }

  // ----- clock -----

  _perfNow() { return this.g.performance.now(); }

  /** The page clock, epoch ms: performance.timeOrigin + performance.now() (issue 18). */
  _nowClient() { return this.g.performance.timeOrigin + this.g.performance.now(); }

  _sourceTime(timestamp) {
    // RTCRtpSynchronizationSource.timestamp is on the performance clock (relative to
    // timeOrigin); older Chromium gave epoch ms. Both map to the page's epoch clock.
    return timestamp > 1e12 ? timestamp : this.g.performance.timeOrigin + timestamp;
  }

  _toSession(clientMs) { return Math.round(clientMs + this.offset.offsetMs); }

  _probeClock(count) {
    if (!this.ws || this.state !== "open" || this.probing || this.clockUnsupported) return;
    // One thing in flight on the socket at a time: a probe never waits behind a message being
    // stored (that would inflate its RTT), and every answer is unambiguous.
    if (this.inFlight) { this.probeWanted = count; return; }
    this.probeWanted = 0;
    this.probing = { left: count, best: null, id: (this.probeId || 0) };
    this._sendProbe();
  }

  _sendProbe() {
    const probe = this.probing;
    probe.id += 1;
    this.probeId = probe.id;
    probe.sentAt = this._nowClient();
    this._sendRaw(JSON.stringify({ type: "clock", id: probe.id, client_ms: probe.sentAt }), false);
    const ws = this.ws;
    probe.timer = this.g.setTimeout(() => {
      if (this.probing === probe && this.ws === ws) this._clockDone(probe, true);
    }, this.config.clockTimeoutMs);
  }

  _onClock(message) {
    const probe = this.probing;
    if (!probe || message.id !== probe.id || typeof message.server_ms !== "number") return;
    this.g.clearTimeout(probe.timer);
    const sample = clockSample(message.client_ms, message.server_ms, this._nowClient());
    if (!probe.best || sample.rttMs < probe.best.rttMs) probe.best = sample;
    probe.left -= 1;
    if (probe.left > 0) this._sendProbe();
    else this._clockDone(probe, false);
  }

  _clockDone(probe, timedOut) {
    this.probing = null;
    if (probe.best) {
      this.offset = probe.best;
    } else if (timedOut && !this.offset) {
      // A server without the clock message: the page's clock is epoch ms already; the error
      // is then whatever the two machines' clocks differ by.
      this.offset = { offsetMs: 0, errorMs: null, rttMs: null, at: this._nowClient() };
      this._emit("error", { field: "clock", error: "the ingest did not answer clock messages; using the page clock" });
    }
    if (this.offset) {
      const drafts = this.drafts;
      this.drafts = [];
      for (const draft of drafts) this._seal(draft);
      this._pump();
    }
  }

  // ----- events -----

  _join(participant, role, kind) {
    if (typeof participant !== "string" || participant === "") {
      throw new TypeError(`${kind}: participant must be a non-empty string`);
    }
    if (typeof role !== "string" || role === "") throw new TypeError(`${kind}: role must be a non-empty string`);
    if (this.participants.has(participant)) throw new Error(`${kind}: participant ${participant} is already tapped`);
    const p = { id: participant, role, kind, samples: [], lastClientMs: -Infinity, lastTs: -1 };
    this.participants.set(participant, p);
    this._event({ type: "participant.join", session_id: this.session, participant_id: participant,
      role, ts_ms: this._nowClient() });
    return p;
  }

  _sample() {
    for (const p of this.participants.values()) {
      if (!p.read) continue;
      let got;
      try { got = p.read(); } catch (error) { this._emit("error", { field: p.id, error: String(error) }); continue; }
      for (const [at, value] of got) {
        if (at <= p.lastClientMs) continue;
        p.lastClientMs = at;
        p.samples.push([at, level4(value)]);
      }
    }
  }

  _flushLevels() {
    for (const p of this.participants.values()) {
      if (!p.samples.length) continue;
      const samples = p.samples;
      p.samples = [];
      this._event({ type: "levels", session_id: this.session, participant_id: p.id,
        scale: "linear", samples }, p);
    }
  }

  async _pollNetwork() {
    for (const net of this.networks) {
      let receivers;
      try { receivers = net.pc.getReceivers(); } catch { continue; }
      for (const p of this.participants.values()) {
        if (p.kind !== "remote" || !receivers.includes(p.receiver)) continue;
        let report;
        try { report = await p.receiver.getStats(); } catch { continue; }
        const event = networkEvent(report, net.last.get(p.id));
        net.last.set(p.id, event.counters);
        if (event.rtt_ms === null || this.closed) continue;
        const e = { type: "network", session_id: this.session, participant_id: p.id,
          ts_ms: this._nowClient(), rtt_ms: event.rtt_ms };
        for (const key of ["jitter_ms", "loss_pct", "jitter_buffer_ms"]) {
          if (event[key] !== null) e[key] = event[key];
        }
        this._event(e);
      }
    }
  }

  /** Make an event from client times; it is stamped now if the clock is known. */
  _event(draft, participant) {
    draft.createdAt = this._perfNow();
    draft.participant = participant;
    if (this.offset) this._seal(draft);
    else this.drafts.push(draft);
    this._bound();
    this._pump();
  }

  /** Stamp in the session clock once; the JSON is then fixed, so a resend is byte-identical. */
  _seal(draft) {
    const { createdAt, participant, ...event } = draft;
    let knownMs;
    if (event.type === "levels") {
      const samples = [];
      for (const [at, value] of event.samples) {
        // After a clock refresh the offset may move back a few ms: keep samples increasing.
        const ts = Math.max(this._toSession(at), participant.lastTs + 1);
        participant.lastTs = ts;
        samples.push([ts, value]);
      }
      event.samples = samples;
      knownMs = samples[samples.length - 1][0];
    } else {
      event.ts_ms = this._toSession(event.ts_ms);
      knownMs = event.ts_ms;
    }
    this.buffer.push({ json: JSON.stringify(event), type: event.type,
      participant: event.participant_id, knownMs, createdAt });
  }

  _droppable(entry) { return entry.type === "levels" || entry.type === "network"; }

  _bound() {
    const max = this.config.maxBufferedEvents;
    const total = this.buffer.length + this.drafts.length;
    if (total <= max) return;
    let excess = total - max;
    const dropped = [];
    // Oldest first; the session's own events (start, join, end) are never dropped.
    for (const list of [this.drafts, this.buffer]) {
      for (let i = 0; i < list.length && excess > 0;) {
        if (this._droppable(list[i])) { dropped.push(...list.splice(i, 1)); excess -= 1; } else i++;
      }
    }
    this._drop("buffer_full", dropped);
  }

  _expire() {
    const limit = this._perfNow() - this.config.bufferMs;
    const dropped = [];
    for (const list of [this.drafts, this.buffer]) {
      for (let i = 0; i < list.length;) {
        if (list[i].createdAt < limit && this._droppable(list[i])) dropped.push(...list.splice(i, 1));
        else i++;
      }
    }
    this._drop("expired", dropped);
  }

  _drop(reason, entries) {
    if (!entries.length) return;
    const types = {};
    let from = null;
    let to = null;
    for (const e of entries) {
      types[e.type] = (types[e.type] || 0) + 1;
      if (e.knownMs !== undefined) {
        from = from === null ? e.knownMs : Math.min(from, e.knownMs);
        to = to === null ? e.knownMs : Math.max(to, e.knownMs);
      }
    }
    this.stats.eventsDropped += entries.length;
    this._emit("drop", { reason, events: entries.length, types, fromMs: from, toMs: to });
  }

  // ----- connection -----

  _every(ms, fn) { this.timers.push(this.g.setInterval(fn, ms)); }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  _emit(type, detail) {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const listener of set) {
      try { listener(detail); } catch { /* a listener's error is its own */ }
    }
  }

  _connect() {
    if (this.closed) return;
    this._setState("connecting");
    let ws;
    try {
      ws = new this.g.WebSocket(streamUrl(this.endpoint));
    } catch (error) {
      this._emit("error", { field: "endpoint", error: String(error) });
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.number = 0;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
    ws.onmessage = (message) => this._onMessage(ws, message.data);
    ws.onclose = (event) => this._onClose(ws, event);
    ws.onerror = () => {}; // a close follows
  }

  _onMessage(ws, data) {
    if (ws !== this.ws) return;
    let message;
    try { message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data)); } catch { return; }
    if (message.type === "auth" && message.ok) {
      this.attempt = 0;
      this._setState("open");
      this._probeClock(this.config.clockProbes);
      this._pump();
    } else if (message.type === "clock") {
      this._onClock(message);
    } else if (message.type === "ack" && this.probing && !this.inFlight) {
      // An ingest without the clock message took the probe for events: no clock there.
      this.g.clearTimeout(this.probing.timer);
      this.clockUnsupported = true; // and every probe would be dead-lettered there
      this._clockDone(this.probing, true);
    } else if (message.type === "ack") {
      this._onAck(message);
    } else if (message.type === "error") {
      this._emit("error", { status: message.status, error: message.error });
      if (message.status === 401 || message.status === 403) this.fatal = true;
    }
  }

  _onAck(ack) {
    const flight = this.inFlight;
    if (!flight) return;
    this.inFlight = null;
    const status = ack.status;
    if (DELIVERED.has(status)) {
      this.stats.eventsDelivered += flight.entries.length;
    } else if (PARTLY_REJECTED.has(status)) {
      const errors = ack.errors || [];
      this.stats.eventsDelivered += flight.entries.length - errors.length;
      this.stats.eventsRejected += errors.length;
      this._emit("rejected", { status, errors, events: errors.map((e) => flight.entries[e.index] && JSON.parse(flight.entries[e.index].json)) });
    } else if (RETRY.has(status)) {
      this.buffer.unshift(...flight.entries);
      const wait = status === 429 && typeof ack.retry_after_s === "number" ? ack.retry_after_s * 1000
        : this._backoff(flight.retries = (flight.retries || 0) + 1);
      this.retryAt = this._perfNow() + wait;
      this.g.setTimeout(() => this._pump(), wait);
      this._emit("error", { status, field: ack.field, error: ack.error, retryInMs: wait });
      if (this.probeWanted) this._probeClock(this.probeWanted);
      return;
    } else {
      // 400/403/413: the ingest refused the whole message; resending gets the same answer.
      this.stats.eventsRejected += flight.entries.length;
      this._emit("rejected", { status, error: ack.error, field: ack.field,
        events: flight.entries.map((e) => JSON.parse(e.json)) });
    }
    if (this.probeWanted) this._probeClock(this.probeWanted);
    else this._pump();
  }

  _onClose(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.probing) { this.g.clearTimeout(this.probing.timer); this.probing = null; }
    this.probeWanted = 0;
    if (this.inFlight) {
      // Unacknowledged: back to the front of the buffer, resent on the next connection.
      this.stats.resentEvents += this.inFlight.entries.length;
      this.buffer.unshift(...this.inFlight.entries);
      this.inFlight = null;
    }
    if (this.closed) return;
    if (this.fatal || FATAL_CLOSE.has(event && event.code)) {
      this._setState("failed");
      this._emit("error", { field: "token", error: `the ingest refused the token (close code ${event && event.code})` });
      return;
    }
    this._scheduleReconnect();
  }

  _backoff(attempt) {
    const base = Math.min(this.config.maxBackoffMs, this.config.backoffMs * 2 ** (attempt - 1));
    return base * (0.5 + 0.5 * this.g.random()); // jitter: spread the clients of a restart
  }

  _scheduleReconnect() {
    this._setState("reconnecting");
    this.attempt += 1;
    this.stats.reconnects += 1;
    const delay = this._backoff(this.attempt);
    this.reconnectTimer = this.g.setTimeout(() => this._connect(), delay);
  }

  _sendRaw(text, count = true) {
    this.ws.send(text);
    if (count) {
      this.stats.messagesSent += 1;
      this.stats.bytesSent += text.length;
    }
  }

  /** Send the next message when none is in flight (the ingest answers in order, one by one). */
  _pump() {
    if (!this.ws || this.state !== "open" || this.inFlight || this.probing || !this.buffer.length
      || !this.offset) return;
    if (this._perfNow() < this.retryAt) return;
    const entries = [];
    let bytes = 2;
    while (entries.length < this.config.maxMessageEvents && entries.length < this.buffer.length) {
      const size = this.buffer[entries.length].json.length + 1;
      if (entries.length && bytes + size > this.config.maxMessageBytes) break;
      bytes += size;
      entries.push(this.buffer[entries.length]);
    }
    this.buffer.splice(0, entries.length);
    this.inFlight = { entries, number: this.number++ };
    this._sendRaw("[" + entries.map((e) => e.json).join(",") + "]");
  }
}

/** rtt_ms, jitter_ms, loss_pct, jitter_buffer_ms (METRICS.md §9) from one receiver's stats. */
export function networkEvent(report, previous) {
  let rtt = null;
  let inbound = null;
  let remoteRtt = null;
  const values = typeof report.values === "function" ? [...report.values()] : Object.values(report);
  for (const s of values) {
    if (s.type === "candidate-pair" && (s.nominated || s.selected || s.state === "succeeded")
      && typeof s.currentRoundTripTime === "number") {
      rtt = s.currentRoundTripTime * 1000;
    } else if (s.type === "inbound-rtp" && (s.kind === "audio" || s.mediaType === "audio")) {
      inbound = s;
    } else if (s.type === "remote-outbound-rtp" && typeof s.roundTripTime === "number") {
      remoteRtt = s.roundTripTime * 1000;
    }
  }
  if (rtt === null) rtt = remoteRtt;
  const counters = inbound ? {
    lost: inbound.packetsLost || 0, received: inbound.packetsReceived || 0,
    delay: inbound.jitterBufferDelay || 0, emitted: inbound.jitterBufferEmittedCount || 0,
  } : null;
  let loss = null;
  let buffer = null;
  if (counters) {
    const before = previous || { lost: 0, received: 0, delay: 0, emitted: 0 };
    const lost = Math.max(0, counters.lost - before.lost);
    const received = Math.max(0, counters.received - before.received);
    if (lost + received > 0) loss = Math.round(1000 * 100 * lost / (lost + received)) / 1000;
    const emitted = counters.emitted - before.emitted;
    if (emitted > 0) buffer = Math.round(1000 * (counters.delay - before.delay) / emitted);
  }
  const jitter = inbound && typeof inbound.jitter === "number" ? Math.round(inbound.jitter * 1000 * 10) / 10 : null;
  return { rtt_ms: rtt === null ? null : Math.round(rtt * 10) / 10, jitter_ms: jitter,
    loss_pct: loss, jitter_buffer_ms: buffer, counters };
}

// ----- coach -----

/** Plain-language duration: "45 s", "2 min 5 s". */
export function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
}

/** The coach update as plain-language lines (contract §5; METRICS.md §6/§7 interpretations). */
export function coachLines(update) {
  const share = update.talk_share_10min;
  const made = update.interruptions_made;
  const count = typeof made === "number" ? made
    : made && typeof made === "object" ? (made.successful || 0) + (made.unsuccessful || 0) : 0;
  return [
    ["talk_share", share === null || share === undefined
      ? "Your share of the talking (last 10 min): not enough speech yet"
      : `Your share of the talking (last 10 min): ${Math.round(share * 100)} %`],
    ["monologue", update.monologue_s > 0
      ? `You have been speaking for ${duration(update.monologue_s)}`
      : "You are not speaking"],
    ["interruptions", made === null
      ? "Times you talked over your client: not visible from this call's data"
      : `Times you talked over your client: ${count}`],
    ["client_longest", `Your client's longest uninterrupted stretch: ${duration(update.client_longest_uninterrupted_s)}`],
  ];
}

export function nudgeText(nudge) {
  if (nudge && typeof nudge.text === "string" && nudge.text) return nudge.text;
  const known = NUDGE_TEXT[nudge && nudge.kind];
  return known ? known[nudge.state === "ended" ? "ended" : "started"] : "";
}

/** Parses a text/event-stream incrementally: feed() chunks, get {event, data, id} back. */
export class SseParser {
  constructor() { this.rest = ""; this.event = ""; this.data = []; this.id = null; }

  feed(chunk) {
    const out = [];
    const lines = (this.rest + chunk).split(/\r\n|\r|\n/);
    this.rest = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (this.data.length) out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
        this.event = ""; this.data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") this.event = value;
        else if (field === "data") this.data.push(value);
        else if (field === "id") this.id = value;
      }
    }
    return out;
  }
}

class CoachView {
  // Numbers change every second: announcing each would drown a screen reader, so the figures
  // sit in a labelled region and only the nudges, when one starts or ends, go to the polite
  // live region (role="status").
  constructor(element, g) {
    const doc = element.ownerDocument;
    this.element = element;
    element.setAttribute("role", "region");
    element.setAttribute("aria-label", "Private session coach");
    element.dataset.rapportCoach = "connecting";
    this.list = doc.createElement("ul");
    this.list.className = "rapport-coach-figures";
    this.items = new Map();
    for (const key of ["talk_share", "monologue", "interruptions", "client_longest"]) {
      const li = doc.createElement("li");
      li.dataset.metric = key;
      this.items.set(key, li);
      this.list.appendChild(li);
    }
    this.live = doc.createElement("p");
    this.live.className = "rapport-coach-nudge";
    this.live.setAttribute("role", "status");
    this.live.setAttribute("aria-live", "polite");
    element.replaceChildren(this.list, this.live);
    this.g = g;
  }

  render(update) {
    for (const [key, text] of coachLines(update)) {
      const li = this.items.get(key);
      if (li.textContent !== text) li.textContent = text;
    }
    const nudges = update.nudges || [];
    if (nudges.length) this.live.textContent = nudges.map(nudgeText).join(" ");
    this.element.dataset.rapportCoach = "live";
    this.element.dataset.updatedAtMs = String(update.at_ms);
  }

  state(value, message) {
    this.element.dataset.rapportCoach = value;
    if (message) this.live.textContent = message;
  }
}

class CoachStream {
  constructor(tap, view, onUpdate) {
    this.tap = tap;
    this.view = view;
    this.onUpdate = onUpdate;
    this.stopped = false;
    this.attempt = 0;
    this.updates = 0;
  }

  async start() {
    const { g } = this.tap;
    const url = `${this.tap.coachEndpoint}/v1/sessions/${encodeURIComponent(this.tap.session)}/coach`;
    while (!this.stopped) {
      this.abort = typeof AbortController === "function" ? new AbortController() : null;
      try {
        const answer = await g.fetch(url, { headers: { Authorization: `Bearer ${this.tap.token}`,
          Accept: "text/event-stream" }, signal: this.abort && this.abort.signal, cache: "no-store" });
        if (answer.status === 401 || answer.status === 403 || answer.status === 404) {
          // Not the therapist's token, or the coach is off for this clinic: no retry.
          const why = answer.status === 404 ? "The coach is not available for this session."
            : "The coach is private to the therapist.";
          if (this.view) this.view.state(`off-${answer.status}`, why);
          this.tap._emit("error", { field: "coach", status: answer.status, error: why });
          return;
        }
        if (!answer.ok || !answer.body) throw new Error(`coach: HTTP ${answer.status}`);
        const reader = answer.body.getReader();
        const parser = new SseParser();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done || this.stopped) break;
          for (const message of parser.feed(decoder.decode(value, { stream: true }))) {
            if (message.event === "revoked") { // the token expired or was revoked: final
              this.stopped = true;
              if (this.view) this.view.state("off-revoked", "The coach has ended for this session.");
              this.tap._emit("error", { field: "coach", error: "coach token revoked or expired" });
              return;
            }
            if (message.event !== "coach") continue;
            let update;
            try { update = JSON.parse(message.data); } catch { continue; }
            this.attempt = 0;
            this.updates += 1;
            if (this.view) this.view.render(update);
            if (this.onUpdate) this.onUpdate(update);
            this.tap._emit("coach", update);
          }
        }
      } catch (error) {
        if (this.stopped) return;
        this.tap._emit("error", { field: "coach", error: String(error) });
      }
      if (this.stopped) return;
      if (this.view) this.view.state("reconnecting");
      this.attempt += 1;
      await new Promise((resolve) => g.setTimeout(resolve, this.tap._backoff(this.attempt)));
    }
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
  }
}
