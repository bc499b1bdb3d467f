"""How the calibrated defaults in west_kent.toml were derived (and a check that they still fit).

    python scenarios/calibration/west_kent.py            # report the fit of the current file (2 seeds)
    python scenarios/calibration/west_kent.py --iterate 6  # iterate, printing suggested values
    python scenarios/calibration/west_kent.py --iterate 6 --seeds 4 --write  # ... and write the last into the file

Per substance group it adjusts three things by damped fixed-point steps, on common random numbers:
  * first referrals a year, to the target number in treatment a year (2,500 with the 2015-16 national mix);
  * the median time to completion, to the target planned share of exits;
  * one scale on the drop-out, transfer and custody hazards, to the target successful completions as a share
    of all in treatment (which, given the planned share, fixes the mean time in treatment).
and, since a completed detox or rehab stay leads to a planned exit, in the same steps:
  * one scale on the inpatient detox probabilities of the drug groups, and one on alcohol's, to the people
    admitted in a year as a share of those in treatment (3.3%, ref §1a Hansard 2007-08 and §8c);
  * one scale on every group's residential rehab probability, to the drug groups' 2.1% (ref §1a, §8c).
A probability is per episode, for an admission at its timing weeks after the start: only the episodes that last
that long are admitted, so the probabilities are several times the yearly uptake.
Targets and their sources are in TARGETS below and in the comments of west_kent.toml. `pbrsim calibrate`
(sim/calibrate.py) generalises this.
"""

from __future__ import annotations

import argparse
import math
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from sim import load_scenario, measures, simulate
from sim.analysis.targets import measure
from sim.config.scenario import scenario_from_dict

HERE = Path(__file__).resolve().parent
GROUPS = ("opiate", "non_opiate", "alcohol", "non_opiate_alcohol")
# group: (planned share of exits, successful completions / in treatment, people in treatment a year)
TARGETS = {
    "opiate": (0.30, 0.075, 1300),             # ref §1b: 30% of exits 2014-15 (blog), 6.6-8.6%; 52% of 2,500
    "non_opiate": (0.64, 0.37, 225),           # ref §1b: 64% 2014-15 (blog), 34-39%; 9%
    "alcohol": (0.55, 0.375, 725),             # ref §1b: 54% of exits 2012-13, the year of its 37-38%; 29%
    "non_opiate_alcohol": (0.64, 0.37, 250),   # as non-opiate; 10%
}
HAZARDS = ("drop_out_rate_per_year", "transfer_rate_per_year", "custody_rate_per_year")
DRUG = ["opiate", "non_opiate", "non_opiate_alcohol"]
# (section, the scale's name, the groups its uptake is measured on, target: people admitted a year / in treatment)
UPTAKE = (
    ("inpatient_detox", "detox_drug", DRUG, 0.033),          # [P] 6,742 of 202,666 in drug treatment, 2007-08
    ("inpatient_detox", "detox_alcohol", ["alcohol"], 0.033),  # [D] ref §8c (IW/RR)
    ("rehab", "rehab", DRUG, 0.021),                          # [P] 4,306 of 202,666, 2007-08; NTA 2012: 2%
)
EVENT = {"inpatient_detox": "inpatient_detox_uptake", "rehab": "rehab_uptake"}


def _value(param, group):
    return param.resolve(group).value


def probabilities(base, uptake):
    """{section: {group: probability}} after the uptake scales (rehab: one scale for every group)."""
    out = {}
    for section in ("inpatient_detox", "rehab"):
        p = getattr(base, section).probability
        if section == "rehab":
            out[section] = {g: _value(p, g) * uptake["rehab"] for g in GROUPS}
        else:
            out[section] = {g: _value(p, g) * uptake["detox_alcohol" if g == "alcohol" else "detox_drug"]
                            for g in GROUPS}
    return out


def variant(base, arrivals, medians, scales, uptake):
    changes = {"population.arrivals_per_year": arrivals}
    for g in GROUPS:
        changes[f"treatment.completion_weeks.by_group.{g}.median"] = medians[g]
        for h in HAZARDS:
            changes[f"treatment.{h}.by_group.{g}"] = _value(getattr(base.treatment, h), g) * scales[g]
    for section, by_group in probabilities(base, uptake).items():
        for g, p in by_group.items():
            changes[f"{section}.probability.by_group.{g}"] = p
    return base.with_changes(changes)


def write(path: Path, base, arrivals, medians, scales, uptake) -> None:
    """Put the suggested values into west_kent.toml in place, keeping its layout and comments. The hazards'
    ``value`` is the non-opiate group's (every other group has its own ``by_group`` entry)."""
    text = path.read_text()

    def sub(pattern, new, count=1):
        nonlocal text
        text, n = re.subn(pattern, lambda m: m.group(1) + new + m.group(2), text, count=count, flags=re.M)
        if n != count:
            raise SystemExit(f"{path}: pattern {pattern!r} not found")

    sub(r"^(arrivals_per_year = \{ )[^}]*?( \})",
        ", ".join(f"{g} = {arrivals[g]:g}" for g in GROUPS))
    section = r"(?:(?!^\[).*\n)*?"  # lines up to the key, inside one table
    sub(r"(^\[treatment\.completion_weeks\]\n" + section + r"median = )[\d.]+()", f"{medians['non_opiate']:g}")
    for g in ("opiate", "alcohol", "non_opiate_alcohol"):
        sub(r"(^\[treatment\.completion_weeks\]\n" + section + rf"by_group\.{g} = \{{ median = )[\d.]+()",
            f"{medians[g]:g}")
    for h in HAZARDS:
        for g in GROUPS:
            key = "value" if g == "non_opiate" else f"by_group.{g}"
            new = round(_value(getattr(base.treatment, h), g) * scales[g], 4)
            sub(rf"(^\[treatment\.{h}\].*\n" + section + rf"{re.escape(key)} = )[\d.]+()", f"{new:g}")
    for name, by_group in probabilities(base, uptake).items():  # probability = { value = v, by_group = { ... } }
        for key, g in (("value", "non_opiate"), ("opiate", "opiate"), ("alcohol", "alcohol")):
            pattern = rf"(^\[{name}\]\n" + section + rf"probability = \{{.*?\b{key} = )[\d.]+()"
            sub(pattern, f"{round(by_group[g], 4):g}")
    path.write_text(text)
    print(f"written to {path}")


def fit(args):
    raw, seed = args  # the scenario as its raw dict: a worker process rebuilds it
    h = simulate(scenario_from_dict(raw, "calibration"), seed=seed)
    s = measures.summary(h)
    out = {g: (s.loc[g, "planned_share_of_exits"], s.loc[g, "successful_completions"],
               s.loc[g, "in_treatment_per_year"]) for g in GROUPS}
    out.update({name: measure(h, EVENT[section], groups=groups) for section, name, groups, _ in UPTAKE})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterate", type=int, default=0, help="calibration steps (0: report the fit only)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the last suggested values into west_kent.toml")
    args = parser.parse_args()
    base = load_scenario(HERE.parent / "west_kent.toml")
    arrivals = dict(base.population.arrivals_per_year)
    medians = {g: base.treatment.completion_weeks.resolve(g).median for g in GROUPS}
    scales = {g: 1.0 for g in GROUPS}
    uptake = {name: 1.0 for _, name, _, _ in UPTAKE}
    with ProcessPoolExecutor(2) as pool:
        for step in range(max(args.iterate, 1)):
            sc = variant(base, arrivals, medians, scales, uptake)
            runs = list(pool.map(fit, [(sc.raw(), seed) for seed in range(1, args.seeds + 1)]))
            print(f"step {step}")
            for g in GROUPS:
                p, c, n = (float(np.mean([r[g][i] for r in runs])) for i in range(3))
                pt, ct, nt = TARGETS[g]
                print(f"  {g:20s} planned share {p:.3f} (target {pt}), completions {c:.3f} ({ct}), "
                      f"in treatment {n:.0f} ({nt})")
                if args.iterate:
                    medians[g] = round(medians[g] * math.exp(0.9 * (p - pt) / pt), 1)
                    d, dt = p / c - 1, pt / ct - 1  # years in treatment implied by the two shares
                    scales[g] = round(scales[g] * math.exp(0.6 * (d - dt) / dt), 3)
                    arrivals[g] = round(arrivals[g] * (nt / n) ** 0.9, 1)
            for section, name, groups, target in UPTAKE:
                u = float(np.mean([r[name] for r in runs]))
                print(f"  {name:20s} admitted a year / in treatment {u:.4f} (target {target})")
                if args.iterate:
                    uptake[name] = round(uptake[name] * (target / u) ** 0.9, 3)
            if args.iterate:
                print(f"  suggested: arrivals {arrivals}\n  completion medians {medians}\n"
                      f"  hazard scales (multiply the file's values) {scales}\n"
                      f"  detox and rehab probability scales {uptake}")
    if args.write and args.iterate:
        write(HERE.parent / "west_kent.toml", base, arrivals, medians, scales, uptake)


if __name__ == "__main__":
    main()
