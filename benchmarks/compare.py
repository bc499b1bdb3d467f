"""Re-measure the per-referral figures and compare them with the recorded baseline, or with another revision.

    python benchmarks/compare.py [--rounds 5] [--baseline benchmarks/baseline.json] [--no-memory] [--json FILE]
    python benchmarks/compare.py --against REV [--rounds 7]

Against the baseline: runs the West Kent x1 part of ``benchmarks/bench.py`` (same horizon as the baseline,
interleaved with bare-SimPy rounds for B) and, unless ``--no-memory``, the tracemalloc run; prints each figure
beside the baseline with the ratio now / baseline. Exit code 1 if B per referral is more than 25% worse than the
baseline (``--threshold``); other figures are flagged but do not fail. B per referral is the figure to compare
across machines: wall times and client-years per second are only comparable on the same machine.

Against a revision (``--against``): the same x1 run timed with this checkout and with REV (checked out into a
temporary worktree), each in a fresh process, the two alternating round by round, so both see the same machine.
Use it when the machine's speed drifts (a shared VM can be 15% slower one hour than the next, which a recorded
baseline cannot tell from a regression). Prints the time ratio this / REV per round and its median; exit code 1
if the median is more than ``--threshold`` worse.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (this folder)

HERE = Path(__file__).resolve().parent

# figure: (label, better when "lower" or "higher", fails the comparison?)
FIGURES = {
    "b_per_referral": ("B per referral", "lower", True),
    "events_per_referral": ("SimPy events per referral", "lower", False),
    "peak_kib_per_referral": ("peak memory per referral, KiB", "lower", False),
    "us_per_referral": ("us per referral (this machine only)", "lower", False),
    "client_years_per_s": ("client-years per second (this machine only)", "higher", False),
    "B_us": ("B, us (bare SimPy event)", "lower", False),
}


# One timed x1 run in a fresh process of a checkout (argv: checkout, changes as JSON): the first run warms the
# imports and caches, the second is timed.
_TIMED_RUN = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from sim import load_scenario, simulate
sc = load_scenario(sys.argv[1] + "/scenarios/west_kent.toml").with_changes(json.loads(sys.argv[2]))
simulate(sc, 1)
t = time.perf_counter()
h = simulate(sc, 1)
print(json.dumps({"wall_s": time.perf_counter() - t, "referrals": len(h.episodes)}))
"""


def _timed(path: Path, changes: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _TIMED_RUN, str(path), json.dumps(changes)], capture_output=True,
                         text=True, cwd=path)
    if out.returncode != 0:
        raise SystemExit(f"the timed run of {path} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def against(revision: str, rounds: int, changes: dict, threshold: float) -> int:
    """Interleaved A/B of this checkout against ``revision``; 1 if this one is more than ``threshold`` slower."""
    bench.say(f"West Kent x1 {changes}, this checkout against {revision}, {rounds} alternating rounds "
              "(a fresh process per run):")
    ratios = []
    with bench.checkout(revision) as other:
        for r in range(rounds):
            load = bench.OtherLoad()
            first, second = (bench.ROOT, other) if r % 2 == 0 else (other, bench.ROOT)
            timed = {first: _timed(first, changes), second: _timed(second, changes)}
            ours, theirs = timed[bench.ROOT], timed[other]
            ratios.append(ours["wall_s"] / theirs["wall_s"])
            bench.say(f"  round {r + 1}/{rounds}: other load {bench._cores(load.cores())}; this {ours['wall_s']:.2f} s, "
                      f"{revision} {theirs['wall_s']:.2f} s; ratio {ratios[-1]:.3f}"
                      + ("" if ours["referrals"] == theirs["referrals"] else
                         f" (referrals differ: {ours['referrals']:,} against {theirs['referrals']:,})"))
    median = statistics.median(ratios)
    bench.say(f"\ntime this / {revision}: median {median:.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")
    if median > 1 + threshold:
        bench.say(f"REGRESSION: more than {threshold:.0%} slower than {revision}")
        return 1
    bench.say(f"OK: within {threshold:.0%} of {revision} (or faster)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--baseline", type=Path, default=HERE / "baseline.json", help="recorded figures (JSON "
                        "written by bench.py --json)")
    parser.add_argument("--threshold", type=float, default=0.25, help="regression in B per referral that fails "
                        "(default 0.25 = 25%%)")
    parser.add_argument("--no-memory", action="store_true", help="skip the (slow) tracemalloc run")
    parser.add_argument("--json", type=Path, default=None, help="write the figures measured now to this file")
    parser.add_argument("--against", metavar="REV", default=None, help="time this checkout against git revision "
                        "REV instead, alternating round by round (the baseline's horizon)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("rounds must be at least 1")
    try:
        base = json.loads(args.baseline.read_text())
    except (OSError, ValueError) as e:
        parser.error(f"cannot read the baseline {args.baseline}: {e}")
    recorded = base["summary"]
    cfg = base["config"]
    if args.against:
        changes = {"horizon.years": cfg["years"], **({} if cfg.get("warmup") is None else
                                                     {"horizon.warmup_years": cfg["warmup"]})}
        return against(args.against, args.rounds, changes, args.threshold)
    mach = bench.machine()
    bench.say(f"machine now: {mach['cpu_model'] or mach['processor']}, {mach['cpu_count']} CPUs, "
              f"Python {mach['python']}, simpy {mach['simpy']}; load average {bench.loadavg()}")
    bm = base.get("machine", {})
    bench.say(f"baseline:    {bm.get('cpu_model')}, {bm.get('cpu_count')} CPUs, Python {bm.get('python')}, simpy "
              f"{bm.get('simpy')}; recorded {base.get('date')} at commit "
              f"{(base.get('git') or {}).get('commit', '?')[:10]}")
    now_git = bench.git_state()
    if now_git:
        bench.say(f"now:         commit {now_git['commit'][:10]}"
                  + (", with uncommitted changes under sim/" if now_git["sim_modified"] else ""))
    if bm.get("cpu_model") != mach["cpu_model"] or bm.get("python") != mach["python"] or \
            bm.get("simpy") != mach["simpy"]:
        bench.say("note: a different machine, Python or SimPy: only the figures in B compare")
    bench.say(f"\nWest Kent x1 (horizon.years = {cfg['years']:g}), {args.rounds} interleaved rounds:")
    model = bench.measure_model(args.rounds, cfg["years"], cfg.get("warmup"), scale=None,
                                b_events=cfg.get("b_events", 500_000))
    x1 = model["x1"]
    now = {"B_us": model["B_us"]["median"], "b_per_referral": x1["b_per_referral"]["median"],
           "events_per_referral": x1["events_per_referral"], "us_per_referral": x1["us_per_referral"]["median"],
           "client_years_per_s": x1["client_years_per_s"]["median"], "referrals": x1["referrals"]}
    if not args.no_memory:
        bench.say("peak memory (tracemalloc; slow):")
        mem = bench.memory_run(bench.base_scenario().with_changes(
            {"horizon.years": cfg["years"], **({} if cfg.get("warmup") is None else
                                                {"horizon.warmup_years": cfg["warmup"]})}))
        now["peak_kib_per_referral"] = mem["peak_kib_per_referral"]

    bench.say("")
    bench.say(f"  {'figure':<46} {'baseline':>10} {'now':>10} {'now/base':>9}  ")
    failed = False
    for key, (label, better, fails) in FIGURES.items():
        if key not in now or recorded.get(key) is None or now[key] is None:
            continue
        b, n = float(recorded[key]), float(now[key])
        ratio = n / b if b else float("nan")
        worse = ratio > 1 + args.threshold if better == "lower" else ratio < 1 / (1 + args.threshold)
        better_by = ratio < 1 / (1 + args.threshold) if better == "lower" else ratio > 1 + args.threshold
        flag = ""
        if worse:
            flag = "REGRESSION" if fails else "worse"
            failed = failed or fails
        elif better_by:
            flag = "improved"
        bench.say(f"  {label:<46} {b:>10.3g} {n:>10.3g} {ratio:>9.2f}  {flag}")
    if recorded.get("referrals") != now["referrals"]:
        bench.say(f"\nnote: referrals {now['referrals']:,} now against {recorded.get('referrals'):,} in the "
                  "baseline: the model's output has changed (per-referral figures still compare)")
    warning = bench.busy_warning(model.get("other_load_cores"))
    if warning:
        bench.say("\n" + warning.strip())
    spread = model["x1"]["b_per_referral"]
    bench.say(f"\nB per referral now: median {spread['median']:.1f}, range {spread['min']:.1f}-{spread['max']:.1f} "
              f"over {args.rounds} rounds; differences under 15% are noise")
    if args.json:
        args.json.write_text(json.dumps({"baseline": str(args.baseline), "machine": mach, "git": now_git, "now": now,
                                         "model": model, "failed": failed}, indent=1, default=float) + "\n")
    if failed:
        bench.say(f"REGRESSION: B per referral more than {args.threshold:.0%} above the baseline")
        return 1
    bench.say(f"OK: B per referral within {args.threshold:.0%} of the baseline (or better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
