"""Optional ``silero`` backend of Rapport's voice activity detector (issue 4, part 2).

Silero VAD v5 (MIT licence) is a small recurrent network; its ONNX file ships inside the
``silero-vad`` wheel (``pip install 'rapport[silero]'`` and ``pip install --no-deps
silero-vad``: the wheel's metadata asks for torch, which the ONNX file does not need). The
wheel's Python package imports torch, so it is never imported here: the file is located with
:func:`importlib.util.find_spec` (which does not run the package) and run with onnxruntime
directly.

How it is run (:class:`SileroModel`)
------------------------------------
Per 512-sample window (32 ms at 16 kHz, plus the 64 samples before it as context) the model
computes a magnitude spectrum (four 256-sample frames, hop 128, the last one completed by
reflection), a convolutional encoder over those four frames, one step of an LSTM cell and a
sigmoid. Only the LSTM carries anything from one window to the next. The file runs one window
per call, and its convolutions, as onnxruntime runs them, cost far more than their
arithmetic: each window's 3-tap, 4-frame convolution is its own small matrix product. So the
16 kHz branch's parameters are read from the file at start-up (the ``onnx`` package, part of
the ``silero`` extra) and put into a graph built here that takes every window of every stream
ready in one call: the spectrum and the encoder as matrix products over all windows at once
(each convolution's taps side by side, taps that would only meet its zero padding dropped),
then onnxruntime's LSTM over the windows in order, per stream, from that stream's state (its
``sequence_lens`` handling streams with fewer windows), then the output layer. Nothing is
approximated: the arithmetic is the file's, regrouped. :func:`load_model` checks the built
graph against the file itself on test audio before using it, so a model file laid out
differently is refused at start-up rather than trusted.

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

Why: Silero's own layer loses quiet or distant speech (AMI's meeting-room channel, speech under
white, pink or babble noise) that its state and the bands under 500 Hz still tell apart;
webrtcvad, which compares sub-band energies with an adaptive noise model, keeps much of it.

The head's weights were **fitted by a script that reads the tuning recordings only**
(bench/vad_head.py; models/vad_head.py says on what and how); the two-branch rule (the head's
:data:`HEAD_THRESHOLD` 0.85, :data:`HEAD_RELEASE` 0.65, :data:`HEAD_LOOKAHEAD` 1 window, and the
trims) was chosen on the tuning recordings and one half of TEN VAD's test set
(bench/vad_branches.py); both are **validated** on recordings never chosen on
(tests/data/real/validation, the other half of that test set; README, "Voice activity
detection", gives the figures and what was looked at when). The model-alone
rule (:data:`THRESHOLD` 0.55, :data:`RELEASE` 0.3, :data:`LOOKAHEAD` 2) was chosen on the
telephone sample, then again with the AMI train excerpts (bench/vad_rule.py). Both rules'
thresholds are Rapport's, not Silero's (0.5, 0.35, no lookahead; its offline
``get_speech_timestamps`` pads each segment by 30 ms instead). The lookahead costs no latency
in audio mode, which publishes per 1 s batch.

As with :class:`models.vad.StreamingVad`, decisions depend only on the audio, never on how it
was cut into chunks, and the output is a ``0``/``1`` string per completed frame, ready for
wire ``activity`` events (METRICS.md §1/§9).

Pure code apart from loading the model file once; no audio is kept beyond one window.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models import vad_head
from models.errors import ConfigError
from models.vad_bands import BandFloor, band_power
from models.vad_decision import Branch, FrameDecider
from models.vad_head import STATE_WEIGHTS, head_value
from models.vad_offset import OffsetTracker

RATE = 16_000
WINDOW = 512  # samples per inference at 16 kHz (Silero v5)
CONTEXT = 64  # samples of the previous window prepended to each input
STATE_SHAPE = (2, 128)  # per stream; the model's state input is (2, batch, 128)
MODEL_FILE = "silero_vad.onnx"

HIDDEN = STATE_SHAPE[1]
FILTER, HOP = 256, 128  # the spectrum's frame and hop, in samples
BINS = FILTER // 2 + 1
# The 16 kHz branch's parameters in the file, by name, with their shapes.
PARAMETERS = {
    "stft.forward_basis_buffer": (2 * BINS, 1, FILTER),
    "encoder.0.reparam_conv.weight": (128, BINS, 3),
    "encoder.0.reparam_conv.bias": (128,),
    "encoder.1.reparam_conv.weight": (64, 128, 3),
    "encoder.1.reparam_conv.bias": (64,),
    "encoder.2.reparam_conv.weight": (64, 64, 3),
    "encoder.2.reparam_conv.bias": (64,),
    "encoder.3.reparam_conv.weight": (HIDDEN, 64, 3),
    "encoder.3.reparam_conv.bias": (HIDDEN,),
    "decoder.rnn.weight_ih": (4 * HIDDEN, HIDDEN),
    "decoder.rnn.weight_hh": (4 * HIDDEN, HIDDEN),
    "decoder.rnn.bias_ih": (4 * HIDDEN,),
    "decoder.rnn.bias_hh": (4 * HIDDEN,),
    "decoder.decoder.2.weight": (1, HIDDEN, 1),
    "decoder.decoder.2.bias": (1,),
}
# Largest difference tolerated between the built graph and the file at start-up, in speech
# probability and state: the two differ only by float32 rounding (about 1e-6 on the check's
# audio, at most 4e-5 in probability over bench/vad.py's 35 minutes).
SELF_CHECK_TOLERANCE = 1e-4
# Frame decisions (see the module docstring, "Deciding frames"). The model alone
# (``bands=False``): the rule tuned until 2026-12-05.
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


def _onnxruntime() -> Any:
    try:
        import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise ConfigError("vad.backend", "silero needs onnxruntime: "
                                         "pip install 'rapport[silero]'") from None
    return onnxruntime


def _session_options(threads: int) -> Any:
    onnxruntime = _onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def load_session(path: Path | None = None, threads: int = 1) -> Any:
    """An onnxruntime session on the unmodified model file, one window per stream per call
    (inputs ``input``, ``state``, ``sr``), on ``threads`` CPU threads. What silero-vad itself
    runs: the reference :class:`SileroModel` is checked against."""
    options = _session_options(threads)
    return _onnxruntime().InferenceSession(str(path or silero_model_path()), options,
                                           providers=["CPUExecutionProvider"])


def model_parameters(path: Path | None = None) -> dict[str, npt.NDArray[np.float32]]:
    """The 16 kHz branch's parameters (:data:`PARAMETERS`), read from the model file."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ConfigError("vad.backend", "silero needs onnx: "
                                         "pip install 'rapport[silero]'") from None
    graph = onnx.load(str(path or silero_model_path())).graph

    def tensor(node: Any) -> npt.NDArray[Any] | None:
        """A Constant node's value, if it holds a tensor."""
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        return None if value is None else np.asarray(numpy_helper.to_array(value))

    # The file branches on the sample rate: If(Equal(sr, 16000)), 16 kHz in then_branch.
    constants = {node.output[0]: tensor(node) for node in graph.node
                 if node.op_type == "Constant"}
    producers = {output: node for node in graph.node for output in node.output}
    branch = None
    for node in graph.node:
        condition = producers.get(node.input[0]) if node.op_type == "If" else None
        if condition is None or condition.op_type != "Equal":
            continue
        values = [constants.get(name) for name in condition.input]
        if any(value is not None and value.size == 1 and value.item() == RATE
               for value in values):
            branch = next(a.g for a in node.attribute if a.name == "then_branch")
    found: dict[str, npt.NDArray[np.float32]] = {}
    for node in branch.node if branch is not None else ():
        name = node.output[0].rsplit("__", 1)[-1]  # the file prefixes names with the branch
        value = tensor(node) if node.op_type == "Constant" and name in PARAMETERS else None
        if value is not None:
            found[name] = value.astype(np.float32)
    wrong = [name for name, shape in PARAMETERS.items()
             if name not in found or found[name].shape != shape]
    if wrong:
        raise ConfigError("vad.backend", f"silero model file not recognised (16 kHz "
                                         f"parameters missing or reshaped: {', '.join(wrong)})")
    return found


def _tap_matrix(parameters: dict[str, npt.NDArray[np.float32]], layer: int,
                taps: Sequence[int]) -> npt.NDArray[np.float32]:
    """Encoder ``layer``'s weights for ``taps`` as one ``(taps * in, out)`` matrix: a
    convolution output is then its input frames at those taps, side by side, times it."""
    weight = parameters[f"encoder.{layer}.reparam_conv.weight"][:, :, list(taps)]
    return np.ascontiguousarray(weight.transpose(2, 1, 0).reshape(-1, weight.shape[0]))


def _sequence_graph(parameters: dict[str, npt.NDArray[np.float32]],
                    head: npt.ArrayLike | None = None) -> bytes:
    """The graph :class:`SileroModel` runs, serialised (see the module docstring).

    Inputs: ``windows`` ``(streams, windows, 576)`` float32, each window's context and
    samples; ``state`` ``(2, streams, 128)``, the file's recurrent state layout; ``lengths``
    ``(streams,)`` int32, each stream's number of real windows (the rest is padding).
    Outputs: ``probabilities`` ``(streams, windows)`` (padding windows' ones meaningless) and
    ``state_out`` after each stream's last real window; given ``head`` (128 weights,
    models/vad_head.py ``STATE_WEIGHTS``), also ``state_term`` ``(streams, windows)``: the
    ReLU of the LSTM's output, which the file's output layer reads, times those weights.
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes: list[Any] = []
    constants: list[Any] = []

    def const(value: npt.ArrayLike, dtype: Any = np.int64) -> str:
        name = f"c{len(constants)}"
        constants.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def op(kind: str, *inputs: str, outputs: int = 1, **attributes: Any) -> Any:
        names = [f"t{len(nodes)}_{k}" for k in range(outputs)]
        nodes.append(helper.make_node(kind, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names

    def cut(tensor: str, start: int, end: int, axis: int) -> str:
        return str(op("Slice", tensor, const([start]), const([end]), const([axis])))

    def dense(tensor: str, layer: int, taps: Sequence[int]) -> str:
        """ReLU of encoder ``layer`` on ``tensor``, whose last axis holds the frames that
        meet ``taps`` side by side."""
        product = op("MatMul", tensor, const(_tap_matrix(parameters, layer, taps), np.float32))
        bias = parameters[f"encoder.{layer}.reparam_conv.bias"]
        return str(op("Relu", op("Add", product, const(bias, np.float32))))

    span = CONTEXT + WINDOW
    flat = op("Reshape", "windows", const([-1, span]))
    # The file pads each window on the right by reflection to fill its last frame.
    padded = op("Pad", flat, const([0, 0, 0, FILTER - HOP - CONTEXT]), mode="reflect")
    blocks = op("Reshape", padded, const([-1, (span + FILTER - HOP - CONTEXT) // HOP, HOP]))
    frames = op("Concat", cut(blocks, 0, 4, 1), cut(blocks, 1, 5, 1), axis=2)  # (n, 4, 256)
    basis = parameters["stft.forward_basis_buffer"][:, 0, :].T  # (256, 2 * BINS)
    spectrum = op("MatMul", frames, const(basis, np.float32))
    real, imaginary = cut(spectrum, 0, BINS, 2), cut(spectrum, BINS, 2 * BINS, 2)
    magnitude = op("Sqrt", op("Add", op("Mul", real, real), op("Mul", imaginary, imaginary)))
    # Encoder 0: 3 taps, stride 1, zero padding, over the 4 frames (n, 4, 129 -> 128).
    edged = op("Pad", magnitude, const([0, 1, 0, 0, 1, 0]))
    columns = op("Concat", *(cut(edged, k, k + 4, 1) for k in range(3)), axis=2)
    first = op("Reshape", dense(columns, 0, (0, 1, 2)), const([-1, 4 * 128]))
    # Encoder 1, stride 2: output 0 meets frames (pad, 0, 1), output 1 frames (1, 2, 3).
    second = op("Concat", op("MatMul", cut(first, 0, 2 * 128, 1),
                             const(_tap_matrix(parameters, 1, (1, 2)), np.float32)),
                op("MatMul", cut(first, 128, 4 * 128, 1),
                   const(_tap_matrix(parameters, 1, (0, 1, 2)), np.float32)), axis=1)
    second = op("Relu", op("Add", second, const(
        np.tile(parameters["encoder.1.reparam_conv.bias"], 2), np.float32)))
    # Encoder 2, stride 2, over 2 frames: one output meeting (pad, 0, 1); encoder 3 over that
    # single frame meets only its middle tap.
    third = dense(second, 2, (1, 2))
    features = dense(third, 3, (1,))  # (n, 128)
    # LSTM over each stream's windows in order (time-major), from the stream's state.
    shape = op("Shape", "windows")
    streams, count = cut(shape, 0, 1, 0), cut(shape, 1, 2, 0)
    sequence = op("Transpose", op("Reshape", features, op(
        "Concat", streams, count, const([HIDDEN]), axis=0)), perm=[1, 0, 2])
    hidden, cell = op("Split", "state", outputs=2, axis=0)
    # The file's cell is PyTorch's (gates i, f, g, o); ONNX's LSTM takes i, o, f, g.
    order = np.r_[0:HIDDEN, 3 * HIDDEN:4 * HIDDEN, HIDDEN:3 * HIDDEN]
    rnn = {k: parameters[f"decoder.rnn.{k}"][order] for k in
           ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    outputs, last_hidden, last_cell = op(
        "LSTM", sequence, const(rnn["weight_ih"][None], np.float32),
        const(rnn["weight_hh"][None], np.float32),
        const(np.concatenate((rnn["bias_ih"], rnn["bias_hh"]))[None], np.float32),
        "lengths", hidden, cell, outputs=3, hidden_size=HIDDEN)  # outputs (t, 1, s, 128)
    # The file's output layer and, with a head, the head's state weights as a second column
    # of the same product (one matrix product for both).
    columns = [parameters["decoder.decoder.2.weight"].reshape(HIDDEN, 1)]
    if head is not None:
        columns.append(np.asarray(head, dtype=np.float32).reshape(HIDDEN, 1))
    product = op("MatMul", op("Relu", outputs), const(np.hstack(columns), np.float32))
    logits = op("Add", cut(product, 0, 1, 3),
                const(parameters["decoder.decoder.2.bias"], np.float32))
    by_window = op("Concat", count, streams, axis=0)
    nodes.append(helper.make_node("Transpose", [op("Reshape", op("Sigmoid", logits), by_window)],
                                  ["probabilities"], perm=[1, 0]))
    if head is not None:
        nodes.append(helper.make_node("Transpose", [op("Reshape", cut(product, 1, 2, 3),
                                                       by_window)], ["state_term"], perm=[1, 0]))
    nodes.append(helper.make_node("Concat", [last_hidden, last_cell], ["state_out"], axis=0))
    graph = helper.make_graph(
        nodes, "silero_sequence",
        [helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["s", "t", span]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "s", HIDDEN]),
         helper.make_tensor_value_info("lengths", TensorProto.INT32, ["s"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["s", "t"]),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [2, "s", HIDDEN])]
        + ([helper.make_tensor_value_info("state_term", TensorProto.FLOAT, ["s", "t"])]
           if head is not None else []),
        constants)
    # Opset 17 and IR 8: what onnxruntime 1.17, the extra's floor, runs.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


class SileroModel:
    """Silero's 16 kHz network over many windows of many streams per call (see the module
    docstring); build it with :func:`load_model`. One instance may serve any number of
    :class:`SileroBatchVad`: it holds no stream state."""

    def __init__(self, session: Any, head: bool = False) -> None:
        self.session = session
        self.head = head  # whether the graph also gives models/vad_head.py's state term

    def run(self, windows: npt.NDArray[np.float32], state: npt.NDArray[np.float32],
            lengths: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.float32],
                                                     npt.NDArray[np.float32]]:
        """Speech probabilities ``(streams, windows)`` of ``windows`` ``(streams, windows,
        576)`` (each a window's 64 samples of context and 512 samples, 16 kHz, float32),
        stream ``s`` from recurrent ``state[:, s]`` (``(2, streams, 128)``) over its first
        ``lengths[s]`` windows (at least one), and the state after them."""
        probabilities, state_out = self.session.run(
            ["probabilities", "state_out"],
            {"windows": windows, "state": state, "lengths": lengths})
        return probabilities, state_out

    def run_head(self, windows: npt.NDArray[np.float32], state: npt.NDArray[np.float32],
                 lengths: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.float32], ...]:
        """:meth:`run`'s probabilities, then the head's state term ``(streams, windows)``
        (models/vad_head.py), then the state; for a model loaded with ``head=True``."""
        if not self.head:
            raise ConfigError("vad.backend", "this silero model was loaded without the head")
        probabilities, state_out, term = self.session.run(
            ["probabilities", "state_out", "state_term"],
            {"windows": windows, "state": state, "lengths": lengths})
        return probabilities, term, state_out


def reference_probabilities(session: Any, windows: npt.NDArray[np.float32],
                            state: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32],
                                                                     npt.NDArray[np.float32]]:
    """What the unmodified file (``session``, from :func:`load_session`) gives for
    :meth:`SileroModel.run`'s ``windows`` and ``state``, one window position per call."""
    rate = np.array(RATE, dtype=np.int64)
    out = np.empty(windows.shape[:2], dtype=np.float32)
    for k in range(windows.shape[1]):
        probability, state = session.run(None, {"input": np.ascontiguousarray(windows[:, k]),
                                                "state": state, "sr": rate})
        out[:, k] = probability[:, 0]
    return out, state


def _check_audio(streams: int = 2, windows: int = 40) -> npt.NDArray[np.float32]:
    """Windows of speech-like test audio: harmonic bursts at a syllable's pace over noise,
    different per stream, so probabilities and states move (silence would keep both flat)."""
    rng = np.random.default_rng(1)
    t = np.arange(CONTEXT + windows * WINDOW) / RATE
    rows = []
    for s in range(streams):
        pitch = 110.0 + 60.0 * s + 20.0 * np.sin(2 * np.pi * 3.0 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / RATE
        voice = sum(np.sin(k * phase) / k for k in range(1, 12))
        envelope = np.clip(np.sin(2 * np.pi * (2.5 + s) * t), 0.0, None) ** 2
        rows.append(0.2 * envelope * voice + 0.01 * rng.standard_normal(t.size))
    audio = np.asarray(rows, dtype=np.float32)
    starts = np.arange(windows) * WINDOW
    return audio[:, starts[:, None] + np.arange(CONTEXT + WINDOW)]


def load_model(path: Path | None = None, threads: int = 1, head: bool = True) -> SileroModel:
    """:class:`SileroModel` on the model file (the wheel's by default), on ``threads`` CPU
    threads (one by default: an ingest process runs one per core), with the refitted head's
    state term (models/vad_head.py) unless ``head`` is false, checked against the file run as
    is (:func:`reference_probabilities`) on test audio, probabilities and states."""
    parameters = model_parameters(path)
    session = _onnxruntime().InferenceSession(
        _sequence_graph(parameters, STATE_WEIGHTS if head else None),
        _session_options(threads), providers=["CPUExecutionProvider"])
    model = SileroModel(session, head)
    windows = _check_audio()
    state = np.zeros((STATE_SHAPE[0], windows.shape[0], STATE_SHAPE[1]), dtype=np.float32)
    lengths = np.full(windows.shape[0], windows.shape[1], dtype=np.int32)
    ours = model.run(windows, state, lengths)
    theirs = reference_probabilities(load_session(path), windows, state)
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs, strict=True))
    if not difference <= SELF_CHECK_TOLERANCE:
        raise ConfigError("vad.backend", f"silero model file not recognised (the rebuilt graph "
                                         f"differs from it by {difference:.2g})")
    return model


class SileroBatchVad:
    """Silero VAD over ``streams`` participant streams, batched (see the module docstring).

    ``frame_ms`` must give whole samples at 16 kHz; ``threshold`` is the speech probability
    at which speech starts, ``release`` the one under which it ends, ``lookahead`` the
    windows after a frame's own that count for it (module docstring; Silero's own rule is
    0.5, 0.35, 0); ``model`` may be shared between instances (one is loaded by default);
    ``detrend=False`` shows the model every input as it is (see the module docstring).

    The streams' audio lives in one ``(streams, capacity)`` array, each row the stream's last
    ``CONTEXT`` samples followed by its pending ones, so a window's model input (context and
    window) is a slice of its row, and every window ready is one strided view of the array;
    the recurrent state is one ``(2, streams, 128)`` array, the model's own layout. Per call
    only the windows are copied, once.
    """

    def __init__(self, streams: int, *, frame_ms: int = 20, threshold: float | None = None,
                 release: float | None = None, lookahead: int | None = None,
                 model: SileroModel | None = None, head: bool = True,
                 branches: Sequence[Branch] | None = None, detrend: bool = True) -> None:
        if streams < 1:
            raise ConfigError("streams", "must be >= 1")
        if frame_ms <= 0 or (RATE * frame_ms) % 1000:
            raise ConfigError("vad.frame_ms", "must give whole samples at 16 kHz")
        if branches is None and (threshold, release, lookahead) == (None, None, None):
            branches = DEFAULT_BRANCHES if head else MODEL_ALONE
        elif branches is None:  # one rule given: that source's alone
            branches = (Branch(
                "head" if head else "model",
                threshold if threshold is not None else HEAD_THRESHOLD if head else THRESHOLD,
                release if release is not None else HEAD_RELEASE if head else RELEASE,
                lookahead if lookahead is not None else HEAD_LOOKAHEAD if head else LOOKAHEAD),)
        if any(b.source == "head" for b in branches) and not head:
            raise ConfigError("vad.branches", "a head branch needs head=True")
        self.frame_samples = RATE * frame_ms // 1000
        self.branches = tuple(branches)
        self.model = model if model is not None else load_model(head=head)
        if head and not self.model.head:
            raise ConfigError("vad.backend", "the head needs a model loaded with head=True")
        self.head = head
        self._offsets = OffsetTracker(streams) if detrend else None
        self._floors = BandFloor(streams)  # per stream, the last 3 s of band powers
        self._audio = np.zeros((streams, CONTEXT + 8 * WINDOW), dtype=np.float32)
        self._fill = [CONTEXT] * streams  # samples held per row, context included
        self._state = np.zeros((STATE_SHAPE[0], streams, STATE_SHAPE[1]), dtype=np.float32)
        # Per stream: the model's probabilities and the head's values of windows from window
        # ``_base`` on, the frames run through the rule, and its state.
        self._probabilities: list[list[float]] = [[] for _ in range(streams)]
        self._values: list[list[float]] = [[] for _ in range(streams)]
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

    def _infer(self, windows: list[int], most: int) -> None:
        audio, fill = self._audio, self._fill
        # Window k of a row starts at k * WINDOW; a row with fewer windows than ``most`` is
        # padded with whatever its row holds after them (the model ignores those windows).
        view = np.lib.stride_tricks.as_strided(
            audio, shape=(len(fill), most, CONTEXT + WINDOW),
            strides=(audio.strides[0], WINDOW * audio.strides[1], audio.strides[1]),
            writeable=False)
        run = self.model.run_head if self.head else self.model.run
        if min(windows) == most:  # the usual case: every stream has as many windows
            rows: Sequence[int] = range(len(fill))
            lengths = np.full(len(fill), most, dtype=np.int32)
            *outputs, self._state = run(self._inputs(np.array(view), rows, windows),
                                        self._state, lengths)
        else:  # the model needs at least one window per stream it is given
            rows = [row for row, count in enumerate(windows) if count]
            lengths = np.array([windows[row] for row in rows], dtype=np.int32)
            *outputs, state = run(self._inputs(view[rows], rows, lengths.tolist()),
                                  np.ascontiguousarray(self._state[:, rows]), lengths)
            self._state[:, rows] = state
        output = outputs[0]
        for row, probabilities in zip(rows, output.tolist(), strict=True):
            self._probabilities[row].extend(probabilities[:windows[row]])
        if self.head and min(windows) == most:  # the usual case again: all at once
            evidence = self._floors.evidence(band_power(view[:, :, CONTEXT:]))
            for row, values in enumerate(head_value(output, evidence, outputs[1]).tolist()):
                self._values[row].extend(values)
        elif self.head:  # streams with as many new windows together
            for count in sorted({windows[row] for row in rows}):
                group = [i for i, row in enumerate(rows) if windows[row] == count]
                chosen = [rows[i] for i in group]
                evidence = self._floors.evidence(
                    band_power(view[chosen, :count, CONTEXT:]), chosen)
                values = head_value(output[group, :count], evidence,
                                    outputs[1][group, :count]).tolist()
                for row, stream_values in zip(chosen, values, strict=True):
                    self._values[row].extend(stream_values)
        for row, count in enumerate(windows):  # keep each row's context and pending samples
            if count:
                used = count * WINDOW
                keep = fill[row] - used
                audio[row, :keep] = audio[row, used:fill[row]]
                fill[row] = keep

    def _inputs(self, windows: npt.NDArray[np.float32], rows: Sequence[int],
                counts: Sequence[int]) -> npt.NDArray[np.float32]:
        """The model's inputs from a fresh copy of streams ``rows``' windows, ``counts`` of
        each real (models/vad_offset.py)."""
        return windows if self._offsets is None else self._offsets.clean(windows, rows, counts)

    def _decide(self, row: int) -> str:
        probabilities, values = self._probabilities[row], self._values[row]
        base = self._base[row]
        n = self.frame_samples
        decider = self._deciders[row]
        # Frames whose last sample lies in a window already run, and the lookahead windows
        # after it too: (frame + 1) * n <= (windows - lookahead) * WINDOW.
        decidable = max(base + len(probabilities) - decider.lookahead, 0) * WINDOW // n
        first = self._evaluated[row]
        if first >= decidable:
            return ""
        ats = [((frame + 1) * n - 1) // WINDOW - base for frame in range(first, decidable)]
        out = decider.decide({"model": probabilities, "head": values}, ats)
        self._evaluated[row] = decidable
        # Windows before the next frame's window are no longer needed.
        needed = ((decidable + 1) * n - 1) // WINDOW
        if needed > base:
            del probabilities[: needed - base]
            del values[: needed - base]
            self._base[row] = needed
        return out


class StreamingSileroVad:
    """One stream with :class:`models.vad.StreamingVad`'s interface (``push`` -> ``0``/``1``)."""

    def __init__(self, *, frame_ms: int = 20, threshold: float | None = None,
                 release: float | None = None, lookahead: int | None = None,
                 model: SileroModel | None = None, head: bool = True,
                 detrend: bool = True) -> None:
        self._batch = SileroBatchVad(1, frame_ms=frame_ms, threshold=threshold,
                                     release=release, lookahead=lookahead, model=model,
                                     head=head, detrend=detrend)

    @property
    def frame_samples(self) -> int:
        return self._batch.frame_samples

    @property
    def frames_decided(self) -> int:
        return self._batch.frames_decided(0)

    def push(self, samples: npt.ArrayLike) -> str:
        return self._batch.push([samples])[0]
