"""The narrowband head: the default's head for audio sampled at 8 kHz or less, read off the
model file's 8 kHz network (issue 17, point 2; models/vad_silero.py, "Narrowband audio").

The default's head (models/vad_head.py) reads the 16 kHz network's probability and state. On
audio with nothing above 4 kHz that network is off its training data: at 8 kHz the default
fell under webrtcvad in 6 of the 10 conditions of the AMI development and test excerpts, by up
to 0.028 of F1, while webrtcvad scored there what it scores at 16 kHz (docs/vad.md, "Narrowband
audio"). The file's 8 kHz network, trained on such audio, already runs for narrowband streams
(its probability decides the narrowband branch); its recurrent state is as good a feature as
the 16 kHz one's is on wideband audio. So narrowband streams get a head of its own in place
of the 16 kHz head's branch:

    value = sigmoid(PROBABILITY_WEIGHT * logit(p8)
                    + sum_b BAND_WEIGHTS[b] * e_b / 10     (models/vad_bands.py, dB over floor)
                    + min(sum_k STATE_WEIGHTS[k] * h8_k, STATE_CAP)
                    + BIAS)

with ``p8`` the 8 kHz network's probability, ``h8`` its state (the ReLU of its LSTM's output,
which the file's own 8 kHz output layer reads; :func:`models.vad_silero_model.load_model`
builds the weighted sum into the 8 kHz graph as a second column, as for the 16 kHz head) and
``e`` the band evidence the 16 kHz head reads (the 4-8 kHz band, empty at 8 kHz, weighs 0).
The probability's weight is negative: the state already carries what the file's layer makes
of it, and the fit leans on the state.

**How it was fitted** (bench/vad_narrowband_head.py; first 2026-12-05, refitted 2026-12-06
with noise steps): weighted logistic regression of the windows' reference labels, a ridge of
3 on the state weights only, on the **tuning** recordings alone at 8 kHz: the telephone sample
and `mfa_acoustic_corpus` (each window weighing 20 AMI windows) and the ten AMI train excerpts,
clean and with white, pink and babble noise at 20 / 10 / 5 dB, two noise samples each; and,
since 2026-12-06, 16 **noise steps** as non-speech, each window weighing 5 (``--step-weight
5``): a stationary noise (white, pink, brown, a hum) switching on 15-45 dB louder, alone or 3 s
after one of the two tuning recordings. Without them the head held speech for seconds after
such a step: its weight on the 8 kHz network's probability was -0.32 (a probability near 0
added up to +3 to its logit) and its state decays slowly. The rule (:data:`THRESHOLD`,
:data:`RELEASE`, :data:`LOOKAHEAD`, :data:`TRIM_START`, :data:`TRIM_END`, from a grid of 144)
and the step weight (0, 1, 5, 20) were chosen together by the least total shortfall under the
best of silero-vad and webrtcvad at 8 kHz on the tuning recordings, the AMI train excerpts and
TEN VAD's choice half, among rules that call at most 5 % of a minute of babble alone speech and
keep the talk time of the tuning recordings silenced between phrases within 3 % (the state
remembers a phrase: untrimmed, the best rules held speech 4 % too long into such silence,
hence the trims): weight 5, 0.85 / 0.6, shortfall 0.0029 (the head of 2026-12-05: 0.0035),
1.8 s of speech called over the 16 steps (30.0 s). **Validated** at 8 kHz on the AMI
development and test excerpts, the validation recordings and TEN VAD's validation half
(bench/vad_narrowband.py; docs/vad.md, "Narrowband audio", says what was seen on them when), and on
noise steps after the validation recordings, other noise samples: 21.3 s to 1.1 s alone, 37.2 s
to 4.1 s after speech.

**Measured** (bench/vad_narrowband.py, 2026-12-06 06:44): with this head in place of the 16 kHz
head's branch, the default at 8 kHz is at least the best of silero-vad and webrtcvad in 27 of
the tuning sets' 30 conditions and 27 of the validation sets' 30 (the head of 2026-12-05: 29
and 27); on the AMI validation excerpts in 10 of 10 (babble 10 dB 0.776 to 0.819, against
0.806); the validation sets' total shortfall fell from 0.043 to 0.014. tests/unit/
test_vad_narrowband.py holds bounds on the AMI excerpts that the earlier head fails, and a
bound on noise steps it fails (12.2 s against 1.0 s).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from models.vad_bands import fuse as fuse_with
from models.vad_head import STATE_CAP

PROBABILITY_WEIGHT = -0.132131
# One per band of models.vad_bands.BANDS_HZ, per 10 dB over the floor; the 4-8 kHz band is
# empty in narrowband audio.
BAND_WEIGHTS = (0.917251, 0.753057, -0.447995, -0.120834, 0.0688964, -0.0908891, 0.0)
BIAS = 1.1409
# One per state value of the 8 kHz network, in the model file's order.
STATE_WEIGHTS = (
    -2.57773, 0.918795, -0.417633, 3.07926, 0, 3.66504, -0.0162145, -0.841811, -3.43419, -0.326705,
    5.32776, 1.90487, -1.68674, -0.38494, 0.224221, 0.75052, -1.72485, -2.91075, 0.0723628,
    -0.287726, -0.427859, -1.18587, -2.31427, -1.1757, 2.38169, -2.11255, 0.156238, -0.52338,
    3.42507, 0.0301994, -2.79635, -1.10935, 1.48781, -2.24721, 3.69702, -0.890413, 2.67851,
    -1.1646, -1.97961, -0.468904, -1.17519, 1.29329, 0.939985, -0.638633, -1.71738, 2.9032,
    -0.755373, -0.660555, -1.40846, -0.270763, -0.458381, -7.61587, -0.26023, -0.224148, -0.761477,
    -1.20689, 0.623536, -4.56653, -0.638362, 2.50578, 2.35083, -3.22531, -1.46445, -1.67013,
    5.83928, -4.5041, -0.578303, 3.82902, -0.0946624, 0.69341, -0.604111, -0.0557196, 0.975395,
    -2.20029, -2.96078, -0.121611, 2.62813, -2.75933, 6.57595, -1.32907, -0.479894, -1.16447,
    1.25735, -4.801, -0.5405, -1.10631, 1.46274, -2.14971, -0.793491, -1.95551, 0.773463,
    -0.671591, 2.7898, -2.58161, 3.33597, 1.63162, 1.59489, -1.57587, 3.57411, -1.3262, 6.2301,
    -1.83214, 0.262836, 7.35517, -0.165371, 4.13469, -6.67336, -1.89897, 0.691602, -4.25929,
    -19.3556, 0.886182, 0.216273, 7.48872, 0.0820955, 0.456511, 1.94899, -1.57222, 3.22721,
    1.66503, 1.51648, -1.03456, 1.28364, -2.82373, -2.2421, 1.20027, -0.541832, 0.455947,
)
RIDGE = 3.0  # the ridge on the state weights these were fitted with
# The narrowband head's branch (models/vad_decision.py), chosen with the ridge.
THRESHOLD = 0.85  # speech starts at this value...
RELEASE = 0.6  # ...and ends under it
LOOKAHEAD = 1  # windows after a frame's own whose value counts for it (32 ms)
TRIM_START = 1  # frames each unit loses at its start...
TRIM_END = 3  # ...and at its end


def narrowband_head_value(probability: npt.ArrayLike, evidence: npt.ArrayLike,
                          state_term: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The narrowband head's value of windows: the 8 kHz network's ``probability``
    ``(..., windows)``, the band ``evidence`` ``(..., windows, bands)`` in dB, and
    ``state_term`` ``(..., windows)``, its state times :data:`STATE_WEIGHTS` (what the 8 kHz
    graph built with them gives), capped at :data:`models.vad_head.STATE_CAP`."""
    return fuse_with(probability, evidence, PROBABILITY_WEIGHT, BAND_WEIGHTS, BIAS,
                     np.minimum(np.asarray(state_term, dtype=np.float64), STATE_CAP))
