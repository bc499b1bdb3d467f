"""How long the web app makes a commissioner wait (issue 21), through Streamlit's headless test harness (AppTest).

    python benchmarks/app.py [--replications 10] [--skip behaviour]

On the shipped scenarios (West Kent, its 20-year warm-up), in the same run:

* baseline: one West Kent replication simulated and settled directly (``simulate`` + ``settle``), and from it the
  ideal time of the page's first run, replications x one replication / the cores the page's pool uses;
* first run: Run on the design page with ``--replications`` replications, the provider contract-blind
  (behaviour off: simulation in the page's worker pool, then settlement), target 20 s;
* tariff change: one outcome's tariff changed and Run again (the Histories are cached: a re-settle), target 2 s;
* behaviour on: the calibrated provider (the page's default), Run again (each replication simulated with the
  provider responding: its pilot run and cash response), target 60 s.

Each line prints the seconds, the target, and the ratio to the baseline's ideal (1.0 = no overhead beyond the
simulation itself on every core). Timings are wall clock on this machine: run it on a quiet one (no test suite at
the same time); the figures in the closing notes say what else was running.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"first run": 20.0, "tariff change": 2.0, "behaviour on": 60.0}


def baseline_seconds() -> float:
    """One West Kent replication, simulated and settled, as the page does it for each replication."""
    from sim import load_scenario, simulate
    from sim.config.contract import load_contract
    from sim.experiments.seeds import replication_seed
    from sim.money.settlement import settle

    scenario = load_scenario(ROOT / "scenarios" / "west_kent.toml")
    contract = load_contract(scenario.contract_path())
    start = time.perf_counter()
    history = simulate(scenario, replication_seed(scenario.seed, 0))
    settle(contract, history, scenario)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--skip", nargs="*", default=[], choices=["behaviour"])
    args = parser.parse_args()
    os.environ["PBRSIM_SCENARIOS"] = str(ROOT / "scenarios")
    from streamlit.testing.v1 import AppTest

    from sim.webapp import APP
    from sim.webapp.runs import available_cores

    one = baseline_seconds()
    cores = available_cores()
    ideal = args.replications * one / cores
    print(f"baseline: one West Kent replication {one:.1f} s; {args.replications} replications on {cores} cores "
          f"ideally {ideal:.1f} s")
    at = AppTest.from_file(str(APP), default_timeout=1800).run()
    at.number_input(key="replications").set_value(args.replications)
    at.radio(key="behaviour").set_value("off")  # the page opens on the calibrated provider: timed last

    def run(label: str) -> None:
        start = time.perf_counter()
        at.button(key="FormSubmitter:contract_form-Run").click().run()
        seconds = time.perf_counter() - start
        failed = [e.value for e in at.exception] + [e.value for e in at.error]
        if failed:
            raise SystemExit(f"{label}: the page failed: {failed[0]}")
        target = TARGETS[label]
        print(f"{label}: {seconds:.1f} s (target {target:g} s: {'met' if seconds <= target else 'NOT met'}); "
              f"{seconds / ideal:.2f} x the baseline's ideal")

    run("first run")
    at.number_input(key="amount_planned_exit").set_value(20.0)
    run("tariff change")
    if "behaviour" not in args.skip:
        at.radio(key="behaviour").set_value("calibrated")
        run("behaviour on")


if __name__ == "__main__":
    main()
