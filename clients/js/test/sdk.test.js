// The SDK against scripted fakes of the browser and the ingest (fakes.js): sampling, batching,
// clock mapping, reconnection and resend, backoff, buffer bound and drop reporting.
import { test } from "node:test";
import assert from "node:assert/strict";

import { attach, clockSample, streamUrl, rms } from "../rapport.js";
import { Clock, FakeIngest, FakeAudioContext, FakeReceiver, TIME_ORIGIN, globals, eventsOf, settle } from "./fakes.js";

function setup({ ingest: ingestOptions = {}, extra = {}, ...options } = {}) {
  const clock = new Clock();
  const ingest = new FakeIngest(clock, ingestOptions);
  const tap = attach({ endpoint: "http://rapport.test:8081", token: "good", session: "s1",
    clinic: "c1", globals: globals(clock, ingest, extra), ...options });
  return { clock, ingest, tap };
}

test("the stream URL follows the endpoint's scheme and path", () => {
  assert.equal(streamUrl("https://r.example/base/"), "wss://r.example/base/v1/stream");
  assert.equal(streamUrl("http://127.0.0.1:8081"), "ws://127.0.0.1:8081/v1/stream");
});

test("attach refuses a sampling period outside 20..50 ms and a missing clinic", () => {
  const clock = new Clock();
  const ingest = new FakeIngest(clock);
  const base = { endpoint: "http://x", token: "good", session: "s1", clinic: "c1", globals: globals(clock, ingest) };
  assert.throws(() => attach({ ...base, sampleMs: 10 }), /sampleMs must be 20..50/);
  assert.throws(() => attach({ ...base, sampleMs: 60 }), /sampleMs must be 20..50/);
  assert.throws(() => attach({ ...base, clinic: undefined }), /clinic/);
});

test("local microphone: RMS every 20 ms, one linear levels batch per 500 ms", async () => {
  const { clock, ingest, tap } = setup({ ingest: { trueOffset: 0, up: () => 0, down: () => 0 } });
  FakeAudioContext.level = () => 0.5; // a sine of amplitude 0.5: RMS 0.3536
  await clock.advance(100); // connected, clock known
  tap.local({}, { participant: "t1", role: "therapist" });
  await clock.advance(2000);
  const batches = eventsOf(ingest, "levels");
  assert.ok(batches.length >= 4, `${batches.length} batches`);
  for (const batch of batches.slice(1, -1)) { // the first began with the tap, mid-period
    assert.equal(batch.scale, "linear");
    assert.equal(batch.participant_id, "t1");
    assert.ok(batch.samples.length >= 24 && batch.samples.length <= 26, `${batch.samples.length} samples`);
    for (const [, level] of batch.samples) assert.ok(Math.abs(level - 0.3536) < 1e-3, `level ${level}`);
  }
  const times = batches.flatMap((b) => b.samples.map(([ts]) => ts));
  for (let i = 1; i < times.length; i++) assert.equal(times[i] - times[i - 1], 20);
  const join = eventsOf(ingest, "participant.join")[0];
  assert.deepEqual([join.participant_id, join.role], ["t1", "therapist"]);
});

test("the sampling period is configurable up to 50 ms", async () => {
  const { clock, ingest, tap } = setup({ sampleMs: 50, ingest: { up: () => 0, down: () => 0 } });
  FakeAudioContext.level = () => 0.1;
  await clock.advance(100);
  tap.local({}, { participant: "t1", role: "therapist" });
  await clock.advance(1600);
  const [, second] = eventsOf(ingest, "levels"); // the first began with the tap, mid-period
  assert.equal(second.samples.length, 10);
  assert.equal(second.samples[1][0] - second.samples[0][0], 50);
});

test("remote receiver: one sample per new packet, timestamp from the SSRC entry", async () => {
  const { clock, ingest, tap } = setup({ ingest: { up: () => 0, down: () => 0 } });
  // A packet every 40 ms: polls at 20 ms see each packet once, never a stale one twice.
  const receiver = new FakeReceiver(clock, { packetMs: 40, level: (t) => (t % 400 < 200 ? 0.25 : 0) });
  await clock.advance(100);
  tap.remote(receiver, { participant: "c1", role: "client" });
  await clock.advance(1500);
  const samples = eventsOf(ingest, "levels").flatMap((b) => b.samples);
  assert.ok(samples.length >= 30);
  for (let i = 1; i < samples.length; i++) assert.equal(samples[i][0] - samples[i - 1][0], 40);
  for (const [ts, level] of samples) {
    const packet = ts - TIME_ORIGIN; // offset 0: the page clock is the session clock
    assert.equal(packet % 40, 0);
    assert.equal(level, packet % 400 < 200 ? 0.25 : 0);
  }
});

test("clock: offset and error from simulated round trips; the smallest RTT wins", async () => {
  // Up and down delays of the five probes: the third has the smallest RTT (4 + 6 ms).
  const ups = [40, 25, 4, 30, 60];
  const downs = [10, 35, 6, 30, 5];
  const { clock, tap } = setup({ ingest: { trueOffset: 123_456, up: () => ups.shift(), down: () => downs.shift() } });
  await clock.advance(1000);
  const status = tap.status();
  assert.equal(status.offsetErrorMs, 5); // (c1 - c0) / 2 of the best probe
  // True offset 123456; the estimate assumes symmetric paths: off by (up - down) / 2 = -1 ms.
  assert.equal(status.offsetMs, 123_455);
  assert.ok(Math.abs(status.offsetMs - 123_456) <= status.offsetErrorMs);
});

test("clock sample arithmetic: offset = S - (C0 + C1) / 2, error = RTT / 2", () => {
  assert.deepEqual(clockSample(1000, 5050, 1100), { offsetMs: 4000, errorMs: 50, rttMs: 100, at: 1100 });
});

test("clock error stays within its bound over random asymmetric delays", async () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let run = 0; run < 20; run++) {
    const { clock, tap } = setup({ ingest: { trueOffset: -5000 + run * 731,
      up: () => Math.round(2 + rand() * 80), down: () => Math.round(2 + rand() * 80) } });
    await clock.advance(2000);
    const { offsetMs, offsetErrorMs } = tap.status();
    assert.ok(Math.abs(offsetMs - (-5000 + run * 731)) <= offsetErrorMs, `run ${run}`);
    assert.ok(offsetErrorMs <= 81);
  }
});

test("events made before the clock is known are stamped with it, once", async () => {
  const { clock, ingest, tap } = setup({ ingest: { trueOffset: 10_000, up: () => 3, down: () => 3 } });
  const [start] = [TIME_ORIGIN + clock.now];
  await clock.advance(500);
  const [session] = eventsOf(ingest, "session.start");
  assert.equal(session.ts_ms, start + 10_000);
  assert.equal(session.clinic_id, "c1");
  assert.deepEqual(session.participants, []);
  assert.equal(session.max_segment_ms, 10_000); // the SDK's events span one batch at most
  assert.ok(tap.status().offsetMs === 10_000);
});

test("maxSegmentMs: null leaves the engine's default; shorter than a batch is refused", async () => {
  const { clock, ingest } = setup({ maxSegmentMs: null });
  await clock.advance(500);
  const [session] = eventsOf(ingest, "session.start");
  assert.equal("max_segment_ms" in session, false);
  assert.throws(() => setup({ maxSegmentMs: 100 }), /maxSegmentMs/);
});

test("a server that does not answer clock messages: page clock used, and said", async () => {
  const errors = [];
  const { clock, ingest } = setup({ ingest: { answerClock: false }, onError: (e) => errors.push(e) });
  await clock.advance(3000);
  assert.equal(eventsOf(ingest, "session.start").length, 1);
  assert.ok(errors.some((e) => e.field === "clock"));
});

test("an ingest that acks the clock probe as events: page clock, no probe again, acks in step", async () => {
  const errors = [];
  const { clock, ingest, tap } = setup({ ingest: { answerClock: "ack" }, onError: (e) => errors.push(e) });
  FakeAudioContext.level = () => 0.2;
  await clock.advance(100);
  tap.local({}, { participant: "t1", role: "therapist" });
  await clock.advance(65_000); // two clock refreshes
  assert.equal(ingest.clockSamples, 1);
  assert.ok(errors.some((e) => e.field === "clock"));
  const status = tap.status();
  assert.equal(status.eventsRejected, 0);
  assert.equal(status.eventsDelivered, ingest.accepted.length);
  assert.equal(status.offsetMs, 0);
});

test("clock refreshes wait for the message in flight and never interleave with it", async () => {
  const { clock, ingest, tap } = setup({ ingest: { up: () => 3, down: () => 3 } });
  FakeAudioContext.level = () => 0.2;
  await clock.advance(100);
  tap.local({}, { participant: "t1", role: "therapist" });
  await clock.advance(95_000);
  assert.ok(ingest.clockSamples >= 5 * 4, `${ingest.clockSamples} probes`);
  for (const ws of ingest.sockets) {
    // Each socket: after auth, a probe or a message goes out only once the previous is answered.
    assert.equal(ws.maxPending, 1);
  }
  assert.equal(tap.status().eventsDelivered, ingest.accepted.length);
  assert.equal(tap.status().eventsRejected, 0);
});

test("reconnects after the ingest dies and resends the unacknowledged events byte for byte", async () => {
  let dead = false;
  const { clock, ingest, tap } = setup({ ingest: { up: () => 1, down: () => 1,
    status: () => (dead ? null : 202) } });
  FakeAudioContext.level = () => 0.2;
  await clock.advance(100);
  tap.local({}, { participant: "t1", role: "therapist" });
  await clock.advance(1200);
  dead = true; // stores nothing more, acks nothing
  await clock.advance(1000);
  const unacked = ingest.received.length;
  const lost = ingest.received.filter((text) => !ingest.accepted.some(
    (e) => text.includes(JSON.stringify(e))));
  ingest.crash();
  dead = false;
  await clock.advance(5000);
  assert.ok(ingest.sockets.length >= 2, "reconnected");
  // Every message sent but never acked comes again, the same bytes (repeats are harmless, §9).
  assert.ok(lost.length >= 1, "a message was in flight when the ingest died");
  const resent = ingest.received.slice(unacked).join("\n");
  for (const text of lost) {
    for (const event of JSON.parse(text)) assert.ok(resent.includes(JSON.stringify(event)), "resent identically");
  }
  // No gap: samples every 20 ms throughout, the dead second included.
  const times = [...new Set(eventsOf(ingest, "levels").flatMap((b) => b.samples.map(([ts]) => ts)))].sort();
  for (let i = 1; i < times.length; i++) assert.equal(times[i] - times[i - 1], 20);
  assert.ok(times.length >= 300);
  assert.ok(tap.status().resentEvents >= 1);
});

test("reconnection backs off from 0.5 s, doubling to 15 s, with jitter", async () => {
  const clock = new Clock();
  const ingest = new FakeIngest(clock);
  const opened = [];
  class Refused {
    constructor() {
      opened.push(clock.now);
      clock.setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 0);
    }
    send() { throw new Error("closed"); }
    close() {}
  }
  let r = 0;
  const randoms = [0, 1, 0.5, 0, 1, 0.5, 0, 1, 0.5, 0];
  attach({ endpoint: "http://x", token: "good", session: "s1", clinic: "c1",
    globals: globals(clock, ingest, { WebSocket: Refused, random: () => randoms[r++ % randoms.length] }) });
  await clock.advance(120_000);
  const gaps = opened.slice(1, 11).map((t, i) => t - opened[i]);
  // base 500 * 2^(n-1) capped at 15000, times (0.5 + 0.5 * random)
  const bases = [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000, 15000];
  assert.deepEqual(gaps, bases.map((b, i) => b * (0.5 + 0.5 * randoms[i])));
});

test("a 429 ack: the message waits retry_after_s, then goes again", async () => {
  let limited = true;
  const { clock, ingest } = setup({ ingest: { up: () => 0, down: () => 0,
    status: () => (limited ? 429 : 202) } });
  await clock.advance(100);
  const first = ingest.received.length;
  assert.equal(first, 1); // the session.start message, refused
  await clock.advance(1900); // retry_after_s is 2: nothing again before
  assert.equal(ingest.received.length, 1);
  limited = false;
  await clock.advance(200);
  assert.equal(ingest.received.length, 2);
  assert.equal(ingest.received[1], ingest.received[0]);
  assert.equal(eventsOf(ingest, "session.start").length, 1);
});

test("bounded buffer: the oldest levels are dropped and reported; the session's own events kept", async () => {
  const clock = new Clock();
  const ingest = new FakeIngest(clock, { up: () => 0, down: () => 0 });
  let down = false;
  const Socket = class extends ingest.WebSocket {
    constructor(url) {
      super(url);
      if (down) clock.setTimeout(() => this.serverClose(1006), 0);
    }
  };
  const drops = [];
  const tap = attach({ endpoint: "http://x", token: "good", session: "s1", clinic: "c1",
    maxBufferedEvents: 6, onDrop: (d) => drops.push(d),
    globals: globals(clock, ingest, { WebSocket: Socket }) });
  FakeAudioContext.level = () => 0.3;
  await clock.advance(100);
  tap.local({}, { participant: "t1", role: "therapist" });
  await clock.advance(600);
  down = true;
  ingest.crash();
  await clock.advance(5000); // 10 batches made while down; the buffer holds 6 events
  assert.ok(drops.length >= 1);
  const dropped = drops.reduce((n, d) => n + d.events, 0);
  assert.ok(drops.every((d) => d.reason === "buffer_full" && Object.keys(d.types).join() === "levels"));
  assert.ok(drops.every((d) => d.fromMs <= d.toMs));
  assert.equal(tap.status().pendingEvents, 6);
  assert.equal(tap.status().eventsDropped, dropped);
  down = false;
  const closing = tap.close({ endSession: true });
  await clock.advance(20_000);
  await closing;
  // What was kept arrives; the dropped batches were the oldest ones.
  const kept = eventsOf(ingest, "levels").map((b) => b.samples[0][0]);
  assert.equal(eventsOf(ingest, "session.end").length, 1);
  assert.ok(kept.length >= 5);
  assert.equal(drops[0].fromMs, drops[0].toMs); // one batch at a time, oldest first
});

test("events older than bufferMs are dropped as expired, and reported", async () => {
  const clock = new Clock();
  const ingest = new FakeIngest(clock);
  class Refused {
    constructor() { clock.setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 0); }
    send() {}
    close() {}
  }
  const drops = [];
  const tap = attach({ endpoint: "http://x", token: "good", session: "s1", clinic: "c1",
    bufferMs: 3000, onDrop: (d) => drops.push(d),
    globals: globals(clock, ingest, { WebSocket: Refused }) });
  const receiver = new FakeReceiver(clock);
  tap.remote(receiver, { participant: "c1", role: "client" });
  await clock.advance(10_000);
  assert.ok(drops.length >= 1);
  assert.ok(drops.every((d) => d.reason === "expired"));
  // session.start and participant.join are never dropped; levels of the last 3 s are kept.
  assert.ok(tap.status().pendingEvents >= 2 + 5 && tap.status().pendingEvents <= 2 + 8);
});

test("a refused token: no reconnection, state failed", async () => {
  const clock = new Clock();
  const ingest = new FakeIngest(clock);
  const states = [];
  attach({ endpoint: "http://x", token: "bad", session: "s1", clinic: "c1",
    onState: (s) => states.push(s.state), globals: globals(clock, ingest) });
  await clock.advance(60_000);
  assert.equal(ingest.sockets.length, 1);
  assert.equal(states.at(-1), "failed");
});

test("close({endSession}) flushes the levels, sends session.end last and waits for its ack", async () => {
  const { clock, ingest, tap } = setup({ ingest: { up: () => 1, down: () => 1 } });
  FakeAudioContext.level = () => 0.4;
  await clock.advance(100);
  tap.local({}, { participant: "t1", role: "therapist" });
  await clock.advance(730);
  let done = false;
  const closing = tap.close({ endSession: true }).then((s) => { done = true; return s; });
  await settle();
  assert.equal(done, false);
  await clock.advance(100);
  const status = await closing;
  assert.equal(status.state, "closed");
  assert.equal(status.pendingEvents, 0);
  const types = ingest.accepted.map((e) => e.type);
  assert.equal(types.at(-1), "session.end");
  const samples = eventsOf(ingest, "levels").flatMap((b) => b.samples);
  assert.ok(samples.length >= 36, `${samples.length}`); // the partial last batch too
  assert.ok(ingest.accepted.at(-1).ts_ms >= samples.at(-1)[0]);
});

test("startSession false: no session.start (the session is started elsewhere)", async () => {
  const { clock, ingest } = setup({ startSession: false, clinic: undefined });
  await clock.advance(500);
  assert.equal(eventsOf(ingest, "session.start").length, 0);
});

test("never audio: every message is wire-format events of the allowed types", async () => {
  const { clock, ingest, tap } = setup();
  FakeAudioContext.level = () => 0.3;
  await clock.advance(100);
  tap.local({}, { participant: "t1", role: "therapist" });
  tap.remote(new FakeReceiver(clock), { participant: "c1", role: "client" });
  await clock.advance(3000);
  const allowed = new Set(["session.start", "participant.join", "levels", "network", "session.end"]);
  for (const text of ingest.received) for (const e of JSON.parse(text)) assert.ok(allowed.has(e.type), e.type);
  assert.ok(rms(new Float32Array([1, -1, 1, -1])) === 1);
});

test("mixed audio: contributing sources narrowed to one participant's CSRC", async () => {
  const { clock, ingest, tap } = setup({ ingest: { up: () => 0, down: () => 0 } });
  const mixer = {
    getSynchronizationSources: () => [{ source: 1, timestamp: clock.now, audioLevel: 0.9 }],
    getContributingSources: () => [
      { source: 11, timestamp: Math.floor(clock.now / 20) * 20, audioLevel: 0.1 },
      { source: 12, timestamp: Math.floor(clock.now / 20) * 20, audioLevel: 0.6 }],
  };
  await clock.advance(100);
  tap.remote(mixer, { participant: "c1", role: "client", contributing: true, source: 11 });
  await clock.advance(1100);
  const levels = eventsOf(ingest, "levels").flatMap((b) => b.samples.map(([, l]) => l));
  assert.ok(levels.length >= 40);
  assert.ok(levels.every((l) => l === 0.1));
});

test("a suspended AudioContext is said, and resumed at the first user gesture", async () => {
  const listeners = {};
  const document = { addEventListener: (type, fn) => { listeners[type] = fn; } };
  let resumed = 0;
  class Suspended extends FakeAudioContext {
    constructor() { super(); this.state = "suspended"; }
    async resume() { resumed += 1; }
  }
  const errors = [];
  const { tap } = setup({ extra: { AudioContext: Suspended, document }, onError: (e) => errors.push(e) });
  tap.local({}, { participant: "t1", role: "therapist" });
  assert.ok(errors.some((e) => e.field === "local" && /suspended/.test(e.error)));
  const before = resumed;
  listeners.pointerdown();
  assert.equal(resumed, before + 1);
});
