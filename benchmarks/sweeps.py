"""Sweeps whose points share Histories, against the same sweeps with every run simulated on its own.

    python benchmarks/sweeps.py [--rounds 2] [--workers 2] [--quick]

Points of a sweep that differ only in their contract, with the provider's behaviour off, see the same History in
each replication (common random numbers; settlement is a pure function of the History). ``run_specs`` then
simulates and measures it once and settles it under each point's contract (``sim.experiments.core.shared_histories``).
This times two sweeps both ways on the same worker processes, alternating round by round, checks that the tables
are identical, and prints the time ratio shared / alone (the baseline, measured in the same run):

* **contract terms** -- a 3 x 4 grid over the offending pot and the planned-exit share of the outcome pot of the
  West Kent contract (contract keys only: one History per replication), 2 replications;
* **mixed** -- the shipped Morris screening ``scenarios/sweeps/west_kent_contract_sensitivity.toml`` (three
  scenario parameters and one contract parameter: points whose scenario values coincide share, the contract
  steps of a trajectory and points of different trajectories on the same levels) with 4 trajectories and 2
  replications instead of 40 and 5 (40 runs, 28 Histories; at full size 1,000 runs, 285 Histories).

Both use the screening's own changes (2 reported years after the scenario's 20-year warm-up). ``--quick``: 1 replication, 2 Morris
trajectories and a 3 x 2 grid, for a smoke test.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.experiments.core import run_one, run_specs # noqa: E402
from sim.experiments.executors import ProcessExecutor
from sim.experiments.sweep import load_sweep, sweep_specs  # noqa: E402

SCREENING = ROOT / "scenarios" / "sweeps" / "west_kent_contract_sensitivity.toml"


def sweeps(quick: bool) -> dict[str, list]:
    """The runs of the two sweeps, by name."""
    screening = load_sweep(SCREENING)
    replications = 1 if quick else 2
    mixed = screening.model_copy(update={"samples": 2 if quick else 4, "replications": replications})
    grid = screening.model_copy(update={"design": "grid", "samples": None, "replications": replications,
                                        "parameters": [
        screening.parameters[-1].model_copy(update={"low": None, "high": None,  # the offending pot
                                                    "values": [100_000, 200_000, 300_000]}),
        screening.parameters[-1].model_copy(update={"path": "contract.outcomes.planned_exit.share_of_pot",
                                                    "low": None, "high": None, "integer": False,
                                                    "values": [0.15, 0.25] if quick else [0.10, 0.15, 0.20, 0.25]}),
    ]})
    return {"contract terms": sweep_specs(grid), "mixed": sweep_specs(mixed)}


def timed(executor, runs: list, alone: bool) -> tuple[float, pd.DataFrame]:
    # a partial of run_one is not run_one itself: run_specs then runs every spec on its own
    function = functools.partial(run_one) if alone else run_one
    t = time.perf_counter()
    table = run_specs(runs, executor, function=function)
    return time.perf_counter() - t, table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smaller sweeps, one round (a smoke test)")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    identical = True
    with ProcessExecutor(args.workers) as executor:
        list(executor.map(abs, range(2 * args.workers)))  # start the workers before timing
        for name, runs in sweeps(args.quick).items():
            times = {"alone": [], "shared": []}
            for r in range(rounds):
                order = ("alone", "shared") if r % 2 == 0 else ("shared", "alone")
                tables = {}
                for how in order:
                    seconds, tables[how] = timed(executor, runs, how == "alone")
                    times[how].append(seconds)
                same = tables["alone"].equals(tables["shared"])
                identical &= same
                print(f"{name}, round {r + 1}/{rounds}: alone {times['alone'][-1]:.1f} s, shared "
                      f"{times['shared'][-1]:.1f} s, tables {'identical' if same else 'DIFFER'}", flush=True)
            ratios = [s / a for s, a in zip(times["shared"], times["alone"])]
            print(f"{name}: {len(runs)} runs on {args.workers} worker processes; time shared / alone: median "
                  f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})\n", flush=True)
    if not identical:
        print("the tables differ: sharing Histories changed results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
