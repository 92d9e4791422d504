"""Frame placement and batching of the WebRTC ingest (services/ingest/frames.py, audio.py,
network.py): levels placed by RTP timestamp (DTX gaps, loss, reordering, wrap-around), batches
of batch_ms with increasing seq, audio placed by pts (lost packets concealed), network events
from RTCP stats."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from prometheus_client import REGISTRY

from models.events import Activity, parse_event
from services.ingest.audio import CONCEAL_S, AudioVadFramer, gap_fill
from services.ingest.frames import (
    MAX_FIRST_DELAY_MS,
    SILENT_LEVEL,
    FrameBatcher,
    FrameZero,
    RtpLevelFramer,
)
from services.ingest.network import MAX_LEAD_MS, NetworkSampler, ReadingOrder

TPF = 960  # RTP ticks per 20 ms frame at 48 kHz
REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def levels_of(batches: list) -> bytes:
    return b"".join(b.data for b in batches)


def test_batcher_emits_full_batches_in_order_with_increasing_seq() -> None:
    batcher = FrameBatcher(1000, 20, 100, "levels", first_seq=7)
    batcher.put(0, bytes([10, 11, 12]))
    batcher.put(6, bytes([30]))
    assert batcher.ready(4) == []  # the first batch (frames 0..4) is not complete
    first, second = batcher.ready(10)
    assert (first.seq, first.start_ms, first.data) == (7, 1000, bytes([10, 11, 12, 127, 127]))
    assert (second.seq, second.start_ms, second.data) == (8, 1100, bytes([127, 30, 127, 127, 127]))
    last = batcher.flush(12)
    assert [(b.seq, b.start_ms, len(b.data)) for b in last] == [(9, 1200, 2)]


def test_batcher_counts_frames_that_arrive_after_their_batch() -> None:
    batcher = FrameBatcher(0, 20, 40, "voiced")
    batcher.ready(2)
    batcher.put(1, b"111")
    assert batcher.late == 1
    (batch,) = batcher.flush(4)
    assert batch.data == b"11"


def test_levels_are_placed_by_rtp_timestamp_so_a_dtx_gap_stays_silent() -> None:
    framer = RtpLevelFramer(batch_ms=200, hold_ms=0)
    ts0 = 123_456
    out = []
    # 3 packets, then DTX: no packets for 5 frames, then 2 packets.
    for i, level in [(0, 30), (1, 31), (2, 32), (8, 40), (9, 41)]:
        out += framer.packet(ts0 + i * TPF, level, arrival_ms=5_000 + i * 20)
    out += framer.finish(5_000 + 10 * 20)
    assert levels_of(out) == bytes([30, 31, 32, 127, 127, 127, 127, 127, 40, 41])
    assert out[0].start_ms == 5_000  # the first packet's arrival is frame 0
    # counting packets instead would have put level 40 at frame 3
    assert [b.seq for b in out] == [0]


def test_the_v_bit_is_not_read_and_missing_levels_stay_silent() -> None:
    framer = RtpLevelFramer(batch_ms=60, hold_ms=0)
    framer.packet(0, 20, 0)
    framer.packet(TPF, None, 20)  # no extension on this packet
    framer.packet(2 * TPF, 127, 40)
    assert levels_of(framer.finish(60)) == bytes([20, SILENT_LEVEL, 127])
    assert framer.missing_level == 1


def test_reordered_packets_within_the_hold_are_placed_and_late_ones_counted() -> None:
    framer = RtpLevelFramer(batch_ms=100, hold_ms=100)
    out = framer.packet(0, 1, 0)
    out += framer.packet(2 * TPF, 3, 40)
    out += framer.packet(TPF, 2, 60)  # reordered, well within the hold
    out += framer.packet(5 * TPF, 6, 100)
    out += framer.tick(220)  # frames 0..4 complete at 100 + hold
    out += framer.packet(3 * TPF, 4, 230)  # too late: its batch is out
    out += framer.finish(240)
    data = levels_of(out)
    assert data[:6] == bytes([1, 2, 3, 127, 127, 6])
    assert framer.batcher is not None and framer.batcher.late == 1


def test_rtp_timestamps_wrap_around() -> None:
    framer = RtpLevelFramer(batch_ms=100, hold_ms=0)
    start = (1 << 32) - 2 * TPF
    for i in range(5):
        framer.packet((start + i * TPF) % (1 << 32), 10 + i, i * 20)
    assert levels_of(framer.finish(100)) == bytes([10, 11, 12, 13, 14])


def test_a_longer_packet_time_covers_its_frames() -> None:
    framer = RtpLevelFramer(batch_ms=2000, hold_ms=0)
    out = []
    for i in range(14):  # 40 ms packets
        out += framer.packet(i * 2 * TPF, 20 + i, i * 40)
    data = levels_of(out + framer.finish(14 * 40))
    # one frame per packet until 10 packets confirm the packet time, then two
    assert data[:4] == bytes([20, 127, 21, 127])
    assert data[-6:] == bytes([31, 31, 32, 32, 33, 33])


def test_silence_is_emitted_by_the_clock_during_a_long_dtx_pause() -> None:
    framer = RtpLevelFramer(batch_ms=1000, hold_ms=200)
    framer.packet(0, 30, 10_000)
    assert framer.tick(11_100) == []
    (batch,) = framer.tick(11_200)  # 1 s batch + 200 ms hold, no packet needed
    assert batch.data == bytes([30]) + bytes([127]) * 49


def test_a_sender_behind_real_time_loses_no_frames() -> None:
    # An overloaded sender: 150 packets of 20 ms reach the ingest one every 40 ms, so by the
    # end it trails the wall clock by 3 s, far beyond the hold.
    framer = RtpLevelFramer(batch_ms=1000, hold_ms=200)
    out = []
    for i in range(150):
        out += framer.packet(i * TPF, i % 100, arrival_ms=i * 40)
        out += framer.tick(i * 40 + 20)
    assert framer.batcher is not None and framer.batcher.late == 0
    assert len(out) == 2  # batches are published as the media reaches them, not the clock
    out += framer.finish(150 * 40)
    assert levels_of(out)[:150] == bytes(i % 100 for i in range(150))


def test_a_timestamp_jump_ahead_does_not_publish_the_future_at_once() -> None:
    framer = RtpLevelFramer(batch_ms=1000, hold_ms=200)
    out = framer.packet(0, 30, 0)
    out += framer.packet(3_000 * 48, 40, 20)  # 3 s ahead of the previous packet, 20 ms later
    assert out == []
    assert framer.tick(1_199) == []
    (batch,) = framer.tick(1_200)  # the wall clock still paces publication
    assert batch.data[0] == 30


def test_a_late_first_packet_does_not_move_frame_zero() -> None:
    # The ingest's event loop is busy for the stream's first 400 ms: the packets sent
    # meanwhile are all read at 10,400; those after arrive on time (3 ms in transit), and
    # frame 0 is where they say the stream began.
    framer = RtpLevelFramer(batch_ms=1000, hold_ms=200)
    out = []
    for i in range(60):
        out += framer.packet(i * TPF, 30, arrival_ms=max(10_400, 10_000 + i * 20 + 3))
    out += framer.finish(11_300)
    assert out[0].start_ms == 10_003
    assert framer.origin_ms == 10_003


def test_frame_zero_ignores_a_timestamp_jump_and_never_moves_after_the_first_batch() -> None:
    zero = FrameZero(48_000)
    assert zero.packet(1_000, 5_000) == 5_000
    assert zero.packet(1_000 + (MAX_FIRST_DELAY_MS + 500) * 48, 5_020) == 5_000  # a jump
    assert zero.packet(1_000 + 100 * 48, 4_950) == 4_850  # on time: the first was late
    assert zero.packet((1_000 - 20 * 48) % (1 << 32), 4_900) == 4_850  # reordered, later
    batcher = FrameBatcher(5_000, 20, 40, "levels")
    batcher.move_origin(4_990)
    batcher.ready(2)
    batcher.move_origin(4_000)  # a batch carries 4,990 already
    assert batcher.origin_ms == 4_990


def test_batches_are_valid_wire_activity_events() -> None:
    framer = RtpLevelFramer(batch_ms=1000, hold_ms=0, first_seq=3)
    batches = []
    for i in range(60):
        batches += framer.packet(i * TPF, 40, 1_000 + i * 20)
    batches += framer.finish(2_200)
    events = [parse_event(b.to_event("s1", "p1")) for b in batches]
    assert all(isinstance(e, Activity) for e in events)
    assert [(e.seq, e.start_ms, e.frames) for e in events] == [(3, 1000, 50), (4, 2000, 10)]


def test_audio_is_placed_by_pts_and_gaps_become_silence() -> None:
    rate, frame = 48_000, 960
    t = np.arange(frame) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    framer = AudioVadFramer(50_000, batch_ms=1000)
    out = []
    pts = 0
    for i in range(150):  # 3 s: tone, a 1 s gap without frames, tone again
        if 50 <= i < 100:
            continue
        out += framer.frame(np.repeat(tone, 2), 2, rate, i * frame)
        pts = i * frame
    out += framer.finish()
    assert pts == 149 * frame
    voiced = b"".join(b.data for b in out)
    assert len(voiced) == 150  # frames placed on the media clock, gap included
    assert framer.gap_samples == 50 * frame
    assert framer.concealed_samples == 0  # 1 s is no lost packet: DTX or an outage
    assert voiced[60:95] == b"0" * 35  # the gap is silent
    assert [b.seq for b in out] == [0, 1, 2]
    assert out[0].start_ms == 50_000 and out[1].start_ms == 51_000


def test_network_events_need_rtt_and_report_loss_per_interval() -> None:
    sampler = NetworkSampler("s1", "p1")
    inbound = SimpleNamespace(type="inbound-rtp", kind="audio", jitter=480,
                              packetsReceived=95, packetsLost=5)
    assert sampler.sample([inbound], 1_000) is None  # no RTT, no event
    rtt = SimpleNamespace(type="remote-inbound-rtp", roundTripTime=0.123)
    inbound2 = SimpleNamespace(type="inbound-rtp", kind="audio", jitter=960,
                               packetsReceived=195, packetsLost=5)
    event = sampler.sample([inbound2, rtt], 6_000)
    assert event == {"type": "network", "session_id": "s1", "participant_id": "p1",
                     "ts_ms": 6_000, "rtt_ms": 123.0, "jitter_ms": 20.0, "loss_pct": 0.0}
    parse_event(event)


def reading(ts_ms: int) -> dict[str, object]:
    return {"type": "network", "session_id": "s1", "participant_id": "p1", "ts_ms": ts_ms,
            "rtt_ms": 50.0}


def test_a_reading_waits_for_the_participants_frames_to_reach_it() -> None:
    """An ingest behind its packets (its event loop held up) publishes a participant's frames
    late; a reading stamped with the clock meanwhile must not run more than MAX_LEAD_MS ahead
    of them, or the engine rejects those frames as late (METRICS.md §9; services/ingest/
    network.py, "Order")."""
    order = ReadingOrder()
    assert order.frames(10_000) == []
    # In normal running the frames trail the clock by a batch and the hold: out at once.
    assert order.reading(reading(11_400), media_started=True) == [reading(11_400)]
    # The ingest falls 6 s behind: readings taken at 17 s and 22 s wait for the frames...
    assert order.reading(reading(17_000), media_started=True) == []
    assert order.reading(reading(22_000), media_started=True) == []
    assert order.held == 2
    assert order.frames(13_000) == []
    # ...and go out, in order, once the frames are within MAX_LEAD_MS of each.
    assert order.frames(17_000 - MAX_LEAD_MS) == [reading(17_000)]
    assert order.frames(21_000) == [reading(22_000)]
    assert order.held == 0


def test_readings_of_a_participant_without_frames_and_at_the_end() -> None:
    order = ReadingOrder()
    # No packet yet: nothing to keep order with, the reading goes out.
    assert order.reading(reading(1_000), media_started=False) == [reading(1_000)]
    # The first packet has come, its first batch not yet: wait for it.
    assert order.reading(reading(6_000), media_started=True) == []
    assert order.frames(4_500) == [reading(6_000)]
    # The participant leaves with a reading still ahead of its frames: published then.
    assert order.reading(reading(20_000), media_started=True) == []
    assert order.flush() == [reading(20_000)] and order.held == 0
    # Frames that stop for good cannot hold readings without bound.
    capped = ReadingOrder(max_held=3)
    capped.frames(0)
    out = [r for ts in range(10_000, 60_000, 5_000)
           for r in capped.reading(reading(ts), media_started=True)]
    assert [r["ts_ms"] for r in out] == list(range(10_000, 45_000, 5_000))
    assert capped.held == 3


def test_a_gap_of_lost_packets_repeats_the_audio_before_it_and_a_longer_one_is_zeros() -> None:
    recent = np.arange(1, 101, dtype=np.float32)
    fill, concealed = gap_fill(recent, 30, 60)
    assert concealed and fill.tolist() == recent[70:].tolist()
    for gap, limit, held in ((61, 60, recent), (30, 60, recent[:20]), (30, 0, recent)):
        fill, concealed = gap_fill(held, gap, limit)
        assert not concealed and fill.tolist() == [0.0] * gap
    assert gap_fill(recent, 0, 60)[0].size == 0


def test_lost_packets_leave_the_vad_deciding_as_if_none_were_lost() -> None:
    """aiortc conceals nothing: a lost packet is a frame missing from the pts sequence. Up to
    CONCEAL_S the framer fills it with the audio before it (services/ingest/audio.py), so the
    VAD hears the voice or the room go on. Real speech (the telephone sample, 30 s) with 72 of
    its 1,500 packets lost: the VAD's frames differ from those without loss in 5 places;
    filled with zeros, as before, in 56 (measured 2026-12-07 with Rapport's own VAD)."""
    audio, rate = sf.read(REAL / "pyannote_sample.flac", dtype="int16")
    frame = rate // 50
    assert round(CONCEAL_S * rate) >= 3 * frame  # three lost packets in a row are concealed
    count = len(audio) // frame
    lost = set(np.flatnonzero(np.random.default_rng(3).random(count) < 0.05).tolist()) - {0}

    def voiced(conceal_s: float, losing: set[int]) -> tuple[npt.NDArray[np.bool_], int]:
        framer = AudioVadFramer(0, batch_ms=1000, conceal_s=conceal_s)
        out = []
        for i in range(count):
            if i not in losing:
                out += framer.frame(audio[i * frame:(i + 1) * frame], 1, rate, i * frame)
        out += framer.finish()
        assert framer.gap_samples == len(losing) * frame
        data = b"".join(b.data for b in sorted(out, key=lambda b: b.seq))
        return np.frombuffer(data, dtype=np.uint8) == ord("1"), framer.concealed_samples

    whole, _ = voiced(CONCEAL_S, set())
    before = REGISTRY.get_sample_value("rapport_webrtc_audio_gap_seconds_total",
                                       {"fill": "concealed"}) or 0.0
    concealed, samples = voiced(CONCEAL_S, lost)
    after = REGISTRY.get_sample_value("rapport_webrtc_audio_gap_seconds_total",
                                      {"fill": "concealed"})
    assert after == pytest.approx(before + len(lost) * 0.02)  # ops see the loss concealed
    zeros, none = voiced(0.0, lost)
    assert len(lost) == 72 and samples == len(lost) * frame and none == 0
    assert len(whole) == len(concealed) == len(zeros) == count  # none lost from the grid
    assert int(np.sum(concealed != whole)) <= 10
    assert int(np.sum(zeros != whole)) >= 40  # the counterfactual: zeros cut the speech
