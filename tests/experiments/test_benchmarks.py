"""The benchmark commands still run (their figures are not checked here: timings live in the benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def test_bench_quick_writes_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    done = run("bench.py", "--quick", "--skip", "scaling", "memory", "parallel", "hundred", "aggregate",
               "--json", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())["summary"]
    assert summary["referrals"] > 0 and summary["events_per_referral"] > 0 and summary["b_per_referral"] > 0
    parts = [summary[f"breakdown_{k}_b_per_referral"] for k in ("planning", "simpy_estimate", "recording",
                                                                 "after_run", "stages_and_rest")]
    assert all(x > 0 for x in parts[:4]) and summary["responding_cost_ratio"] > 0


def _in_git_checkout() -> bool:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _in_git_checkout(), reason="needs a git checkout")
def test_the_engine_equals_itself_and_times_against_a_revision():
    """equivalence.py and compare.py --against check out a revision into a worktree and remove it after."""
    before = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    same = run("equivalence.py", "--against", "HEAD", "--seeds", "1")
    assert same.returncode == 0, same.stderr
    assert "1 of 1 seeds identical" in same.stdout
    timed = run("compare.py", "--against", "HEAD", "--rounds", "1")
    assert timed.returncode in (0, 1), timed.stderr  # 1 only if a noisy machine made one side 25% slower
    assert "time this / HEAD: median" in timed.stdout
    after = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == before


@pytest.mark.slow
def test_sweeps_sharing_histories_give_identical_tables():
    done = run("sweeps.py", "--quick")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("tables identical") == 2 and "time shared / alone: median" in done.stdout
