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


class SileroBatchVad:
    """Silero VAD over ``streams`` participant streams, batched (see the module docstring).

    ``frame_ms`` must give whole samples at 16 kHz; ``threshold`` is the speech probability
    at which speech starts (Silero's default 0.5).

    The streams' audio lives in one ``(streams, capacity)`` array, each row the stream's last
    ``CONTEXT`` samples followed by its pending ones, so a window's model input (context and
    window) is a slice of its row, and the windows of every stream at the same position are
    one slice of the array; the recurrent state is one ``(2, streams, 128)`` array, the
    model's own layout. Nothing is copied per stream and window but the probabilities.
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
        self._audio = np.zeros((streams, CONTEXT + 8 * WINDOW), dtype=np.float32)
        self._fill = [CONTEXT] * streams  # samples held per row, context included
        self._state = np.zeros((STATE_SHAPE[0], streams, STATE_SHAPE[1]), dtype=np.float32)
        # Per stream: window probabilities from window ``_base`` on, frames decided, and
        # whether the last decided frame was speech.
        self._probabilities: list[list[float]] = [[] for _ in range(streams)]
        self._base = [0] * streams
        self._frames = [0] * streams
        self._speaking = [False] * streams

    @property
    def streams(self) -> int:
        return len(self._fill)

    def frames_decided(self, stream: int) -> int:
        """Frames of ``stream`` decided so far."""
        return self._frames[stream]

    def push(self, chunks: Sequence[npt.ArrayLike | None]) -> list[str]:
        """Add 16 kHz mono float samples per stream (``None``: nothing new); return, per
        stream, one ``0``/``1`` per frame now decided."""
        if len(chunks) != len(self._fill):
            raise ValueError(f"expected {len(self._fill)} chunks, got {len(chunks)}")
        fill = self._fill
        for row, chunk in enumerate(chunks):
            if chunk is None:
                continue
            samples = np.asarray(chunk, dtype=np.float32).reshape(-1)
            end = fill[row] + samples.size
            if end > self._audio.shape[1]:
                grown = np.zeros((len(fill), max(end, 2 * self._audio.shape[1])),
                                 dtype=np.float32)
                grown[:, : self._audio.shape[1]] = self._audio
                self._audio = grown
            self._audio[row, fill[row]:end] = samples
            fill[row] = end
        windows = [(f - CONTEXT) // WINDOW for f in fill]
        most = max(windows)
        if most:
            self._infer(windows, most)
        return [self._decide(row) for row in range(len(fill))]

    def _infer(self, windows: list[int], most: int) -> None:
        audio, fill = self._audio, self._fill
        everyone = min(windows) == most
        for k in range(most):
            at = k * WINDOW
            if everyone:  # the usual case: every stream has this window
                batch = np.ascontiguousarray(audio[:, at:at + CONTEXT + WINDOW])
                output, self._state = self.session.run(
                    None, {"input": batch, "state": self._state, "sr": self._rate})
                rows: Sequence[int] = range(len(fill))
            else:
                rows = [row for row, count in enumerate(windows) if count > k]
                batch = audio[rows, at:at + CONTEXT + WINDOW]
                output, state = self.session.run(
                    None, {"input": batch, "state": self._state[:, rows], "sr": self._rate})
                self._state[:, rows] = state
            for row, probability in zip(rows, output[:, 0].tolist(), strict=True):
                self._probabilities[row].append(probability)
        for row, count in enumerate(windows):  # keep each row's context and pending samples
            if count:
                used = count * WINDOW
                keep = fill[row] - used
                audio[row, :keep] = audio[row, used:fill[row]]
                fill[row] = keep

    def _decide(self, row: int) -> str:
        probabilities = self._probabilities[row]
        base = self._base[row]
        n = self.frame_samples
        # Frames whose last sample lies in a window already run: (frame + 1) * n <= windows.
        decidable = (base + len(probabilities)) * WINDOW // n
        first = self._frames[row]
        if first >= decidable:
            return ""
        speaking = self._speaking[row]
        on, off = self.threshold, self.off_threshold
        out = []
        for frame in range(first, decidable):
            probability = probabilities[((frame + 1) * n - 1) // WINDOW - base]
            speaking = probability >= (off if speaking else on)
            out.append("1" if speaking else "0")
        self._frames[row] = decidable
        self._speaking[row] = speaking
        # Windows before the next frame's window are no longer needed.
        needed = ((decidable + 1) * n - 1) // WINDOW
        if needed > base:
            del probabilities[: needed - base]
            self._base[row] = needed
        return "".join(out)


class StreamingSileroVad:
    """One stream with :class:`models.vad.StreamingVad`'s interface (``push`` -> ``0``/``1``)."""

    def __init__(self, *, frame_ms: int = 20, threshold: float = 0.5,
                 session: Any = None) -> None:
        self._batch = SileroBatchVad(1, frame_ms=frame_ms, threshold=threshold,
                                     session=session)

    @property
    def frame_samples(self) -> int:
        return self._batch.frame_samples

    @property
    def frames_decided(self) -> int:
        return self._batch.frames_decided(0)

    def push(self, samples: npt.ArrayLike) -> str:
        return self._batch.push([samples])[0]
