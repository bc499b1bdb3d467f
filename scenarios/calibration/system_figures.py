"""The figures issue 18 measured on the base system, measured again (West Kent as shipped, contract-blind: the
system alone, simulated without a provider).

    python scenarios/calibration/system_figures.py [--seeds 10] [--years 10]

Per seed, over the reported years: the yearly trend in numbers in treatment by group (slope of a straight line
through the yearly means over seeds, relative to their mean); caseload use (mean people on the caseload / places)
in the first and last year; re-presentations as a share of referrals, first and last year; opiate drop-outs back
within 4 years; the criminal-justice share of returns after a drop-out and of all returns; after an opiate
planned exit, relapse and re-presentation by 6 months, 1 and 2 years; drop-outs (declined, withdrawn) as a share
of exits; starts within 3 weeks; drug clients injecting at a completed review; rehab and inpatient detox place use.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sim import load_scenario, simulate  # noqa: E402
from sim.analysis.measures import by_period  # noqa: E402
from sim.analysis.targets import measure  # noqa: E402
from sim.core.calendar import DAYS_PER_YEAR  # noqa: E402
from sim.core.vocabulary import TREATMENT_STATES  # noqa: E402

CJ = {"arrest_referral", "court_order", "prison_release"}
DRUG = ["opiate", "non_opiate", "non_opiate_alcohol"]


def _use(h, states, places, a, b) -> float:
    sp = h.spells[h.spells["state"].isin(states)]
    days = (np.minimum(sp["end"], b) - np.maximum(sp["start"], a)).clip(lower=0).sum()
    return float(days / (b - a) / places) if places else np.nan


def _one(task: tuple[int, float]) -> dict:
    seed, years = task
    sc = load_scenario(ROOT / "scenarios" / "west_kent.toml").with_changes({"horizon.years": years})
    h = simulate(sc, seed=seed)
    out: dict = {"seed": seed}
    yearly = by_period(h, "year", by="group")
    out["yearly"] = yearly[["period", "category", "in_treatment", "referrals", "re_presentations"]]
    cap = sc.capacity
    first, last = (0.0, DAYS_PER_YEAR), (h.end - DAYS_PER_YEAR, h.end)
    for label, (a, b) in (("first", first), ("last", last)):
        out[f"caseload_use_{label}"] = _use(h, TREATMENT_STATES, cap.caseload, a, b)
    out["rehab_use"] = _use(h, ["residential_rehab"], cap.rehab_places, 0.0, h.end)
    out["detox_use"] = _use(h, ["inpatient_detox"], cap.inpatient_detox_beds, 0.0, h.end)

    ep = h.episodes.merge(h.clients[["client_id", "group"]], on="client_id").sort_values(["client_id", "episode"])
    ep["next_referral"] = ep.groupby("client_id")["referral"].shift(-1)
    ep["next_source"] = ep.groupby("client_id")["source"].shift(-1).astype(object)
    reported = (ep["exit"] >= 0) & (ep["exit"] < h.end)
    gap = ep["next_referral"] - ep["exit"]
    drop = ep[reported & (ep["exit_reason"] == "dropped_out") & (ep["exit"] + 4 * DAYS_PER_YEAR <= h.end)]
    out["opiate_dropouts_back_4y"] = float((gap[drop.index][drop["group"] == "opiate"] <= 4 * DAYS_PER_YEAR).mean())
    back = ep[ep["next_referral"].between(0, h.end, inclusive="left")]
    after_drop = back[back["exit_reason"] == "dropped_out"]
    out["cj_share_after_drop_out"] = float(after_drop["next_source"].isin(CJ).mean())
    out["cj_share_all_returns"] = float(back["next_source"].isin(CJ).mean())
    planned = ep[(ep["exit_reason"] == "planned") & (ep["group"] == "opiate") & (ep["exit"] >= -5 * DAYS_PER_YEAR)]
    relapse = h.events[h.events["kind"] == "relapse"][["client_id", "episode", "time"]]
    planned = planned.merge(relapse.rename(columns={"time": "relapse"}), on=["client_id", "episode"], how="left")
    for label, days in (("6m", 183.0), ("1y", 365.0), ("2y", 730.0)):
        seen = planned[planned["exit"] + days <= h.end]
        out[f"opiate_relapsed_{label}"] = float(((seen["relapse"] - seen["exit"]) <= days).mean())
        out[f"opiate_re_presented_{label}"] = float(((seen["next_referral"] - seen["exit"]) <= days).mean())
    out["dropped_out_share_of_exits"] = measure(h, "dropped_out_share_of_exits")
    out["declined_share_of_exits"] = measure(h, "declined_share_of_exits")
    out["withdrawn_share_of_exits"] = measure(h, "withdrawn_share_of_exits")
    out["started_within_3_weeks"] = measure(h, "started_within_3_weeks")
    out["drug_injecting_at_review"] = measure(h, "injecting_at_review", groups=DRUG)
    out["drug_currently_injecting_in_treatment"] = measure(h, "currently_injecting_in_treatment", groups=DRUG)
    return out


def _trend(y: pd.Series) -> float:
    y = y.to_numpy(dtype=float)
    return float(np.polyfit(np.arange(len(y)), y, 1)[0] / y.mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--years", type=float, default=10)
    args = parser.parse_args(argv)
    with ProcessPoolExecutor(2) as pool:
        runs = list(pool.map(_one, [(s, args.years) for s in range(1, args.seeds + 1)]))
    yearly = pd.concat([r["yearly"] for r in runs]).groupby(["category", "period"]).mean(numeric_only=True)
    print(f"West Kent as shipped, {args.seeds} seeds, {args.years:g} reported years, contract-blind\n")
    print("numbers in treatment, trend a year:")
    for group in yearly.index.get_level_values("category").unique():
        print(f"  {group:20s} {100 * _trend(yearly.loc[group, 'in_treatment']):+.2f}%")
    total = yearly.groupby(level="period")[["in_treatment", "referrals", "re_presentations"]].sum()
    print(f"  {'all':20s} {100 * _trend(total['in_treatment']):+.2f}%")
    share = total["re_presentations"] / total["referrals"]
    print(f"re-presentations / referrals: first year {share.iloc[0]:.1%}, last year {share.iloc[-1]:.1%}")
    scalars = pd.DataFrame([{k: v for k, v in r.items() if k != "yearly"} for r in runs]).drop(columns="seed")
    for name, value in scalars.mean().items():
        print(f"{name:32s} {value:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
