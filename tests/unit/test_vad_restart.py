"""When a long stream's states restart or probe (models/vad_restart.py), on probabilities
given by hand: the rule alone, without the model (tests/unit/test_vad_silero.py checks the
backend runs it as the model file run window by window would)."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from models.vad_restart import (
    HEARD,
    HEARD_WINDOWS,
    PROBE_WINDOWS,
    QUIET,
    RESTART_WINDOWS,
    Due,
    Restarts,
    heard,
)

SPAN = 4  # samples per input: the rule never reads them


def replay(restarts: Restarts, probabilities: np.ndarray, calls: list[int],
           taken: bool = False) -> list[Due]:
    """Every restart and probe ``restarts`` finds over one stream's ``probabilities``, cut into
    calls of ``calls`` windows (the last call takes the rest), each probe taken if ``taken``:
    what models/vad_silero.py's ``SileroBatchVad._run_all`` asks of it."""
    found: list[Due] = []
    done = 0
    cuts = np.cumsum(calls).tolist()
    for call in np.split(probabilities, [c for c in cuts if c < len(probabilities)]):
        inputs = np.zeros((len(call), SPAN), dtype=np.float32)
        due = restarts.due(0, done, call, 0)
        while due is not None:
            found.append(Due(done + due.window, due.probe))
            if not due.probe or taken:
                restarts.restarted(0, done + due.window)
            due = restarts.due(0, done, call, due.window + 1)
        restarts.ran(0, inputs, call)
        done += len(call)
    return found


def quiet_stream(speech: int, quiet: int, after: int = 0) -> np.ndarray:
    """``speech`` windows heard, ``quiet`` unheard, then ``after`` heard again."""
    return np.concatenate((np.full(speech, 0.9), np.full(quiet, QUIET / 2),
                           np.full(after, 0.9))).astype(np.float32)


def test_a_quiet_run_probes_after_1_2_4_8_and_16_s_in_a_stream_older_than_30_s() -> None:
    assert (RESTART_WINDOWS, PROBE_WINDOWS) == (938, 31)
    # 40 s heard (no pause: no restart), then 25 s unheard: the restart comes after the
    # 8-window pause; probes at quiet runs of 31 x 2^k, the first of them 23 windows after
    # that restart (too soon: 1 s at least), the others refused, so the state is never
    # restarted again before the next 30 s.
    probabilities = quiet_stream(1250, 780)
    found = replay(Restarts(1, SPAN), probabilities, [31] * 100)
    assert found[0] == Due(1250 + 8, probe=False)  # due since window 938, waiting for a pause
    assert [d.window - 1250 for d in found if d.probe] == [62, 124, 248, 496]
    assert len(found) == 5
    # Quiet from window 900: no probe at 31 quiet windows (the stream is not 938 windows
    # old), the restart at window 938 itself, and the probe at 62 too soon after it.
    found = replay(Restarts(1, SPAN), quiet_stream(900, 780), [31] * 100)
    assert found[0] == Due(938, probe=False)
    assert [d.window - 900 for d in found if d.probe] == [124, 248, 496]


def test_no_probe_in_a_stream_of_30_s_or_less_nor_within_1_s_of_a_restart() -> None:
    # Quiet from window 100: runs of 31 and 62 windows end before window 938.
    assert [d for d in replay(Restarts(1, SPAN), quiet_stream(100, 838), [31] * 40)] == []
    # A probe taken restarts the state: the next probe waits for its run's next length and
    # for 1 s after that restart (here both hold).
    found = replay(Restarts(1, SPAN), quiet_stream(1000, 300), [31] * 60, taken=True)
    assert [d.window - 1000 for d in found if d.probe] == [62, 124, 248]
    assert [d.window - 1000 for d in found if not d.probe] == [8]
    # With probes every 40 windows and restarts every 60, the restart at 60 windows of quiet
    # comes first; the probe at 80 is 20 windows after it: too soon.
    found = replay(Restarts(1, SPAN, restart=60, warm=8, pause=8, probe=40),
                   quiet_stream(100, 100), [7] * 40, taken=True)
    assert Due(108, probe=False) in found and Due(140, probe=True) not in found


def test_speech_heard_ends_a_quiet_run() -> None:
    # 20 quiet windows, one heard, then 40 quiet: no run reaches 31 before window 1000 + 61.
    probabilities = np.concatenate((quiet_stream(1000, 20), quiet_stream(1, 40))).astype(
        np.float32)
    probes = [d.window for d in replay(Restarts(1, SPAN, restart=938, pause=100),
                                       probabilities, [31] * 40) if d.probe]
    assert probes == [1021 + 31]


@pytest.mark.parametrize("seed", range(5))
def test_restarts_and_probes_do_not_depend_on_how_the_stream_is_cut(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Runs of speech and of quiet of 0.1 to 40 s, three minutes.
    parts = []
    while sum(len(p) for p in parts) < 5600:
        parts.append(np.full(int(rng.integers(3, 1250)), rng.choice([0.02, 0.9]),
                             dtype=np.float32))
    probabilities = np.concatenate(parts)[:5600]
    whole = replay(Restarts(1, SPAN), probabilities, [len(probabilities)], taken=True)
    for _ in range(3):
        calls = rng.integers(1, 80, size=200).tolist()
        assert replay(Restarts(1, SPAN), probabilities, calls, taken=True) == whole
    assert any(d.probe for d in whole) and any(not d.probe for d in whole)


def test_a_probe_hears_speech_in_its_last_windows_only() -> None:
    warmed = np.full(62, 0.01, dtype=np.float32)
    assert not heard(warmed)
    warmed[-HEARD_WINDOWS] = HEARD
    assert heard(warmed)
    warmed[-HEARD_WINDOWS:] = 0.01
    warmed[-HEARD_WINDOWS - 1] = 0.99  # the warm-up's own start: only warms the state
    assert not heard(warmed)
    assert not heard(np.empty(0, dtype=np.float32))


def test_a_probe_longer_than_the_restart_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        Restarts(1, SPAN, restart=40, warm=8, probe=41)
    assert error.value.field == "vad.restart"
    Restarts(1, SPAN, restart=0, probe=41)  # never restarting: nothing to check
