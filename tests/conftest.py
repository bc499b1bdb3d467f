"""Shared fixtures: small, fast variants of the West Kent scenario."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from sim import load_scenario

# CI runs the property tests on a fixed sequence of examples (reproducible); locally they explore afresh.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def west_kent():
    return load_scenario(SCENARIOS / "west_kent.toml")


@pytest.fixture(scope="session")
def small(west_kent):
    """West Kent with a 2-year warm-up and 2 reported years: every stage runs, in about a second."""
    return west_kent.with_changes({"horizon.warmup_years": 2, "horizon.years": 2})
