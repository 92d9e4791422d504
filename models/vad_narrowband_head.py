"""The narrowband head: the default's head for audio sampled at 8 kHz or less, read off the
model file's 8 kHz network (issue 17, point 2; models/vad_silero.py, "Narrowband audio").

The default's head (models/vad_head.py) reads the 16 kHz network's probability and state. On
audio with nothing above 4 kHz that network is off its training data: at 8 kHz the default
fell under webrtcvad in 6 of the 10 conditions of the AMI development and test excerpts, by up
to 0.028 of F1, while webrtcvad scored there what it scores at 16 kHz (README, "Narrowband
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

**How it was fitted** (bench/vad_narrowband_head.py, 2026-12-05): weighted logistic
regression of the windows' reference labels, a ridge of 3 on the state weights only, on the
**tuning** recordings alone at 8 kHz: the telephone sample and `mfa_acoustic_corpus` (each
window weighing 20 AMI windows) and the ten AMI train excerpts, clean and with white, pink and
babble noise at 20 / 10 / 5 dB, two noise samples each. The ridge (1, 3, 10) and the rule
(:data:`THRESHOLD`, :data:`RELEASE`, :data:`LOOKAHEAD`, :data:`TRIM_START`, :data:`TRIM_END`,
from a grid of 144) were chosen together by the least total shortfall under the best of
silero-vad and webrtcvad at 8 kHz on the tuning recordings, the AMI train excerpts and TEN
VAD's choice half, among rules that call at most 5 % of a minute of babble alone speech and
keep the talk time of the tuning recordings silenced between phrases within 3 % (the state
remembers a phrase: untrimmed, the best rules held speech 4 % too long into such silence,
hence the trims). **Validated** at 8 kHz on the AMI development and test
excerpts, the validation recordings and TEN VAD's validation half (bench/vad_narrowband.py;
README, "Narrowband audio", says what was seen on them when).

**Measured** (bench/vad_narrowband.py, 2026-12-05 22:18): with this head in place of the 16 kHz
head's branch, the default at 8 kHz is at least the best of silero-vad and webrtcvad in 29 of
the tuning sets' 30 conditions (28 before) and in 28 of the validation sets' 30 (22 before):
on the AMI validation excerpts in 9 of 10 (4 before; white 10 dB 0.764 to 0.819), under at
babble 10 dB (0.776 against 0.806). tests/unit/test_vad_narrowband.py holds bounds on the AMI
excerpts that the 16 kHz head's branch fails.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from models.vad_bands import fuse as fuse_with
from models.vad_head import STATE_CAP

PROBABILITY_WEIGHT = -0.322921
# One per band of models.vad_bands.BANDS_HZ, per 10 dB over the floor; the 4-8 kHz band is
# empty in narrowband audio.
BAND_WEIGHTS = (1.02148, 0.749626, -0.442189, -0.118028, 0.131767, 0.113302, 0.0)
BIAS = 1.14726
# One per state value of the 8 kHz network, in the model file's order.
STATE_WEIGHTS = (
    -2.78664, 0.563129, -4.16292, 2.54026, 0, 4.38819,
    -0.0695873, -0.5702, -4.27349, -1.32313, 6.60575, 2.10648,
    -1.04817, -0.983474, 0.673064, 1.38978, -2.72898, -3.69451,
    -0.66468, -0.576507, -0.659169, -1.45829, -2.68757, -0.694827,
    2.86086, 4.02725, 0.220948, -0.354996, 3.64772, -0.191831,
    -2.52808, -0.812964, 1.59219, -2.13353, 3.7663, -0.962348,
    2.03757, -0.969373, -2.92016, -0.141609, -2.48745, 1.47087,
    0.548918, -0.763973, -3.20984, 2.68648, -0.560134, -0.185547,
    -2.16602, -0.378299, -0.186607, -4.53829, -1.60217, -0.046486,
    -0.620942, -1.44512, 0.740989, -3.1425, -0.310019, 3.09423,
    1.46876, -2.11063, -1.98618, -1.63521, 6.05744, -2.62474,
    -0.727539, 3.93729, 0.0328917, 0.79031, -0.709643, 0.0465425,
    0.299393, -1.52928, -2.48562, -0.393454, 2.64917, -3.94801,
    8.95709, -1.68038, -0.248154, -1.03285, 1.40558, -4.91902,
    -0.731189, -0.790758, 1.50848, -2.58933, -1.30239, -0.955738,
    0.334039, -0.271986, 2.53255, -2.61429, 2.19634, 1.95493,
    -0.0498333, -2.24932, 4.1589, -0.509574, 6.47516, 0.923002,
    -0.0731045, 7.5552, 0.500764, 5.29401, -7.53582, -1.78702,
    0.526617, -3.74343, 0.00168659, 0.663824, 0.104981, 6.19709,
    0.011911, 1.02272, 1.12209, -2.86676, 3.87175, 2.0438,
    1.97702, -0.372472, 0.972606, -2.32435, -1.05273, 1.27414,
    0.433764, -0.0541747,
)
RIDGE = 3.0  # the ridge on the state weights these were fitted with
# The narrowband head's branch (models/vad_decision.py), chosen with the ridge.
THRESHOLD = 0.9  # speech starts at this value...
RELEASE = 0.8  # ...and ends under it
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
