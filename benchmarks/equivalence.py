"""Do two versions of the engine give the same results? Runs the West Kent scenario over many seeds with this
checkout and with another git revision (checked out into a temporary worktree) and compares, seed by seed, the
History fingerprints (spells and events), the TOP reviews, every yearly measure and the West Kent PbR settlement
(payments, provider and commissioner by contract year), and for the first few seeds a 4-year run with the
provider responding (behaviour base, its cash response included) and its settlement; where they differ it
reports each key measure's mean over seeds with its 95% confidence interval, for both versions.

    python benchmarks/equivalence.py --against 0f26d35            # 30 seeds (about 3 minutes)
    python benchmarks/equivalence.py --against HEAD~3 --seeds 10
    python benchmarks/equivalence.py --against e5ce40a --statistical   # the model, not the draws

``--statistical`` (issue 17: an engine restructured so that draws may feed other numbers must still give the same
*model*) compares, over the seeds, each key measure's mean with this checkout against its 95% confidence interval
with the other revision: per substance group and in total, the sums over the reported years of people in
treatment, treatment starts and deaths, and the means over the years of the successful completions, the planned
share of exits, the shares of completers re-presenting within 6 and 12 months and the mean wait (days); and the West Kent PbR contract's income,
cost and margin by contract year. It also prints the paired difference (same seeds: common random numbers) and
its 95% interval, which is much tighter. With some 60 comparisons a few land outside their interval by chance
even for the same model (about 5% each); the verdict counts them against that.

Exit code 0 if identical draw for draw or every key measure's difference lies within its CIs (statistical: no
more measures outside than chance allows); 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (this folder)

ROOT = bench.ROOT
KEY_MEASURES = ("referrals", "re_presentations", "treatment_starts", "in_treatment", "planned_exits",
                "dropped_out", "deaths", "mean_wait_days", "successful_completions", "re_presented_6m")

_RUN = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from sim import load_scenario, measures, simulate
try:  # the layered package (issue 16)
    from sim.config.contract import load_contract
    from sim.experiments.compare import fingerprint
    from sim.experiments.provider_runs import simulate_with_provider
    from sim.money.settlement import commissioner_by_year, provider_by_year, settle
except ImportError:  # the flat package before it
    from sim.compare import fingerprint
    from sim.contract import load_contract
    from sim.incentives import simulate_with_provider
    from sim.settlement import commissioner_by_year, provider_by_year, settle
root = sys.argv[1]
sc = load_scenario(root + "/scenarios/west_kent.toml")
contract = load_contract(root + "/scenarios/contracts/west_kent_pbr.toml")
responding = sc.with_changes({"behaviour.mode": "base", "horizon.years": 4, "horizon.end": None})


def money(settlement):
    frames = {"payments": settlement.payments, "provider": provider_by_year(settlement),
              "commissioner": commissioner_by_year(settlement)}
    return {k: round(float(f.select_dtypes("number").fillna(0).to_numpy().sum()), 6) for k, f in frames.items()}


out = {}
statistical = len(sys.argv) > 5 and sys.argv[5] == "statistical"
SUMS = ("in_treatment", "treatment_starts", "deaths")  # people, over the reported years
MEANS = ("successful_completions", "planned_share_of_exits", "re_presented_6m", "re_presented_12m",  # shares
         "mean_wait_days")  # days; the means over the reported years
for seed in range(1, int(sys.argv[3]) + 1):
    h = simulate(sc, seed)
    if statistical:
        row = {}
        g = measures.by_period(h, "year", by="group")
        parts = [("all", measures.by_period(h, "year")), *g.groupby("category")]
        for cat, part in parts:
            for k in SUMS:
                row[f"{k} [{cat}]"] = float(part[k].sum())
            for k in MEANS:
                row[f"{k} [{cat}]"] = float(part[k].mean())
        p = provider_by_year(settle(contract, h, sc))
        for year, r in p.iterrows():
            for k in ("income", "cost", "margin"):
                row[f"contract {k}, year {year}"] = float(r[k])
        out[seed] = row
        continue
    m = measures.by_period(h, "year")
    run = simulate_with_provider(responding, contract, seed) if seed <= int(sys.argv[4]) else None
    out[seed] = {"fingerprint": fingerprint(h), "reviews": int(len(h.reviews)),
                 "quality_of_life": int(h.reviews["quality_of_life"].sum()),
                 "measures": {k: float(v) for k, v in m.select_dtypes("number").sum().items()},
                 "settlement": money(settle(contract, h, sc)),
                 "behaviour_on": None if run is None else {
                     "fingerprint": fingerprint(run.history), "settlement": money(run.settlement),
                     "iterations": run.iterations}}
json.dump(out, open(sys.argv[2], "w"))
"""


def _results(checkout: Path, seeds: int, responding: int, out: Path, statistical: bool = False) -> dict:
    subprocess.run([sys.executable, "-c", _RUN, str(checkout), str(out), str(seeds), str(responding),
                    "statistical" if statistical else "draws"], check=True, cwd=out.parent)
    return json.loads(out.read_text())


def statistical_verdict(ours: dict, theirs: dict, against: str) -> bool:
    """Each key measure's mean with this checkout against the 95% CI of its mean with the other revision, and
    the paired difference; True if no more measures fall outside than chance allows (binomial, 5% each, at the
    99% level)."""
    from scipy import stats

    seeds = sorted(set(ours) & set(theirs), key=int)
    names = list(theirs[seeds[0]])
    outside = 0
    print(f"{len(seeds)} seeds; mean ± 95% CI half-width; paired difference (this - {against}) ± 95% CI")
    print(f"{'measure':44} {'this checkout':>24} {against:>24} {'difference':>20}")
    for name in names:
        a = np.array([ours[s].get(name, np.nan) for s in seeds], dtype=float)
        b = np.array([theirs[s][name] for s in seeds], dtype=float)
        (ma, ha), (mb, hb) = _mean_ci(a), _mean_ci(b)
        md, hd = _mean_ci(a - b)
        within = bool(abs(ma - mb) <= hb) or (ha == hb == 0 and ma == mb)
        outside += not within
        d = 4 if abs(mb) < 10 else 1
        print(f"{name:44} {ma:13.{d}f} ± {ha:8.{d}f} {mb:13.{d}f} ± {hb:8.{d}f} {md:10.{d + 1}f} ± {hd:7.{d + 1}f}"
              f"  {'within CI' if within else 'OUTSIDE'}")
    allowed = int(stats.binom.ppf(0.99, len(names), 0.05))
    ok = outside <= allowed
    print(f"{outside} of {len(names)} means outside the other revision's 95% CI (chance allows up to {allowed} "
          f"at the 99% level): {'the same model' if ok else 'DIFFERENT'}")
    return ok


def _mean_ci(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(len(x)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, help="git revision of the other engine")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--responding", type=int, default=5, metavar="N",
                    help="of those seeds, the first N also run a 4-year behaviour-on (base) run with its cash "
                         "response, settled (default 5)")
    ap.add_argument("--statistical", action="store_true",
                    help="compare the model, not the draws: key measures per group and the contract's money by year "
                         "against their 95%% CIs (see above)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with bench.checkout(args.against) as other:
            theirs = _results(other, args.seeds, args.responding, tmp / "theirs.json", args.statistical)
        ours = _results(ROOT, args.seeds, args.responding, tmp / "ours.json", args.statistical)
    if args.statistical:
        return 0 if statistical_verdict(ours, theirs, args.against) else 1
    same = [s for s in ours if ours[s] == theirs[s]]
    print(f"{len(same)} of {len(ours)} seeds identical (History fingerprint, reviews, every yearly measure, the "
          f"West Kent PbR settlement; behaviour-on run and its settlement for the first {args.responding})")
    if len(same) == len(ours):
        return 0
    ok = True
    print(f"{'measure (sum over years)':28} {'this checkout':>22} {args.against:>22}")
    for name in KEY_MEASURES:
        a = np.array([ours[s]["measures"].get(name, np.nan) for s in ours])
        b = np.array([theirs[s]["measures"].get(name, np.nan) for s in theirs])
        (ma, ha), (mb, hb) = _mean_ci(a), _mean_ci(b)
        within = abs(ma - mb) <= max(ha, hb)
        ok &= within
        print(f"{name:28} {ma:12.1f} ± {ha:7.1f} {mb:12.1f} ± {hb:7.1f}  {'within CI' if within else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
