"""Test-suite wide settings. Tiers: ``tests/unit`` (pure), ``tests/component`` (adapters
in-process), ``tests/integration`` (real broker and services); each conftest says how to run
it. ``make test`` runs them all.

Hypothesis is derandomized by default (profile ``default``: a fixed seed per test, no example
database), so a fresh clone's ``make test`` gives the same verdict on every run and on every
machine, and a change is never failed by an example unrelated to it. ``CI=true`` changes
nothing (profile ``ci`` is the same, kept for scripts that name it).

To hunt for new failures, opt in to random exploration::

    RAPPORT_HYPOTHESIS=explore .venv/bin/pytest tests/unit/test_fuzz.py

Profile ``explore`` draws new random examples on every run, 10x as many, remembers failures in
``.hypothesis/`` and prints the blob to reproduce one. Add ``--hypothesis-seed=N`` to replay a
run. Every failure found that way becomes an explicit regression test (``@example(...)`` or a
plain unit test) before its fix, so the default profile keeps checking it.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, database=None, print_blob=True)
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile(
    "explore",
    derandomize=False,
    print_blob=True,
    max_examples=10 * settings.default.max_examples,
)
_PROFILE = os.environ.get("RAPPORT_HYPOTHESIS", "default")
if _PROFILE not in ("default", "ci", "explore"):
    raise RuntimeError(f"RAPPORT_HYPOTHESIS={_PROFILE!r}: use default, ci or explore")
settings.load_profile(_PROFILE)
