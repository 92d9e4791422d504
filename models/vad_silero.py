"""Optional ``silero`` backend of Rapport's voice activity detector (issue 4, part 2).

Silero VAD v5 (MIT licence) is a small recurrent network; its ONNX file ships inside the
``silero-vad`` wheel (``pip install 'rapport[silero]'`` and ``pip install --no-deps
silero-vad``: the wheel asks for torch, which the file does not need). Its package imports
torch, so it is never imported: the file is found with :func:`importlib.util.find_spec` and
run as models/vad_silero_model.py's :class:`SileroModel` (every window ready in every stream
in one call, the file's arithmetic regrouped; that module says how and why).

Deciding frames (:class:`SileroBatchVad`)
-----------------------------------------
:class:`SileroBatchVad` decides many participant streams at once, the way an ingest process
would run it: every window that is complete in any stream joins one call with its stream's
recurrent state, each input first losing the stream's running offset and, where it dominates
the input, its fitted line (models/vad_offset.py: a DC offset or a microphone's drift; with
``detrend=False`` the model reads every input as it is, as before 2026-12-05's night). By
default (``head=True``) each window then gets the value of
models/vad_head.py's head: a logistic layer over the model's probability ``p``, the window's
band evidence ``e`` (models/vad_bands.py: how far each of seven bands, 80 Hz to 8 kHz, stands
above its own noise floor, in dB, 0-30) and the model's recurrent state ``h`` (the 128 values
the file's own output layer reads; their weighted sum is a second column of the graph's last
matrix product, so it costs next to nothing):

    value = sigmoid(a * logit(p) + sum(BAND_WEIGHTS * e / 10) + sum(STATE_WEIGHTS * h) + BIAS)

A rule (models/vad_decision.py's :class:`~models.vad_decision.Branch`) gives each 20 ms frame
the highest value of the window holding the frame's last sample and the ``lookahead`` windows
after it (so a decision waits up to 32 ms for its window to fill, plus ``lookahead`` x 32 ms),
turned into ``0``/``1`` with a hysteresis: speech starts at ``threshold`` and ends below
``release``. The default (:data:`DEFAULT_BRANCHES`) calls a frame speech when either of two
rules does: the model-alone rule on ``p``, its units trimmed
(:data:`models.vad_head.MODEL_TRIM_START` and ``MODEL_TRIM_END`` frames), or the head's rule
on ``value``; frames are published ``MODEL_TRIM_END`` frames (100 ms) after their decision.
With ``head=False`` the model's probability is used alone, with the model-alone rule; a
``threshold``, ``release`` or ``lookahead`` given makes one rule of the chosen source.

Why: Silero's own layer loses quiet or distant speech (AMI's meeting room, speech in noise)
that its state and the bands under 500 Hz still tell apart. Music raises those terms too;
``music_gate=True`` sets the head's value to 0 where a window's spectrum holds many held
narrow peaks and the model hears no speech (models/vad_music.py; off by default: docs/vad.md).

The head's weights were **fitted by a script that reads the tuning recordings only**
(bench/vad_head.py; models/vad_head.py says on what and how); the two-branch rule (the head's
:data:`HEAD_THRESHOLD` 0.85, :data:`HEAD_RELEASE` 0.65, :data:`HEAD_LOOKAHEAD` 1 window, and the
trims) was chosen on the tuning recordings and one half of TEN VAD's test set
(bench/vad_branches.py); both are **validated** on recordings never chosen on
(tests/data/real/validation, the other half of that test set; docs/vad.md
gives the figures and what was looked at when). The model-alone
rule (:data:`THRESHOLD` 0.55, :data:`RELEASE` 0.3, :data:`LOOKAHEAD` 2) was chosen on the
telephone sample, then again with the AMI train excerpts (bench/vad_rule.py). Both rules'
thresholds are Rapport's, not Silero's (0.5, 0.35, no lookahead; its offline
``get_speech_timestamps`` pads each segment by 30 ms instead). The lookahead costs no latency
in audio mode, which publishes per 1 s batch.

Narrowband audio (``narrowband=True``)
--------------------------------------
Audio sampled at 8 kHz or less (a telephone line, an 8 kHz recording) holds nothing above 4 kHz
once resampled to 16 kHz, and the 16 kHz network, trained on wideband audio, loses much of its
speech (docs/vad.md, "Narrowband audio"). The file's other network, trained on 8 kHz audio, reads
every other sample of each input the 16 kHz network reads (32 of context and 256 of window:
nothing is there to alias), with its own recurrent state, and decides two of the three branches
of :data:`NARROWBAND_BRANCHES`:

- the **narrowband head** (models/vad_narrowband_head.py) in place of the 16 kHz head: the
  same kind of layer over that network's probability and state and the band evidence, fitted
  at 8 kHz, with its own rule (0.85 / 0.6, one window of lookahead, units losing their first
  frame and last three); the 16 kHz head fell under webrtcvad on AMI's validation excerpts;
- the **narrowband** branch, :data:`NARROWBAND_BRANCH`: its probability from 0.65 until under
  0.4, one window of lookahead, each unit losing its first frame and last three.
The model branch stays. bench/vad_narrowband_head.py and ``bench/vad_narrowband.py --rank``
chose them on the tuning sets at 8 kHz (docs/vad.md, "Narrowband audio"). The caller says which
audio is narrowband (services/cli/audio_files.py; the ingest, for a declared dial-in).

Long streams: a stream's states restart from its last 2 s at the first pause the model hears
after 30 s, or earlier where a fresh state hears speech the stream's state no longer hears
(``restart``, ``warm``, ``pause``, ``probe``; models/vad_restart.py says why and how). As with
:class:`models.vad.StreamingVad`, decisions depend only on the audio, not on its chunks; the
output is a ``0``/``1`` string per completed frame, for wire ``activity`` events (METRICS.md
§1/§9). Pure code but for loading the model file once; no audio is kept beyond what a
stream's next window needs (a restart starts from what the encoders made of its last 2 s),
and only in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from models import vad_head, vad_narrowband_head
from models.errors import ConfigError
from models.vad_bands import BandFloor
from models.vad_decision import Branch, FrameDecider, Source
from models.vad_head import head_value
from models.vad_music import MusicGate
from models.vad_narrowband_head import narrowband_head_value
from models.vad_offset import OffsetTracker
from models.vad_restart import (
    PAUSE_WINDOWS,
    PROBE_WINDOWS,
    QUIET,
    RESTART_WINDOWS,
    WARM_WINDOWS,
    Restarts,
    heard,
)
from models.vad_silero_model import (
    CONTEXT,
    HIDDEN,
    NARROWBAND,
    RATE,
    STATE_SHAPE,
    WINDOW,
    Ran,
    SileroModel,
    load_model,
    load_session,
    silero_model_path,
)

# models/vad_silero_model.py's names, re-exported for the backend's users.
__all__ = [
    "CONTEXT", "DEFAULT_BRANCHES", "LOOKAHEAD", "MODEL_ALONE", "NARROWBAND_BRANCH",
    "NARROWBAND_BRANCHES", "PAUSE_WINDOWS", "QUIET", "RATE", "RELEASE", "RESTART_WINDOWS",
    "THRESHOLD", "WARM_WINDOWS", "WINDOW", "SileroBatchVad", "SileroModel",
    "StreamingSileroVad", "load_model", "load_session", "silero_model_path",
]

# Frame decisions (module docstring, "Deciding frames"). The model-alone rule:
THRESHOLD = 0.55  # speech probability at which a unit starts...
RELEASE = 0.3  # ...and under which it ends
LOOKAHEAD = 2  # windows after a frame's own whose probability counts for it
# The head's own rule (models/vad_head.py): its branch of the default.
HEAD_THRESHOLD = vad_head.THRESHOLD
HEAD_RELEASE = vad_head.RELEASE
HEAD_LOOKAHEAD = vad_head.LOOKAHEAD
# The model alone (``head=False``), and the default (``head=True``): the model-alone rule with
# its units trimmed, or the head's rule (models/vad_decision.py says why).
MODEL_ALONE = (Branch("model", THRESHOLD, RELEASE, LOOKAHEAD),)
DEFAULT_BRANCHES = (
    Branch("model", THRESHOLD, RELEASE, LOOKAHEAD, vad_head.MODEL_TRIM_START,
           vad_head.MODEL_TRIM_END),
    Branch("head", HEAD_THRESHOLD, HEAD_RELEASE, HEAD_LOOKAHEAD),
)
# Narrowband audio's third branch (module docstring, "Narrowband audio"): the 8 kHz network's
# probability from 0.65 until under 0.4, one window of lookahead, each unit losing its first
# frame and last three (bench/vad_narrowband.py --rank chose it).
NARROWBAND_BRANCH = Branch("narrowband", 0.65, 0.4, 1, trim_start=1, trim_end=3)
# The narrowband default: the model branch, the narrowband head's (models/vad_narrowband_head.py,
# in place of the 16 kHz head's) and the 8 kHz network's.
NARROWBAND_BRANCHES = (
    DEFAULT_BRANCHES[0],
    Branch("narrowband_head", vad_narrowband_head.THRESHOLD, vad_narrowband_head.RELEASE,
           vad_narrowband_head.LOOKAHEAD, vad_narrowband_head.TRIM_START,
           vad_narrowband_head.TRIM_END),
    NARROWBAND_BRANCH,
)


class SileroBatchVad:
    """Silero VAD over ``streams`` participant streams, batched (see the module docstring).

    ``frame_ms`` must give whole samples at 16 kHz; ``threshold`` is the speech probability
    at which speech starts, ``release`` the one under which it ends, ``lookahead`` the
    windows after a frame's own that count for it (module docstring; Silero's own rule is
    0.5, 0.35, 0); ``model`` may be shared between instances (one is loaded by default);
    ``detrend=False`` shows the model every input as it is (see the module docstring);
    ``narrowband=True`` says every stream's audio was sampled at 8 kHz or less before it was
    resampled to 16 kHz, and decides with :data:`NARROWBAND_BRANCHES` (module docstring,
    "Narrowband audio"; ``narrowband_model``, the 8 kHz network loaded with its head, may be
    shared; one is loaded by default); ``music_gate=True`` adds models/vad_music.py's gate.

    The streams' audio lives in one ``(streams, capacity)`` array, each row the stream's last
    ``CONTEXT`` samples followed by its pending ones, so a window's model input (context and
    window) is a slice of its row, and every window ready is one strided view of the array;
    the recurrent state is one ``(2, streams, 128)`` array, the model's own layout. Per call
    only the windows are copied, once.
    """

    def __init__(self, streams: int, *, frame_ms: int = 20, threshold: float | None = None,
                 release: float | None = None, lookahead: int | None = None,
                 model: SileroModel | None = None, head: bool = True,
                 branches: Sequence[Branch] | None = None, detrend: bool = True,
                 narrowband: bool = False, narrowband_model: SileroModel | None = None,
                 restart: int = RESTART_WINDOWS, warm: int = WARM_WINDOWS,
                 pause: int = PAUSE_WINDOWS, probe: int = PROBE_WINDOWS,
                 music_gate: bool = False) -> None:
        if streams < 1:
            raise ConfigError("streams", "must be >= 1")
        if frame_ms <= 0 or (RATE * frame_ms) % 1000:
            raise ConfigError("vad.frame_ms", "must give whole samples at 16 kHz")
        if branches is None and (threshold, release, lookahead) == (None, None, None):
            branches = ((NARROWBAND_BRANCHES if head else (*MODEL_ALONE, NARROWBAND_BRANCH))
                        if narrowband else DEFAULT_BRANCHES if head else MODEL_ALONE)
        elif branches is None:  # one rule given: that source's alone
            branches = (Branch(
                "head" if head else "model",
                threshold if threshold is not None else HEAD_THRESHOLD if head else THRESHOLD,
                release if release is not None else HEAD_RELEASE if head else RELEASE,
                lookahead if lookahead is not None else HEAD_LOOKAHEAD if head else LOOKAHEAD),)
        sources: set[Source] = {b.source for b in branches}
        if sources & {"head", "narrowband_head"} and not head:
            raise ConfigError("vad.branches", "a head branch needs head=True")
        if sources & {"narrowband", "narrowband_head"} and not narrowband:
            raise ConfigError("vad.branches", "a narrowband branch needs narrowband=True")
        self.frame_samples = RATE * frame_ms // 1000
        self.branches = tuple(branches)
        self.model = model if model is not None else load_model(head=head)
        if head and not self.model.head:
            raise ConfigError("vad.backend", "the head needs a model loaded with head=True")
        self.head = head
        self.narrowband: SileroModel | None = None
        if narrowband:
            self.narrowband = narrowband_model if narrowband_model is not None else \
                load_model(head=head, layout=NARROWBAND)
            if self.narrowband.layout != NARROWBAND or (head and not self.narrowband.head):
                raise ConfigError("vad.backend", "narrowband_model must be the 8 kHz network, "
                                                 "loaded with its head when head=True")
        self._offsets = OffsetTracker(streams) if detrend else None
        self._floors = BandFloor(streams)  # per stream, the last 3 s of band powers
        self._music = MusicGate(streams) if music_gate and "head" in sources else None
        self._head_release = min((b.release for b in branches if b.source == "head"), default=1)
        self._audio = np.zeros((streams, CONTEXT + 8 * WINDOW), dtype=np.float32)
        self._fill = [CONTEXT] * streams  # samples held per row, context included
        self._state = np.zeros((STATE_SHAPE[0], streams, STATE_SHAPE[1]), dtype=np.float32)
        self._narrow_state = np.zeros_like(self._state)
        self._restarts = Restarts(streams, HIDDEN * (1 + narrowband), restart, warm, pause,
                                  probe)
        # Per source the branches read (models/vad_decision.py) and per stream: its values of
        # windows from window ``_base`` on; then the frames run through the rule, and its state.
        self._sources: set[Source] = sources | {"model"}
        self._series: dict[Source, list[list[float]]] = {
            source: [[] for _ in range(streams)] for source in self._sources}
        self._base = [0] * streams
        self._evaluated = [0] * streams
        self._deciders = [FrameDecider(self.branches) for _ in range(streams)]

    @property
    def streams(self) -> int:
        return len(self._fill)

    def frames_decided(self, stream: int) -> int:
        """Frames of ``stream`` decided so far."""
        return self._evaluated[stream] - self._deciders[stream].held

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

    def finish(self) -> list[str]:
        """The end of every stream: per stream, the frames still undecided or held back,
        one ``0``/``1`` each. The samples after the last whole window are run as one more
        window, padded with zeros; every whole frame of audio is then decided with the
        lookahead windows there are (none after the end) and published with the frames held
        for the trim, a unit still open ending there
        (:meth:`models.vad_decision.FrameDecider.flush`). A frame the audio does not fill is
        not decided (as :class:`models.vad.StreamingVad`). Push nothing after this."""
        fill = self._fill
        # Samples per stream so far: every window run, then the pending ones.
        total = [(self._base[row] + len(self._series["model"][row])) * WINDOW
                 + fill[row] - CONTEXT for row in range(len(fill))]
        windows = [0] * len(fill)
        for row, pending in enumerate(f - CONTEXT for f in fill):
            if pending:
                end = fill[row] + WINDOW - pending
                if end > self._audio.shape[1]:
                    self._audio = np.pad(self._audio, ((0, 0), (0, end)))
                self._audio[row, fill[row]:end] = 0.0
                fill[row] = end
                windows[row] = 1
        if any(windows):
            self._infer(windows, 1)
        return [self._decide(row, final=total[row] // self.frame_samples)
                + self._deciders[row].flush() for row in range(len(fill))]

    def _infer(self, windows: list[int], most: int) -> None:
        audio, fill = self._audio, self._fill
        # Window k of a row starts at k * WINDOW; a row with fewer windows than ``most`` is
        # padded with whatever its row holds after them (the model ignores those windows).
        view = np.lib.stride_tricks.as_strided(
            audio, shape=(len(fill), most, CONTEXT + WINDOW),
            strides=(audio.strides[0], WINDOW * audio.strides[1], audio.strides[1]),
            writeable=False)
        everyone = min(windows) == most  # the usual case: every stream has as many windows
        # The model needs at least one window per stream it is given.
        rows = list(range(len(fill))) if everyone else [r for r, n in enumerate(windows) if n]
        lengths = np.array([windows[row] for row in rows], dtype=np.int32)
        inputs = self._inputs(np.array(view) if everyone else view[rows], rows,
                              lengths.tolist())
        heads = "head" in self._sources or "narrowband_head" in self._sources
        wide, narrow = self._run_all(inputs, rows, lengths)
        # Streams with as many new windows together (the band floors' evidence): all at once
        # in the usual case.
        groups = [list(range(len(rows)))] if everyone else [
            [i for i, row in enumerate(rows) if windows[row] == count]
            for count in sorted({windows[row] for row in rows})]
        for group in groups:
            chosen = [rows[i] for i in group]
            count = windows[chosen[0]]
            pick = slice(None) if everyone else group  # a view, not a copy, when it can
            evidence = np.empty(0) if not heads else self._floors.of_windows(
                view[:, :, CONTEXT:] if everyone else view[chosen, :count, CONTEXT:],
                None if everyone else chosen)
            values: dict[Source, npt.NDArray[np.float32]] = {
                "model": wide.probabilities[pick, :count]}
            if "head" in self._sources:
                values["head"] = head_value(values["model"], evidence, wide.term[pick, :count])
            if self._music is not None:  # under the branch's release, 0 decides the same
                head = values["head"]
                head[self._music.closed(
                    view[:, :, CONTEXT:] if everyone else view[chosen, :count, CONTEXT:],
                    values["model"], head >= self._head_release,
                    None if everyone else chosen)] = 0.0
            if narrow is not None:
                values["narrowband"] = narrow.probabilities[pick, :count]
            if narrow is not None and "narrowband_head" in self._sources:
                values["narrowband_head"] = narrowband_head_value(
                    values["narrowband"], evidence, narrow.term[pick, :count])
            for source, array in values.items():
                if source not in self._series:  # computed, but no branch reads it
                    continue
                series = self._series[source]
                for row, stream_values in zip(chosen, array.tolist(), strict=True):
                    series[row].extend(stream_values)
        for row, count in enumerate(windows):  # keep each row's context and pending samples
            if count:
                used = count * WINDOW
                keep = fill[row] - used
                audio[row, :keep] = audio[row, used:fill[row]]
                fill[row] = keep

    def _run_all(self, inputs: npt.NDArray[np.float32], rows: list[int],
                 lengths: npt.NDArray[np.int32]) -> tuple[Ran, Ran | None]:
        """Both networks' outputs for streams ``rows``' new ``inputs`` (``lengths`` real
        windows each), from their states, which they update. A stream due a restart
        (models/vad_restart.py) has the windows from the restart on run again from its new
        states: their recurrent part alone, from the encoder's features."""
        wide, narrow = self._run_both(inputs, rows, lengths)
        restarts = self._restarts
        if not restarts.restart:
            return wide, narrow
        kept = wide.features if narrow is None else np.concatenate(
            (wide.features, narrow.features), axis=2)  # what restarts start from
        for i, (row, count) in enumerate(zip(rows, lengths.tolist(), strict=True)):
            done = self._base[row] + len(self._series["model"][row])  # windows before
            due = restarts.due(row, done, wide.probabilities[i, :count], 0)
            while due is not None:
                at = due.window
                if self._restart(row, restarts.recent(row, kept[i], at), due.probe):
                    again = self._run_both(kept[i:i + 1, at:count], [row],
                                           np.array([count - at], dtype=np.int32), resume=True)
                    for out, got in ((wide, again[0]), (narrow, again[1])):
                        if out is not None and got is not None:
                            out.probabilities[i, at:count] = got.probabilities[0]
                            if got.term.size:
                                out.term[i, at:count] = got.term[0]
                    restarts.restarted(row, done + at)
                due = restarts.due(row, done, wide.probabilities[i, :count], at + 1)
            restarts.ran(row, kept[i, :count], wide.probabilities[i, :count])
        return wide, narrow

    def _run_both(self, values: npt.NDArray[np.float32], rows: list[int],
                  lengths: npt.NDArray[np.int32], resume: bool = False
                  ) -> tuple[Ran, Ran | None]:
        """Both networks over ``values`` from the streams' states, which they update: the
        16 kHz inputs, or to ``resume``, both encoders' features side by side."""
        wide, narrow = (values[..., :HIDDEN], values[..., HIDDEN:]) if resume else \
            (values, None if self.narrowband is None else self._decimated(values))
        return (self._run(self.model, "head" in self._sources, wide, self._state, rows,
                          lengths, resume),
                None if self.narrowband is None or narrow is None else self._run(
                    self.narrowband, "narrowband_head" in self._sources, narrow,
                    self._narrow_state, rows, lengths, resume))

    def _restart(self, row: int, recent: npt.NDArray[np.float32], probe: bool) -> bool:
        """Start stream ``row``'s states again: from zero, then through ``recent``, the
        encoders' features of its last windows; a ``probe`` only if the fresh 16 kHz state
        hears speech in them (models/vad_restart.py). Whether they restarted."""
        for model, state, features in ((self.model, self._state, recent[:, :HIDDEN]),
                                       (self.narrowband, self._narrow_state,
                                        recent[:, HIDDEN:])):
            if model is None:
                continue
            fresh = np.zeros((STATE_SHAPE[0], 1, STATE_SHAPE[1]), dtype=np.float32)
            heard_there = np.empty(0, dtype=np.float32)
            if len(recent):
                ran = model.resume(np.ascontiguousarray(features[None]), fresh,
                                   np.array([len(recent)], dtype=np.int32))
                heard_there, fresh = ran.probabilities, ran.state
            if probe and model is self.model and not heard(heard_there.reshape(-1)):
                return False  # the 16 kHz network runs first: nothing is changed yet
            state[:, row] = fresh[:, 0]
        return True

    @staticmethod
    def _run(model: SileroModel, head: bool, values: npt.NDArray[np.float32],
             state: npt.NDArray[np.float32], rows: list[int], lengths: npt.NDArray[np.int32],
             resume: bool) -> Ran:
        """``model`` over streams ``rows``' inputs (to ``resume``: features) ``values``, with
        (``head``) its head's term; their recurrent ``state`` (all streams') updated in place."""
        everyone = len(rows) == state.shape[1]
        given = state if everyone else np.ascontiguousarray(state[:, rows])
        ran = model.resume(np.ascontiguousarray(values), given, lengths, head) if resume \
            else model.encode(values, given, lengths, head)
        state[:, slice(None) if everyone else rows] = ran.state
        return ran

    def _inputs(self, windows: npt.NDArray[np.float32], rows: Sequence[int],
                counts: Sequence[int]) -> npt.NDArray[np.float32]:
        """The model's inputs from a fresh copy of streams ``rows``' windows, ``counts`` of
        each real (models/vad_offset.py)."""
        return windows if self._offsets is None else self._offsets.clean(windows, rows, counts)

    @staticmethod
    def _decimated(inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The 8 kHz network's inputs from the 16 kHz ones: every other sample (32 of context,
        256 of window). No filter is needed: narrowband audio resampled to 16 kHz holds
        nothing above 4 kHz to alias."""
        return np.ascontiguousarray(inputs[..., ::2])

    def _decide(self, row: int, final: int | None = None) -> str:
        """Decide the frames of stream ``row`` that can be: those whose window and lookahead
        windows have run, or (``final``, at the end) every frame before frame ``final``."""
        series = {source: values[row] for source, values in self._series.items()}
        probabilities = series["model"]
        base = self._base[row]
        n = self.frame_samples
        decider = self._deciders[row]
        # Frames whose last sample lies in a window already run, and the lookahead windows
        # after it too: (frame + 1) * n <= (windows - lookahead) * WINDOW.
        decidable = max(base + len(probabilities) - decider.lookahead, 0) * WINDOW // n \
            if final is None else final
        first = self._evaluated[row]
        if first >= decidable:
            return ""
        ats = [((frame + 1) * n - 1) // WINDOW - base for frame in range(first, decidable)]
        out = decider.decide(series, ats)
        self._evaluated[row] = decidable
        # Windows before the next frame's window are no longer needed.
        needed = ((decidable + 1) * n - 1) // WINDOW
        if needed > base:
            for values in series.values():
                del values[: needed - base]
            self._base[row] = needed
        return out


class StreamingSileroVad:
    """One stream with :class:`models.vad.StreamingVad`'s interface (``push`` -> ``0``/``1``)."""

    def __init__(self, *, frame_ms: int = 20, threshold: float | None = None,
                 release: float | None = None, lookahead: int | None = None,
                 model: SileroModel | None = None, head: bool = True,
                 detrend: bool = True, narrowband: bool = False,
                 narrowband_model: SileroModel | None = None,
                 restart: int = RESTART_WINDOWS, warm: int = WARM_WINDOWS,
                 pause: int = PAUSE_WINDOWS, probe: int = PROBE_WINDOWS,
                 music_gate: bool = False) -> None:
        self._batch = SileroBatchVad(1, frame_ms=frame_ms, threshold=threshold,
                                     release=release, lookahead=lookahead, model=model,
                                     head=head, detrend=detrend, narrowband=narrowband,
                                     narrowband_model=narrowband_model, restart=restart,
                                     warm=warm, pause=pause, probe=probe,
                                     music_gate=music_gate)

    @property
    def frame_samples(self) -> int:
        return self._batch.frame_samples

    @property
    def frames_decided(self) -> int:
        return self._batch.frames_decided(0)

    def push(self, samples: npt.ArrayLike) -> str:
        return self._batch.push([samples])[0]

    def finish(self) -> str:
        """The end of the stream: its last frames (:meth:`SileroBatchVad.finish`)."""
        return self._batch.finish()[0]
