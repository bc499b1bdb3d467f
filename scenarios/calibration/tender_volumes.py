"""The tender's expected volumes written into the shipped PbR designs (and a check that they are still current).

    python scenarios/calibration/tender_volumes.py           # print them beside what the contracts hold
    python scenarios/calibration/tender_volumes.py --write   # write them into scenarios/contracts/*.toml

A tender prices each outcome as pot x share / expected volume: the commissioner's forecast of how many of each
outcome, in each LASARS band, the service will achieve in a year, from its records of the year before (NDTMS,
TOP returns). West Kent's were not published (its tariff table was an image, pbr-contracts.md §2), nor were any
other site's. The forecast here is what those records would show on average: the mean over 20 seeds of each
outcome achieved in the year before the contract, by band, under the outcome's own once-per rule, in the
scenario the design is tendered on, rounded to whole outcomes. An escalator's baseline rate is the same outcomes
per person in treatment that year (ratio of the means). An offending pot's baseline is the cohort's recorded
offences per member (or in total) in that year, the mean over the same seeds: the figure a commissioner would
take from the police national computer for the cohort of the year before, written into the contract.

Written into the contract, the numbers are fixed: a replication's provider earns more or less than the PbR share
as its clients do better or worse than the forecast, and West Kent's falling opiate referrals (-5% a year) move
it too. Pricing from each replication's own simulated year before (``expected_volume = "baseline"``, still a
choice) instead pays a contract-blind provider its share by construction; so does an offending pot without
``baseline_offences``, which takes each replication's own year before.
"""

from __future__ import annotations

import argparse
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sim import load_scenario, simulate  # noqa: E402
from sim.config.contract import load_contract  # noqa: E402
from sim.core.vocabulary import BANDS, TREATMENT_STATES  # noqa: E402
from sim.analysis.offending import cohort_offences  # noqa: E402
from sim.money.settlement import _baseline_bounds  # noqa: E402
from sim.provider.pricing import baseline_volumes  # noqa: E402

SEEDS = range(1, 21)
CONTRACTS = {  # design -> the scenario it is tendered on
    "west_kent_pbr": "west_kent", "national_pbr": "west_kent", "high_stretch": "west_kent",
    "cohort_escalator": "west_kent", "social_impact_bond": "west_kent", "east_sussex_star": "east_sussex_star",
}
MARK = "[D] tender_volumes.py"
OFFENDING = ("offending", "baseline")  # the offending pot's baseline, among a design's forecasts


def _one(task: tuple[str, int]) -> tuple[dict, dict]:
    scenario_name, seed = task
    scenario = load_scenario(ROOT / "scenarios" / f"{scenario_name}.toml")
    history = simulate(scenario, seed=seed)
    a, b = _baseline_bounds(history)
    sp = history.spells[history.spells["state"].isin(TREATMENT_STATES)]
    people = sp.loc[(sp["start"] < b) & (sp["end"] > a), "client_id"].nunique()
    volumes = {}
    cohort = cohort_offences(history, scenario, "year")
    before = cohort[cohort["end"] <= 0].iloc[-1]
    for design, site in CONTRACTS.items():
        if site != scenario_name:
            continue
        contract = load_contract(ROOT / "scenarios" / "contracts" / f"{design}.toml")
        table = baseline_volumes(contract, history)
        volumes[design] = {(r.outcome, r.band): r.volume for r in table.itertuples()}
        if contract.offending is not None:
            column = "offences_per_member" if contract.offending.measure == "per_member" else "offences"
            volumes[design][OFFENDING] = float(before[column])
    return volumes, {scenario_name: people}


def forecast() -> tuple[dict, dict]:
    """Mean volumes by (design, outcome, band) and mean people in treatment in the year before, by scenario."""
    tasks = [(site, seed) for site in sorted(set(CONTRACTS.values())) for seed in SEEDS]
    with ProcessPoolExecutor(2) as pool:
        runs = list(pool.map(_one, tasks))
    sums: dict = {}
    people: dict = {}
    for volumes, counted in runs:
        for design, table in volumes.items():
            for key, v in table.items():
                sums.setdefault(design, {}).setdefault(key, []).append(v)
        for site, n in counted.items():
            people.setdefault(site, []).append(n)
    means = {d: {k: float(np.mean(v)) for k, v in t.items()} for d, t in sums.items()}
    return means, {s: float(np.mean(n)) for s, n in people.items()}


def _table(volumes: dict, outcome: str) -> str:
    return "{ " + ", ".join(f"{b} = {round(volumes[(outcome, b)])}" for b in BANDS) + " }"


def write(design: str, volumes: dict, people: float) -> str:
    """The contract file with every ``expected_volume`` and escalator ``baseline_rate`` of a priced outcome set to
    the forecast (a table by band; a rate)."""
    path = ROOT / "scenarios" / "contracts" / f"{design}.toml"
    text = path.read_text()
    contract = load_contract(path)
    for name, o in contract.outcomes.items():
        if o.expected_volume is None:
            continue
        head = re.search(rf"^\[outcomes\.{re.escape(name)}\][^\n]*$", text, flags=re.M)
        end = re.search(r"^\[", text[head.end():], flags=re.M)
        stop = head.end() + (end.start() if end else len(text) - head.end())
        section = text[head.end():stop]
        line = f"expected_volume = {_table(volumes, name)}   # {MARK}"
        section = re.sub(r"^expected_volume = .*$", line, section, count=1, flags=re.M)
        if o.escalator is not None:
            rate = sum(volumes[(name, b)] for b in BANDS) / people
            section = re.sub(r'^(escalator = .*)baseline_rate = ("baseline"|[0-9.]+)([^#\n]*?)[ \t]*(#.*)?$',
                             rf"\1baseline_rate = {rate:.4f}\3   # [D] baseline rate", section, count=1, flags=re.M)
        text = text[:head.end()] + section + text[stop:]
    if contract.offending is not None:
        key = f"baseline_offences = {volumes[OFFENDING]:.3f}"
        line = f"{key:<34}# {MARK}: the cohort's in the year before"
        head = re.search(r"^\[offending\][^\n]*$", text, flags=re.M)
        if re.search(r"^baseline_offences = .*$", text, flags=re.M):
            text = re.sub(r"^baseline_offences = .*$", line, text, count=1, flags=re.M)
        else:
            text = text[:head.end()] + "\n" + line + text[head.end():]
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the forecast into the contract files")
    args = parser.parse_args(argv)
    means, people = forecast()
    for design, volumes in means.items():
        site = CONTRACTS[design]
        print(f"{design} (on {site}, {len(SEEDS)} seeds; {people[site]:.0f} people in treatment the year before):")
        held = load_contract(ROOT / "scenarios" / "contracts" / f"{design}.toml")
        for name, o in held.outcomes.items():
            if o.expected_volume is None:
                continue
            print(f"  {name:24s} forecast {_table(volumes, name)}; the contract holds {o.expected_volume}")
        if held.offending is not None:
            print(f"  {'offending baseline':24s} forecast {volumes[OFFENDING]:.3f}; the contract holds "
                  f"{held.offending.baseline_offences}")
        if args.write:
            (ROOT / "scenarios" / "contracts" / f"{design}.toml").write_text(write(design, volumes, people[site]))
    if args.write:
        print("written: review the diff of scenarios/contracts/ before committing it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
