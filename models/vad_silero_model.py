"""The Silero VAD network, rebuilt to run many windows of many streams per call (issue 4,
part 2; issue 17): models/vad_silero.py decides frames with it.

The ONNX file in the ``silero-vad`` wheel holds two networks of the same shape, one per
sample rate it accepts (``If(Equal(sr, 16000))``): a 16 kHz one reading 512-sample windows
and an 8 kHz one reading 256-sample windows, each with the last 64 (32) samples of the
previous window as context; both take 32 ms per window. :class:`Layout` names the sizes of
each (:data:`WIDEBAND`, :data:`NARROWBAND`).

How it is run
-------------
Per 512-sample window (32 ms at 16 kHz, plus the 64 samples before it as context) the model
computes a magnitude spectrum (four 256-sample frames, hop 128, the last one completed by
reflection), a convolutional encoder over those four frames, one step of an LSTM cell and a
sigmoid. Only the LSTM carries anything from one window to the next. The file runs one window
per call, and its convolutions, as onnxruntime runs them, cost far more than their
arithmetic: each window's 3-tap, 4-frame convolution is its own small matrix product. So the
16 kHz branch's parameters are read from the file at start-up (the ``onnx`` package, part of
the ``silero`` extra) and put into a graph built here that takes every window of every stream
ready in one call: the encoder as matrix products over all windows at once (each
convolution's taps side by side, taps that would only meet its zero padding dropped), then
onnxruntime's LSTM over the windows in order, per stream, from that stream's state (its
``sequence_lens`` handling streams with fewer windows), then the output layer; the spectrum
before the graph, an FFT (:func:`magnitudes` says why). A second graph, the same from the
encoder's output on, serves restarts (:meth:`SileroModel.resume`). Nothing is approximated:
the arithmetic is the file's, regrouped. :func:`load_model` checks both graphs against the
file itself on test audio first, so a model file laid out otherwise is refused at start-up.

The 8 kHz network is what the silero backend adds for narrowband audio, audio sampled at
8 kHz or less (telephone lines): the 16 kHz network, trained on wideband audio, loses much
of such speech once it is resampled to 16 kHz (models/vad_silero.py, "Narrowband audio").
Loaded with its head, its graph gives models/vad_narrowband_head.py's state term as the
16 kHz graph gives models/vad_head.py's.

Pure code apart from loading the model file.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import ConfigError
from models.vad_head import STATE_WEIGHTS
from models.vad_narrowband_head import STATE_WEIGHTS as NARROWBAND_STATE_WEIGHTS

STATE_SHAPE = (2, 128)  # per stream; the model's state input is (2, batch, 128)
HIDDEN = STATE_SHAPE[1]
MODEL_FILE = "silero_vad.onnx"


@dataclass(frozen=True)
class Layout:
    """The sizes of one of the file's two networks: its sample ``rate``, the samples of a
    ``window`` (one inference, 32 ms) and of the ``context`` before it, and the ``filter``
    (frame) and ``hop`` of its spectrum."""

    rate: int
    window: int
    context: int
    filter: int
    hop: int

    @property
    def span(self) -> int:
        """Samples of one model input: the context, then the window."""
        return self.context + self.window

    @property
    def bins(self) -> int:
        return self.filter // 2 + 1

    def parameters(self) -> dict[str, tuple[int, ...]]:
        """The network's parameters in the file, by name (less the file's prefix), with
        their shapes."""
        return {
            "stft.forward_basis_buffer": (2 * self.bins, 1, self.filter),
            "encoder.0.reparam_conv.weight": (128, self.bins, 3),
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


WIDEBAND = Layout(rate=16_000, window=512, context=64, filter=256, hop=128)
NARROWBAND = Layout(rate=8_000, window=256, context=32, filter=128, hop=64)
# The rate everything else runs at, and its network's sizes.
RATE, WINDOW, CONTEXT = WIDEBAND.rate, WIDEBAND.window, WIDEBAND.context
# Largest difference tolerated between the built graph and the file at start-up, in speech
# probability and state: the two differ only by float32 rounding (about 1e-6 on the check's
# audio, at most 4e-5 in probability over bench/vad.py's 35 minutes).
SELF_CHECK_TOLERANCE = 1e-4


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


def model_parameters(path: Path | None = None, layout: Layout = WIDEBAND
                     ) -> dict[str, npt.NDArray[np.float32]]:
    """The parameters of ``layout``'s network (:meth:`Layout.parameters`), read from the model
    file."""
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

    # The file branches on the sample rate: If(Equal(sr, 16000)), 16 kHz in then_branch and
    # 8 kHz in else_branch.
    constants = {node.output[0]: tensor(node) for node in graph.node
                 if node.op_type == "Constant"}
    producers = {output: node for node in graph.node for output in node.output}
    branch = None
    for node in graph.node:
        condition = producers.get(node.input[0]) if node.op_type == "If" else None
        if condition is None or condition.op_type != "Equal":
            continue
        values = [constants.get(name) for name in condition.input]
        if any(value is not None and value.size == 1 and value.item() == WIDEBAND.rate
               for value in values):
            side = "then_branch" if layout.rate == WIDEBAND.rate else "else_branch"
            branch = next(a.g for a in node.attribute if a.name == side)
    expected = layout.parameters()
    found: dict[str, npt.NDArray[np.float32]] = {}
    for node in branch.node if branch is not None else ():
        name = node.output[0].rsplit("__", 1)[-1]  # the file prefixes names with the branch
        value = tensor(node) if node.op_type == "Constant" and name in expected else None
        if value is not None:
            found[name] = value.astype(np.float32)
    wrong = [name for name, shape in expected.items()
             if name not in found or found[name].shape != shape]
    if wrong:
        raise ConfigError("vad.backend", f"silero model file not recognised "
                                         f"({layout.rate // 1000} kHz parameters missing or "
                                         f"reshaped: {', '.join(wrong)})")
    return found


FRAMES = 4  # spectrum frames per window


def spectrum_taper(parameters: dict[str, npt.NDArray[np.float32]], layout: Layout = WIDEBAND
                   ) -> npt.NDArray[np.float32]:
    """The analysis window of ``layout``'s spectrum: the file's spectrum is a matrix product
    with a basis of cosine and negative sine rows, each times this window (the first row,
    the cosine of frequency 0, is the window itself). Checked: a basis laid out otherwise is
    refused, so :func:`magnitudes` computes exactly the file's spectrum."""
    basis = parameters["stft.forward_basis_buffer"][:, 0, :].astype(np.float64)
    taper = basis[0]
    angle = 2 * np.pi * np.outer(np.arange(layout.bins), np.arange(layout.filter)) / layout.filter
    expected = np.concatenate((np.cos(angle), -np.sin(angle))) * taper
    if not np.max(np.abs(basis - expected)) <= 1e-5:
        raise ConfigError("vad.backend", "silero model file not recognised (its spectrum "
                                         "basis is not a windowed Fourier basis)")
    out: npt.NDArray[np.float32] = taper.astype(np.float32)
    return out


def magnitudes(windows: npt.NDArray[np.float32], taper: npt.NDArray[np.float32],
               layout: Layout = WIDEBAND) -> npt.NDArray[np.float32]:
    """The file's magnitude spectrum of ``windows`` ``(..., layout.span)``: ``(..., 4,
    layout.bins)``, computed before the graph. In the file it is a matrix product with a
    windowed Fourier basis (:func:`spectrum_taper` checks that it is); in the graph that
    product was the largest single cost, about a third of the time, and this FFT costs a
    third of it (2026-12-06, AMD EPYC: 8 streams in 1 s batches about 20 % faster wideband,
    10 % narrowband; every decision on the real recordings, clean and noisy, the same).
    Each window (context and samples) is padded on the right by reflection to fill its last
    frame, as the file pads it, then cut into four frames of ``filter`` samples, ``hop``
    apart; each frame times ``taper`` (:func:`spectrum_taper`), then the magnitude of its
    real FFT."""
    from scipy import fft

    span, hop = layout.span, layout.hop
    reflected = layout.filter - hop - layout.context
    flat = np.ascontiguousarray(windows, dtype=np.float32).reshape(-1, span)
    padded = np.empty((len(flat), span + reflected), dtype=np.float32)
    padded[:, :span] = flat
    padded[:, span:] = flat[:, span - 2:span - 2 - reflected:-1]  # reflection, edge excluded
    frames = np.lib.stride_tricks.as_strided(
        padded, (len(flat), FRAMES, layout.filter),
        (padded.strides[0], hop * padded.itemsize, padded.itemsize), writeable=False)
    spectrum = fft.rfft(frames * taper, axis=-1, workers=1, overwrite_x=True)
    out: npt.NDArray[np.float32] = np.abs(spectrum).reshape(*np.shape(windows)[:-1], FRAMES,
                                                             layout.bins)
    return out


def _tap_matrix(parameters: dict[str, npt.NDArray[np.float32]], layer: int,
                taps: Sequence[int]) -> npt.NDArray[np.float32]:
    """Encoder ``layer``'s weights for ``taps`` as one ``(taps * in, out)`` matrix: a
    convolution output is then its input frames at those taps, side by side, times it."""
    weight = parameters[f"encoder.{layer}.reparam_conv.weight"][:, :, list(taps)]
    return np.ascontiguousarray(weight.transpose(2, 1, 0).reshape(-1, weight.shape[0]))


def _sequence_graph(parameters: dict[str, npt.NDArray[np.float32]],
                    head: npt.ArrayLike | None = None, layout: Layout = WIDEBAND,
                    encoder: bool = True) -> bytes:
    """A graph :class:`SileroModel` runs, serialised (see the module docstring).

    Inputs: ``magnitudes`` ``(streams, windows, 4, layout.bins)`` float32, each window's
    spectrum (:func:`magnitudes`), or without the ``encoder``, ``features`` ``(streams,
    windows, 128)``, what the encoder gave for each window; ``state`` ``(2, streams, 128)``,
    the file's recurrent state layout; ``lengths`` ``(streams,)`` int32, each stream's number
    of real windows (the rest is padding).
    Outputs: ``probabilities`` ``(streams, windows)`` (padding windows' ones meaningless) and
    ``state_out`` after each stream's last real window; with the ``encoder``, its
    ``features``; given ``head`` (128 weights, models/vad_head.py ``STATE_WEIGHTS``, or
    models/vad_narrowband_head.py's for the 8 kHz network), also ``state_term`` ``(streams,
    windows)``: the ReLU of the LSTM's output, which the file's output layer reads, times
    those weights."""
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

    source = "magnitudes" if encoder else "features"
    shape = op("Shape", source)
    streams, count = cut(shape, 0, 1, 0), cut(shape, 1, 2, 0)
    if encoder:
        # The spectrum comes in (:func:`magnitudes`): an FFT outside the graph costs a third
        # of the file's spectrum as a matrix product, the graph's largest single cost once.
        magnitude = op("Reshape", "magnitudes", const([-1, FRAMES, layout.bins]))
        # Encoder 0: 3 taps, stride 1, zero padding, over the 4 frames (n, 4, bins -> 128).
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
        # Encoder 2, stride 2, over 2 frames: one output meeting (pad, 0, 1); encoder 3 over
        # that single frame meets only its middle tap.
        third = dense(second, 2, (1, 2))
        nodes.append(helper.make_node("Reshape", [dense(third, 3, (1,)), op(
            "Concat", streams, count, const([HIDDEN]), axis=0)], ["features"]))
    # LSTM over each stream's windows in order (time-major), from the stream's state.
    sequence = op("Transpose", "features", perm=[1, 0, 2])
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
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["s", "t", HIDDEN])
    graph = helper.make_graph(
        nodes, "silero_sequence",
        [helper.make_tensor_value_info("magnitudes", TensorProto.FLOAT,
                                       ["s", "t", FRAMES, layout.bins]) if encoder else features,
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "s", HIDDEN]),
         helper.make_tensor_value_info("lengths", TensorProto.INT32, ["s"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["s", "t"]),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [2, "s", HIDDEN])]
        + ([helper.make_tensor_value_info("state_term", TensorProto.FLOAT, ["s", "t"])]
           if head is not None else []) + ([features] if encoder else []),
        constants)
    # Opset 17 and IR 8: what onnxruntime 1.17, the extra's floor, runs.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


@dataclass(frozen=True)
class Ran:
    """What :class:`SileroModel` gives for windows of streams: ``probabilities`` and the head's
    state ``term`` (empty unless asked), ``(streams, windows)``; the recurrent ``state`` after
    each stream's last real window; the encoder's ``features`` ``(streams, windows, 128)``,
    what the LSTM read (:meth:`SileroModel.resume` runs it again from them)."""

    probabilities: npt.NDArray[np.float32]
    term: npt.NDArray[np.float32]
    state: npt.NDArray[np.float32]
    features: npt.NDArray[np.float32]


class SileroModel:
    """One of Silero's networks (``layout``) over many windows of many streams per call (see
    the module docstring); build it with :func:`load_model`. One instance may serve any number
    of models/vad_silero.py's ``SileroBatchVad``: it holds no stream state. ``recurrent``,
    the same graph without the spectrum and encoder, runs the LSTM and output layer alone
    over features the encoder gave before: a restart's warm-up (models/vad_restart.py)."""

    def __init__(self, session: Any, taper: npt.NDArray[np.float32], head: bool = False,
                 layout: Layout = WIDEBAND, recurrent: Any = None) -> None:
        self.session = session
        self.recurrent = recurrent
        self.taper = taper  # the spectrum's analysis window (:func:`spectrum_taper`)
        self.layout = layout
        self.head = head  # whether the graph also gives its head's state term

    def run(self, windows: npt.NDArray[np.float32], state: npt.NDArray[np.float32],
            lengths: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.float32],
                                                     npt.NDArray[np.float32]]:
        """Speech probabilities ``(streams, windows)`` of ``windows`` ``(streams, windows,
        span)`` (each a window's context and samples at the layout's rate, float32; at 16 kHz
        64 and 512), stream ``s`` from recurrent ``state[:, s]`` (``(2, streams, 128)``) over
        its first ``lengths[s]`` windows (at least one), and the state after them."""
        ran = self.encode(windows, state, lengths)
        return ran.probabilities, ran.state

    def run_head(self, windows: npt.NDArray[np.float32], state: npt.NDArray[np.float32],
                 lengths: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.float32], ...]:
        """:meth:`run`'s probabilities, then the head's state term ``(streams, windows)``
        (models/vad_head.py; models/vad_narrowband_head.py at 8 kHz), then the state; for a
        model loaded with ``head=True``."""
        ran = self.encode(windows, state, lengths, head=True)
        return ran.probabilities, ran.term, ran.state

    def encode(self, windows: npt.NDArray[np.float32], state: npt.NDArray[np.float32],
               lengths: npt.NDArray[np.int32], head: bool = False) -> Ran:
        """:meth:`run` (with the head's term if ``head``), keeping the encoder's features."""
        names = ["probabilities", "state_out", "features"] + (["state_term"] if head else [])
        return self._ran(self.session, head, names, {
            "magnitudes": magnitudes(windows, self.taper, self.layout), "state": state,
            "lengths": lengths})

    def resume(self, features: npt.NDArray[np.float32], state: npt.NDArray[np.float32],
               lengths: npt.NDArray[np.int32], head: bool = False) -> Ran:
        """The recurrent part alone over ``features`` ``(streams, windows, 128)`` that
        :meth:`encode` gave: the same probabilities, term and state as running their windows
        again, without their spectrum and encoder."""
        if self.recurrent is None:
            raise ConfigError("vad.backend", "this silero model has no recurrent graph: "
                                             "build it with load_model")
        names = ["probabilities", "state_out"] + (["state_term"] if head else [])
        return self._ran(self.recurrent, head, names, {
            "features": features, "state": state, "lengths": lengths}, features)

    def _ran(self, session: Any, head: bool, names: list[str], feeds: dict[str, Any],
             features: npt.NDArray[np.float32] | None = None) -> Ran:
        if head and not self.head:
            raise ConfigError("vad.backend", "this silero model was loaded without the head")
        got = dict(zip(names, session.run(names, feeds), strict=True))
        return Ran(got["probabilities"], got.get("state_term", np.empty(0, dtype=np.float32)),
                   got["state_out"], got["features"] if features is None else features)


def reference_probabilities(session: Any, windows: npt.NDArray[np.float32],
                            state: npt.NDArray[np.float32], rate: int = WIDEBAND.rate
                            ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """What the unmodified file (``session``, from :func:`load_session`) gives for
    :meth:`SileroModel.run`'s ``windows`` and ``state`` at ``rate``, one window position per
    call."""
    sample_rate = np.array(rate, dtype=np.int64)
    out = np.empty(windows.shape[:2], dtype=np.float32)
    for k in range(windows.shape[1]):
        probability, state = session.run(None, {"input": np.ascontiguousarray(windows[:, k]),
                                                "state": state, "sr": sample_rate})
        out[:, k] = probability[:, 0]
    return out, state


def _check_audio(streams: int = 2, windows: int = 40, layout: Layout = WIDEBAND
                 ) -> npt.NDArray[np.float32]:
    """Windows of speech-like test audio: harmonic bursts at a syllable's pace over noise,
    different per stream, so probabilities and states move (silence would keep both flat)."""
    rng = np.random.default_rng(1)
    t = np.arange(layout.context + windows * layout.window) / layout.rate
    rows = []
    for s in range(streams):
        pitch = 110.0 + 60.0 * s + 20.0 * np.sin(2 * np.pi * 3.0 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / layout.rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 12))
        envelope = np.clip(np.sin(2 * np.pi * (2.5 + s) * t), 0.0, None) ** 2
        rows.append(0.2 * envelope * voice + 0.01 * rng.standard_normal(t.size))
    audio = np.asarray(rows, dtype=np.float32)
    starts = np.arange(windows) * layout.window
    return audio[:, starts[:, None] + np.arange(layout.span)]


def load_model(path: Path | None = None, threads: int = 1, head: bool = True,
               layout: Layout = WIDEBAND) -> SileroModel:
    """:class:`SileroModel` of ``layout``'s network (16 kHz by default) in the model file (the
    wheel's by default), on ``threads`` CPU threads (one by default: an ingest process runs
    one per core), with its head's state term unless ``head`` is false (the 16 kHz
    network's: models/vad_head.py; the 8 kHz network's: models/vad_narrowband_head.py),
    checked against the file run as is at that rate (:func:`reference_probabilities`) on
    test audio, probabilities and states, run whole and the recurrent part alone."""
    parameters = model_parameters(path, layout)
    weights = STATE_WEIGHTS if layout == WIDEBAND else NARROWBAND_STATE_WEIGHTS
    session, recurrent = (_onnxruntime().InferenceSession(
        _sequence_graph(parameters, weights if head else None, layout, encoder),
        _session_options(threads), providers=["CPUExecutionProvider"])
        for encoder in (True, False))
    model = SileroModel(session, spectrum_taper(parameters, layout), head, layout, recurrent)
    windows = _check_audio(layout=layout)
    state = np.zeros((STATE_SHAPE[0], windows.shape[0], STATE_SHAPE[1]), dtype=np.float32)
    lengths = np.full(windows.shape[0], windows.shape[1], dtype=np.int32)
    ours = model.encode(windows, state, lengths)
    resumed = model.resume(ours.features, state, lengths)  # the recurrent part alone
    theirs = reference_probabilities(load_session(path), windows, state, layout.rate)
    difference = max(float(np.max(np.abs(a - b))) for ran in (ours, resumed)
                     for a, b in zip((ran.probabilities, ran.state), theirs, strict=True))
    if not difference <= SELF_CHECK_TOLERANCE:
        raise ConfigError("vad.backend", f"silero model file not recognised (the rebuilt graph "
                                         f"differs from it by {difference:.2g})")
    return model
