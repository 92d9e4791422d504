"""Optional ``silero`` backend of Rapport's voice activity detector (issue 4, part 2).

Silero VAD v5 (MIT licence) is a small recurrent network; its ONNX file ships inside the
``silero-vad`` wheel (``pip install 'rapport[silero]'`` and ``pip install --no-deps
silero-vad``: the wheel's metadata asks for torch, which the ONNX file does not need). The
wheel's Python package imports torch, so it is never imported here: the file is located with
:func:`importlib.util.find_spec` (which does not run the package) and run with onnxruntime
directly.

:class:`SileroBatchVad` decides many participant streams at once, the way an ingest process
would run it: every window (512 samples, 32 ms at 16 kHz, plus the 64 samples before it as
context, as the model expects) that is complete in any stream joins one batched inference with
its stream's recurrent state. Each 20 ms frame of a stream gets the speech probability of the
window holding the frame's last sample (so a decision may wait up to 32 ms for the window to
fill), turned into ``0``/``1`` with Silero's own hysteresis: speech starts at ``threshold``
and ends below ``threshold - 0.15``. As with :class:`models.vad.StreamingVad`, decisions depend
only on the audio, never on how it was cut into chunks, and the output is a ``0``/``1`` string
per completed frame, ready for wire ``activity`` events (METRICS.md §1/§9).

Pure code apart from loading the model file once; no audio is kept beyond one window.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import ConfigError

RATE = 16_000
WINDOW = 512  # samples per inference at 16 kHz (Silero v5)
CONTEXT = 64  # samples of the previous window prepended to each input
STATE_SHAPE = (2, 128)  # per stream; the model's state input is (2, batch, 128)
MODEL_FILE = "silero_vad.onnx"


def silero_model_path() -> Path:
    """The ONNX file inside the installed ``silero-vad`` wheel (without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("vad.backend", "silero needs the silero-vad wheel: pip install "
                                         "'rapport[silero]' && pip install --no-deps silero-vad")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.exists():
        raise ConfigError("vad.backend", f"{path} missing from the silero-vad wheel")
    return path


def load_session(path: Path | None = None, threads: int = 1) -> Any:
    """An onnxruntime session on the model, on ``threads`` CPU threads (one by default: an
    ingest process runs one per core)."""
    try:
        import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise ConfigError("vad.backend", "silero needs onnxruntime: "
                                         "pip install 'rapport[silero]'") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path or silero_model_path()), options,
                                        providers=["CPUExecutionProvider"])


class _Stream:
    """One participant's pending samples, recurrent state and frame bookkeeping."""

    __slots__ = ("base", "context", "frames", "pending", "probabilities", "speaking", "state")

    def __init__(self) -> None:
        self.pending = np.zeros(0, dtype=np.float32)
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.probabilities: list[float] = []  # per window, from window ``base`` on
        self.base = 0
        self.frames = 0  # frames decided
        self.speaking = False


class SileroBatchVad:
    """Silero VAD over ``streams`` participant streams, batched (see the module docstring).

    ``frame_ms`` must give whole samples at 16 kHz; ``threshold`` is the speech probability
    at which speech starts (Silero's default 0.5).
    """

    def __init__(self, streams: int, *, frame_ms: int = 20, threshold: float = 0.5,
                 session: Any = None) -> None:
        if streams < 1:
            raise ConfigError("streams", "must be >= 1")
        if frame_ms <= 0 or (RATE * frame_ms) % 1000:
            raise ConfigError("vad.frame_ms", "must give whole samples at 16 kHz")
        if not 0.15 < threshold < 1:
            raise ConfigError("vad.threshold", "must be in (0.15, 1)")
        self.frame_samples = RATE * frame_ms // 1000
        self.threshold = threshold
        self.off_threshold = threshold - 0.15
        self.session = session if session is not None else load_session()
        self._rate = np.array(RATE, dtype=np.int64)
        self.streams = [_Stream() for _ in range(streams)]

    def push(self, chunks: Sequence[npt.ArrayLike | None]) -> list[str]:
        """Add 16 kHz mono float samples per stream (``None``: nothing new); return, per
        stream, one ``0``/``1`` per frame now decided."""
        if len(chunks) != len(self.streams):
            raise ValueError(f"expected {len(self.streams)} chunks, got {len(chunks)}")
        for stream, chunk in zip(self.streams, chunks, strict=True):
            if chunk is not None:
                samples = np.asarray(chunk, dtype=np.float32).reshape(-1)
                stream.pending = np.concatenate((stream.pending, samples))
        while True:
            ready = [s for s in self.streams if len(s.pending) >= WINDOW]
            if not ready:
                break
            self._infer(ready)
        return [self._decide(stream) for stream in self.streams]

    def _infer(self, ready: list[_Stream]) -> None:
        batch = np.empty((len(ready), CONTEXT + WINDOW), dtype=np.float32)
        state = np.empty((STATE_SHAPE[0], len(ready), STATE_SHAPE[1]), dtype=np.float32)
        for row, stream in enumerate(ready):
            batch[row, :CONTEXT] = stream.context
            batch[row, CONTEXT:] = stream.pending[:WINDOW]
            state[:, row] = stream.state
        output, new_state = self.session.run(None, {"input": batch, "state": state,
                                                    "sr": self._rate})
        for row, stream in enumerate(ready):
            stream.context = batch[row, -CONTEXT:].copy()
            stream.pending = stream.pending[WINDOW:]
            stream.state = new_state[:, row].copy()
            stream.probabilities.append(float(output[row, 0]))

    def _decide(self, stream: _Stream) -> str:
        out = []
        n = self.frame_samples
        while True:
            window = ((stream.frames + 1) * n - 1) // WINDOW  # holds the frame's last sample
            if window - stream.base >= len(stream.probabilities):
                break
            probability = stream.probabilities[window - stream.base]
            limit = self.off_threshold if stream.speaking else self.threshold
            stream.speaking = probability >= limit
            out.append("1" if stream.speaking else "0")
            stream.frames += 1
        # Windows before the next frame's window are no longer needed.
        needed = ((stream.frames + 1) * n - 1) // WINDOW
        if needed > stream.base:
            del stream.probabilities[: needed - stream.base]
            stream.base = needed
        return "".join(out)


class StreamingSileroVad:
    """One stream with :class:`models.vad.StreamingVad`'s interface (``push`` -> ``0``/``1``)."""

    def __init__(self, *, frame_ms: int = 20, threshold: float = 0.5,
                 session: Any = None) -> None:
        self._batch = SileroBatchVad(1, frame_ms=frame_ms, threshold=threshold,
                                     session=session)

    def push(self, samples: npt.ArrayLike) -> str:
        return self._batch.push([samples])[0]
