"""The VAD backend of audio mode (``IngestConfig.vad_backend``, ``RAPPORT_VAD_BACKEND``,
``--vad-backend``, ``rapport vad --backend``):

- ``auto`` (the default): ``silero`` when onnxruntime, onnx and the silero-vad wheel's model
  file are there, else ``rapport``, with a WARNING log saying which runs and why (issue 17:
  on real speech the Silero model, with Rapport's decision rule, is the better detector; see
  docs/vad.md). :attr:`VadBackend.running` names the one that runs.
- ``silero`` (models/vad_silero.py, the optional extra): asked for explicitly, a missing
  extra is a :class:`~models.errors.ConfigError` at start-up (``rapport vad`` exits 2), never
  a silent fallback.
- ``rapport`` (models/vad.py): Rapport's own spectral VAD, numpy and librosa only.

``music_gate`` (``RAPPORT_VAD_MUSIC_GATE``, ``--vad-music-gate``; off by default) turns on the
silero backend's music gate for wideband audio (models/vad_music.py; docs/vad.md, "Music and other
sounds", says what it gains and costs); rapport's VAD has none.

:class:`VadBackend` is built once per ingest process and makes one VAD per audio-mode
participant. With ``silero`` every participant's VAD shares one
:class:`~models.vad_silero.SileroModel` (one onnxruntime session, loaded here, so a missing
extra is a :class:`~models.errors.ConfigError` at start-up, not at the first participant);
each participant still runs its own inferences. Batching the windows of
all participants into one inference would need a scheduler between participants whose audio
arrives independently (each reader would wait for the others' windows, adding latency and
coupling every participant's stream to the slowest one): not worth it at one core's worth of
participants, see docs/ingest.md.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from models.errors import ConfigError
from models.vad import StreamingVad, VadConfig

log = logging.getLogger(__name__)

BACKENDS: Final = ("auto", "silero", "rapport")
DEFAULT_BACKEND: Final = "auto"
VAD_RATE = 16_000
# Audio sampled at this rate or less is narrowband (:meth:`VadBackend.create`): a telephone
# line's 8 kHz, whose speech ends under 4 kHz.
NARROWBAND_MAX_RATE = 8_000


class FrameVad(Protocol):
    """What audio mode needs of a VAD: 16 kHz mono float samples in, one ``0``/``1`` per
    decided frame out, and at the end of the stream the frames still undecided or held
    (models.vad.StreamingVad and models.vad_silero.StreamingSileroVad)."""

    @property
    def frame_samples(self) -> int: ...

    @property
    def frames_decided(self) -> int: ...

    def push(self, samples: npt.ArrayLike) -> str: ...

    def finish(self) -> str: ...


class VadBackend:
    """Makes each audio-mode participant's VAD (see the module docstring)."""

    def __init__(self, name: str = DEFAULT_BACKEND, config: VadConfig | None = None, *,
                 music_gate: bool = False) -> None:
        if name not in BACKENDS:
            raise ConfigError("vad_backend", f"must be one of {', '.join(BACKENDS)}, "
                                             f"got {name!r}")
        self.name = name  # as asked
        self.running = "rapport"  # the one that runs
        self.config = config or VadConfig()
        self.music_gate = music_gate  # silero's music gate (models/vad_music.py), wideband
        self._model: Any = None
        self._narrowband_model: Any = None  # the 8 kHz network, loaded when first needed
        if name in ("silero", "auto"):
            from models.vad_silero import load_model

            try:
                self._model = load_model()  # ConfigError when the extra is missing
            except (ConfigError, ImportError, OSError) as error:
                if name == "silero":
                    raise
                reason = error.reason if isinstance(error, ConfigError) else str(error)
                log.warning("VAD backend auto: silero unavailable (%s); running Rapport's own "
                            "VAD (models/vad.py), less accurate on real speech", reason)
            else:
                self.running = "silero"
                log.info("VAD backend %s: silero (one onnxruntime session for every "
                         "participant), music gate %s", name, "on" if music_gate else "off")

    def create(self, narrowband: bool = False) -> FrameVad:
        """A new participant's VAD. ``narrowband``: the participant's audio was sampled at
        :data:`NARROWBAND_MAX_RATE` or less (a telephone line) before it was resampled to
        16 kHz; silero then adds its 8 kHz network and its head (models/vad_silero.py,
        "Narrowband audio"); rapport's VAD is the same either way."""
        if self._model is not None:
            from models.vad_silero import StreamingSileroVad

            if narrowband:
                self.load_narrowband()
            return StreamingSileroVad(frame_ms=self.config.frame_ms, model=self._model,
                                      narrowband=narrowband,
                                      narrowband_model=self._narrowband_model,
                                      music_gate=self.music_gate)
        return StreamingVad(self.config, VAD_RATE)

    def load_narrowband(self) -> None:
        """Load silero's 8 kHz network once (about 0.06 s): the ingest calls this in a thread
        before a dial-in participant's first VAD, so the event loop never waits for it."""
        if self._model is not None and self._narrowband_model is None:
            from models.vad_silero_model import NARROWBAND, load_model

            self._narrowband_model = load_model(layout=NARROWBAND)
            log.info("VAD backend silero: 8 kHz network loaded for narrowband audio")

    def warm(self) -> None:
        """Run the backend once on a second of silence: librosa compiles some of its code
        (numba) on first use, seconds the first time; onnxruntime allocates on first run."""
        self.create().push(np.zeros(VAD_RATE, dtype=np.float32))
