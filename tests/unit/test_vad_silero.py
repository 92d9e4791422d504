"""The optional ``silero`` VAD backend (models/vad_silero.py; issue 4): decisions depend only on
the audio, never on its chunking nor on which other streams share the batch; the ingest's
backend choice. Skipped when onnxruntime or the silero-vad wheel is missing, except with
``CI=true`` (.ci/run installs them), where a missing backend fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models.errors import ConfigError

AUDIO = Path(__file__).resolve().parents[1] / "data" / "audio"


def _session() -> object:
    from models.vad_silero import load_session
    try:
        return load_session()
    except ConfigError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"silero backend missing in CI: {error}")
        pytest.skip(f"silero backend not installed: {error}")


@pytest.fixture(scope="module")
def session() -> object:
    return _session()


def clips() -> list[tuple[np.ndarray, str]]:
    out = []
    for path in sorted(AUDIO.glob("*.json"))[:3]:
        audio, rate = sf.read(path.with_suffix(".flac"), dtype="float32")
        assert rate == 16_000
        out.append((audio, json.loads(path.read_text())["voiced"]))
    return out


def test_decisions_do_not_depend_on_chunking(session: object) -> None:
    from models.vad_silero import StreamingSileroVad
    audio, labels = clips()[0]
    whole = StreamingSileroVad(session=session).push(audio)
    rng = np.random.default_rng(4)
    vad = StreamingSileroVad(session=session)
    out, at = [], 0
    while at < len(audio):
        size = int(rng.integers(0, 3000))
        out.append(vad.push(audio[at:at + size]))
        at += size
    assert "".join(out) == whole
    # every frame whose last sample lies in a complete 512-sample window
    assert vad.frames_decided == len(whole) == len(audio) // 512 * 512 // 320
    truth = np.frombuffer(labels.encode(), dtype=np.uint8) == ord("1")
    predicted = np.frombuffer(whole.encode(), dtype=np.uint8) == ord("1")
    n = min(len(truth), len(predicted))
    assert np.mean(truth[:n] == predicted[:n]) > 0.85


def test_batched_streams_decide_as_each_alone(session: object) -> None:
    from models.vad_silero import SileroBatchVad, StreamingSileroVad
    streams = [audio for audio, _ in clips()]
    alone = [StreamingSileroVad(session=session).push(audio) for audio in streams]
    batch = SileroBatchVad(len(streams), session=session)
    out = ["" for _ in streams]
    rng = np.random.default_rng(5)
    at = [0] * len(streams)
    while any(a < len(s) for a, s in zip(at, streams, strict=True)):
        chunks: list[np.ndarray | None] = []
        for k, audio in enumerate(streams):
            if rng.random() < 0.3:  # streams out of step: some send nothing this time
                chunks.append(None)
                continue
            size = int(rng.integers(100, 4000))
            chunks.append(audio[at[k]:at[k] + size])
            at[k] += size
        for k, text in enumerate(batch.push(chunks)):
            out[k] += text
    assert out == alone
    with pytest.raises(ValueError):
        batch.push([None])


def test_bad_settings_name_the_field(session: object) -> None:
    from models.vad_silero import SileroBatchVad
    for kwargs, field in (({"frame_ms": 0}, "vad.frame_ms"), ({"threshold": 0.1},
                                                               "vad.threshold")):
        with pytest.raises(ConfigError) as raised:
            SileroBatchVad(2, session=session, **kwargs)  # type: ignore[arg-type]
        assert raised.value.field == field


def test_the_ingest_backend_is_chosen_and_shares_one_session(session: object) -> None:
    from services.ingest import IngestConfig
    from services.ingest.vad_backend import VadBackend
    backend = VadBackend("silero")
    first, second = backend.create(), backend.create()
    assert first._batch.session is second._batch.session  # type: ignore[attr-defined]
    assert first.frame_samples == 320
    assert type(VadBackend().create()).__name__ == "StreamingVad"
    with pytest.raises(ConfigError) as raised:
        IngestConfig(vad_backend="webrtc")
    assert raised.value.field == "vad_backend"
