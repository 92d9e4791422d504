// The coach: SSE parsing, plain-language rendering into an ARIA live region, the token sent in
// a header (never the URL), and no retry when the stream is refused (not the therapist).
import { test } from "node:test";
import assert from "node:assert/strict";

import { attach, SseParser, coachLines, duration, nudgeText, networkEvent } from "../rapport.js";
import { Clock, FakeIngest, globals, settle } from "./fakes.js";

class Node {
  constructor(tag) { this.tag = tag; this.children = []; this.attributes = {}; this.dataset = {}; this.textContent = ""; this.ownerDocument = doc; }
  setAttribute(k, v) { this.attributes[k] = String(v); }
  appendChild(c) { this.children.push(c); return c; }
  replaceChildren(...c) { this.children = c; }
}
const doc = { createElement: (tag) => new Node(tag) };

function streamOf(chunks) {
  const encoder = new TextEncoder();
  let i = 0;
  return { getReader: () => ({ read: async () => (i < chunks.length
    ? { value: encoder.encode(chunks[i++]), done: false } : new Promise(() => {})) }) }; // then open
}

test("SSE parser: events split across chunks, comments and ids", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.feed(": keepalive\nevent: coa"), []);
  const out = parser.feed("ch\nid: 3\ndata: {\"a\":\ndata: 1}\n\nevent: coach\ndata: x\r\n\r\n");
  assert.deepEqual(out, [{ event: "coach", data: "{\"a\":\n1}", id: "3" }, { event: "coach", data: "x", id: "3" }]);
});

test("plain-language lines", () => {
  assert.equal(duration(45), "45 s");
  assert.equal(duration(125), "2 min 5 s");
  assert.equal(duration(null), "—");
  const lines = Object.fromEntries(coachLines({ talk_share_10min: 0.714, monologue_s: 0,
    interruptions_made: { successful: 2, unsuccessful: 1 }, client_longest_uninterrupted_s: 95 }));
  assert.match(lines.talk_share, /71 %/);
  assert.equal(lines.monologue, "You are not speaking");
  assert.match(lines.interruptions, /: 3$/);
  assert.match(lines.client_longest, /1 min 35 s/);
  const empty = Object.fromEntries(coachLines({ talk_share_10min: null, interruptions_made: null }));
  assert.match(empty.talk_share, /not enough speech/);
  assert.match(empty.interruptions, /not visible/); // an exclusive source cannot see overlaps
  assert.equal(nudgeText({ kind: "long_monologue", state: "started", text: "Server text." }), "Server text.");
  assert.match(nudgeText({ kind: "long_silence", state: "started" }), /therapeutic/);
});

test("coach(element): renders updates, nudges in a polite live region, token in a header", async () => {
  const clock = new Clock();
  const ingest = new FakeIngest(clock);
  const calls = [];
  const update = { session_id: "s1", at_ms: 5000, talk_share_10min: 0.7, monologue_s: 130,
    interruptions_made: 1, client_longest_uninterrupted_s: 40,
    nudges: [{ kind: "long_monologue", state: "started", text: "You have spoken for over 2 minutes." }] };
  const fetch = async (url, init) => {
    calls.push({ url, init });
    return { status: 200, ok: true, body: streamOf([`event: coach\ndata: ${JSON.stringify(update)}\n\n`]) };
  };
  const tap = attach({ endpoint: "http://r.test", token: "good-therapist", session: "s 1", clinic: "c1",
    globals: globals(clock, ingest, { fetch }) });
  const element = new Node("div");
  const seen = [];
  tap.on("coach", (u) => seen.push(u));
  const handle = tap.coach(element);
  await settle(); await settle();
  assert.equal(element.dataset.rapportCoach, "live");
  handle.stop();
  assert.equal(calls[0].url, "http://r.test/v1/sessions/s%201/coach");
  assert.equal(calls[0].init.headers.Authorization, "Bearer good-therapist");
  assert.ok(!calls[0].url.includes("good-therapist"));
  assert.equal(seen.length, 1);
  assert.equal(element.attributes.role, "region");
  const [list, live] = element.children;
  assert.equal(live.attributes["aria-live"], "polite");
  assert.equal(live.attributes.role, "status");
  assert.equal(live.textContent, "You have spoken for over 2 minutes.");
  assert.match(list.children[0].textContent, /70 %/);
  assert.match(list.children[1].textContent, /2 min 10 s/);
});

test("coach refused (client's token, coach off): shown, not retried", async () => {
  for (const status of [403, 404]) {
    const clock = new Clock();
    const ingest = new FakeIngest(clock);
    let calls = 0;
    const fetch = async () => { calls += 1; return { status, ok: false, body: null }; };
    const tap = attach({ endpoint: "http://r.test", token: "good", session: "s1", clinic: "c1",
      globals: globals(clock, ingest, { fetch }) });
    const element = new Node("div");
    tap.coach(element);
    await settle();
    await clock.advance(60_000);
    assert.equal(calls, 1);
    assert.equal(element.dataset.rapportCoach, `off-${status}`);
  }
});

test("network event: RTT from the candidate pair, jitter, loss and jitter-buffer delay per interval", () => {
  const stats = (lost, received, delay, emitted) => new Map([
    ["cp", { type: "candidate-pair", nominated: true, state: "succeeded", currentRoundTripTime: 0.0123 }],
    ["in", { type: "inbound-rtp", kind: "audio", jitter: 0.0042, packetsLost: lost, packetsReceived: received,
      jitterBufferDelay: delay, jitterBufferEmittedCount: emitted }],
  ]);
  const first = networkEvent(stats(0, 100, 4800, 96000), undefined);
  assert.deepEqual([first.rtt_ms, first.jitter_ms, first.loss_pct, first.jitter_buffer_ms], [12.3, 4.2, 0, 50]);
  const second = networkEvent(stats(5, 195, 7200, 144000), first.counters);
  assert.equal(second.loss_pct, 5); // 5 lost of 100 in this interval
  assert.equal(second.jitter_buffer_ms, 50);
});

test("coach: event revoked ends the stream for good", async () => {
  const clock = new Clock();
  const ingest = new FakeIngest(clock);
  let calls = 0;
  const fetch = async () => { calls += 1; return { status: 200, ok: true, body: streamOf(["event: revoked\ndata: {}\n\n"]) }; };
  const tap = attach({ endpoint: "http://r.test", token: "good", session: "s1", clinic: "c1",
    globals: globals(clock, ingest, { fetch }) });
  const element = new Node("div");
  tap.coach(element);
  await settle(); await settle();
  await clock.advance(60_000);
  assert.equal(calls, 1);
  assert.equal(element.dataset.rapportCoach, "off-revoked");
});
