"""Shared fixtures: small, fast variants of the West Kent scenario, and Histories simulated once per session.

The helpers behind them (``Build``, the hand-built History; ``small_scenario``, West Kent on a short horizon)
are in ``tests/builders.py``, importable by any test.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from sim import simulate
from tests.builders import ROOT, SCENARIOS, small_scenario  # noqa: F401  (ROOT, SCENARIOS: imported from here)
from tests.builders import west_kent as _west_kent

# CI runs the property tests on a fixed sequence of examples (reproducible); locally they explore afresh.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def west_kent():
    return _west_kent()


@pytest.fixture(scope="session")
def small():
    """West Kent with a 2-year warm-up and 2 reported years: every stage runs, in about a second."""
    return small_scenario(years=2, warmup_years=2)


@pytest.fixture(scope="session")
def small_history_seed_1(small):
    """The small scenario simulated once per session with seed 1, for tests that only read it."""
    return simulate(small, seed=1)
