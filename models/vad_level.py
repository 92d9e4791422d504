"""How loud a recording's speech is, and the lift a quiet recording gets before the VAD
(issue 17: a default VAD that holds on real speech, at the levels real files come at).

The silero backend's figures hold at the levels its rules were tuned at (speech peaking at -7
to -45 dBFS in the tuning recordings, by :func:`loud_level_db`), not far under them: the
Silero network's probability and state depend on the input's level, and the band evidence
(models/vad_bands.py) has an absolute floor. With the AMI meeting excerpts 20 dB under their
own level (speech then peaking at -42 to -55 dBFS), the default lost 0.06 to 0.18 of frame F1
where webrtcvad, whose noise model is relative, lost much less (docs/vad.md, "Quiet and loud
recordings"). So ``rapport vad`` and ``rapport analyze --audio`` lift a recording whose speech
peaks under :data:`LEVEL_FLOOR_DB` up to it, by at most :data:`MAX_LIFT_DB`, before the VAD:
one constant gain per file, from the whole file's level (services/cli/audio_files.py), as a
louder microphone setting would have recorded it. Recordings at the tuned levels are left as they
are.

The level is the :data:`LOUD_PERCENTILE`th percentile of the power of the recording's 32 ms
frames, in dB relative to full scale (a full-scale square wave is 0 dB; a full-scale sine
-3 dB): in a conversation over 5 % of the frames are speech, so it is the level of the speech
near its loud end, whatever the pauses hold. A recording that is mostly silence with a few
faint words reads as quieter than its speech, and is lifted more; the cap bounds that.

Why a floor, not a target: lowering a loud recording changes nothing the figures need (the
default holds at +12 dB), and lifting a recording already at a tuned level would move the
tuned and validated figures for nothing. Why only in the file path: a browser's microphone
applies automatic gain control before its audio reaches the ingest.

Crosstalk: a per-participant channel in a shared room carries the other voice faintly. A lift
scales both voices alike, so it keeps their ratio; but a channel whose own speaker hardly
speaks reads its level off the crosstalk and is lifted by up to the cap. The VAD calls such
crosstalk speech at any level (80 % of it 30 dB down, unlifted), so it is the channels'
comparison after the VAD (models/crosstalk.py) that drops it, not the level.

Pure code: numpy only, no I/O.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from models.errors import ValidationError

# Chosen on the tuning recordings by bench/vad_levels.py --floors (docs/vad.md, "Quiet and loud
# recordings").
LEVEL_FLOOR_DB = -35.0
MAX_LIFT_DB = 30.0
LOUD_PERCENTILE = 95.0
FRAME_S = 0.032  # the Silero network's window


def frame_powers(samples: npt.ArrayLike, rate: int) -> npt.NDArray[np.float64]:
    """The mean square of each whole 32 ms frame of ``samples`` (mono, at ``rate``, full
    scale 1.0): what :func:`loud_level_db` reads, so a long recording can be measured block
    by block (:func:`level_of_powers`)."""
    if rate <= 0:
        raise ValidationError("rate", f"must be > 0, got {rate}")
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    frame = max(round(rate * FRAME_S), 1)
    count = len(x) // frame
    powers: npt.NDArray[np.float64] = np.mean(
        np.square(x[: count * frame].reshape(count, frame)), axis=1)
    return powers


def level_of_powers(powers: npt.ArrayLike) -> float | None:
    """The level in dB full scale of frames whose powers are ``powers`` (module docstring);
    ``None`` when no frame holds anything (no level to tell)."""
    power = np.asarray(powers, dtype=np.float64).reshape(-1)
    power = power[np.isfinite(power) & (power > 0)]
    if not power.size:
        return None
    return 10 * math.log10(float(np.percentile(power, LOUD_PERCENTILE)))


def loud_level_db(samples: npt.ArrayLike, rate: int) -> float | None:
    """The level of ``samples`` (mono, at ``rate``, full scale 1.0) near its loud end, in dB
    full scale (module docstring); ``None`` when there is no whole frame or nothing but
    digital silence (no level to tell)."""
    return level_of_powers(frame_powers(samples, rate))


def lift_db(level_db: float | None, floor_db: float = LEVEL_FLOOR_DB,
            cap_db: float = MAX_LIFT_DB) -> float:
    """The gain in dB a recording whose speech peaks at ``level_db`` (:func:`loud_level_db`)
    gets before the VAD: up to ``floor_db`` when under it, at most ``cap_db``; 0 otherwise."""
    return level_gain_db(level_db, floor_db, None, cap_db)


def level_gain_db(level_db: float | None, floor_db: float | None = LEVEL_FLOOR_DB,
                  ceiling_db: float | None = None, cap_db: float = MAX_LIFT_DB) -> float:
    """The gain in dB a recording whose speech peaks at ``level_db`` gets before the VAD: up
    to ``floor_db`` when under it, down to ``ceiling_db`` when over it (either ``None``: no
    such bound), by at most ``cap_db`` either way; 0 otherwise. Only the floor is used
    (:func:`lift_db`); bench/vad_levels.py ``--ceilings`` tried a ceiling (docs/vad.md, "Quiet and
    loud recordings")."""
    if cap_db < 0:
        raise ValidationError("cap_db", f"must be >= 0, got {cap_db}")
    if floor_db is not None and ceiling_db is not None and ceiling_db < floor_db:
        raise ValidationError("ceiling_db", f"must be >= floor_db ({floor_db}), "
                                            f"got {ceiling_db}")
    if level_db is None or not math.isfinite(level_db):
        return 0.0
    if floor_db is not None and level_db < floor_db:
        return min(floor_db - level_db, cap_db)
    if ceiling_db is not None and level_db > ceiling_db:
        return max(ceiling_db - level_db, -cap_db)
    return 0.0


def gain(lift: float) -> float:
    """The linear factor of a lift in dB."""
    return float(10 ** (lift / 20))
