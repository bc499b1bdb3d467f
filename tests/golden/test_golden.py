"""Back test: small runs with a fixed seed reproduce the committed golden outputs.

Covered: two measure tables of a contract-blind run; its West Kent PbR settlement (payments, provider and
commissioner by contract year); a behaviour-on run (behaviour ``base``, cash response included) and its settlement.
A failure means results changed. If the change was deliberate, regenerate with
``python tests/golden/regenerate.py`` and review the CSV diff in the same commit.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tests.golden.regenerate import HERE, NAMES, golden_tables


@pytest.mark.parametrize("part, name", [(part, name) for part, names in NAMES.items() for name in names])
def test_small_run_matches_golden_output(part, name):
    fresh = golden_tables(part)[name]
    golden = pd.read_csv(HERE / name)
    fresh = pd.read_csv(io.StringIO(fresh.to_csv(index=False)))  # parsed as the golden file is
    assert list(fresh.columns) == list(golden.columns)
    pd.testing.assert_frame_equal(fresh, golden, check_exact=False, rtol=1e-9, atol=1e-12)
