// Types of the Rapport browser SDK (rapport.js). Wire format: METRICS.md §9 v1.1.

export declare const VERSION: string;

/** Browser globals the SDK uses; each may be replaced (tests pass fakes). */
export interface Globals {
  WebSocket: { new (url: string): WebSocket };
  fetch: typeof fetch;
  performance: { timeOrigin: number; now(): number };
  AudioContext: { new (): AudioContext };
  MediaStream: { new (tracks: MediaStreamTrack[]): MediaStream };
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(id: unknown): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  /** 0 <= r < 1, for the reconnection jitter. */
  random(): number;
  /** Where to listen for the first user gesture when the AudioContext starts suspended. */
  document: { addEventListener(type: string, fn: () => void, options?: object): void } | undefined;
}

export interface AttachOptions {
  /** Rapport's base URL, e.g. "https://rapport.example" (the WebSocket is ENDPOINT/v1/stream). */
  endpoint: string;
  /** A session token (POST /v1/session-tokens), never a long-lived ingest token. */
  /** Base URL of the coach stream when it is not endpoint (rapport ingest apart from the reports). */
  coachEndpoint?: string;
  token: string;
  session: string;
  /** Required when startSession is true (the session.start event carries it). */
  clinic?: string;
  /** Send session.start (default true: the therapist's page starts the session). */
  startSession?: boolean;
  /** max_segment_ms declared on session.start (default 10000; null: the engine's 600000).
   * Set null when another source sends speech segments longer than this into the session. */
  maxSegmentMs?: number | null;
  /** Levels sampling period, 20..50 ms (default 20). */
  sampleMs?: number;
  /** One levels batch per participant this often (default 500 ms). */
  batchMs?: number;
  /** One network event per remote participant this often (default 5000 ms). */
  networkMs?: number;
  /** Clock probes per connection (default 5; the smallest round trip wins). */
  clockProbes?: number;
  /** Clock refresh period (default 30000 ms). */
  clockRefreshMs?: number;
  clockTimeoutMs?: number;
  /** Undelivered levels/network events older than this are dropped (default 120000 ms). */
  bufferMs?: number;
  /** At most this many undelivered events (default 5000); the oldest levels/network go first. */
  maxBufferedEvents?: number;
  maxMessageEvents?: number;
  maxMessageBytes?: number;
  /** First reconnection delay (default 500 ms), doubling up to maxBackoffMs (15000), with jitter. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** close() waits at most this long for the last acks (default 10000 ms). */
  closeTimeoutMs?: number;
  onDrop?: (drop: DropDetail) => void;
  onError?: (error: ErrorDetail) => void;
  onState?: (state: { state: TapState }) => void;
  onRejected?: (rejected: RejectedDetail) => void;
  onCoach?: (update: CoachUpdate) => void;
  /** An AudioContext of the page's to analyse the local microphone in (else the SDK makes one). */
  audioContext?: AudioContext;
  globals?: Partial<Globals>;
}

export type TapState = "connecting" | "open" | "reconnecting" | "failed" | "closed";

export interface DropDetail {
  reason: "buffer_full" | "expired" | "closed";
  /** Number of events dropped. */
  events: number;
  /** Dropped events per type, e.g. {"levels": 3}. */
  types: Record<string, number>;
  /** Session-clock span of the dropped events' known times (null when never stamped). */
  fromMs: number | null;
  toMs: number | null;
}

export interface ErrorDetail {
  field?: string;
  status?: number;
  error: string;
  retryInMs?: number;
}

export interface RejectedDetail {
  status: number;
  error?: string;
  field?: string;
  errors?: { index: number; field: string; error: string }[];
  events: object[];
}

export interface Nudge {
  kind: "therapist_dominance" | "interruption_burst" | "long_monologue" | "long_silence" | "network_degraded" | string;
  state: "started" | "ended";
  text: string;
}

/** One `event: coach` of GET /v1/sessions/{session_id}/coach (docs/sdk.md). */
export interface CoachUpdate {
  session_id: string;
  at_ms: number;
  talk_share_10min: number | null;
  monologue_s: number;
  interruptions_made: number | { successful: number; unsuccessful: number };
  client_longest_uninterrupted_s: number | null;
  nudges: Nudge[];
}

/** An RTCRtpReceiver, or any object giving its sources the same way (platform adapters). */
export interface ReceiverLike {
  getSynchronizationSources(): { source: number; timestamp: number; audioLevel?: number }[];
  getContributingSources?(): { source: number; timestamp: number; audioLevel?: number }[];
  getStats?(): Promise<RTCStatsReport | Map<string, any>>;
}

export interface Participant {
  participant: string;
  role: "therapist" | "client" | "other" | string;
}

export interface Status {
  state: TapState;
  /** Session clock minus page clock (ms), null until measured. */
  offsetMs: number | null;
  /** Bound on the offset's error: half the best probe's round trip (ms). */
  offsetErrorMs: number | null;
  /** Events not yet acknowledged (waiting, unstamped or in flight). */
  pendingEvents: number;
  messagesSent: number;
  bytesSent: number;
  eventsDelivered: number;
  eventsRejected: number;
  eventsDropped: number;
  /** Reconnection attempts (each backoff step counts). */
  reconnects: number;
  resentEvents: number;
}

export interface CoachHandle {
  stop(): void;
}

export interface Tap {
  /** The local microphone: WebAudio AnalyserNode RMS, linear 0..1. */
  local(track: MediaStreamTrack, participant: Participant): Tap;
  /** A remote participant's receiver: getSynchronizationSources() (or getContributingSources()). */
  remote(receiver: ReceiverLike, participant: Participant & { contributing?: boolean; source?: number }): Tap;
  /** RTT, jitter and loss of the remote participants' receivers of this connection. */
  network(pc: { getReceivers(): ReceiverLike[] }): Tap;
  /** Render the private coach (therapist's session token only) into element. */
  coach(element: HTMLElement | null, options?: { onUpdate?: (update: CoachUpdate) => void }): CoachHandle;
  on(type: "drop", listener: (d: DropDetail) => void): () => void;
  on(type: "error", listener: (e: ErrorDetail) => void): () => void;
  on(type: "state", listener: (s: { state: TapState }) => void): () => void;
  on(type: "rejected", listener: (r: RejectedDetail) => void): () => void;
  on(type: "coach", listener: (u: CoachUpdate) => void): () => void;
  status(): Status;
  /** Flush, optionally end the session (session.end) or leave, wait for acks, disconnect. */
  close(options?: { endSession?: boolean; leave?: boolean }): Promise<Status>;
}

export declare function attach(options: AttachOptions): Tap;
export declare function streamUrl(endpoint: string): string;
export declare function clockSample(c0: number, s: number, c1: number): { offsetMs: number; errorMs: number; rttMs: number; at: number };
export declare function rms(samples: ArrayLike<number>): number;
export declare function networkEvent(report: RTCStatsReport | Map<string, any>, previous?: object): {
  rtt_ms: number | null; jitter_ms: number | null; loss_pct: number | null; jitter_buffer_ms: number | null; counters: object | null;
};
export declare function duration(seconds: number | null | undefined): string;
export declare function coachLines(update: CoachUpdate): [string, string][];
export declare function nudgeText(nudge: Partial<Nudge>): string;
export declare class SseParser {
  feed(chunk: string): { event: string; data: string; id: string | null }[];
}
