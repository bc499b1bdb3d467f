"""One 10-year West Kent replication against bare SimPy, measured in the same process.

    python benchmarks/run_once.py [--rounds 5]

B is the cost of one event of a bare SimPy loop of timeouts on this machine, measured in this run; the model's
cost is reported in B per referral, so figures from different machines compare. Median and range over rounds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import simpy

from sim import load_scenario, simulate

ROOT = Path(__file__).resolve().parents[1]


def bare_simpy(n_events: int = 500_000) -> float:
    """Seconds per event of a bare SimPy timeout loop."""
    env = simpy.Environment()

    def loop():
        for _ in range(n_events):
            yield env.timeout(1.0)

    env.process(loop())
    t = time.perf_counter()
    env.run()
    return (time.perf_counter() - t) / n_events


def model(years: int) -> tuple[float, int, int]:
    sc = load_scenario(ROOT / "scenarios" / "west_kent.toml").with_changes({"horizon.years": years})
    t = time.perf_counter()
    h = simulate(sc, seed=1)
    wall = time.perf_counter() - t
    referrals = len(h.episodes)
    return wall, referrals, int(h.meta["simpy_events"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--years", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for _ in range(args.rounds):  # interleaved: the machine is noisy
        b = bare_simpy()
        wall, referrals, events = model(args.years)
        rows.append((b, wall, referrals, events))
    b = [r[0] for r in rows]
    wall = [r[1] for r in rows]
    referrals, events = rows[0][2], rows[0][3]
    med_b, med_wall = statistics.median(b), statistics.median(wall)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, simpy {simpy.__version__}")
    print(f"bare SimPy: {1 / med_b:,.0f} events/s (B = {med_b * 1e6:.2f} us; range "
          f"{min(b) * 1e6:.2f}-{max(b) * 1e6:.2f})")
    print(f"West Kent, {args.years} reported years + warm-up: wall {med_wall:.2f} s (range {min(wall):.2f}-"
          f"{max(wall):.2f}); referrals {referrals:,}; SimPy events {events:,} "
          f"({events / med_wall:,.0f} events/s; {events / referrals:.1f} per referral)")
    print(f"cost per referral: {med_wall / referrals / med_b:.1f} B")


if __name__ == "__main__":
    main()
