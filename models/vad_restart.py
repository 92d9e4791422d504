"""When the silero backend's recurrent states start again in a long stream (issue 17):
:class:`Restarts`, used by models/vad_silero.py's :class:`~models.vad_silero.SileroBatchVad`.

Only the LSTM carries anything from one window to the next, and in a stream of minutes it
carries too much: some of its cell values keep growing with what it has heard (their
magnitude about 15 over a fresh 30 s, up to 100 over a few minutes of AMI's meetings), and the
state can settle where the model no longer hears a voice it hears from a fresh start. The
validation recordings back to back in white noise at 5 dB: after the CMU ARCTIC sentence the
default heard nothing of either ``mfa_cold_corpus`` recording, then or in the three times
through that followed (F1 0.128 against 0.946 for each alone); silero-vad, which carries its
state the same way, likewise (0.107). Others running the model on endless streams report the
same (silero-vad issue 725; its authors suggest cutting long audio into 5 to 15 minute
pieces). Every other measurement here, and the head's fit, read recordings of 30 s at most,
each from a fresh state.

So a stream's states **restart**: at the first window at least :data:`RESTART_WINDOWS` (938,
30 s) after the stream's start or its last restart that follows :data:`PAUSE_WINDOWS` (8,
0.26 s) windows whose 16 kHz probability was under :data:`QUIET` (0.1), both networks' states
start again from zero and run through the stream's last :data:`WARM_WINDOWS` (31, 1 s) inputs,
as the model read them; the windows from there are run from the new states. A state is so
never older than 30 s plus the wait for a pause, never cold, and never restarted in the
middle of speech the model hears (a deaf model's probability is low, so it restarts on time).
Restarts depend only on the audio, as every decision does. A stream of 30 s or less never
restarts, so every figure measured on such recordings is unchanged. The cost is one second of
windows run again about every 30 s (about 3 %).

How it was chosen (README, "Long streams"; bench/vad_long.py measures it): a restart every
30 s, 1 s of warm-up (the head's longest fitted recording and the ingest's batch, not ranked)
and waits of 0, 8, 16 and 31 quiet windows were ranked on the tuning sets (the tuning
recordings, AMI train, TEN VAD's choice half), each condition alone, back to back and looped,
by total shortfall under the best of silero-vad and webrtcvad; 8 came first (0.107, never
restarting 0.160, restarting on time whatever is heard 0.181), and passed a check on the
validation sets fixed beforehand.

Pure code: per stream, a few counters and its last :data:`WARM_WINDOWS` inputs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from models.errors import ConfigError

RESTART_WINDOWS = 938  # 30.0 s of 32 ms windows: the least a state runs before it restarts
WARM_WINDOWS = 31  # 1.0 s: the inputs a restarted state runs through first
PAUSE_WINDOWS = 8  # 0.26 s: the quiet windows a restart waits for...
QUIET = 0.1  # ...each with the 16 kHz network's probability under this


class Restarts:
    """Per stream, when its states restart and what they start from (module docstring):
    ``restart`` windows at least between restarts (0: never), ``warm`` windows of inputs
    (``span`` samples each) to start from, ``pause`` quiet windows to wait for."""

    def __init__(self, streams: int, span: int, restart: int = RESTART_WINDOWS,
                 warm: int = WARM_WINDOWS, pause: int = PAUSE_WINDOWS) -> None:
        if not (restart == 0 or (0 <= warm <= restart and 0 <= pause <= restart)):
            raise ConfigError("vad.restart", "must be 0 (never) or at least the warm-up and "
                                             "pause windows, which must be >= 0")
        self.restart, self.warm, self.pause = restart, warm, pause
        self._recent = np.zeros((streams, warm, span), dtype=np.float32)
        self._restarted = [0] * streams  # the window each stream last restarted before
        self._quiet = [0] * streams  # quiet windows at the end of each stream so far

    def due(self, row: int, done: int, probabilities: npt.NDArray[np.float32],
            at: int) -> int | None:
        """The first window of a call, from its window ``at`` on, before which stream
        ``row`` restarts, or ``None``: ``done`` windows ran before the call, and
        ``probabilities`` are the call's windows' (16 kHz network)."""
        if not self.restart:
            return None
        quiet = self._quiet[row]  # quiet windows just before window k
        for k, probability in enumerate(probabilities.tolist()):
            if k >= at and done + k - self._restarted[row] >= self.restart \
                    and quiet >= self.pause:
                return k
            quiet = quiet + 1 if probability < QUIET else 0
        return None

    def recent(self, row: int, inputs: npt.NDArray[np.float32],
               at: int) -> npt.NDArray[np.float32]:
        """Stream ``row``'s last :attr:`warm` inputs before window ``at`` of a call whose
        inputs are ``inputs``."""
        recent: npt.NDArray[np.float32] = np.concatenate((self._recent[row], inputs[:at]))
        return recent[len(recent) - self.warm:]

    def restarted(self, row: int, window: int) -> None:
        """Stream ``row`` restarted before its window ``window``."""
        self._restarted[row] = window

    def ran(self, row: int, inputs: npt.NDArray[np.float32],
            probabilities: npt.NDArray[np.float32]) -> None:
        """Stream ``row``'s call ended: its ``inputs`` and final ``probabilities``."""
        quiet = self._quiet[row]
        for probability in probabilities.tolist():
            quiet = quiet + 1 if probability < QUIET else 0
        self._quiet[row] = min(quiet, self.restart)  # more never matters
        if self.warm:
            self._recent[row] = np.concatenate((self._recent[row], inputs))[-self.warm:]
