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
