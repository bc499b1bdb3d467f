"""Offending: offences by spell, the Home Office-style offending cohort, and the West Kent offending payment.

Computed afterwards from a History; nothing here runs the simulation.

The method (West Kent drug PbR; the Home Office model, ref pbr-contracts §6, §7.2):

1. **Offences by spell.** Each active offender has a personal untreated rate (``clients.offending_rate``,
   offences a year; 0 for non-offenders). In each spell the rate is multiplied by the ratio for the state
   (``[offending]`` in the scenario, by substance group and the episode's need band): before treatment,
   in treatment (the six caseload states), after a planned exit, after a drop-out, relapsed, signposted,
   in custody; nothing after a transfer out of the area or death. Expected offences in a spell are
   rate x ratio x duration (years). Only some offences lead to a police (PNC) record: the recorded count is
   Poisson with mean expected x ``recorded_share``, drawn by inversion from a uniform keyed by (seed,
   client, episode, spell start), so the same History always gives the same counts and changing one client's
   life leaves every other client's counts as they were.
2. **The offending cohort.** Per financial year (or quarter): the offenders who were in structured treatment
   at any time in the period. Their recorded offences in the period, in any state, are the cohort's offences;
   a spell that straddles a period boundary is shared out in proportion to time. Periods run back into the
   warm-up (whole periods only), so the year before the contract can serve as the baseline.
3. **The payment.** The reduction is 1 - offences / baseline offences. A share of the offending pot is paid
   on a line through two attachment points: West Kent paid 53% if the baseline was equalled, rising linearly
   to 100% at a 4.3% reduction, capped at 100% (below the baseline, see ``attachment_fraction``). Offences
   saved (baseline - offences) x a price per offence gives the "Estimated Community Savings" (£3.9k in
   West Kent).

Units: times in days since the contract start (negative in the warm-up), rates in offences a year, years of
365.25 days, money in pounds. The History starts at a client's first referral, so each offender is given a year
of untreated offending before it (a ``before_referral`` row at the band-free before-treatment ratio): a member
first referred during a period then counts the whole period, as a returning member does. Without this the
measure drifts upward as the share of returning clients grows. The ratios are the scenario's own: dated changes
(``[[schedule]]``) to ``[offending]`` are not applied.
"""

from __future__ import annotations

import datetime as dt
import math
from numbers import Real

import numpy as np
import pandas as pd
from scipy import special

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_YEAR, FREQUENCIES, financial_year, fy_label, periods
from sim.core.randomness import ClientRandom, Stream, root_seed
from sim.core.vocabulary import BANDS, GROUPS, STATES, TREATMENT_STATES
from sim.engine.history import History, derived

OFFENDING_STREAM = int(Stream.OFFENDING)

# which [offending] ratio applies in each state; None = no offences counted (left the area, died)
STATE_RATIO: dict[str, str | None] = {
    "awaiting_assessment": "before_treatment",
    "awaiting_treatment": "before_treatment",
    **{s: "in_treatment" for s in TREATMENT_STATES},
    "in_custody": "in_custody",
    "recovered": "after_planned_exit",
    "relapsed": "relapsed",
    "disengaged": "after_drop_out",
    "signposted": "signposted",
    "transferred": None,
    "died": None,
}
assert set(STATE_RATIO) == set(STATES)

BELOW_BASELINE = ("extend", "zero", "hold")

SPELL_COLUMNS = ["client_id", "episode", "state", "start", "end", "rate", "ratio", "expected", "recorded"]
COHORT_COLUMNS = ["period", "start", "end", "contract", "cohort", "offences", "expected_offences",
                  "offences_per_member"]

def client_uniforms(seed, stream: int, client: np.ndarray, episode: np.ndarray,
                    counter: np.ndarray) -> np.ndarray:
    """Uniforms keyed by (client, episode, counter) for a decision point: see ``ClientRandom.keyed``."""
    return ClientRandom(root_seed(seed)).keyed(stream, client, episode, counter)


def _start_counter(start: np.ndarray) -> np.ndarray:
    """A spell's start time as a 64-bit counter: its IEEE bit pattern (+0.0 folds -0.0 into 0.0)."""
    return (np.asarray(start, dtype=np.float64) + 0.0).view(np.uint64)


# --- 1. offences by spell ------------------------------------------------------------------------------------


def _ratio_table(scenario: Scenario) -> np.ndarray:
    """``table[state, group, band]``; band index len(BANDS) holds the band-free value (before assessment)."""
    off = scenario.offending
    table = np.zeros((len(STATES), len(GROUPS), len(BANDS) + 1))
    for s, state in enumerate(STATES):
        name = STATE_RATIO[state]
        if name is None:
            continue
        param = getattr(off, name)
        for g, group in enumerate(GROUPS):
            table[s, g, :len(BANDS)] = [param.at(g, b).value for b in range(len(BANDS))]
            table[s, g, len(BANDS)] = param.resolve(group).value
    return table


def _with_episode(spells: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """Each spell's episode and band: the episode of the latest referral at or before the spell's start.

    Taken from the referral times rather than ``spells.episode``, which labels the spell after an exit that
    ends in a re-presentation with the next episode (the recorder closes a spell with the episode current then).
    """
    ep = episodes[["client_id", "episode", "referral", "band"]].sort_values("referral", kind="stable")
    sp = spells.assign(_row=np.arange(len(spells))).sort_values("start", kind="stable")
    sp = pd.merge_asof(sp, ep, left_on="start", right_on="referral", by="client_id", direction="backward")
    return sp.sort_values("_row").drop(columns=["_row", "referral"]).reset_index(drop=True)


BEFORE_REFERRAL_DAYS = 366.0  # covers any financial year or quarter that a first referral falls in


@derived
def offences_by_spell(history: History, scenario: Scenario) -> pd.DataFrame:
    """One row per spell of every offender, plus a ``before_referral`` row (episode -1) for the year before the
    first referral, at the before-treatment ratio: ``client_id``, ``episode`` (the referral the spell follows),
    ``state``, ``start``, ``end`` (days), ``rate``
    (offences/year untreated), ``ratio`` (the state's multiplier), ``expected`` (offences), ``recorded``
    (offences that lead to a police record, an integer draw with mean expected x recorded_share)."""
    if history.seed is None:
        raise ValueError("history.seed is None: recorded offences are drawn from the run's seed")
    offenders = history.clients.loc[history.clients["offending_rate"] > 0,
                                    ["client_id", "group", "offending_rate"]]
    sp = history.spells[history.spells["client_id"].isin(offenders["client_id"])]
    sp = sp.drop(columns="episode").merge(offenders, on="client_id", how="left")
    sp = _with_episode(sp, history.episodes)

    state = sp["state"].cat.codes.to_numpy()
    group = pd.Categorical(sp["group"], categories=GROUPS).codes
    band = pd.Categorical(sp["band"], categories=BANDS).codes.astype(np.int64)
    # the band is not known before assessment (nor for an episode never assessed): use the band-free value
    band[(band < 0) | (state == STATES.index("awaiting_assessment"))] = len(BANDS)
    ratio = _ratio_table(scenario)[state, group, band]

    start, end = sp["start"].to_numpy(float), sp["end"].to_numpy(float)
    bad = ~(end >= start)  # a negative or NaN length would make a NaN Poisson mean: a garbage count, silently
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"history.spells: {int(bad.sum())} spell(s) of offenders do not run forward in time, e.g. "
                         f"client {sp['client_id'].iloc[i]}, state {sp['state'].iloc[i]}, start {start[i]}, "
                         f"end {end[i]}")
    rate = sp["offending_rate"].to_numpy(float)
    expected = rate * ratio * (end - start) / DAYS_PER_YEAR
    mean = expected * scenario.offending.recorded_share.value
    u = client_uniforms(history.seed, OFFENDING_STREAM, sp["client_id"].to_numpy(), sp["episode"].to_numpy(),
                        _start_counter(start))
    recorded = poisson_quantile(u, mean).astype(np.int64)
    spells = pd.DataFrame({
        "client_id": sp["client_id"].to_numpy(np.int64), "episode": sp["episode"].to_numpy(np.int64),
        "state": sp["state"].astype(str).to_numpy(), "start": start, "end": end, "rate": rate, "ratio": ratio,
        "expected": expected, "recorded": recorded,
    })
    return pd.concat([_before_referral(history, scenario, offenders), spells], ignore_index=True)


def recorded_between(offences: pd.DataFrame, start: float, end: float) -> float:
    """Recorded offences of :func:`offences_by_spell` rows in [start, end) (days): each spell's count apportioned
    by the share of its days inside the window."""
    lo, hi = offences["start"].to_numpy(float), offences["end"].to_numpy(float)
    length = hi - lo
    overlap = np.clip(np.minimum(hi, end) - np.maximum(lo, start), 0.0, None)
    share = np.divide(overlap, length, out=np.zeros_like(overlap), where=length > 0)
    return float((offences["recorded"].to_numpy(float) * share).sum())


def poisson_quantile(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The Poisson quantile of probabilities ``u`` in (0, 1): ``scipy.stats.poisson.ppf``'s own formula,
    without importing ``scipy.stats`` (half a second at every start of a worker or a command)."""
    counts = np.ceil(special.pdtrik(u, mean))
    below = np.maximum(counts - 1, 0)
    return np.where(special.pdtr(below, mean) >= u, below, counts)


def _before_referral(history: History, scenario: Scenario, offenders: pd.DataFrame) -> pd.DataFrame:
    """A year of untreated offending before each offender's first referral (not in the History).

    Without it a returning client's offending before re-referral would count towards the cohort's year but a new
    client's would not, and the measure would drift upward as the share of returning clients grows.
    """
    first = history.clients.set_index("client_id").loc[offenders["client_id"], "first_referral"].to_numpy(float)
    start, end = first - BEFORE_REFERRAL_DAYS, first
    group = pd.Categorical(offenders["group"], categories=GROUPS).codes
    before = scenario.offending.before_treatment
    ratio = np.array([before.resolve(GROUPS[g]).value for g in group])
    rate = offenders["offending_rate"].to_numpy(float)
    expected = rate * ratio * BEFORE_REFERRAL_DAYS / DAYS_PER_YEAR
    mean = expected * scenario.offending.recorded_share.value
    client = offenders["client_id"].to_numpy(np.int64)
    u = client_uniforms(history.seed, OFFENDING_STREAM, client, np.full(len(client), -1), _start_counter(start))
    return pd.DataFrame({
        "client_id": client, "episode": np.full(len(client), -1, dtype=np.int64), "state": "before_referral",
        "start": start, "end": end, "rate": rate, "ratio": ratio, "expected": expected,
        "recorded": poisson_quantile(u, mean).astype(np.int64),
    })


# --- 2. the offending cohort ---------------------------------------------------------------------------------


def _period_bounds(fy: int, freq: str) -> list[tuple[str, dt.date, dt.date]]:
    if freq == "year":
        return [(fy_label(fy), dt.date(fy, 4, 1), dt.date(fy + 1, 4, 1))]
    starts = [dt.date(fy, 4, 1), dt.date(fy, 7, 1), dt.date(fy, 10, 1), dt.date(fy + 1, 1, 1), dt.date(fy + 1, 4, 1)]
    return [(f"{fy_label(fy)} Q{i + 1}", starts[i], starts[i + 1]) for i in range(4)]


def reporting_periods(history: History, freq: str = "year") -> pd.DataFrame:
    """Financial periods from the warm-up start to the end: ``period, start, end`` (days), ``contract``.

    Warm-up periods are whole periods that end by the contract start (a mid-year start loses the stub before
    it); contract periods are those of :func:`sim.core.calendar.periods`, clipped to [0, end).
    """
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")
    cs = history.contract_start
    rows = []
    for fy in range(financial_year(cs + dt.timedelta(days=math.floor(history.start))), financial_year(cs) + 1):
        for label, a, b in _period_bounds(fy, freq):
            a_day, b_day = float((a - cs).days), float((b - cs).days)
            if a_day >= history.start and b_day <= 0:
                rows.append((label, a_day, b_day, False))
    warm = pd.DataFrame(rows, columns=["period", "start", "end", "contract"])
    contract = periods(cs, history.end, freq).assign(contract=True)
    return pd.concat([warm, contract], ignore_index=True)


@derived
def cohort_offences(history: History, scenario: Scenario, freq: str = "year") -> pd.DataFrame:
    """The offending cohort per financial period, warm-up periods included (see the module docstring).

    Columns: ``period``, ``start``, ``end`` (days), ``contract`` (inside the contract), ``cohort`` (offenders
    in structured treatment at any time in the period), ``offences`` (their recorded offences in the period,
    pro-rated by time, a float), ``expected_offences`` (the mean of ``offences``), ``offences_per_member``.
    """
    per = reporting_periods(history, freq)
    sp = offences_by_spell(history, scenario)
    a, b = per["start"].to_numpy()[None, :], per["end"].to_numpy()[None, :]
    start, end = sp["start"].to_numpy()[:, None], sp["end"].to_numpy()[:, None]
    duration = end - start
    inside = np.clip(np.minimum(end, b) - np.maximum(start, a), 0.0, None)
    share = np.divide(inside, duration, out=np.zeros_like(inside), where=duration > 0)
    in_treatment = sp["state"].isin(TREATMENT_STATES).to_numpy()[:, None] & (start < b) & (end > a)

    clients = sp["client_id"].to_numpy()
    member = pd.DataFrame(in_treatment).groupby(clients).any().to_numpy()
    recorded = pd.DataFrame(share * sp["recorded"].to_numpy()[:, None]).groupby(clients).sum().to_numpy()
    share_expected = scenario.offending.recorded_share.value * sp["expected"].to_numpy()[:, None]
    expected = pd.DataFrame(share * share_expected).groupby(clients).sum().to_numpy()

    out = per.copy()
    out["cohort"] = member.sum(axis=0).astype(np.int64) if len(member) else np.zeros(len(per), np.int64)
    out["offences"] = (recorded * member).sum(axis=0) if len(member) else 0.0
    out["expected_offences"] = (expected * member).sum(axis=0) if len(member) else 0.0
    out["offences_per_member"] = out["offences"] / out["cohort"].where(out["cohort"] > 0)
    return out[COHORT_COLUMNS]


# --- 3. the attachment curve ---------------------------------------------------------------------------------


def attachment_fraction(reduction, paid_at_baseline: float = 0.53, full_at_reduction: float = 0.043,
                        below_baseline: str = "extend"):
    """Share of the offending pot paid for a fractional reduction in offences against the baseline.

    ``paid_at_baseline`` is paid when offences equal the baseline (reduction 0), rising linearly to the whole
    pot at ``full_at_reduction`` and capped there. Below the baseline (reduction < 0): ``"extend"`` follows the
    same line down to nothing (at about -4.85% in West Kent) and never below; ``"zero"`` pays nothing;
    ``"hold"`` pays ``paid_at_baseline``. NaN reductions give NaN. A scalar in gives a float out.
    """
    if not (isinstance(paid_at_baseline, Real) and 0.0 <= paid_at_baseline <= 1.0):
        raise ValueError(f"paid_at_baseline must be a share in [0, 1], got {paid_at_baseline!r}")
    if not (isinstance(full_at_reduction, Real) and math.isfinite(full_at_reduction)
            and 0.0 < full_at_reduction <= 1.0):
        raise ValueError(f"full_at_reduction must be a reduction in (0, 1], got {full_at_reduction!r}")
    if below_baseline not in BELOW_BASELINE:
        raise ValueError(f"below_baseline must be one of {BELOW_BASELINE}, got {below_baseline!r}")
    r = np.asarray(reduction, dtype=float)
    line = paid_at_baseline + (1.0 - paid_at_baseline) * r / full_at_reduction
    below = {"extend": np.maximum(line, 0.0), "zero": np.zeros_like(r),
             "hold": np.full_like(r, paid_at_baseline)}[below_baseline]
    out = np.where(r >= 0, np.minimum(line, 1.0), below)
    out = np.where(np.isnan(r), np.nan, out)
    return float(out) if out.ndim == 0 else out


# --- 4. the offending payment --------------------------------------------------------------------------------


def offending_settlement(cohort_table: pd.DataFrame, baseline_period: str | float, pot: float,
                         price_per_offence: float, **curve) -> pd.DataFrame:
    """The offending payment for each period after the baseline.

    ``baseline_period``: a period label in ``cohort_table`` (e.g. "2011-12", the year before the contract),
    whose ``offences`` are the baseline and after which periods are settled; or a number of offences, in which
    case the contract periods are settled (every row if the table has no ``contract`` column).
    ``pot`` (pounds per period) and ``price_per_offence`` (pounds); ``curve``: arguments of
    :func:`attachment_fraction`.

    Columns: ``period``, ``offences``, ``baseline_offences``, ``reduction`` (1 - offences / baseline),
    ``fraction_paid``, ``payment`` (pot x fraction, pounds), ``offences_saved`` (baseline - offences; negative
    when offending rose), ``community_savings`` (offences saved x price, pounds).
    """
    for name in ("period", "offences"):
        if name not in cohort_table.columns:
            raise ValueError(f"cohort_table needs a {name!r} column")
    if not (isinstance(pot, Real) and math.isfinite(pot) and pot >= 0):
        raise ValueError(f"pot must be a non-negative amount, got {pot!r}")
    if not (isinstance(price_per_offence, Real) and math.isfinite(price_per_offence) and price_per_offence >= 0):
        raise ValueError(f"price_per_offence must be a non-negative amount, got {price_per_offence!r}")
    table = cohort_table.reset_index(drop=True)
    if isinstance(baseline_period, str):
        hits = np.flatnonzero(table["period"].to_numpy() == baseline_period)
        if len(hits) != 1:
            raise ValueError(f"baseline_period {baseline_period!r} is not a period of cohort_table "
                             f"({', '.join(map(str, table['period']))})")
        baseline = float(table.at[hits[0], "offences"])
        settled = table.iloc[hits[0] + 1:]
    elif isinstance(baseline_period, Real) and not isinstance(baseline_period, bool):
        baseline = float(baseline_period)
        settled = table[table["contract"].astype(bool)] if "contract" in table.columns else table
    else:
        raise ValueError(f"baseline_period must be a period label or a number of offences, got {baseline_period!r}")
    if not (math.isfinite(baseline) and baseline > 0):
        raise ValueError(f"baseline_period gives a baseline of {baseline} offences: a reduction needs a baseline > 0")

    offences = settled["offences"].to_numpy(float)
    reduction = 1.0 - offences / baseline
    fraction = np.atleast_1d(attachment_fraction(reduction, **curve))
    saved = baseline - offences
    keep = [c for c in ("period", "start", "end") if c in settled.columns]
    out = settled[keep].reset_index(drop=True)
    out["offences"] = offences
    out["baseline_offences"] = baseline
    out["reduction"] = reduction
    out["fraction_paid"] = fraction
    out["payment"] = pot * fraction
    out["offences_saved"] = saved
    out["community_savings"] = saved * price_per_offence
    return out


# --- 5. community savings, whatever the contract -------------------------------------------------------------


def community_savings(cohort_table: pd.DataFrame, price_per_offence: float) -> pd.DataFrame:
    """Estimated community savings of each contract period against the year before the contract, on the same
    offences whatever the contract pays (a block contract's clients save the community as much as a PbR
    contract's).

    The baseline is the last warm-up period's recorded offences *per cohort member*, applied to each contract
    period's own cohort: offences saved = baseline rate x members - offences. A rate, not a volume, so that a
    cohort that grows or shrinks with the caseload saves nothing by its size alone.

    ``cohort_table``: as from :func:`cohort_offences` (with warm-up periods, ``contract`` False). Columns:
    ``period``, ``start``, ``end``, ``cohort``, ``offences``, ``baseline_rate`` (recorded offences per member),
    ``offences_saved`` (negative when offending rose), ``community_savings`` (pounds). NaN throughout when there
    is no warm-up period or its cohort is empty.
    """
    if not (isinstance(price_per_offence, Real) and math.isfinite(price_per_offence) and price_per_offence >= 0):
        raise ValueError(f"price_per_offence must be a non-negative amount, got {price_per_offence!r}")
    before = cohort_table[~cohort_table["contract"].astype(bool)]
    rate = float(before["offences_per_member"].iloc[-1]) if len(before) else np.nan
    out = cohort_table.loc[cohort_table["contract"].astype(bool), ["period", "start", "end", "cohort", "offences"]]
    out = out.reset_index(drop=True)
    out["baseline_rate"] = rate
    out["offences_saved"] = rate * out["cohort"] - out["offences"]
    out["community_savings"] = out["offences_saved"] * price_per_offence
    return out
