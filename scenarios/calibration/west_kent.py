"""How the calibrated defaults in west_kent.toml were derived (and a check that they still fit).

    python scenarios/calibration/west_kent.py            # report the fit of the current file (2 seeds)
    python scenarios/calibration/west_kent.py --iterate 6  # iterate, printing suggested values

Per substance group it adjusts three things by damped fixed-point steps, on common random numbers:
  * first referrals a year, to the target number in treatment a year (2,500 with the 2015-16 national mix);
  * the median time to completion, to the target planned share of exits;
  * one scale on the drop-out, transfer and custody hazards, to the target successful completions as a share
    of all in treatment (which, given the planned share, fixes the mean time in treatment).
Targets and their sources are in TARGETS below and in the comments of west_kent.toml. `pbrsim calibrate`
(sim/calibrate.py) generalises this.
"""

from __future__ import annotations

import argparse
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from sim import load_scenario, measures, simulate
from sim.config.scenario import scenario_from_dict

HERE = Path(__file__).resolve().parent
GROUPS = ("opiate", "non_opiate", "alcohol", "non_opiate_alcohol")
# group: (planned share of exits, successful completions / in treatment, people in treatment a year)
TARGETS = {
    "opiate": (0.26, 0.075, 1300),             # ref §8d, §1b (6.6-8.6%); 52% of 2,500
    "non_opiate": (0.62, 0.37, 225),           # ref §8d, §1b (34-39%); 9%
    "alcohol": (0.55, 0.375, 725),             # ref §1b (54% of exits, 37-38%); 29%
    "non_opiate_alcohol": (0.62, 0.37, 250),   # as non-opiate; 10%
}
HAZARDS = ("drop_out_rate_per_year", "transfer_rate_per_year", "custody_rate_per_year")


def _value(param, group):
    return param.resolve(group).value


def variant(base, arrivals, medians, scales):
    changes = {"population.arrivals_per_year": arrivals}
    for g in GROUPS:
        changes[f"treatment.completion_weeks.by_group.{g}.median"] = medians[g]
        for h in HAZARDS:
            changes[f"treatment.{h}.by_group.{g}"] = _value(getattr(base.treatment, h), g) * scales[g]
    return base.with_changes(changes)


def fit(args):
    raw, seed = args  # the scenario as its raw dict: a worker process rebuilds it
    s = measures.summary(simulate(scenario_from_dict(raw, "calibration"), seed=seed))
    return {g: (s.loc[g, "planned_share_of_exits"], s.loc[g, "successful_completions"],
                s.loc[g, "in_treatment_per_year"]) for g in GROUPS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterate", type=int, default=0, help="calibration steps (0: report the fit only)")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    base = load_scenario(HERE.parent / "west_kent.toml")
    arrivals = dict(base.population.arrivals_per_year)
    medians = {g: base.treatment.completion_weeks.resolve(g).median for g in GROUPS}
    scales = {g: 1.0 for g in GROUPS}
    with ProcessPoolExecutor(2) as pool:
        for step in range(max(args.iterate, 1)):
            sc = variant(base, arrivals, medians, scales)
            runs = list(pool.map(fit, [(sc.raw(), seed) for seed in range(1, args.seeds + 1)]))
            print(f"step {step}")
            for g in GROUPS:
                p, c, n = (float(np.mean([r[g][i] for r in runs])) for i in range(3))
                pt, ct, nt = TARGETS[g]
                print(f"  {g:20s} planned share {p:.3f} (target {pt}), completions {c:.3f} ({ct}), "
                      f"in treatment {n:.0f} ({nt})")
                if args.iterate:
                    medians[g] = round(medians[g] * math.exp(1.2 * (p - pt) / pt), 1)
                    d, dt = p / c - 1, pt / ct - 1  # years in treatment implied by the two shares
                    scales[g] = round(scales[g] * math.exp(0.8 * (d - dt) / dt), 3)
                    arrivals[g] = round(arrivals[g] * (nt / n) ** 0.9, 1)
            if args.iterate:
                print(f"  suggested: arrivals {arrivals}\n  completion medians {medians}\n"
                      f"  hazard scales (multiply the file's values) {scales}")


if __name__ == "__main__":
    main()
