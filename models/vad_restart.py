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
start again from zero and run through the stream's last :data:`WARM_WINDOWS` (62, 2 s) inputs,
as the model read them; the windows from there are run from the new states. A state is so
never older than 30 s plus the wait for a pause, never cold, and never restarted in the
middle of speech the model hears (a deaf model's probability is low, so it restarts on time).
Restarts depend only on the audio, as every decision does. A stream of 30 s or less never
restarts, so every figure measured on such recordings is unchanged. The cost is two seconds of
windows run again about every 30 s (docs/vad.md, "Long streams", measures it).

How it was chosen (docs/vad.md, "Long streams"; bench/vad_long.py measures it): a restart every
30 s, 1 s of warm-up (the head's longest fitted recording and the ingest's batch, not ranked)
and waits of 0, 8, 16 and 31 quiet windows were ranked on the tuning sets (the tuning
recordings, AMI train, TEN VAD's choice half), each condition alone, back to back and looped,
by total shortfall under the best of silero-vad and webrtcvad; 8 came first (0.107, never
restarting 0.160, restarting on time whatever is heard 0.181), and passed a check on the
validation sets fixed beforehand. The warm-up was 1 s until 2026-12-07; with the probes below,
1, 1.5, 2, 2.5 and 3 s were ranked the same way (0.1014, 0.0837, **0.0808**, 0.1285, 0.1277)
and 2 s, checked once on validation against a veto fixed before (a lower total shortfall, no
more set-conditions under the best rival than 1 s), passed: 0.306 against 0.385, 19 against 20.

A state can also settle deaf within seconds of a restart (the validation recordings back to
back in pink noise at 10 dB: restarted 1.4 s before the CMU ARCTIC sentence, it heard that
sentence, then none of the 25 s of ``mfa_cold_corpus`` that followed: F1 0.011, against 0.951
from a fresh start), and a deaf state waits up to 30 s for its next restart. So a stream older
than :data:`RESTART_WINDOWS` also **probes**: when its 16 kHz probability has been under
:data:`QUIET` for :data:`PROBE_WINDOWS` (31, 1 s) windows, then 2, 4, 8 and 16 times as many
(the quiet run unbroken, and at least 1 s after its last restart), a fresh state runs
through its last :data:`WARM_WINDOWS` inputs, as a restart would; if that state hears speech
(a probability of at least :data:`HEARD` in the last :data:`HEARD_WINDOWS` of them, the
others only warming it), the stream restarts there from it; otherwise nothing changes. A
long silence costs five probes before its 30 s restart; a stream of 30 s or less never probes.
Chosen on the tuning sets (``bench/vad_long.py --rank``: first probe after 1, 2 or 4 s of
quiet, each then probing at doubling lengths, or every 1, 2 or 4 s; 1 s doubling first,
0.1014 against 0.1070 without probes, both with 1 s of warm-up), then checked once on
validation against a veto fixed before (a lower total shortfall under the best rival, no
more set-conditions under it): 0.385 against 0.680, 20 conditions under against 21 (docs/vad.md,
"Long streams", says what of validation was seen before: the case above among it).

What a restart runs through is the encoder's output for those inputs, kept from when they
were first run (models/vad_silero_model.py's ``SileroModel.resume``): only the LSTM depends on
the state, so the warm-up runs the recurrent part alone, with the same arithmetic and results
as running the inputs again (2026-12-07: a third of the time), and no audio is kept for it.

Pure code: per stream, a few counters and what the networks read of its last
:data:`WARM_WINDOWS` windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.errors import ConfigError

RESTART_WINDOWS = 938  # 30.0 s of 32 ms windows: the least a state runs before it restarts
WARM_WINDOWS = 62  # 2.0 s: the inputs a restarted state runs through first
PAUSE_WINDOWS = 8  # 0.26 s: the quiet windows a restart waits for...
QUIET = 0.1  # ...each with the 16 kHz network's probability under this
PROBE_WINDOWS = 31  # 1 s: the shortest quiet run that probes; then 2, 4, 8, 16 times it
HEARD = 0.5  # a probe's fresh state hears speech at this probability (silero-vad's own)...
HEARD_WINDOWS = 16  # ...in one of its last this many windows (the rest only warm it)


@dataclass(frozen=True, slots=True)
class Due:
    """A stream's next restart in a call: before its window ``window``; a ``probe`` restarts
    only if its fresh state hears speech (:func:`heard`)."""

    window: int
    probe: bool


def heard(probabilities: npt.NDArray[np.float32]) -> bool:
    """Whether a probe's fresh state, with these probabilities over the inputs it ran
    through, hears speech (module docstring)."""
    return bool(probabilities.size) and float(probabilities[-HEARD_WINDOWS:].max()) >= HEARD


class Restarts:
    """Per stream, when its states restart and what they start from (module docstring):
    ``restart`` windows at least between restarts (0: never), ``warm`` windows (``width``
    values kept of each: what the networks read of it) to start from, ``pause`` quiet windows
    to wait for, ``probe`` the shortest quiet run that probes (0: never)."""

    def __init__(self, streams: int, width: int, restart: int = RESTART_WINDOWS,
                 warm: int = WARM_WINDOWS, pause: int = PAUSE_WINDOWS,
                 probe: int = PROBE_WINDOWS) -> None:
        if not (restart == 0 or (0 <= warm <= restart and 0 <= pause <= restart
                                 and 0 <= probe <= restart)):
            raise ConfigError("vad.restart", "must be 0 (never) or at least the warm-up, "
                                             "pause and probe windows, which must be >= 0")
        self.restart, self.warm, self.pause, self.probe = restart, warm, pause, probe
        self._recent = np.zeros((streams, warm, width), dtype=np.float32)
        self._restarted = [0] * streams  # the window each stream last restarted before
        self._quiet = [0] * streams  # quiet windows at the end of each stream so far

    def due(self, row: int, done: int, probabilities: npt.NDArray[np.float32],
            at: int) -> Due | None:
        """The first window of a call, from its window ``at`` on, before which stream
        ``row`` restarts or probes, or ``None``: ``done`` windows ran before the call, and
        ``probabilities`` are the call's windows' (16 kHz network)."""
        if not self.restart:
            return None
        quiet = self._quiet[row]  # quiet windows just before window k
        for k, probability in enumerate(probabilities.tolist()):
            if k >= at:
                since = done + k - self._restarted[row]
                if since >= self.restart and quiet >= self.pause:
                    return Due(k, probe=False)
                if self._probes(quiet) and since >= self.probe and done + k >= self.restart:
                    return Due(k, probe=True)
            quiet = quiet + 1 if probability < QUIET else 0
        return None

    def _probes(self, quiet: int) -> bool:
        """Whether a quiet run of ``quiet`` windows probes: ``probe`` times a power of two,
        under ``restart`` (the count :meth:`ran` keeps stops there)."""
        if not self.probe or quiet < self.probe or quiet >= self.restart \
                or quiet % self.probe:
            return False
        times = quiet // self.probe
        return times & (times - 1) == 0

    def recent(self, row: int, values: npt.NDArray[np.float32],
               at: int) -> npt.NDArray[np.float32]:
        """Stream ``row``'s last :attr:`warm` windows' values before window ``at`` of a call
        whose windows' values are ``values``."""
        recent: npt.NDArray[np.float32] = np.concatenate((self._recent[row], values[:at]))
        return recent[len(recent) - self.warm:]

    def restarted(self, row: int, window: int) -> None:
        """Stream ``row`` restarted before its window ``window``."""
        self._restarted[row] = window

    def ran(self, row: int, values: npt.NDArray[np.float32],
            probabilities: npt.NDArray[np.float32]) -> None:
        """Stream ``row``'s call ended: its windows' ``values`` and final ``probabilities``."""
        quiet = self._quiet[row]
        for probability in probabilities.tolist():
            quiet = quiet + 1 if probability < QUIET else 0
        self._quiet[row] = min(quiet, self.restart)  # more never matters
        if self.warm:
            self._recent[row] = np.concatenate((self._recent[row], values))[-self.warm:]
