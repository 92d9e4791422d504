"""The 16 kHz head refitted as the narrowband head was, noise steps included (issue 17;
models/vad_head.py).

The default's head (models/vad_head.py) was fitted on 2026-12-05 by bench/vad_head.py, before
the backend read its inputs without their offset and drift (models/vad_offset.py), before the
band evidence's steady floor (docs/vad.md, "A step in the background noise") and before it became
one of two branches (models/vad_decision.py). This script fits it again the way
bench/vad_narrowband_head.py fits the narrowband head, on what the backend computes today:

    head = sigmoid(a * logit(p) + sum_b w_b * e_b / 10 + sum_k v_k * h_k + c)

over the 16 kHz network's probability ``p`` and 128 state values ``h`` (its inputs cleaned as
the backend cleans them) and the seven bands' evidence, a ridge (``--ridge``) on the ``v``
only, on the **tuning** recordings alone at 16 kHz: the telephone sample and
`mfa_acoustic_corpus` (each window weighing ``--weight`` times an AMI window) and the ten AMI
train excerpts, each clean and with white, pink and babble noise at 20 / 10 / 5 dB, two noise
samples; with ``--step-weight W`` the 16 noise steps of
:func:`bench.vad_narrowband_head.noise_steps` join the fit as non-speech.

Each fit's head replaces the shipped head's branch of the default (the model branch stays),
deciding by each rule of :data:`RULES` (threshold, release, lookahead, the frames each unit
loses at its start and end), its state term capped at :data:`models.vad_head.STATE_CAP`. The
rules are ranked by total shortfall of F1 after METRICS.md §2 under the best of silero-vad and
webrtcvad (modes 0-3) per set and condition on the tuning recordings, the AMI train excerpts
and TEN VAD's choice half, after the narrowband fit's refusals (babble alone, talk time of the
tuning recordings silenced between phrases). The shipped head is scored beside them. Nothing
of the validation recordings (AMI development and test, MFA and CMU ARCTIC, TEN VAD's
validation half) is read here: bench/vad.py scores a head on them.

With ``--long`` the ranking also reads the ranked sets in long streams, and with
``--long-weight W`` the fit the fitted sets' (bench/vad_narrowband_head.py, "Long streams").

Usage: ``.venv/bin/python bench/vad_wideband_head.py [--ridge 3] [--step-weight 0 5]
[--music-weight 0 2] [--long-weight 0 5] [--max-steps 7] [--max-music 0.1] [--save
head.json]`` (about eight minutes on one core per ridge and step weight; with ``--long``,
six more minutes and about two per fit).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.vad_head_clips import WIDEBAND_PATH  # noqa: E402
from bench.vad_narrowband_head import run  # noqa: E402

# The head's rule: threshold, release (under it), lookahead in windows, then the frames each
# unit loses at its start and end. The shipped rule (0.85 / 0.65, lookahead 1, no trim) is
# one of them.
RULES = [(on, off, ahead, *trims) for ahead in (1, 2) for on in (0.8, 0.85, 0.9, 0.95)
         for off in (0.5, 0.65, 0.8) if off < on
         for trims in ((0, 0), (0, 2), (1, 3))]


def main() -> None:
    # The shipped head was fitted otherwise (bench/vad_head.py): "the default before this
    # head" scores it, no row of the table is it.
    run(WIDEBAND_PATH, __doc__ or "", RULES)


if __name__ == "__main__":
    main()
