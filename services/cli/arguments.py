"""argparse types shared by the commands: numbers checked at the command line, with a message
that names the bound (argparse adds the option's name)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def bounded_int(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def float_in(low: float, high: float, *, low_open: bool) -> Callable[[str], float]:
    """An argparse type: a finite number within ``(low, high]`` or ``[low, high]``."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above_low = value > low if low_open else value >= low
        if not (above_low and value <= high):
            raise argparse.ArgumentTypeError(f"must be within {shown}, got {text}")
        return value

    return parse


positive_float = float_in(0.0, float("1e9"), low_open=True)
non_negative_float = float_in(0.0, float("1e9"), low_open=False)
probability = float_in(0.0, 1.0, low_open=False)


def add_music_gate(parser: argparse.ArgumentParser, *flags: str) -> None:
    """``--vad-music-gate`` / ``--no-vad-music-gate``: read by services/cli/__init__.py into
    ``args.config.vad_music_gate`` (flag > ``RAPPORT_VAD_MUSIC_GATE`` > off)."""
    parser.add_argument(*flags, dest="vad_music_gate", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="silero backend: where the audio holds many held tonal peaks "
                             "(music) and the Silero model hears no speech, its head finds "
                             "none either (models/vad_music.py). On real music alone, 2.3 %% "
                             "of frames called speech instead of 11.6 %%; but far-field speech "
                             "under music is lost too, so it is off by default (docs/vad.md, "
                             "\"Music and other sounds\") (default: $RAPPORT_VAD_MUSIC_GATE, "
                             "else off)")
