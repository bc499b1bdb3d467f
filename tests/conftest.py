"""Shared fixtures: small, fast variants of the West Kent scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def west_kent():
    return load_scenario(SCENARIOS / "west_kent.toml")


@pytest.fixture(scope="session")
def small(west_kent):
    """West Kent with a 2-year warm-up and 2 reported years: every stage runs, in about a second."""
    return west_kent.with_changes({"horizon.warmup_years": 2, "horizon.years": 2})
