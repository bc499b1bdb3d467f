"""The validation report: every target against the simulation, queueing checks, and what is not validated.

``validation_report(scenarios, target_files, replications, out=DIR)`` (``pbrsim report-validation``):

* for each scenario, every target of every target file that names it (``scenario = ...`` in
  ``scenarios/targets/*.toml``; or the files given), simulated over ``replications`` replications on the
  scenario's own seed: the figure, its source, the simulated mean with its 95% confidence interval, the
  tolerance, whether it passes (the interval reaches the target and is narrow enough to tell; the mean alone
  within tolerance is reported beside it), and whether the target was fitted to (calibration) or held out
  (validation);
* **Erlang C**: LASARS assessment run as an M/M/c queue (Poisson first referrals only, no booking delay,
  exponential assessor time, c assessors) against the Erlang C mean wait in queue;
* **Little's law** on each scenario's own output: L = lambda W for the treatment caseload, (a) over the whole
  run from the empty start of the warm-up, where it must hold exactly if the spells (who was where) and the
  episodes (when treatment started and ended) record the same journeys, and (b) in a window that ends two years
  before the horizon, for the groups whose stays are short, where it holds if the system is near a steady state;
* a note on what is and is not validated.

It writes ``validation.md``, ``validation.html`` (self-contained but for the figures beside it), ``fit.csv``,
``queueing.csv`` and ``figures/*.png`` under the output folder, whole or not at all.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.analysis.targets import evaluate
from sim.config.scenario import Scenario, load_scenario, scenario_from_dict
from sim.config.targets import TargetFile, load_targets
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.errors import UserError
from sim.core.vocabulary import TREATMENT_STATES
from sim.engine.history import replace_directory
from sim.engine.system import simulate
from sim.experiments.calibrate import fit_table
from sim.experiments.core import replications
from sim.experiments.executors import ProcessExecutor, SerialExecutor
from sim.experiments.seeds import replication_seeds
from sim.experiments.statistics import mean_ci

ROOT = Path(__file__).resolve().parents[1]
LITTLE_TOLERANCE = 0.05       # steady-state window: L within 5% of lambda W
IDENTITY_TOLERANCE = 0.001    # whole run: the two records agree to 0.1%
SHORT_STAY_GROUPS = (("alcohol",), ("non_opiate", "non_opiate_alcohol"))

NOT_VALIDATED = [
    "Money: contract payments, provider costs, margins and cash are computed from the simulated activity by "
    "pure functions tested against hand calculations (tests/test_settlement.py, tests/test_costs.py); no site's "
    "actual income or spend is compared here.",
    "Offending: the cohort measure and the offending pot follow the West Kent paper's description; no recorded "
    "offending figure is compared (the Home Office formula was not found).",
    "TOP review results (abstinence, reliable improvement, housing, quality of life) are drawn from estimated "
    "shares; only attendance (Herefordshire), injecting cessation (HL2599) and the caseload's injecting "
    "status (Kent, held out) are compared.",
    "Inpatient detox and rehab uptake (and rehab place use) are fitted to national figures in West Kent "
    "(Hansard 2007-08 and 2009), not compared with any site's own; mortality, detox and rehab durations, mutual "
    "aid effects and referral-source mixes are national or estimated inputs, not compared with any site.",
    "Provider behaviour is not part of these checks: every scenario is simulated contract-blind (the system "
    "alone), whatever its [behaviour] block says.",
    "Sites whose papers give no figure (East Sussex) are checked against national figures or qualitative "
    "statements turned into numbers; their size is an estimate.",
]


# --- queueing theory -----------------------------------------------------------------------------------------


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue of an M/M/c queue (Erlang C): arrival rate ``lam``, service rate ``mu`` per server."""
    a = lam / mu
    rho = a / c
    if not rho < 1:
        raise ValueError(f"M/M/{c} is unstable: utilisation {rho:.3f}")
    top = a ** c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


NO_RETURNS = {
    "after_exit.disengaged_return_years": {"dist": "fixed", "value": 1.0, "never": 1.0},  # every group
    "after_exit.signposted_return_years": {"dist": "fixed", "value": 1.0, "never": 1.0},
    "after_exit.represent_after_relapse": 0.0,
    "after_exit.arrest_referral": 0.0,
    "custody.represent_on_release": 0.0,
    "population.trend_per_year": 0.0,
}


def mmc_scenario(base: Scenario, assessors: int = 2, utilisation: float = 0.83) -> Scenario:
    """The assessment stage as M/M/c: first referrals only (Poisson), no booking delay, exponential service
    with a mean chosen so the assessors are busy ``utilisation`` of the time (a queue really forms)."""
    lam = sum(base.population.arrivals_per_year.values()) / DAYS_PER_YEAR
    mean_days = utilisation * assessors / lam
    return base.with_changes({
        **NO_RETURNS,
        "horizon.warmup_years": 1, "horizon.years": 3,
        "horizon.settled_after_years": None,  # a queue without returns settles within days
        "assessment.booking_delay_days": 0.0,
        "assessment.assessment_days": {"dist": "exponential", "mean": mean_days},
        "capacity.assessors": assessors,
    })


def _assessment_wait(args) -> float:
    raw, seed = args
    h = simulate(scenario_from_dict(raw, "<M/M/c>"), seed)
    ev = h.events
    start = ev[ev["kind"] == "assessment_start"].set_index(["client_id", "episode"])["time"]
    ep = h.episodes.set_index(["client_id", "episode"])
    referred = ep.loc[start.index, "referral"].to_numpy()
    wait = start.to_numpy() - referred
    return float(wait[referred >= 0].mean())


def erlang_c_check(base: Scenario, replications: int = 8, seed: int = 0, workers: int = 1) -> dict:
    """Simulated mean wait for an assessor against Erlang C, with a 95% CI over replications."""
    sc = mmc_scenario(base)
    lam = sum(sc.population.arrivals_per_year.values()) / DAYS_PER_YEAR
    c = sc.capacity.assessors
    mu = 1.0 / sc.assessment.assessment_days.mean
    expected = erlang_c_wait(lam, mu, c)
    jobs = [(sc.raw(), s) for s in replication_seeds(seed, replications)]
    waits = np.array(_map(_assessment_wait, jobs, workers))
    mean, half = _mean_ci(waits)
    return {"check": f"Erlang C: LASARS assessment as M/M/{c}", "scenario": base.name,
            "expected": expected, "simulated": mean, "ci_low": mean - half, "ci_high": mean + half,
            "runs": len(waits), "within": _covers(mean, half, expected, 0.05 * expected),
            "detail": f"lambda = {lam:.3f} referrals a day, mu = {mu:.3f} a day per assessor, c = {c}, utilisation "
                      f"{lam / (c * mu):.2f}; mean wait in queue (days) after a 1-year warm-up, first referrals "
                      "only; within: the CI covers the expected wait, or the mean is within 5% of it"}


def littles_law(h, groups: Sequence[str] | None = None, window: tuple[float, float] | None = None) -> dict:
    """L (time-average people in treatment) against lambda W (starts a day x mean time in treatment).

    Without ``window``: over the whole run from its empty start, W truncated at the horizon (an identity if
    the records agree). With ``window = (a, b)``: starts in [a, b) and their whole stays (truncated at the end).
    """
    ep = h.episodes.merge(h.clients[["client_id", "group"]], on="client_id", how="left")
    sp = h.spells[h.spells["state"].astype(object).isin(TREATMENT_STATES)]
    if groups is not None:
        keep = ep[ep["group"].astype(object).isin(groups)][["client_id", "episode"]]
        ep = ep.merge(keep, on=["client_id", "episode"])
        sp = sp.merge(keep, on=["client_id", "episode"])
    a, b = window if window is not None else (h.start, h.end)
    started = ep[(ep["treatment_start"] >= a) & (ep["treatment_start"] < b)]
    left = started["exit"].where(started["exit"].notna(), h.end).clip(upper=h.end)
    if window is None:
        stay = (left - started["treatment_start"]).to_numpy(dtype=float)
    else:
        stay = (left - started["treatment_start"]).to_numpy(dtype=float)
    overlap = (np.minimum(sp["end"], b) - np.maximum(sp["start"], a)).clip(lower=0)
    L = float(overlap.sum()) / (b - a)
    lam = len(started) / (b - a)
    W = float(stay.mean()) if len(stay) else math.nan
    finished = float((started["exit"].notna() & (started["exit"] < h.end)).mean()) if len(started) else math.nan
    return {"L": L, "lambda_per_year": lam * DAYS_PER_YEAR, "W_years": W / DAYS_PER_YEAR, "lambda_W": lam * W,
            "ratio": L / (lam * W) if lam * W > 0 else math.nan, "exited_share": finished}


# --- simulating a scenario once for everything ------------------------------------------------------------------


def _validation_run(args) -> tuple[list[float], list[dict]]:
    raw, seed, targets, windows = args
    h = simulate(scenario_from_dict(raw, "<validation>"), seed)
    values = evaluate(h, targets)
    little = [{"groups": "all", "window": "whole run", **littles_law(h)}]
    for groups, window in windows:
        little.append({"groups": "+".join(groups), "window": f"days {window[0]:.0f} to {window[1]:.0f}",
                       **littles_law(h, groups, window)})
    return values, little


def _map(fn, jobs, workers: int):
    """``fn`` over the replications' jobs in order (sim.experiments.core.replications), in ``workers`` processes."""
    many = workers > 1 and len(jobs) > 1
    with ProcessExecutor(min(workers, len(jobs))) if many else SerialExecutor() as executor:
        return replications(fn, jobs, executor)


def _mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean and 95% t half-width (sim.experiments.statistics.mean_ci)."""
    s = mean_ci(x)
    return s.mean, s.half_width


def _covers(mean: float, half: float, expected: float, tol: float) -> bool:
    """Within: the 95% CI covers the expected value, or the mean is within ``tol`` of it."""
    return bool(abs(mean - expected) <= tol or (np.isfinite(half) and abs(mean - expected) <= half))


def _windows(sc: Scenario) -> list[tuple[tuple[str, ...], tuple[float, float]]]:
    """A steady-state window for the short-stay groups: from half-way through the warm-up to two years before
    the end (their stays are well under two years, so nearly every start in it has ended)."""
    h = sc.horizon
    a = h.start_day / 2
    b = h.end_day - 2 * DAYS_PER_YEAR
    if b - a < DAYS_PER_YEAR:
        return []
    return [(g, (a, b)) for g in SHORT_STAY_GROUPS]


# --- the report -------------------------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    fit: pd.DataFrame        # one row per (scenario, target)
    queueing: pd.DataFrame   # one row per queueing check
    scenarios: list[str]
    replications: int

    def summary_text(self) -> str:
        lines = [f"Validation over {self.replications} replications per scenario:"]
        for name, d in self.fit.groupby("scenario", sort=False):
            for role in ("calibration", "validation"):
                r = d[d["role"] == role]
                if len(r):
                    lines.append(f"  {name}: {int(r['passes'].sum())}/{len(r)} {role} targets pass (mean within "
                                 f"tolerance: {int(r['within'].sum())})")
        q = self.queueing
        lines.append(f"  queueing checks: {int(q['within'].sum())}/{len(q)} within tolerance")
        return "\n".join(lines)


def discover(scenarios: Sequence[str | Path] | None, target_files: Sequence[str | Path] | None
             ) -> list[tuple[Path, list[TargetFile]]]:
    """Pair scenarios with the target files that name them (every file in scenarios/targets by default)."""
    if target_files:
        files = [load_targets(p) for p in target_files]
    else:
        folder = Path("scenarios/targets") if Path("scenarios/targets").is_dir() else ROOT / "scenarios/targets"
        files = [load_targets(p) for p in sorted(folder.glob("*.toml"))]
        # the pilot evaluation's paired odds ratios compare two arms: pbrsim calibrate and evaluate-pilot
        files = [t for t in files if not t.pilot]
    for t in files:
        if t.pilot:
            raise UserError(f"{t.path or t.name}: pilot evaluation targets (pilot.*) compare the pilot with its "
                            "counterfactual; check them with pbrsim calibrate SCENARIO TARGETS (no --params) or "
                            "pbrsim evaluate-pilot")
    pairs: dict[Path, list[TargetFile]] = {}
    if scenarios:
        for s in scenarios:
            path = Path(s).resolve()
            pairs[path] = [t for t in files if t.scenario_path() is not None
                           and t.scenario_path().resolve() == path]
            if target_files:  # files naming no scenario apply to every one given
                pairs[path] += [t for t in files if t.scenario_path() is None]
    else:
        for t in files:
            if t.scenario_path() is not None:
                pairs.setdefault(t.scenario_path().resolve(), []).append(t)
    return list(pairs.items())


def validation_report(scenarios: Sequence[str | Path] | None = None,
                      target_files: Sequence[str | Path] | None = None, replications: int = 4,
                      queue_replications: int = 8, workers: int = 1, out: str | Path | None = None,
                      progress: Callable[[str], None] | None = None) -> ValidationReport:
    """Simulate each scenario, compare it with its targets, run the queueing checks; write the report to ``out``."""
    say = progress or (lambda text: None)
    pairs = [(path, files) for path, files in discover(scenarios, target_files) if files]
    if not pairs:
        raise UserError("no scenario to validate: give scenarios, and target files that name them")
    fits, queue_rows, names = [], [], []
    first = None
    for path, files in pairs:
        sc = load_scenario(path)
        first = first if first is not None else sc
        names.append(sc.name)
        targets = [t for f in files for t in f.target]
        say(f"{sc.name}: {replications} replications, {len(targets)} targets")
        jobs = [(sc.raw(), s, targets, _windows(sc)) for s in replication_seeds(sc.seed, replications)]
        runs = _map(_validation_run, jobs, workers)
        values = np.array([r[0] for r in runs], dtype=float).T.reshape(len(targets), len(runs))
        i = 0
        for f in files:
            n = len(f.target)
            table = fit_table(f.target, values[i:i + n], _display(f.path))
            table.insert(0, "scenario", sc.name)
            fits.append(table)
            i += n
        little = pd.DataFrame([row for r in runs for row in r[1]])
        for (groups, window), d in little.groupby(["groups", "window"], sort=False):
            mean, half = _mean_ci(d["ratio"].to_numpy())
            identity = window == "whole run"
            tol = IDENTITY_TOLERANCE if identity else LITTLE_TOLERANCE
            queue_rows.append({
                "check": "Little's law, " + ("whole run (records agree)" if identity
                                             else f"steady-state window ({groups})"),
                "scenario": sc.name, "expected": 1.0, "simulated": mean, "ci_low": mean - half,
                "ci_high": mean + half, "runs": len(d),
                "within": bool(abs(mean - 1) <= tol) if identity else _covers(mean, half, 1.0, tol),
                "detail": f"L / (lambda W) for {groups}, {window}: L = {d['L'].mean():.1f} people, lambda = "
                          f"{d['lambda_per_year'].mean():.1f} starts a year, W = {d['W_years'].mean():.3f} years, "
                          f"{d['exited_share'].mean():.1%} of starts exited by the end; tolerance {tol:.1%}"})
    reference = next((load_scenario(p) for p, _ in pairs if p.stem == "west_kent"), first)
    say(f"Erlang C on {reference.name}: {queue_replications} replications")
    queue_rows.insert(0, erlang_c_check(reference, queue_replications, seed=reference.seed, workers=workers))
    report = ValidationReport(pd.concat(fits, ignore_index=True), pd.DataFrame(queue_rows), names, replications)
    if out is not None:
        write_report(report, out)
    return report


def _display(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- writing -------------------------------------------------------------------------------------------------


def plot_fit(table: pd.DataFrame, title: str, path: str | Path | None = None):
    """Each target's simulated mean and 95% CI (a fit table, sim.experiments.calibrate.fit_table), as its distance from the
    figure in tolerances: 0 on the figure or inside its range, the grey band +/-1 is within tolerance. Saved to
    ``path`` (and closed) if given; otherwise the figure is returned."""
    import matplotlib.pyplot as plt

    rows = []
    for _, r in table.iterrows():
        lo, hi, tol = _bounds(r)
        rows.append((r["target"], _z(r["simulated"], lo, hi, tol), _z(r["ci_low"], lo, hi, tol),
                     _z(r["ci_high"], lo, hi, tol), r["role"]))
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    ax.axvspan(-1, 1, color="0.9", label="within tolerance")
    ax.axvline(0, color="0.6", lw=0.8)
    for yi, (label, z, zl, zh, role) in zip(y, rows):
        colour = "tab:blue" if role == "calibration" else "tab:orange"
        if np.isfinite(zl) and np.isfinite(zh):
            ax.plot([zl, zh], [yi, yi], color=colour, lw=2)
        ax.plot([z], [yi], "o", color=colour)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("distance from the figure in tolerances (0: on it or inside its range)")
    ax.plot([], [], "o", color="tab:blue", label="calibration target")
    ax.plot([], [], "o", color="tab:orange", label="validation (held out)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=10)
    lim = max(3.0, min(12.0, np.nanmax(np.abs([v for r in rows for v in r[1:4]] + [0])) + 0.5))
    ax.set_xlim(-lim, lim)
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _bounds(row) -> tuple[float, float, float]:
    text = str(row["figure"])
    tol = float(row["tolerance"])
    if text.startswith(">="):
        return float(text[2:]), math.inf, tol
    if text.startswith("<="):
        return -math.inf, float(text[2:]), tol
    if "-" in text[1:]:
        i = text.index("-", 1)
        return float(text[:i]), float(text[i + 1:]), tol
    return float(text), float(text), tol


def _z(x: float, lo: float, hi: float, tol: float) -> float:
    if not np.isfinite(x):
        return math.nan
    return (x - lo) / tol if x < lo else ((x - hi) / tol if x > hi else 0.0)


def _fmt(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "**no**"
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return ""
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return str(x)


def _esc(text: str) -> str:
    return _html.escape(str(text), quote=False)


def _md_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = []
    for _, r in frame.iterrows():
        cells = []
        for c in frame.columns:
            text = _fmt(r[c])
            bad = text == "**no**"
            text = "no" if bad else text
            cells.append(f'<td class="{"bad" if bad else ""}">{_esc(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


FIT_COLUMNS = ["target", "role", "figure", "tolerance", "simulated", "ci_low", "ci_high", "within", "informative",
               "passes", "source"]
QUEUE_COLUMNS = ["check", "scenario", "expected", "simulated", "ci_low", "ci_high", "within", "detail"]


def _sections(report: ValidationReport) -> list[tuple[str, str, pd.DataFrame | None, str | None]]:
    """(heading, text, table, figure) in order: the same content for Markdown and HTML."""
    from sim.core.version import __version__

    out = [("pbrsim validation report",
            f"pbrsim {__version__}. Each scenario was simulated {report.replications} times on its own seed "
            "(replication r uses SeedSequence(seed, spawn_key=(r,))); 'simulated' is the mean, with a 95% "
            "confidence interval over replications. A target passes when its confidence interval reaches the "
            "figure (or its range) widened by the tolerance and is narrow enough to tell: a half-width at most "
            "the tolerance, or half the range when that is wider. Fewer replications make a pass harder, not "
            "easier. 'within' says whether the mean alone lies within the tolerance. Calibration targets were fitted to (pbrsim calibrate); "
            "validation targets were held out. Measures are defined in sim/targets.py.", None, None)]
    for name in report.scenarios:
        d = report.fit[report.fit["scenario"] == name]
        for f, t in d.groupby("targets_file", sort=False):
            passed = int(t["passes"].sum())
            out.append((f"{name}: {f}", f"{passed} of {len(t)} targets pass.", t[FIT_COLUMNS],
                        f"figures/{name}__{Path(f).stem}.png"))
    out.append(("Queueing checks",
                "Erlang C: the assessment stage configured as an M/M/c queue (assessors busy 83% of the time) "
                "must give the Erlang C mean wait (the 95% CI covers it, or the mean is within 5%). Little's law "
                "on each scenario's own output: over the whole run, L / (lambda W) must be 1 to 0.1% (the spells "
                "and episodes record the same journeys); in a steady-state window, for groups with short stays, "
                "the CI must cover 1 or the mean be within 5% (a ratio a little below 1 means the caseload is "
                "still growing as re-presentations accumulate: README, Limitations). tests/test_queueing.py "
                "checks the same laws on small variants.", report.queueing[QUEUE_COLUMNS], None))
    outside = report.fit[~report.fit["passes"]]
    lines = [f"- {r['scenario']}: {r['target']} ({r['role']}): simulated {_fmt(r['simulated'])} "
             f"({_fmt(r['ci_low'])} to {_fmt(r['ci_high'])}) against {r['figure']} +/- {_fmt(r['tolerance'])}: "
             + ("the interval is too wide to tell (more replications)" if r["covers"] and not r["informative"]
                else "the interval misses the target") for _, r in outside.iterrows()]
    out.append(("Targets that do not pass", "\n".join(lines) if lines else "None.", None, None))
    out.append(("What is and is not validated",
                "Validated here: the figures in the target files (activity, completions, exits, waits, time in "
                "treatment, re-presentation, attendance) for each site, against its calibrated scenario, and the "
                "queueing laws above. Figures tagged [E] in a target file are estimates and validate nothing by "
                "themselves; calibration targets show fit, not predictive validity - only the held-out "
                "(validation) targets test the model. Not validated:\n"
                + "\n".join(f"- {x}" for x in NOT_VALIDATED), None, None))
    return out


def write_report(report: ValidationReport, out) -> None:
    """Write validation.md, validation.html, fit.csv, queueing.csv and figures/ under ``out`` (whole or not)."""

    import matplotlib

    matplotlib.use("Agg")

    def build(tmp: Path) -> None:
        (tmp / "figures").mkdir(parents=True)
        report.fit.to_csv(tmp / "fit.csv", index=False)
        report.queueing.to_csv(tmp / "queueing.csv", index=False)
        sections = _sections(report)
        for name in report.scenarios:
            d = report.fit[report.fit["scenario"] == name]
            for f, t in d.groupby("targets_file", sort=False):
                plot_fit(t, f"{name}: {f}", tmp / "figures" / f"{name}__{Path(f).stem}.png")
        md, body = [], []
        for i, (heading, text, table, fig) in enumerate(sections):
            md.append(("# " if i == 0 else "## ") + heading)
            md.append(text)
            tag = "h1" if i == 0 else "h2"
            body.append(f"<{tag}>{_esc(heading)}</{tag}>")
            if text.startswith("- ") or "\n- " in text:
                intro, _, items = text.partition("\n- ") if not text.startswith("- ") else ("", "", text[2:])
                if intro:
                    body.append(f"<p>{_esc(intro)}</p>")
                body.append("<ul>" + "".join(f"<li>{_esc(x)}</li>" for x in items.split("\n- ")) + "</ul>")
            else:
                body.append(f"<p>{_esc(text)}</p>")
            if table is not None:
                md.append(_md_table(table))
                body.append(_html_table(table))
            if fig is not None:
                md.append(f"![{heading}]({fig})")
                body.append(f'<img src="{_html.escape(fig)}" alt="{_html.escape(heading)}">')
        (tmp / "validation.md").write_text("\n\n".join(md) + "\n")
        (tmp / "validation.html").write_text(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>pbrsim validation report</title><style>"
            "body{font-family:sans-serif;max-width:75em;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:0.2em 0.5em;text-align:left;vertical-align:top}"
            "td.bad{background:#fdd;font-weight:bold}img{max-width:100%}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")

    replace_directory(out, build, "validation")
