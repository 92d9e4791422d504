"""Test-suite wide settings. Tiers: ``tests/unit`` (pure), ``tests/component`` (adapters
in-process), ``tests/integration`` (real broker and services); each conftest says how to run
it. ``make test`` runs them all.

Hypothesis explores new random examples on every local run (and remembers failures in
``.hypothesis/``); with ``CI=true`` it is derandomized, so a CI verdict is reproducible and a
submission is never failed by an example unrelated to its change.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
