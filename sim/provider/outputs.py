"""What a contract design invites: provider behaviour measured, the cash feedback, and the contract audit
(issue 7).

:mod:`sim.provider.model` decides (the price schedule, gaming pressure, one decision per mechanism) and
:mod:`sim.engine.system` applies the decisions of mechanisms M1-M6 inside a run. This module works on the results:

* :func:`behaviour_outputs` — a tidy long table, per contract year (and over the term) and per need band, of
  what the mechanisms move: the share of referrals starting, deflections, waits, parking and contacts, length of
  stay, TOP results and review frequency, completions and completions without re-presentation, re-presentations
  bunched just after the window closes, unpaid harm-reduction activity, the equity gap between Critical and Low,
  offending and deaths among people not served, the provider's reserve and capacity, and the commissioner's
  cost per *true* outcome.
* :func:`simulate_with_provider` — M7 as a fixed point outside SimPy: run with the provider model, settle, turn
  the cash into capacity cuts, intake freezes and cash stress, and run again until the capacity path stops
  changing.
* :func:`audit_contract` — "what this design invites": the design run with behaviour off, base and stress on
  common random numbers, which mechanisms switch on and how strongly, what they do to the outputs (paired
  differences with 95% CIs), the contract features responsible, and the margin-neutral tariff check;
  :func:`write_audit` writes it (``pbrsim audit-contract``).
* Behaviour sweeps — :func:`run_behaviour_sweep` runs a sweep spec (:mod:`sim.experiments.sweep`) with behaviour on through
  the experiment machinery, adding the outputs above and a total-distortion index to each run's table; derived
  contract keys (``contract.band_weight_steepness``, ``contract.pbr_share_every_year``) sweep a whole ladder of
  band weights or PbR shares with one number. :func:`plot_behaviour_sweep` draws them.

Units: days (times since the contract start), months of 365.25 / 12 days, pounds; shares are fractions.
Bands in the outputs are *need* bands — the band the independent assessment gave (``assessed_band``), before any
drift — except where a metric says it reads the recorded band. Evidence and defaults:
``../shared/reference/provider-behaviour.md`` (section numbers below refer to it).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import special

from sim.provider.model import (MONTH_DAYS, REVIEW_MEASURES, STRUCTURED_BANDS, BehaviourSpec, ProviderModel, cash_inputs,
                        cash_response, capacity_changes, margin_neutral_weights, parking_effects)
from sim.config.contract import Contract, contract_years

if TYPE_CHECKING:
    from sim.engine.history import History
    from sim.config.scenario import Scenario
    from sim.money.settlement import Settlement

GAP = "critical_minus_low"       # the equity gap rows: Critical minus Low
ALL = "all"                      # every structured band together
TERM = "term"
NOT_SERVED = ("deflected", "left_waiting_list")  # turned away at intake, or gave up waiting
TREATMENT_EXITS = ("planned", "dropped_out", "declined", "transferred", "custody", "died")
UNPLANNED = ("dropped_out", "declined")
SHIFT_MIN_DAYS = 7.0             # a planned exit moved by less than a week is not counted as held or fast-tracked
BUNCHING_DAYS = MONTH_DAYS       # re-presentations in the month after the window closes against the month before
DEFAULT_WINDOW_DAYS = 365.0      # the national 1.4 window, where the contract prices no sustained outcome
OUTPUT_COLUMNS = ["period", "contract_year", "band", "metric", "value"]

# metric -> what it is (units); the order of the report's tables
METRICS: dict[str, str] = {
    "referrals": "assessed referrals into a structured band, by the day of assessment (people)",
    "share_starting": "of those referrals, the share that started structured treatment",
    "deflected_share": "of those referrals, the share not accepted at intake (M1)",
    "signposted_out": "referrals turned away at intake and signposted out (people)",
    "band_drift_share": "of those referrals, the share recorded in a more severe band than assessed (M6)",
    "recorded_share_of_assessed": "share of assessed referrals recorded in the band (the recorded band)",
    "starts": "treatment starts (people)",
    "share_of_starters": "share of treatment starts in the band",
    "mean_wait_days": "referral to treatment start, for starts in the period (days)",
    "waited_over_3_weeks": "share of starts that waited more than 21 days",
    "in_treatment": "people in structured treatment at any time in the period",
    "parked_share": "of those in treatment, the share parked (M2: reduced keyworking for the episode)",
    "contacts_per_client_month": "keyworker contacts per client-month on the caseload (standard contacts, cut by "
                                 "parking to the contract's floor)",
    "reviews_per_client_year": "completed TOP reviews (not the start review) per client-year on the caseload",
    "abstinent_at_review": "share of completed TOP reviews recording abstinence",
    "non_injecting_at_review": "share of completed TOP reviews recording no injecting, of episodes injecting at "
                               "the start review",
    "misrecorded_share": "share of completed TOP reviews with an unfavourable answer recorded favourably (M3)",
    "bbv_tests_per_client_year": "blood-borne virus tests per client-year on the caseload (unpaid activity "
                                 "unless the contract prices it)",
    "hep_b_courses_per_client_year": "hepatitis B courses started per client-year on the caseload",
    "exits": "treatment exits (people)",
    "planned_exits": "planned exits, free of dependence (people)",
    "length_of_stay_days": "treatment start to exit, for exits in the period (days)",
    "unplanned_exit_share": "share of exits dropped out or declined to continue",
    "completion_rate": "planned exits / people in treatment",
    "completions_per_referral": "planned exits / assessed referrals (a population measure)",
    "held_share": "share of planned exits held a week or more past clinical readiness (M4)",
    "fast_tracked_share": "share of planned exits brought forward a week or more (M4)",
    "mean_shift_days": "mean days a planned exit was held (+) or brought forward (-)",
    "sustained_share": "of planned exits whose window has closed, the share without a re-presentation in it",
    "completions_without_re_presentation": "planned exits with no re-presentation within the window (people)",
    "re_presentations": "re-presentations referred in the period (people)",
    "re_presented_month_before": "after planned exits, re-presentations in the month before the window closes",
    "re_presented_month_after": "after planned exits, re-presentations in the month after the window closes",
    "bunching_after_window": "re-presentations in the month after the window closes / in the month before",
    "not_served": "referrals turned away at intake or lost from the waiting list (people)",
    "deaths_not_served": "deaths of people whose last referral was turned away or left the waiting list",
    "offences_not_served": "expected offences by people not served, after they were turned away (offences)",
    "caseload_places": "caseload places in force, time-averaged",
    "reserve_at_end": "the provider's cash reserve at the period's end (pounds; M7 cash response)",
    "lowest_reserve": "the lowest month-opening reserve in the period (pounds)",
    "mean_stress": "mean cash stress (0-1)",
    "capacity_multiplier": "the lowest capacity multiplier in force (1 = no cut)",
    "months_intake_frozen": "months with intake frozen",
    "handed_back": "1 if the contract was handed back by the period's end",
    "outcome_payments": "outcome payments earned in the period, net of clawback (pounds; by recorded band)",
    "drift_overpayment": "outcome payments above what the assessed band would have earned (pounds)",
    "spend": "commissioner spend, payments and assessments (pounds)",
    "provider_margin": "provider income less delivery cost (pounds)",
    "paid_outcomes": "paid outcomes earned in the period",
    "true_outcomes": "paid outcomes that are real (not evidenced by a misrecorded TOP review)",
    "held_outcomes": "paid sustained outcomes after a discharge held past clinical readiness",
    "spend_per_true_outcome": "commissioner spend / true outcomes (pounds)",
    "outcomes_anyway": "true outcomes the same client also achieved with behaviour off (same seed)",
    "additional_outcomes": "true outcomes the same client did not achieve with behaviour off",
    "lost_outcomes": "outcomes achieved with behaviour off that the same client did not achieve with it on",
    "spend_per_additional_outcome": "extra spend against behaviour off / net extra true outcomes (pounds; NaN "
                                    "when the outcomes did not rise)",
}
GAP_METRICS = ("share_starting", "deflected_share", "mean_wait_days", "parked_share", "contacts_per_client_month",
               "completion_rate", "completions_per_referral", "sustained_share", "unplanned_exit_share")


# --- 1. the outputs ---------------------------------------------------------------------------------------------


def output_periods(history: History, years: int | None = None) -> pd.DataFrame:
    """The periods the outputs are reported for: each contract year that starts before the horizon ends (clipped
    to it), then the whole ``term`` (contract year 0). ``years``: the contract's years (default: the horizon's)."""
    n = years if years is not None else max(1, math.ceil(history.end / 365.25 - 1e-9))
    rows = [(f"contract year {k}", k, a, min(b, history.end)) for k, a, b in contract_years(history.contract_start, n)
            if a < history.end]
    if not rows:
        raise ValueError("the History ends before the contract starts: nothing to report")
    rows.append((TERM, 0, 0.0, rows[-1][3]))
    return pd.DataFrame(rows, columns=["period", "contract_year", "start", "end"])


def _episodes(history: History) -> pd.DataFrame:
    """Episodes with the need band (assessed, before drift), the recorded band, the next referral and the
    behaviour columns (defaults where a History predates them)."""
    ep = history.episodes.copy()
    for name, default in (("deflected", False), ("parked", False), ("discharge_shift_days", 0.0)):
        if name not in ep:
            ep[name] = default
    recorded = ep["band"].astype(object)
    need = ep["assessed_band"].astype(object) if "assessed_band" in ep else recorded
    ep["need"] = need.where(need.notna(), recorded)
    ep["recorded"] = recorded
    ep = ep.sort_values(["client_id", "episode"], kind="stable")
    ep["next_referral"] = ep.groupby("client_id")["referral"].shift(-1)
    ep["discharge_shift_days"] = ep["discharge_shift_days"].astype(float).fillna(0.0)
    return ep.reset_index(drop=True)


def _per_band(values, bands, how: str = "mean", structured_only: bool = True) -> dict[str, float]:
    """``how`` (mean, sum) of ``values`` per need band and over every structured band (``all``)."""
    s = pd.Series(np.asarray(values, dtype=float))
    b = pd.Series(np.asarray(bands, dtype=object))
    keep = b.isin(STRUCTURED_BANDS) if structured_only else b.notna()
    s, b = s[keep.to_numpy()], b[keep.to_numpy()]
    out = {}
    for band in STRUCTURED_BANDS:
        x = s[(b == band).to_numpy()]
        out[band] = float(x.sum()) if how == "sum" else (float(x.mean()) if len(x) else math.nan)
    out[ALL] = float(s.sum()) if how == "sum" else (float(s.mean()) if len(s) else math.nan)
    return out


def _ratio(num: Mapping[str, float], den: Mapping[str, float]) -> dict[str, float]:
    return {k: (num[k] / den[k] if den.get(k) else math.nan) for k in num}


def _overlap(start, end, a: float, b: float) -> np.ndarray:
    return np.clip(np.minimum(np.asarray(end, float), b) - np.maximum(np.asarray(start, float), a), 0.0, None)


def _contacts(scenario: Scenario | None, contract: Contract | None) -> tuple[float, float]:
    """Standard keyworker contacts a month, and the multiplier on them while parked (after any contact floor)."""
    spec = getattr(scenario, "behaviour", None)
    spec = spec if isinstance(spec, BehaviourSpec) else BehaviourSpec()
    params = spec.resolve("stress" if spec.mode == "stress" else "base").parking
    floor = contract.terms.contact_floor_per_month if contract is not None else None
    return params.standard_contacts_per_month, parking_effects(params, floor).contact_multiplier


def _sustained_window(contract: Contract | None) -> float:
    if contract is not None:
        windows = [o.window_days for o in contract.outcomes.values() if o.measure == "sustained_recovery"]
        if windows:
            return float(max(windows))
    return DEFAULT_WINDOW_DAYS


def behaviour_outputs(history: History, settlement: Settlement | None = None, scenario: Scenario | None = None, *,
                      blind: Settlement | None = None, cash: pd.DataFrame | None = None,
                      window_days: float | None = None) -> pd.DataFrame:
    """What provider behaviour moves, per contract year and over the term, per need band: a tidy long table
    with columns ``period`` (``contract year N`` or ``term``), ``contract_year`` (0 for the term), ``band``
    (``critical`` ... ``low``, ``all``, and ``critical_minus_low`` for the equity gaps of :data:`GAP_METRICS`),
    ``metric`` (see :data:`METRICS`) and ``value``.

    ``settlement`` (of this History) adds the money: outcome payments by band, the commissioner's spend, the
    provider's margin and the cost per true outcome; its contract sets the years, the contact floor and the
    sustained-outcome window (``window_days`` overrides it; default 365). ``scenario`` (default the
    settlement's) sets the contacts and allows the offending of people not served. ``blind``: the settlement of
    the behaviour-off run of the same scenario and seed under the same contract, which pairs outcomes client by
    client (outcomes that would have happened anyway, additional and lost outcomes). ``cash``: the M7 cash path
    (:func:`sim.provider.model.cash_response`) for the reserve rows.

    Episodes are counted in the period of the event concerned: referrals by the day of assessment, starts by
    the start, exits by the exit, reviews and events by their day; people in treatment are those on the
    caseload at any time in the period. A period near the horizon's end has windows still open: shares whose
    window has not closed leave those episodes out."""
    contract = settlement.contract if settlement is not None else None
    if scenario is None and settlement is not None:
        scenario = settlement.scenario
    window = float(window_days) if window_days is not None else _sustained_window(contract)
    periods = output_periods(history, contract.years if contract is not None else None)
    ep = _episodes(history)
    structured = ep[ep["need"].isin(STRUCTURED_BANDS)]
    standard, parked_multiplier = _contacts(scenario, contract)
    key = pd.MultiIndex.from_frame(ep[["client_id", "episode"]])
    need_of = pd.Series(ep["need"].to_numpy(), index=key)

    from sim.analysis.outcomes import sustained_recoveries

    sustained = sustained_recoveries(history, window)
    sustained_key = pd.MultiIndex.from_frame(sustained[["client_id", "episode"]])
    reviews = history.reviews
    if "misrecorded" not in reviews:
        reviews = reviews.assign(misrecorded=False)
    reviews = reviews[reviews["completed"]]
    r_key = pd.MultiIndex.from_frame(reviews[["client_id", "episode"]])
    reviews = reviews.assign(need=need_of.reindex(r_key).to_numpy())
    start_reviews = reviews[reviews["stage"] == "start"]
    injecting_at_start = pd.MultiIndex.from_frame(start_reviews.loc[start_reviews["injecting"],
                                                                    ["client_id", "episode"]])
    reviews = reviews.assign(injected=r_key.isin(injecting_at_start))
    events = history.events
    harm = events[events["kind"].isin(["bbv_test", "hep_b_course_start"])]
    harm = harm.assign(need=need_of.reindex(pd.MultiIndex.from_frame(harm[["client_id", "episode"]])).to_numpy())
    deaths = events[events["kind"] == "death"]
    exit_reason_of = pd.Series(ep["exit_reason"].astype(object).to_numpy(), index=key)
    deaths = deaths.assign(
        need=need_of.reindex(pd.MultiIndex.from_frame(deaths[["client_id", "episode"]])).to_numpy(),
        reason=exit_reason_of.reindex(pd.MultiIndex.from_frame(deaths[["client_id", "episode"]])).to_numpy())
    unserved_deaths = deaths[deaths["reason"].isin(NOT_SERVED)]
    offences = _offences_not_served(history, scenario, ep) if scenario is not None else None
    money = _Money(settlement, blind, ep) if settlement is not None else None
    caseload = history.capacity[history.capacity["resource"] == "caseload"].sort_values("time", kind="stable")

    rows: list[tuple] = []
    for per in periods.itertuples(index=False):
        a, b = per.start, per.end

        def put(metric: str, values: Mapping[str, float]) -> None:
            rows.extend((per.period, per.contract_year, band, metric, float(v)) for band, v in values.items())

        # intake: assessed referrals
        assessed = structured[(structured["assessed"] >= a) & (structured["assessed"] < b)]
        referrals = _per_band(np.ones(len(assessed)), assessed["need"], "sum")
        put("referrals", referrals)
        put("share_starting", _per_band(assessed["treatment_start"].notna(), assessed["need"]))
        put("deflected_share", _per_band(assessed["deflected"], assessed["need"]))
        put("signposted_out", _per_band(assessed["exit_reason"] == "deflected", assessed["need"], "sum"))
        put("band_drift_share", _per_band(assessed["recorded"] != assessed["need"], assessed["need"]))
        recorded = assessed["recorded"].value_counts()
        if len(assessed):
            put("recorded_share_of_assessed", {band: recorded.get(band, 0) / len(assessed)
                                               for band in STRUCTURED_BANDS})

        # starts and waits
        started = structured[(structured["treatment_start"] >= a) & (structured["treatment_start"] < b)]
        wait = started["treatment_start"] - started["referral"]
        put("starts", _per_band(np.ones(len(started)), started["need"], "sum"))
        if len(started):
            put("share_of_starters", {band: float((started["need"] == band).mean()) for band in STRUCTURED_BANDS})
        put("mean_wait_days", _per_band(wait, started["need"]))
        put("waited_over_3_weeks", _per_band(wait > 21, started["need"]))

        # on the caseload: parking, contacts, reviews, unpaid activity
        treated = structured[structured["treatment_start"].notna()]
        finish = treated["exit"].where(treated["exit"].notna(), history.end)
        days = _overlap(treated["treatment_start"], finish, a, b)
        on = treated[days > 0]
        months = days[days > 0] / MONTH_DAYS
        in_treatment = _per_band(np.ones(len(on)), on["need"], "sum")
        client_years = _per_band(months / 12.0, on["need"], "sum")
        put("in_treatment", in_treatment)
        put("parked_share", _per_band(on["parked"], on["need"]))
        contacts = standard * np.where(on["parked"].to_numpy(bool), parked_multiplier, 1.0) * months
        put("contacts_per_client_month", _ratio(_per_band(contacts, on["need"], "sum"),
                                                _per_band(months, on["need"], "sum")))
        rv = reviews[(reviews["time"] >= a) & (reviews["time"] < b)]
        follow = rv[rv["stage"] != "start"]
        put("reviews_per_client_year", _ratio(_per_band(np.ones(len(follow)), follow["need"], "sum"), client_years))
        put("abstinent_at_review", _per_band(follow["use"] == "abstinent", follow["need"]))
        injected = follow[follow["injected"]]
        put("non_injecting_at_review", _per_band(~injected["injecting"].astype(bool), injected["need"]))
        put("misrecorded_share", _per_band(rv["misrecorded"], rv["need"]))
        h = harm[(harm["time"] >= a) & (harm["time"] < b)]
        for kind, metric in (("bbv_test", "bbv_tests_per_client_year"),
                             ("hep_b_course_start", "hep_b_courses_per_client_year")):
            sub = h[h["kind"] == kind]
            put(metric, _ratio(_per_band(np.ones(len(sub)), sub["need"], "sum"), client_years))

        # exits
        ex = treated[(treated["exit"] >= a) & (treated["exit"] < b) & treated["exit_reason"].isin(TREATMENT_EXITS)]
        planned = ex[ex["exit_reason"] == "planned"]
        planned_n = _per_band(np.ones(len(planned)), planned["need"], "sum")
        put("exits", _per_band(np.ones(len(ex)), ex["need"], "sum"))
        put("planned_exits", planned_n)
        put("length_of_stay_days", _per_band(ex["exit"] - ex["treatment_start"], ex["need"]))
        put("unplanned_exit_share", _per_band(ex["exit_reason"].isin(UNPLANNED), ex["need"]))
        put("completion_rate", _ratio(planned_n, in_treatment))
        put("completions_per_referral", _ratio(planned_n, referrals))
        shift = planned["discharge_shift_days"]
        put("held_share", _per_band(shift >= SHIFT_MIN_DAYS, planned["need"]))
        put("fast_tracked_share", _per_band(shift <= -SHIFT_MIN_DAYS, planned["need"]))
        put("mean_shift_days", _per_band(shift, planned["need"]))
        closed = planned[planned["exit"] + window <= history.end]
        ok = pd.MultiIndex.from_frame(closed[["client_id", "episode"]]).isin(sustained_key)
        put("sustained_share", _per_band(ok, closed["need"]))
        put("completions_without_re_presentation", _per_band(ok, closed["need"], "sum"))
        seen = planned[planned["exit"] + window + BUNCHING_DAYS <= history.end]
        gap = seen["next_referral"] - seen["exit"]
        before = _per_band((gap >= window - BUNCHING_DAYS) & (gap < window), seen["need"], "sum")
        after = _per_band((gap >= window) & (gap < window + BUNCHING_DAYS), seen["need"], "sum")
        put("re_presented_month_before", before)
        put("re_presented_month_after", after)
        put("bunching_after_window", _ratio(after, before))

        # re-presentations, and people not served
        back = ep[(ep["episode"] > 0) & (ep["referral"] >= a) & (ep["referral"] < b)]
        counts = _per_band(np.ones(len(back)), back["need"], "sum")
        counts[ALL] = float(len(back))  # unassessed ones too
        put("re_presentations", counts)
        lost = structured[(structured["exit"] >= a) & (structured["exit"] < b)
                          & structured["exit_reason"].isin(NOT_SERVED)]
        put("not_served", _per_band(np.ones(len(lost)), lost["need"], "sum"))
        d = unserved_deaths[(unserved_deaths["time"] >= a) & (unserved_deaths["time"] < b)]
        put("deaths_not_served", _per_band(np.ones(len(d)), d["need"], "sum"))
        if offences is not None:
            put("offences_not_served", _per_band(_overlap(offences["start"], offences["end"], a, b)
                                                 * offences["per_day"], offences["need"], "sum"))

        # capacity and cash
        if len(caseload):
            put("caseload_places", {ALL: _time_average(caseload, a, b)})
        if cash is not None and len(cash):
            for metric, value in _cash_rows(cash, a, b).items():
                put(metric, {ALL: value})

        # money
        if money is not None:
            for metric, values in money.rows(per.contract_year, a, b).items():
                put(metric, values)

    out = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    gaps = out[out["metric"].isin(GAP_METRICS) & out["band"].isin(["critical", "low"])]
    if len(gaps):
        wide = gaps.set_index(["period", "contract_year", "metric", "band"])["value"].unstack("band")
        if {"critical", "low"} <= set(wide.columns):
            g = (wide["critical"] - wide["low"]).rename("value").reset_index().assign(band=GAP)
            out = pd.concat([out, g[OUTPUT_COLUMNS]], ignore_index=True)
    order = {p: i for i, p in enumerate(periods["period"])}
    metric_order = {m: i for i, m in enumerate(METRICS)}
    band_order = {b: i for i, b in enumerate([*STRUCTURED_BANDS, ALL, GAP])}
    out = out.sort_values(["period", "metric", "band"], key=lambda s: s.map(
        order if s.name == "period" else metric_order if s.name == "metric" else band_order), kind="stable")
    return out.reset_index(drop=True)


def _time_average(capacity: pd.DataFrame, a: float, b: float) -> float:
    """Time-average of a piecewise-constant capacity over [a, b)."""
    t = capacity["time"].to_numpy(float)
    v = capacity["capacity"].to_numpy(float)
    ends = np.r_[t[1:], np.inf]
    w = _overlap(t, ends, a, b)
    return float((w * v).sum() / w.sum()) if w.sum() > 0 else math.nan


def _cash_rows(cash: pd.DataFrame, a: float, b: float) -> dict[str, float]:
    months = cash[(cash["start"] >= a) & (cash["start"] < b)]
    if months.empty:
        return {}
    closing = months["reserve"] + months["income"] - months["cost"] - months["overdraft_cost"]
    return {"reserve_at_end": float(closing.iloc[-1]), "lowest_reserve": float(months["reserve"].min()),
            "mean_stress": float(months["stress"].mean()),
            "capacity_multiplier": float(months["capacity_multiplier"].min()),
            "months_intake_frozen": float(months["intake_frozen"].astype(bool).sum()),
            "handed_back": float(months["handed_back"].astype(bool).any())}


def _offences_not_served(history: History, scenario: Scenario, ep: pd.DataFrame) -> pd.DataFrame:
    """Spells of offenders after a referral that was turned away or left the waiting list, until they are
    referred again: ``start``, ``end``, ``per_day`` (expected offences a day) and the need band."""
    from sim.analysis.offending import offences_by_spell

    lost = ep[ep["exit_reason"].isin(NOT_SERVED)][["client_id", "episode", "exit", "need"]]
    if lost.empty or history.seed is None:
        return pd.DataFrame(columns=["start", "end", "per_day", "need"])
    sp = offences_by_spell(history, scenario)
    sp = sp.merge(lost, on=["client_id", "episode"], how="inner")
    sp = sp[sp["start"] >= sp["exit"] - 1e-9]
    length = (sp["end"] - sp["start"]).to_numpy(float)
    per_day = np.divide(sp["expected"].to_numpy(float), length, out=np.zeros(len(sp)), where=length > 0)
    return pd.DataFrame({"start": sp["start"].to_numpy(float), "end": sp["end"].to_numpy(float),
                         "per_day": per_day, "need": sp["need"].to_numpy(object)})


# --- paid outcomes, true outcomes, and the pairing with the behaviour-off run ----------------------------------------


def paid_outcomes(settlement: Settlement, window_days: float | None = None) -> pd.DataFrame:
    """Every outcome payment (kind ``outcome``) with the episode it rewarded and whether the outcome is *true*:
    ``client_id``, ``episode``, ``component``, ``measure``, ``band`` (recorded), ``need`` (assessed),
    ``earned``, ``contract_year``, ``amount``, ``misrecorded`` (evidenced while a misrecorded review of the
    episode stood within the measure's window), ``held`` (a sustained outcome after a discharge held past
    clinical readiness: whether it would have happened anyway is for :func:`pair_outcomes` to say, against the
    behaviour-off run), ``overpaid`` (pounds above the assessed band's weight after band drift) and ``true``
    (not misrecorded: the client really had the outcome)."""
    from sim.analysis.outcomes import achievements

    h, c = settlement.history, settlement.contract
    pay = settlement.payments
    pay = pay[pay["kind"] == "outcome"]
    ep = _episodes(h)
    reviews = h.reviews
    bad = reviews[reviews["completed"] & reviews["misrecorded"]] if "misrecorded" in reviews else reviews.iloc[:0]
    frames = []
    for name, o in c.outcomes.items():
        rows = pay[pay["component"] == name]
        if rows.empty:
            continue
        found = achievements(h, o.measure, o.window_days)[["client_id", "episode", "time"]]
        found = found.drop_duplicates(["client_id", "time"])
        rows = rows.merge(found, left_on=["client_id", "earned"], right_on=["client_id", "time"], how="left")
        rows = rows.merge(ep[["client_id", "episode", "need", "recorded", "exit", "next_referral",
                              "discharge_shift_days"]], on=["client_id", "episode"], how="left")
        rows["component"], rows["measure"] = name, o.measure
        misrecorded = np.zeros(len(rows), dtype=bool)
        if o.measure in REVIEW_MEASURES and len(bad):
            m = rows[["client_id", "episode", "earned"]].reset_index().merge(bad[["client_id", "episode", "time"]],
                                                                           on=["client_id", "episode"])
            m = m[(m["time"] <= m["earned"]) & (m["time"] >= m["earned"] - o.window_days)]
            misrecorded[m["index"].unique()] = True
        held = np.zeros(len(rows), dtype=bool)
        if o.measure == "sustained_recovery":
            held = (rows["discharge_shift_days"] >= SHIFT_MIN_DAYS).to_numpy()
        w_need = rows["need"].map(lambda b: c.weight(o, b) if isinstance(b, str) else math.nan).astype(float)
        w_rec = rows["band"].map(lambda b: c.weight(o, b) if isinstance(b, str) and b else math.nan).astype(float)
        drifted = (rows["need"] != rows["recorded"]) & rows["need"].notna() & (w_rec > 0)
        overpaid = np.where(drifted, rows["amount"] * (1 - w_need / w_rec.where(w_rec > 0)), 0.0)
        rows = rows.assign(misrecorded=misrecorded, held=held, overpaid=np.nan_to_num(overpaid))
        frames.append(rows)
    columns = ["client_id", "episode", "component", "measure", "band", "need", "earned", "contract_year", "amount",
               "misrecorded", "held", "overpaid", "true"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    out["true"] = ~out["misrecorded"]
    return out[columns].sort_values(["earned", "client_id", "component"], kind="stable", ignore_index=True)


def pair_outcomes(on: pd.DataFrame, off: pd.DataFrame) -> pd.DataFrame:
    """Client by client (and outcome by outcome), the true paid outcomes of a run with behaviour on against
    those of the behaviour-off run of the same seed: each on-run outcome is ``anyway`` (the client also had it
    with behaviour off) or ``additional``; each off-run outcome the client lost is ``lost``. Earliest first:
    the first k outcomes of a client and component are matched, k the smaller count. Columns: ``earned``,
    ``need``, ``status``."""
    keys = ["client_id", "component", "k"]
    columns = ["earned", "need", "status"]

    def numbered(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["true"].astype(bool)].sort_values("earned", kind="stable")
        return frame.assign(k=frame.groupby(["client_id", "component"]).cumcount())

    a, b = numbered(on), numbered(off)
    matched_a = pd.MultiIndex.from_frame(a[keys]).isin(pd.MultiIndex.from_frame(b[keys])) if len(b) else \
        np.zeros(len(a), dtype=bool)
    matched_b = pd.MultiIndex.from_frame(b[keys]).isin(pd.MultiIndex.from_frame(a[keys])) if len(a) else \
        np.zeros(len(b), dtype=bool)
    a = a.assign(status=np.where(matched_a, "anyway", "additional"))
    lost = b[~matched_b].assign(status="lost")
    parts = [f[columns] for f in (a, lost) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


class _Money:
    """The money rows of :func:`behaviour_outputs` (computed once per settlement)."""

    def __init__(self, settlement: Settlement, blind: Settlement | None, ep: pd.DataFrame):
        from sim.money.settlement import commissioner_by_year, provider_by_year

        self.payments = settlement.payments
        self.outcomes = paid_outcomes(settlement)
        self.spend = commissioner_by_year(settlement)["spend"]
        self.margin = provider_by_year(settlement)["margin"]
        self.blind_spend = commissioner_by_year(blind)["spend"] if blind is not None else None
        self.paired = pair_outcomes(self.outcomes, paid_outcomes(blind)) if blind is not None else None

    def rows(self, year: int, a: float, b: float) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        pay = self.payments[self.payments["kind"].isin(["outcome", "clawback"])]
        pay = pay[(pay["earned"] >= a) & (pay["earned"] < b)]
        out["outcome_payments"] = _per_band(pay["amount"], pay["band"], "sum")
        o = self.outcomes[(self.outcomes["earned"] >= a) & (self.outcomes["earned"] < b)]
        out["drift_overpayment"] = _per_band(o["overpaid"], o["need"], "sum")
        out["paid_outcomes"] = _per_band(np.ones(len(o)), o["need"], "sum")
        true = _per_band(o["true"], o["need"], "sum")
        out["true_outcomes"] = true
        out["held_outcomes"] = _per_band(o["held"], o["need"], "sum")
        years = self.spend.index if year == 0 else [year]
        spend = float(self.spend.reindex(years).sum())
        out["spend"] = {ALL: spend}
        out["provider_margin"] = {ALL: float(self.margin.reindex(years).sum())}
        out["spend_per_true_outcome"] = {ALL: spend / true[ALL] if true[ALL] > 0 else math.nan}
        if self.paired is not None:
            p = self.paired[(self.paired["earned"] >= a) & (self.paired["earned"] < b)]
            for status, metric in (("anyway", "outcomes_anyway"), ("additional", "additional_outcomes"),
                                   ("lost", "lost_outcomes")):
                out[metric] = _per_band(p["status"] == status, p["need"], "sum")
            net = out["additional_outcomes"][ALL] - out["lost_outcomes"][ALL]
            extra = spend - float(self.blind_spend.reindex(years).sum())
            out["spend_per_additional_outcome"] = {ALL: extra / net if net > 0 else math.nan}
        return out


def output_value(outputs: pd.DataFrame, metric: str, band: str = ALL, period: str = TERM) -> float:
    """One number from a :func:`behaviour_outputs` table (NaN if absent)."""
    rows = outputs[(outputs["metric"] == metric) & (outputs["band"] == band) & (outputs["period"] == period)]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


# --- 2. M7: the cash feedback, a fixed point outside SimPy ------------------------------------------------------


@dataclass
class ProviderRun:
    """One run with the provider responding to its contract (:func:`simulate_with_provider`)."""

    history: History
    settlement: Settlement
    cash: pd.DataFrame                # the M7 cash path of the final run (sim.provider.model.CASH_COLUMNS)
    scenario: Scenario                # as run: the input plus the provider's capacity changes in its schedule
    provider: ProviderModel | None    # as run (with the cash path it read); None when behaviour is off
    capacity_path: list[dict] = field(default_factory=list)  # the [[schedule]] entries the cash response added
    iterations: int = 1               # runs made
    converged: bool = True            # the last run's cash implied the capacity path it ran with

    def outputs(self, blind: Settlement | None = None) -> pd.DataFrame:
        """:func:`behaviour_outputs` of this run (``blind``: the behaviour-off settlement, to pair outcomes)."""
        return behaviour_outputs(self.history, self.settlement, self.scenario, blind=blind, cash=self.cash)


def _with_capacity(scenario: Scenario, changes: list[dict]) -> Scenario:
    """The scenario with the cash response's capacity changes added to its dated changes."""
    if not changes:
        return scenario
    existing = copy.deepcopy(scenario.raw().get("schedule", []))
    return scenario.with_changes({"schedule": [*existing, *copy.deepcopy(changes)]})


def _at_full_capacity(monthly: pd.DataFrame, path: pd.DataFrame | None) -> pd.DataFrame:
    """Cash inputs as if capacity had not been cut: the staff pay of a run that ran with the multiplier path
    ``path`` (``start``, ``capacity_multiplier``), scaled back up, so that the cash response cuts from the full
    establishment (otherwise each pass would cut what the last pass had already cut)."""
    if path is None or path.empty:
        return monthly
    mult = monthly["start"].map(path.set_index("start")["capacity_multiplier"]).fillna(1.0).to_numpy(float)
    out = monthly.copy()
    full = out["staff"].to_numpy(float) / np.where(mult > 0, mult, 1.0)
    out["cost"] = out["cost"] - out["staff"] + full
    out["staff"] = full
    return out


def _path_key(changes: list[dict], cash: pd.DataFrame) -> tuple:
    """What must stop changing for the fixed point: the capacity path, the frozen months, the hand-back."""
    frozen = tuple(cash.loc[cash["intake_frozen"].astype(bool), "start"].round(6))
    handed = cash.loc[cash["handed_back"].astype(bool), "start"]
    return (tuple((str(c["date"]), round(float(v), 9)) for c in changes for v in c["set"].values()), frozen,
            float(handed.iloc[0]) if len(handed) else None)


def simulate_with_provider(scenario: Scenario, contract: Contract, seed=None, iterations: int = 3, *,
                           pilot_seed: int | None = None, progress: Callable | None = None) -> ProviderRun:
    """A run with the provider responding to ``contract``, M7 included, as a fixed point outside SimPy.

    With the scenario's behaviour off this is the contract-blind run, settled (the cash path is reported, nothing
    responds). Otherwise the provider model is :func:`sim.provider.model.provider_model` (beliefs from one
    contract-blind pilot run on ``pilot_seed``, default the scenario's seed, as :func:`sim.experiments.core.run_one`
    uses); then: run with it -> settle -> monthly cash (:func:`sim.provider.model.cash_inputs`, at full capacity) ->
    :func:`sim.provider.model.cash_response` -> capacity cuts as dated changes of ``capacity.recovery_workers``
    (:func:`sim.provider.model.capacity_changes`) and the cash path (stress, intake freezes, hand-back) in the
    provider model -> run again, until the capacity path, the frozen months and the hand-back month stop
    changing or ``iterations`` runs have been made (``converged`` says which). Every run uses ``seed``, so every
    run sees the same referrals. Without cash stress (the mechanism disabled, nothing at risk, or a reserve that
    never falls below its trigger) the first run is the answer, and equals ``run_one``'s History. Cash stress
    reaches the decisions through the gaming pressure and the discount rate; after a hand-back the provider
    stops gaming (the commissioner's interim block provision is not settled separately)."""
    from sim.provider.model import provider_model
    from sim.engine.system import simulate
    from sim.money.settlement import settle

    seed = scenario.seed if seed is None else seed
    behaviour = scenario.behaviour.resolve()
    model = provider_model(scenario, contract, pilot_seed) if behaviour.active else None
    if model is None:
        history = simulate(scenario, seed, progress=progress)
        settlement = settle(contract, history, scenario)
        cash = cash_response(cash_inputs(settlement), behaviour, active=False)
        return ProviderRun(history, settlement, cash, scenario, None)
    active = bool(behaviour.cash_stress.enabled and float(np.max(model.share_at_risk, initial=0.0)) > 0)
    run_scenario, changes, provider, key, path = scenario, [], model, None, None
    for k in range(1, max(int(iterations), 1) + 1):
        history = simulate(run_scenario, seed, progress=progress, provider=provider)
        settlement = settle(contract, history, run_scenario)
        cash = cash_response(_at_full_capacity(cash_inputs(settlement), path), behaviour, active=active)
        new_changes = capacity_changes(cash, scenario)
        new_key = _path_key(new_changes, cash)
        quiet = k == 1 and not new_changes and not cash["intake_frozen"].any() and not cash["handed_back"].any()
        if not active or new_key == key or quiet:
            return ProviderRun(history, settlement, cash, run_scenario, provider, changes, k, True)
        if k == iterations:
            return ProviderRun(history, settlement, cash, run_scenario, provider, changes, k, False)
        changes, key = new_changes, new_key
        path = cash[["start", "capacity_multiplier"]]
        run_scenario = _with_capacity(scenario, changes)
        provider = dataclasses.replace(model, cash=cash)
    raise AssertionError("unreachable")


# --- 3. how strongly each mechanism switched on ------------------------------------------------------------------

MECHANISM_LABELS = {
    "mean_pressure": "gaming pressure G, mean over the contract (0-1)",
    "share_at_risk": "share of income at risk at the margin, mean over the contract years",
    "deflected_share": "M1 cream-skimming: assessed referrals not accepted at intake",
    "parked_share": "M2 parking: episodes on the caseload parked",
    "review_frequency": "M3 effort shift: TOP review frequency multiplier, mean",
    "misrecorded_share": "M3 measurement: completed TOP reviews misrecorded",
    "held_share": "M4 holding: planned exits held a week or more past readiness",
    "mean_hold_days": "M4 holding: mean days held, of those held",
    "fast_tracked_share": "M4 fast-tracking: planned exits brought forward a week or more",
    "mean_fast_track_days": "M4 fast-tracking: mean days brought forward, of those",
    "reserved_share": "M5 gatekeeping: share of freed places reserved for high-margin referrals, mean",
    "band_drift_share": "M6 band drift: assessed referrals recorded in a more severe band",
    "capacity_cut": "M7 cash: deepest capacity cut (1 - lowest multiplier)",
    "months_intake_frozen": "M7 cash: months with intake frozen",
    "handed_back": "M7 cash: contract handed back (1) or not (0)",
    "distortion": "total distortion: deflected + parked + misrecorded + drifted + held or fast-tracked shares",
}


def mechanism_strength(history: History, provider: ProviderModel | None = None, cash: pd.DataFrame | None = None,
                       end: float | None = None) -> dict[str, float]:
    """How strongly each mechanism acted over the contract period [0, ``end``) (default: the horizon's end),
    from what the History recorded (see :data:`MECHANISM_LABELS`). Zero (not NaN) where nothing happened, so
    a behaviour-off run reads 0 everywhere."""
    end = history.end if end is None else min(end, history.end)
    ep = _episodes(history)
    structured = ep[ep["need"].isin(STRUCTURED_BANDS)]
    assessed = structured[(structured["assessed"] >= 0) & (structured["assessed"] < end)]
    treated = structured[structured["treatment_start"].notna()]
    finish = treated["exit"].where(treated["exit"].notna(), history.end)
    on = treated[_overlap(treated["treatment_start"], finish, 0.0, end) > 0]
    planned = structured[(structured["exit_reason"] == "planned") & (structured["exit"] >= 0)
                         & (structured["exit"] < end)]
    shift = planned["discharge_shift_days"]
    reviews = history.reviews
    reviews = reviews[reviews["completed"] & (reviews["time"] >= 0) & (reviews["time"] < end)]

    def mean(x) -> float:
        x = np.asarray(x, dtype=float)
        return float(x.mean()) if len(x) else 0.0

    t = np.arange(0.0, max(end, 1.0), 7.0)
    out = {
        "mean_pressure": mean(provider.pressure(t)) if provider is not None else 0.0,
        "share_at_risk": mean(provider.share_at_risk) if provider is not None else 0.0,
        "deflected_share": mean(assessed["deflected"]),
        "parked_share": mean(on["parked"]),
        "review_frequency": mean(provider.review_effects(np.zeros(len(t), dtype=int), t).frequency)
        if provider is not None else 1.0,
        "misrecorded_share": mean(reviews["misrecorded"]) if "misrecorded" in reviews else 0.0,
        "held_share": mean(shift >= SHIFT_MIN_DAYS),
        "mean_hold_days": mean(shift[shift >= SHIFT_MIN_DAYS]),
        "fast_tracked_share": mean(shift <= -SHIFT_MIN_DAYS),
        "mean_fast_track_days": mean(-shift[shift <= -SHIFT_MIN_DAYS]),
        "reserved_share": mean(provider.reserved_share(t)) if provider is not None else 0.0,
        "band_drift_share": mean(assessed["recorded"] != assessed["need"]),
        "capacity_cut": 0.0, "months_intake_frozen": 0.0, "handed_back": 0.0,
    }
    if cash is not None and len(cash):
        during = cash[(cash["start"] >= 0) & (cash["start"] < end)]
        if len(during):
            out["capacity_cut"] = float(1.0 - during["capacity_multiplier"].min())
            out["months_intake_frozen"] = float(during["intake_frozen"].astype(bool).sum())
            out["handed_back"] = float(during["handed_back"].astype(bool).any())
    out["distortion"] = (out["deflected_share"] + out["parked_share"] + out["misrecorded_share"]
                         + out["band_drift_share"] + out["held_share"] + out["fast_tracked_share"])
    return out


# --- 4. the audit: what this design invites --------------------------------------------------------------------

AUDIT_MODES = ("off", "base", "stress")
# the outputs the report leads with: (metric, band)
KEY_EFFECTS: tuple[tuple[str, str], ...] = (
    ("share_starting", ALL), ("share_starting", "critical"), ("share_of_starters", "critical"),
    ("mean_wait_days", ALL), ("parked_share", ALL), ("contacts_per_client_month", ALL),
    ("length_of_stay_days", ALL), ("abstinent_at_review", ALL), ("non_injecting_at_review", ALL),
    ("reviews_per_client_year", ALL), ("completion_rate", ALL), ("planned_exits", ALL), ("sustained_share", ALL),
    ("re_presentations", ALL), ("bunching_after_window", ALL), ("bbv_tests_per_client_year", ALL),
    ("hep_b_courses_per_client_year", ALL), ("share_starting", GAP), ("completions_per_referral", GAP),
    ("not_served", ALL), ("deaths_not_served", ALL), ("offences_not_served", ALL), ("caseload_places", ALL),
    ("lowest_reserve", ALL), ("outcome_payments", ALL), ("drift_overpayment", ALL), ("spend", ALL),
    ("provider_margin", ALL), ("true_outcomes", ALL), ("spend_per_true_outcome", ALL),
    ("additional_outcomes", ALL), ("lost_outcomes", ALL),
)
STRENGTH_SHARES = ("deflected_share", "parked_share", "misrecorded_share", "band_drift_share", "held_share",
                   "fast_tracked_share", "capacity_cut")


def _mean_ci(x) -> tuple[float, float, float, int]:
    """Mean and 95% t-interval of the finite values (NaN bounds with fewer than two)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return math.nan, math.nan, math.nan, 0
    m = float(x.mean())
    if len(x) < 2:
        return m, math.nan, math.nan, 1
    half = float(special.stdtrit(len(x) - 1, 0.975) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half, len(x)


def replication_seed(seed: int, replication: int) -> np.random.SeedSequence:
    """Replication ``r`` of an audit uses the seed replication ``r`` of an experiment uses (sim.experiments.core)."""
    return np.random.SeedSequence(int(seed), spawn_key=(int(replication),))


def audit_replication(task: tuple) -> dict[str, Any]:
    """One replication of an audit (module level, so worker processes can run it): ``task`` = (scenario raw,
    contract raw, root seed, replication, M7 iterations, modes, keep cash). The behaviour-off run first, then
    every mode on the same seed (the provider's beliefs from :func:`sim.provider.model.provider_model`'s pilot run)."""
    from sim.provider.model import provider_model
    from sim.config.contract import contract_from_dict
    from sim.config.scenario import scenario_from_dict

    raw, craw, seed, r, iterations, modes, keep_cash = task
    scenario = scenario_from_dict(raw, "<audit scenario>")
    contract = contract_from_dict(craw, "<audit contract>")
    ss = replication_seed(seed, r)
    off = simulate_with_provider(scenario.with_changes({"behaviour.mode": "off"}), contract, ss)
    outputs, strengths, cash, runs = [], [], [], {}
    for mode in modes:
        run = off if mode == "off" else simulate_with_provider(scenario.with_changes({"behaviour.mode": mode}),
                                                               contract, ss, iterations)
        runs[mode] = run
        outputs.append(run.outputs(blind=off.settlement).assign(replication=r, mode=mode))
        strength = mechanism_strength(run.history, run.provider, run.cash, end=off.settlement.years["end"].max())
        strengths.append({"replication": r, "mode": mode, **strength, "iterations": run.iterations,
                          "converged": float(run.converged)})
        if keep_cash:
            cash.append(run.cash.assign(replication=r, mode=mode))
    out: dict[str, Any] = {"outputs": pd.concat(outputs, ignore_index=True), "strengths": pd.DataFrame(strengths),
                           "cash": pd.concat(cash, ignore_index=True) if cash else None}
    if r == 0:
        try:
            out["tariff"] = margin_neutral_weights(contract, off.scenario, off.history)
        except ValueError:  # too short a horizon to follow starters for a year
            out["tariff"] = None
        on = next((runs[m] for m in modes if m != "off"), None)
        out["provider"] = on.provider if on is not None else provider_model(
            scenario.with_changes({"behaviour.mode": "base"}), contract)
    return out


@dataclass
class Audit:
    """What a contract design invites (:func:`audit_contract`)."""

    scenario: str
    contract: Contract
    replications: int
    seed: int
    modes: tuple[str, ...]
    strengths: pd.DataFrame          # replication, mode, the mechanism strengths (MECHANISM_LABELS)
    outputs: pd.DataFrame            # replication, mode, and the behaviour_outputs columns
    effects: pd.DataFrame            # mode, period, band, metric: off and on means, paired difference, 95% CI
    features: pd.DataFrame           # the contract features responsible
    tariff: Any                      # sim.provider.model.TariffCheck of replication 0 (None if the horizon is short)
    provider: ProviderModel          # the provider model of replication 0 (its price schedule and share at risk)
    cash: pd.DataFrame | None = None  # the cash path of replication 0 in each mode

    def mechanism_summary(self) -> pd.DataFrame:
        """Per mechanism measure and mode: mean and 95% CI over replications."""
        rows = []
        for name, label in MECHANISM_LABELS.items():
            for mode in self.modes:
                m, lo, hi, n = _mean_ci(self.strengths.loc[self.strengths["mode"] == mode, name])
                rows.append({"measure": name, "description": label, "mode": mode, "mean": m, "ci_low": lo,
                             "ci_high": hi, "n": n})
        return pd.DataFrame(rows)

    def key_effects(self, period: str = TERM) -> pd.DataFrame:
        """The paired differences of :data:`KEY_EFFECTS` over the ``period``."""
        keys = pd.DataFrame(KEY_EFFECTS, columns=["metric", "band"]).reset_index()
        e = self.effects[self.effects["period"] == period].merge(keys, on=["metric", "band"])
        return e.sort_values(["mode", "index"], kind="stable").drop(columns="index").reset_index(drop=True)

    def switched_on(self, mode: str = "base", threshold: float = 0.005) -> list[str]:
        """The mechanisms whose measured share (or capacity cut) exceeds ``threshold`` in ``mode``."""
        s = self.strengths[self.strengths["mode"] == mode]
        return [m for m in STRENGTH_SHARES if len(s) and float(s[m].mean()) > threshold]

    def report(self) -> str:
        return audit_report(self)


def paired_effects(outputs: pd.DataFrame, reference: str = "off") -> pd.DataFrame:
    """Each mode against ``reference``, replication by replication (the same seed: the same clients until the
    provider acts): per period, band and metric the reference mean, the mode's mean, the mean paired difference
    with its 95% CI, the relative difference and the replications that had both."""
    wide = outputs.set_index(["replication", "period", "contract_year", "band", "metric", "mode"])["value"] \
        .unstack("mode")
    rows = []
    modes = [m for m in wide.columns if m != reference]
    for (period, year, band, metric), d in wide.groupby(level=["period", "contract_year", "band", "metric"],
                                                        sort=False):
        base = d[reference].to_numpy(float) if reference in d else np.full(len(d), np.nan)
        ref_mean = _mean_ci(base)[0]
        for mode in modes:
            on = d[mode].to_numpy(float)
            diff = on - base
            m, lo, hi, n = _mean_ci(diff)
            rows.append({"mode": mode, "period": period, "contract_year": year, "band": band, "metric": metric,
                         reference: ref_mean, "on": _mean_ci(on)[0], "difference": m, "ci_low": lo, "ci_high": hi,
                         "relative": m / abs(ref_mean) if ref_mean and np.isfinite(ref_mean) else math.nan, "n": n})
    return pd.DataFrame(rows)


def audit_contract(scenario: Scenario, contract: Contract, replications: int = 5, seed: int | None = None, *,
                   iterations: int = 3, modes: Iterable[str] = AUDIT_MODES, workers: int = 1,
                   progress: Callable[[int], Any] | None = None) -> Audit:
    """Run ``contract`` with behaviour off, base and stress on common random numbers (replication ``r`` on
    ``SeedSequence(seed, spawn_key=(r,))`` in every mode; the provider's beliefs from one contract-blind pilot
    run, as :func:`sim.provider.model.provider_model` and :func:`sim.experiments.core.run_one` have them), and report which mechanisms switch on and how strongly, what they do to
    the outputs of :func:`behaviour_outputs` (paired differences against off with 95% CIs), the contract
    features responsible (:func:`contract_features`) and the margin-neutral tariff check
    (:func:`sim.provider.model.margin_neutral_weights`). M7 runs as :func:`simulate_with_provider` with
    ``iterations``. The scenario's own behaviour block (provider profile, mechanism switches and values) is
    kept; only its mode changes. ``workers`` > 1 runs replications in worker processes."""
    from sim.money.settlement import check

    if replications < 1:
        raise ValueError(f"replications must be at least 1, got {replications}")
    modes = tuple(dict.fromkeys(["off", *modes]))
    bad = [m for m in modes if m not in AUDIT_MODES]
    if bad:
        raise ValueError(f"modes must be among {AUDIT_MODES}, got {bad}")
    check(contract, scenario)
    if scenario.horizon.years <= 1:
        raise ValueError(f"scenario {scenario.name}: the provider model follows treatment starts for a year, so an "
                         f"audit needs more than one reported year (horizon.years = {scenario.horizon.years:g})")
    seed = int(scenario.seed if seed is None else seed)
    tasks = [(scenario.raw(), contract.raw(), seed, r, iterations, modes, r == 0) for r in range(replications)]
    if workers > 1:
        from sim.experiments.core import ProcessExecutor

        with ProcessExecutor(workers) as ex:
            results = sorted(ex.map(audit_replication, tasks, progress), key=lambda d: int(
                d["strengths"]["replication"].iloc[0]))
    else:
        results = []
        for done, task in enumerate(tasks, 1):
            results.append(audit_replication(task))
            if progress is not None:
                progress(done)
    outputs = pd.concat([d["outputs"] for d in results], ignore_index=True)
    outputs = outputs[["replication", "mode", *OUTPUT_COLUMNS]]
    strengths = pd.concat([d["strengths"] for d in results], ignore_index=True)
    first = results[0]
    effects = paired_effects(outputs)
    mean_strength = {m: strengths[strengths["mode"] == m].drop(columns=["replication", "mode"]).mean()
                     for m in modes}
    features = contract_features(contract, first["provider"], first["tariff"], mean_strength)
    return Audit(scenario.name, contract, replications, seed, modes, strengths, outputs, effects, features,
                 first["tariff"], first["provider"], first["cash"])


# --- the contract features responsible (§3.10) ---------------------------------------------------------------------


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def contract_features(contract: Contract, provider: ProviderModel | None, tariff=None,
                      strengths: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """The features of ``contract`` that switch mechanisms on or damp them (provider-behaviour.md §3.10), with
    the design's setting and what was measured: ``feature``, ``setting``, ``raises``, ``damps``, ``measured``
    (the related mechanism strengths in the base mode, if ``strengths`` has one, else stress)."""
    terms = contract.terms
    s = {} if strengths is None else (strengths.get("base") if "base" in strengths else strengths.get("stress", {}))
    s = dict(s) if s is not None else {}

    def measured(*names: str) -> str:
        if not s:
            return ""
        parts = []
        for n in names:
            v = float(s.get(n, math.nan))
            parts.append(f"{n.replace('_', ' ')} {v:.0f}" if n.endswith("_days") else
                         f"{n.replace('_', ' ')} {_pct(v)}")
        return "; ".join(parts)

    shares = [contract.share(y) for y in range(1, contract.years + 1)]
    at_risk = provider.share_at_risk if provider is not None else np.zeros(contract.years)
    measures = {o.measure for o in contract.outcomes.values()}
    rows = []

    def row(feature, setting, raises, damps, evidence):
        rows.append({"feature": feature, "setting": setting, "raises": raises, "damps": damps,
                     "measured": evidence})

    row("PbR share", f"{min(shares):.0%}-{max(shares):.0%} of the annual value by contract year; "
        f"{float(np.mean(at_risk)):.0%} at the margin after caps and floors (mean)",
        "M1-M7 (every mechanism scales with the share at risk)" if max(shares) > 0 else "",
        "" if max(shares) > 0 else "every mechanism (nothing at risk)",
        f"gaming pressure {s.get('mean_pressure', math.nan):.3f}" if s else "")
    if tariff is not None:
        w = contract.band_weights
        ratio = w.get("critical", 0) / w["low"] if w.get("low") else math.inf
        flat = np.isfinite(tariff.steepness) and tariff.steepness < 1
        row("Band weights", f"Critical/Low = {ratio:.2f}; {tariff.steepness:.2f} of the margin-neutral steepness; "
            f"{tariff.distance:.0%} from the margin-neutral weights; invites {tariff.invites}",
            "M1, M2, M5 (flatter than neutral)" if flat else "M6 band drift (steeper than neutral)",
            "M6" if flat else "M1, M2", measured("deflected_share", "parked_share", "band_drift_share"))
    row("Who assesses", f"{terms.assessment} LASARS" if terms.assessment != "provider" else "the provider",
        "" if terms.assessment == "independent" else "M6 band drift; M1 discretion",
        "M6 band drift (independence 1); M1 (little discretion)" if terms.assessment == "independent" else "",
        measured("band_drift_share"))
    row("Who controls intake", "the provider" if terms.intake == "provider" else "the assessor allocates starts",
        "M1 cream-skimming" if terms.intake == "provider" else "", "" if terms.intake == "provider" else "M1",
        measured("deflected_share"))
    sustained = [o for o in contract.outcomes.values() if o.measure == "sustained_recovery"]
    row("Sustained outcome (no re-presentation window)",
        ", ".join(f"{o.window_days:g}-day window, {o.lag_days:g}-day lag" for o in sustained) or "not priced",
        "M4 holding; M7 (a long lag)" if sustained else "", "" if sustained else "M4 holding",
        measured("held_share", "mean_hold_days"))
    completion = "planned_exit" in measures
    row("Completion paid", "priced" + (" with a sustained test" if sustained else " without a sustained test")
        if completion else "not priced",
        "M4 fast-tracking" if completion and not sustained else ("M4 either way: the balance of 1.3 and 1.4 sets "
                                                               "the sign" if completion else ""), "",
        measured("fast_tracked_share", "mean_fast_track_days"))
    reviews = sorted(measures & set(REVIEW_MEASURES))
    row("In-treatment outcomes at two TOP reviews", ", ".join(reviews) or "not priced",
        "M3 effort shift and review timing; M4 (holding earns)" if reviews else "",
        "" if reviews else "M3", measured("misrecorded_share"))
    if provider is not None and len(provider.schedule):
        sch = provider.schedule[provider.schedule["outcome"] != "offending"]
        money = sch["gross"] * sch["volume"].fillna(0.0)
        delay = float(((sch["delay_days"] + sch["evidence_days"]) * money).sum() / money.sum()) if money.sum() > 0 \
            else math.nan
        row("Payment lags", f"outcome money arrives {delay:.0f} days after the deciding event, money-weighted "
            f"(core {contract.core_payment.replace('_', ' ')})" if np.isfinite(delay) else "no outcome money",
            "M2, M3 (quick wins), M7" if np.isfinite(delay) and delay > 90 else "",
            "M7 (core in advance)" if contract.core_payment.endswith("in_advance") else "",
            measured("parked_share", "capacity_cut"))
    caps = [f"PbR cap {contract.pbr_cap:g} x pot" if contract.pbr_cap is not None else "",
            f"term cap £{contract.term_cap:,.0f}" if contract.term_cap is not None else "",
            ", ".join(f"{n} £{o.cap_per_year:,.0f} a year" for n, o in contract.outcomes.items()
                      if o.cap_per_year is not None)]
    binding = float(np.mean(at_risk)) < 0.95 * float(np.mean(shares)) if max(shares) > 0 else False
    row("Caps and collars", "; ".join(c for c in caps if c) or "none",
        "", "every mechanism at the margin (the share at risk falls where a cap binds)" if binding else "",
        f"share at risk {float(np.mean(at_risk)):.0%} of a PbR share of {float(np.mean(shares)):.0%}")
    floor = terms.contact_floor_per_month
    row("Contact floor", f"{floor:g} contacts a month" if floor is not None else "none",
        "M7 (cost)" if floor is not None else "M2 (parking unbounded)", "M2 parking" if floor is not None else "",
        measured("parked_share"))
    row("Audit with clawback", f"{terms.audit_share:.0%} of assessments and reviews re-checked",
        "" if terms.audit_share > 0 else "M3 misrecording, M6 (unchecked)",
        "M3 misrecording, M6 band drift" if terms.audit_share > 0 else "",
        measured("misrecorded_share", "band_drift_share"))
    row("Verified TOP reviews", "yes" if terms.verified_reviews else "self-reported",
        "" if terms.verified_reviews else "M3 review timing and misrecording",
        "M3 review timing and misrecording" if terms.verified_reviews else "", measured("misrecorded_share"))
    engagement = [n for n, o in contract.outcomes.items() if o.measure == "engagement"]
    row("Engagement or presentation fee", ", ".join(engagement) or "none",
        "" if engagement else "M1, M5 (no shadow price on enrolment)", "M1, M5, M7" if engagement else "",
        measured("deflected_share"))
    row("Income floor", f"{contract.income_floor:.0%} of the annual value" if contract.income_floor is not None
        else "none", "" if contract.income_floor is not None else "M7", "M7" if contract.income_floor is not None
        else "", measured("capacity_cut"))
    row("Wait-time standard", f"{terms.wait_standard_days:g} days" if terms.wait_standard_days else "none",
        "" if terms.wait_standard_days else "M5 (throttling unbounded)", "M5" if terms.wait_standard_days else "",
        f"reserved share {_pct(s.get('reserved_share', math.nan))}" if s else "")
    return pd.DataFrame(rows)


# --- the report -------------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return ""
    a = abs(x)
    if a >= 1e4:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}" if a >= 0.001 or a == 0 else f"{x:.2e}"


def _md_table(frame: pd.DataFrame) -> str:
    """A Markdown table (strings as they are, numbers by :func:`_fmt`)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        cells = [_fmt(v) if isinstance(v, (float, np.floating)) else str(v).replace("|", "/") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _with_ci(m: float, lo: float, hi: float) -> str:
    if not np.isfinite(m):
        return ""
    return _fmt(m) + (f" ({_fmt(lo)} to {_fmt(hi)})" if np.isfinite(lo) else "")


def _significant(row) -> bool:
    return np.isfinite(row["ci_low"]) and (row["ci_low"] > 0 or row["ci_high"] < 0)


def audit_report(audit: Audit) -> str:
    """The Markdown report of an audit."""
    c = audit.contract
    on_modes = [m for m in audit.modes if m != "off"]
    summary = audit.mechanism_summary()
    lines = [f"# What `{c.name}` invites: {audit.scenario}", "",
             f"{c.description}".strip(), "",
             f"{audit.replications} replication(s) from seed {audit.seed}, behaviour "
             f"{', '.join(audit.modes)} on common random numbers: every mode sees the same referrals until the "
             f"provider acts, and the provider's beliefs come from one contract-blind pilot run. Differences are paired "
             f"(mode minus off, replication by replication) with 95% confidence intervals; with one replication "
             f"there are no intervals. Bands are need bands (the independent assessment's), over the contract term "
             f"unless said. Every mechanism parameter is an estimate [E] (../shared/reference/provider-behaviour.md):"
             f" the evidence supports the direction of each response far better than its size.", ""]
    lines += ["## In brief", ""]
    for mode in on_modes:
        on = audit.switched_on(mode)
        s = audit.strengths[audit.strengths["mode"] == mode].mean(numeric_only=True)
        lines.append(f"* **{mode}**: gaming pressure {s['mean_pressure']:.3f} on average "
                     f"({_pct(s['share_at_risk'])} of income at risk at the margin); mechanisms on: "
                     + (", ".join(f"{m.replace('_', ' ')} {_pct(s[m])}" for m in on) or "none measurably") + ".")
        eff = audit.key_effects()
        eff = eff[(eff["mode"] == mode)]
        moved = eff[eff.apply(_significant, axis=1)] if audit.replications > 1 else eff[eff["difference"] != 0]
        moved = moved.reindex(moved["relative"].abs().sort_values(ascending=False).index).head(6)
        if len(moved):
            lines.append("  Largest paired changes: " + "; ".join(
                f"{r.metric.replace('_', ' ')} ({r.band}) {_fmt(r.off)} -> {_fmt(r.on)}" for r in moved.itertuples())
                + ".")
    if audit.tariff is not None:
        t = audit.tariff
        lines.append(f"* **Margin-neutral tariff check**: the design's band weights are {t.distance:.0%} from the "
                     f"margin-neutral weights and {t.steepness:.2f} times as steep (1 = neutral); they invite "
                     f"{t.invites}. {'Feasible' if t.feasible else 'Not feasible with outcome weights alone'}: "
                     + ("band weights alone can equalise margins." if t.feasible else
                        "a block or cost element for the high-need bands is needed."))
    lines += ["", "## Which mechanisms switch on, and how strongly", ""]
    table = summary.pivot_table(index=["measure", "description"], columns="mode", values="mean", sort=False)
    show = []
    for (measure, description), r in table.iterrows():
        cells = {"measure": measure, "what": description}
        for mode in audit.modes:
            row = summary[(summary["measure"] == measure) & (summary["mode"] == mode)].iloc[0]
            cells[mode] = _with_ci(row["mean"], row["ci_low"], row["ci_high"])
        show.append(cells)
    lines += [_md_table(pd.DataFrame(show)), ""]
    lines += ["## What they do to the outputs (paired differences against behaviour off, over the term)", ""]
    eff = audit.key_effects()
    show = []
    for (metric, band), d in eff.groupby(["metric", "band"], sort=False):
        cells = {"output": metric, "band": band, "off": float(d["off"].iloc[0])}
        for mode in on_modes:
            r = d[d["mode"] == mode]
            cells[f"{mode} - off"] = _with_ci(*(r[["difference", "ci_low", "ci_high"]].iloc[0])) if len(r) else ""
        show.append(cells)
    lines += [_md_table(pd.DataFrame(show)), "",
              "Every output, per contract year and band: `effects.csv`; definitions: `outputs_defined.csv`.", ""]
    lines += ["## The contract features responsible", "",
              "Which features of the design raise or damp which mechanism (provider-behaviour.md §3.10), with what "
              "was measured in the base mode.", "", _md_table(audit.features), ""]
    if audit.tariff is not None:
        t = audit.tariff.table.reset_index()
        lines += ["## Margin-neutral tariff check", "",
                  "Band weights under which no band is more profitable to take on than another (w*_b U_b + F_b - s "
                  "c_b equal across bands, with the design's outcome money), from the behaviour-off run of "
                  "replication 0. Neutral levels do not remove parking (which follows the return to effort) nor "
                  "creaming within a band.", "",
                  _md_table(t[["band", "starters", "unit_value", "cost", "design_weight", "neutral_weight",
                               "design_margin", "neutral_margin"]]), "",
                  f"Distance from neutral {audit.tariff.distance:.1%} (starter-weighted |w - w*| / w); margin spread "
                  f"{audit.tariff.margin_spread:.2f} R-bar; steepness {audit.tariff.steepness:.2f}.", ""]
    not_converged = audit.strengths[(audit.strengths["mode"] != "off") & (audit.strengths["converged"] < 1)]
    lines += ["## Notes", "",
              "* True outcomes leave out outcomes evidenced by a misrecorded TOP review; band drift counts as "
              "overpayment (`drift_overpayment`). Whether an outcome would have happened anyway is answered client "
              "by client against the behaviour-off run of the same seed: `outcomes_anyway`, `additional_outcomes`, "
              "`lost_outcomes` (held discharges: `held_outcomes`).",
              "* M5 gatekeeping acts through start delays (waits) and reserved places; the History records its "
              "effect, not each decision.",
              "* M7 runs as a fixed point outside the simulation: run, settle, cash response, capacity cuts and "
              "intake freezes, run again" + (f"; {len(not_converged)} run(s) had not converged after their "
                                             f"iterations." if len(not_converged) else "; every run converged."),
              ""]
    return "\n".join(lines)


# --- plots ------------------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MODE_COLOURS = {"off": "tab:grey", "base": "tab:blue", "stress": "tab:red"}


def plot_mechanisms(audit: Audit):
    """How strongly each mechanism acted, by mode (means with 95% CIs)."""
    plt = _plt()
    summary = audit.mechanism_summary()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = list(STRENGTH_SHARES)
    x = np.arange(len(names))
    modes = [m for m in audit.modes if m != "off"]
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        d = summary[(summary["mode"] == mode)].set_index("measure").reindex(names)
        err = np.vstack([d["mean"] - d["ci_low"], d["ci_high"] - d["mean"]])
        ax.bar(x + (i - (len(modes) - 1) / 2) * width, 100 * d["mean"], width,
               yerr=None if np.isnan(err).all() else 100 * np.nan_to_num(err), capsize=3,
               color=MODE_COLOURS.get(mode), label=mode)
    ax.set_xticks(list(x), [n.replace("_", " ") for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("% of the clients, reviews or exits concerned")
    ax.set_title(f"Mechanisms switched on under {audit.contract.name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_effects(audit: Audit):
    """Paired differences against behaviour off of the key outputs, relative to off (%), with 95% CIs."""
    plt = _plt()
    eff = audit.key_effects()
    keys = list(dict.fromkeys(zip(eff["metric"], eff["band"])))
    labels = [f"{m.replace('_', ' ')} ({b})" for m, b in keys]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(labels) + 1.5))
    y = np.arange(len(labels))
    modes = [m for m in audit.modes if m != "off"]
    for i, mode in enumerate(modes):
        d = eff[eff["mode"] == mode].set_index(["metric", "band"]).reindex(keys)
        scale = 100 / d["off"].abs().where(d["off"].abs() > 0)
        rel, lo, hi = d["difference"] * scale, d["ci_low"] * scale, d["ci_high"] * scale
        ax.errorbar(rel, y + (i - (len(modes) - 1) / 2) * 0.3,
                    xerr=np.vstack([np.nan_to_num(rel - lo), np.nan_to_num(hi - rel)]), fmt="o", capsize=2,
                    color=MODE_COLOURS.get(mode), label=mode)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("change against behaviour off (% of the off value; gaps: of |off|)")
    ax.set_title("What the provider's response does (paired, over the term)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_equity(audit: Audit):
    """By need band, over the term: share of referrals starting and completions per referral, by mode."""
    plt = _plt()
    out = audit.outputs[(audit.outputs["period"] == TERM) & audit.outputs["band"].isin(STRUCTURED_BANDS)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(STRUCTURED_BANDS))
    width = 0.8 / len(audit.modes)
    for ax, metric in zip(axes, ("share_starting", "completions_per_referral")):
        for i, mode in enumerate(audit.modes):
            d = out[(out["metric"] == metric) & (out["mode"] == mode)].groupby("band")["value"].mean()
            ax.bar(x + (i - (len(audit.modes) - 1) / 2) * width, d.reindex(STRUCTURED_BANDS), width,
                   color=MODE_COLOURS.get(mode), label=mode)
        ax.set_xticks(list(x), [b.title() for b in STRUCTURED_BANDS])
        ax.set_title(metric.replace("_", " "))
    axes[0].legend(fontsize=8)
    fig.suptitle("Equity by need band")
    fig.tight_layout()
    return fig


def plot_cash(audit: Audit):
    """The provider's reserve and capacity multiplier month by month (replication 0), by mode."""
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    if audit.cash is not None:
        for mode, d in audit.cash.groupby("mode", sort=False):
            top.plot(d["start"] / 365.25, d["reserve"] / 1e6, color=MODE_COLOURS.get(mode), label=mode)
            bottom.step(d["start"] / 365.25, d["capacity_multiplier"], where="post", color=MODE_COLOURS.get(mode))
    top.axhline(0, color="grey", lw=0.8)
    top.set_ylabel("reserve (£m)")
    top.legend(fontsize=8)
    bottom.set_ylabel("capacity multiplier")
    bottom.set_xlabel("years from the contract start")
    top.set_title("Provider cash (M7), replication 0")
    fig.tight_layout()
    return fig


def write_audit(audit: Audit, out: str | Path, with_plots: bool = True) -> Path:
    """Write an audit's tables (CSV), report (``report.md``) and plots under ``out``, whole or not at all."""
    from sim.engine.history import replace_directory

    def build(tmp: Path) -> None:
        audit.strengths.to_csv(tmp / "mechanisms.csv", index=False)
        audit.mechanism_summary().to_csv(tmp / "mechanism_summary.csv", index=False)
        audit.outputs.to_csv(tmp / "outputs.csv", index=False)
        pd.DataFrame(list(METRICS.items()), columns=["metric", "definition"]).to_csv(tmp / "outputs_defined.csv",
                                                                                   index=False)
        audit.effects.to_csv(tmp / "effects.csv", index=False)
        audit.key_effects().to_csv(tmp / "key_effects.csv", index=False)
        audit.features.to_csv(tmp / "features.csv", index=False)
        audit.provider.schedule.to_csv(tmp / "price_schedule.csv", index=False)
        if audit.tariff is not None:
            audit.tariff.table.to_csv(tmp / "tariff_check.csv")
        if audit.cash is not None:
            audit.cash.to_csv(tmp / "cash.csv", index=False)
        (tmp / "report.md").write_text(audit.report())
        if with_plots:
            plt = _plt()
            (tmp / "plots").mkdir()
            for name, draw in (("mechanisms", plot_mechanisms), ("effects", plot_effects),
                               ("equity", plot_equity), ("cash", plot_cash)):
                fig = draw(audit)
                fig.savefig(tmp / "plots" / f"{name}.png", dpi=110)
                plt.close(fig)

    return replace_directory(out, build, "audit")


# --- 5. sweeps over contract features with behaviour on ------------------------------------------------------------

STEEPNESS_PATH = "contract.band_weight_steepness"
PBR_SHARE_PATH = "contract.pbr_share_every_year"
# derived sweep keys: one number that sets several contract keys (see apply_derived)
DERIVED_PATHS = {
    STEEPNESS_PATH: "log(w_critical / w_low) of a log-linear band-weight ladder (0 = flat, negative = inverted), "
                    "the structured bands' mean weight kept at the design's",
    PBR_SHARE_PATH: "the same PbR share in every contract year",
}
# the positions of the structured bands on the ladder: Low 0 ... Critical 1
_LADDER = {"critical": 1.0, "substantial": 2 / 3, "moderate": 1 / 3, "low": 0.0}
BEHAVIOUR_CATEGORY = "behaviour"  # the mechanism strengths, term; outputs: "behaviour.<band>"
CHANGE_PREFIX = "behaviour_change"  # outputs on minus off, same seed: "behaviour_change.<band>"
SWEEP_ITERATIONS = 2  # M7 passes per sweep run


def steep_weights(weights: Mapping[str, float], steepness: float) -> dict[str, float]:
    """Band weights on a log-linear ladder: w_b proportional to exp(steepness x x_b), x_b from 0 (Low) to 1
    (Critical), so w_critical / w_low = exp(steepness) (0 = flat; negative = inverted, Low paid more than
    Critical, which no design does but which shows what weights flatter than a nearly flat margin-neutral tariff
    invite); scaled so the structured bands' mean weight is the mean of ``weights``. ``no_need`` keeps its weight.
    West Kent's 1.8 / 0.45 is a steepness of log 4 = 1.39."""
    if not math.isfinite(steepness):
        raise ValueError(f"band-weight steepness must be a number, got {steepness}")
    raw = {b: math.exp(steepness * x) for b, x in _LADDER.items()}
    mean = float(np.mean([weights.get(b, 1.0) for b in _LADDER]))
    scale = mean / float(np.mean(list(raw.values())))
    return {**{b: raw[b] * scale for b in _LADDER}, "no_need": weights.get("no_need", 0.0)}


def apply_derived(contract: Contract, values: Mapping[str, Any]) -> Contract:
    """``contract`` with the derived sweep keys of :data:`DERIVED_PATHS` applied (validated again)."""
    changes: dict[str, Any] = {}
    for path, value in values.items():
        if path == STEEPNESS_PATH:
            changes["band_weights"] = steep_weights(contract.band_weights, float(value))
        elif path == PBR_SHARE_PATH:
            changes["pbr_share"] = {"by_year": [float(value)] * contract.years}
        else:
            raise KeyError(f"{path!r} is not a derived sweep key; known: {', '.join(DERIVED_PATHS)}")
    return contract.with_changes(changes) if changes else contract


def behaviour_run(spec) -> pd.DataFrame:
    """One run of a behaviour sweep (a :class:`sim.experiments.core.RunSpec`, module level for worker processes): the
    rows :func:`sim.experiments.core.run_one` gives (yearly measures; contract figures per contract year and over the
    term) for the run with the provider responding (:func:`simulate_with_provider`, M7 included), plus the
    mechanism strengths (category ``behaviour``, period ``term``), the :func:`behaviour_outputs` (category
    ``behaviour.<band>``) and their change against the behaviour-off run of the same seed (category
    ``behaviour_change.<band>``)."""
    from sim.experiments.core import PARAMETER_CATEGORY, PARAMETER_PERIOD, _contract_rows, _measure_rows
    from sim.experiments.store import tidy
    from sim.experiments.uncertainty import drawn_scenario

    scenario, contract = spec.build()
    if contract is None:
        raise ValueError(f"point {spec.point}: a behaviour sweep needs a contract")
    parts = []
    if scenario.uncertainty:
        draw = spec.replication // max(spec.runs_per_draw, 1)
        scenario, contract, values = drawn_scenario(scenario, spec.seed, draw, contract)
        parts.append(pd.DataFrame({"period": PARAMETER_PERIOD, "category": PARAMETER_CATEGORY,
                                   "metric": ["draw", *values], "value": [float(draw), *values.values()]}))
    seed = spec.seed_sequence()
    off = simulate_with_provider(scenario.with_changes({"behaviour.mode": "off"}), contract, seed)
    run = simulate_with_provider(scenario, contract, seed, SWEEP_ITERATIONS)
    parts += [_measure_rows(run.history), _contract_rows(run.settlement)]
    strength = mechanism_strength(run.history, run.provider, run.cash, end=run.settlement.years["end"].max())
    parts.append(pd.DataFrame({"period": TERM, "category": BEHAVIOUR_CATEGORY, "metric": list(strength),
                               "value": [float(v) for v in strength.values()]}))
    on = run.outputs(blind=off.settlement)
    base = off.outputs(blind=off.settlement)
    change = on.merge(base, on=["period", "contract_year", "band", "metric"], suffixes=("", "_off"), how="left")
    change["value"] = change["value"] - change["value_off"]
    for frame, prefix in ((on, BEHAVIOUR_CATEGORY), (change, CHANGE_PREFIX)):
        parts.append(pd.DataFrame({"period": frame["period"], "category": prefix + "." + frame["band"],
                                   "metric": frame["metric"], "value": frame["value"].astype(float)}))
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "point", spec.point)
    table.insert(1, "replication", spec.replication)
    return tidy(table)


def _split_spec(spec):
    """The spec without its derived parameters (for :func:`sim.experiments.sweep.check_sweep`), and those parameters."""
    derived = [p for p in spec.parameters if p.path in DERIVED_PATHS]
    plain = spec.model_copy(update={"parameters": [p for p in spec.parameters if p.path not in DERIVED_PATHS]})
    return plain, derived


def check_behaviour_sweep(spec) -> None:
    """Refuse, before anything runs, a behaviour sweep that cannot run: everything :func:`sim.experiments.sweep.check_sweep`
    checks for the ordinary key paths, a contract, a behaviour mode other than off, and each derived key at its
    low and high value (or each value)."""
    from sim.config.base import source_of
    from sim.config.contract import ContractError
    from sim.experiments.sweep import SweepError, check_sweep

    plain, derived = _split_spec(spec)
    check_sweep(plain)
    spec._base = plain._base
    scenario, contract = plain.base()
    found = []
    where = source_of(("parameters",), spec._provenance, spec._source)
    if contract is None:
        found.append((spec._source, "contract", None, "a behaviour sweep needs a contract (give `contract`, or a "
                                                      "scenario that names one)"))
    if scenario.behaviour.mode == "off" and not any(p.path == "behaviour.mode" for p in plain.parameters):
        found.append((source_of(("changes",), spec._provenance, spec._source), "changes.behaviour.mode", "off",
                      "the provider does not respond with behaviour off: set behaviour.mode to base or stress"))
    for i, p in enumerate(spec.parameters):
        if p.path not in DERIVED_PATHS or contract is None:
            continue
        tried = p.values if p.values is not None else [p.low, p.high]
        for value in tried:
            try:
                apply_derived(contract, {p.path: value})
            except (ContractError, ValueError, TypeError) as e:
                message = e.problems[0][3] if isinstance(e, ContractError) else str(e)
                found.append((where, f"parameters[{i}].path", p.path, f"{message} (with value {value!r})"))
    if found:
        raise SweepError(found)


def load_behaviour_sweep(path: str | Path):
    """Read and validate a sweep spec that may sweep the derived keys of :data:`DERIVED_PATHS`, its scenario and
    contract, and every key path (:func:`check_behaviour_sweep`)."""
    from sim.experiments.sweep import load_sweep

    return load_sweep(path, check=check_behaviour_sweep)


def behaviour_sweep_specs(spec, points: pd.DataFrame | None = None) -> list:
    """The runs of a behaviour sweep as data (:class:`sim.experiments.core.RunSpec`), the derived keys applied; the
    same seeds at every point (common random numbers)."""
    from sim.experiments.core import RunSpec, contract_raw
    from sim.experiments.sweep import design_points, point_scenario

    plain, derived = _split_spec(spec)
    points = design_points(spec) if points is None else points
    scenario, contract = spec.base() if spec._base is not None else plain.base()
    specs = []
    for point, row in points.iterrows():
        sc, co = point_scenario(scenario, contract, plain, row)
        co = apply_derived(co, {p.path: row[p.path] for p in derived})
        raw, craw = sc.raw(), contract_raw(co)
        specs += [RunSpec(int(point), r, raw, craw, spec.seed) for r in range(spec.replications)]
    return specs


def run_behaviour_sweep(spec, executor=None, store=None, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every point of a sweep spec with the provider responding (:func:`behaviour_run`) through the
    experiment machinery (:func:`sim.experiments.core.run_specs`: any executor; with a ``store`` finished runs are kept
    and a rerun resumes); returns ``(points, table)``. The spec may sweep the derived keys of
    :data:`DERIVED_PATHS` beside ordinary scenario and ``contract.`` key paths."""
    from sim.experiments.core import run_specs
    from sim.experiments.sweep import design_points

    check_behaviour_sweep(spec)
    points = design_points(spec)
    specs = behaviour_sweep_specs(spec, points)
    experiment = {"kind": "behaviour_sweep", "spec": spec.model_dump(mode="json"), "points": len(points)}
    table = run_specs(specs, executor, store, progress, function=behaviour_run, experiment=experiment)
    return points, table


SWEEP_INDEX_METRICS = (("distortion", BEHAVIOUR_CATEGORY), ("deflected_share", BEHAVIOUR_CATEGORY),
                       ("parked_share", BEHAVIOUR_CATEGORY), ("band_drift_share", BEHAVIOUR_CATEGORY),
                       ("spend_per_true_outcome", BEHAVIOUR_CATEGORY + "." + ALL))
SWEEP_MECHANISMS = ("deflected_share", "parked_share", "misrecorded_share", "band_drift_share", "held_share",
                    "fast_tracked_share")


def behaviour_sweep_summary(spec, points: pd.DataFrame, table: pd.DataFrame,
                            metrics: Iterable[tuple[str, str]] = (("share_of_starters", "behaviour.critical"),
                                                                  ("spend_per_true_outcome", "behaviour.all"),
                                                                  ("completions_per_referral",
                                                                   "behaviour_change.critical_minus_low"))
                            ) -> pd.DataFrame:
    """One row per point: the swept values (as applied), the mean over replications of each mechanism strength
    and of the total distortion (term), and the term value of each (metric, category) in ``metrics``."""
    from sim.experiments.sweep import applied_points

    out = applied_points(spec, points).copy()
    term = table[table["period"].astype(str) == TERM]
    strength = term[term["category"] == BEHAVIOUR_CATEGORY].groupby(["point", "metric"])["value"].mean().unstack()
    for m in (*SWEEP_MECHANISMS, "capacity_cut", "mean_pressure", "distortion"):
        if m in strength:
            out[m] = strength[m].reindex(out.index)
    for metric, category in metrics:
        rows = term[(term["metric"] == metric) & (term["category"] == category)]
        out[f"{metric} ({category})"] = rows.groupby("point")["value"].mean().reindex(out.index)
    return out


def plot_behaviour_sweep(spec, points: pd.DataFrame, table: pd.DataFrame, parameter: str | None = None,
                         title: str = ""):
    """The mechanism strengths and the total distortion (term, mean over replications, with 95% CIs) against
    one swept ``parameter`` (default the first): the U-shape of total distortion as band weights go from flat to
    steep shows here. Points of other parameters are averaged within each value."""
    from sim.experiments.sweep import applied_points

    plt = _plt()
    parameter = parameter or spec.parameters[0].path
    x = applied_points(spec, points)[parameter].astype(float)
    term = table[(table["period"].astype(str) == TERM) & (table["category"] == BEHAVIOUR_CATEGORY)]
    term = term.assign(x=term["point"].map(x))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for metric in (*SWEEP_MECHANISMS, "distortion"):
        d = term[term["metric"] == metric]
        if d.empty:
            continue
        g = d.groupby("x")["value"]
        stats_ = pd.DataFrame([(v, *_mean_ci(grp)[:3]) for v, grp in g], columns=["x", "mean", "lo", "hi"])
        style = {"color": "black", "lw": 2.2} if metric == "distortion" else {"lw": 1.2}
        line, = ax.plot(stats_["x"], 100 * stats_["mean"], marker="o", label=metric.replace("_", " "), **style)
        if stats_["lo"].notna().any():
            ax.fill_between(stats_["x"], 100 * stats_["lo"], 100 * stats_["hi"], alpha=0.12, color=line.get_color())
    hint = {STEEPNESS_PATH: " (log of the Critical / Low weight; 0 = flat)", PBR_SHARE_PATH: " (every year)"}
    ax.set_xlabel(parameter + hint.get(parameter, ""))
    ax.set_ylabel("% of the clients, reviews or exits concerned")
    ax.set_title(title or f"{spec.name}: provider responses against {parameter}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def write_behaviour_sweep(spec, points: pd.DataFrame, table: pd.DataFrame, out: str | Path,
                          with_plots: bool = True) -> pd.DataFrame:
    """A behaviour sweep's design (``points.csv``), results (``results.parquet``), per-point summary
    (``summary.csv``), a plot per swept parameter (``distortion_<parameter>.png``) and, for Morris and Sobol'
    designs, the sensitivity indices of the metrics in :data:`SWEEP_INDEX_METRICS` (``indices_<metric>.csv`` and
    ``.png``). The run store (``runs/``) is left as it is."""
    from sim.engine.history import write_atomic
    from sim.experiments.sweep import applied_points

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = behaviour_sweep_summary(spec, points, table)
    write_atomic(out / "points.csv", lambda p: applied_points(spec, points).to_csv(p))
    write_atomic(out / "results.parquet", lambda p: table.to_parquet(p, index=False))
    write_atomic(out / "summary.csv", lambda p: summary.to_csv(p))
    plt = _plt()
    if with_plots:
        for p in spec.parameters:
            fig = plot_behaviour_sweep(spec, points, table, p.path)
            name = p.path.replace("contract.", "").replace(".", "_")
            write_atomic(out / f"distortion_{name}.png", lambda f, fig=fig: fig.savefig(f, dpi=110, format="png"))
            plt.close(fig)
    if spec.design in ("morris", "sobol"):
        from sim.experiments import sweep as sweep_module

        for metric, category in SWEEP_INDEX_METRICS:
            indices = sweep_module.analyse(spec, points, table, metric, TERM, category)
            write_atomic(out / f"indices_{metric}.csv", lambda f, i=indices: i.to_csv(f, index=False))
            if with_plots:
                draw = sweep_module.plot_sobol if spec.design == "sobol" else sweep_module.plot_morris
                fig = draw(indices, title=f"{spec.design.title()} sensitivity of {metric} ({category})")
                write_atomic(out / f"indices_{metric}.png", lambda f, fig=fig: fig.savefig(f, dpi=110, format="png"))
                plt.close(fig)
    return summary


# --- 6. the command line (registered by sim.cli) ---------------------------------------------------------------------


def cmd_audit_contract(args) -> int:
    import sys

    from tqdm import tqdm

    from sim.cli import _scenario, output_folder, scenario_contract
    from sim.core.errors import UserError
    from sim.config.contract import load_contract

    scenario = _scenario(args)
    path = args.contract or scenario.contract_path()
    if path is None:
        raise UserError(f"scenario {scenario.name} names no contract: give one (pbrsim audit-contract SCENARIO "
                        f"CONTRACT)")
    contract = load_contract(path) if args.contract else scenario_contract(scenario)
    bar = tqdm(total=args.replications, unit="replication", delay=1.0, file=sys.stderr, leave=False,
               disable=not sys.stderr.isatty())
    with output_folder(args, "audit", scenario.name, f"audit_{contract.name}") as folder, bar:
        out = folder.path
        audit = audit_contract(scenario, contract, args.replications, args.seed, iterations=args.iterations,
                               workers=args.workers, progress=lambda n: bar.update(n - bar.n))
        write_audit(audit, folder, with_plots=not args.no_plots)
    report = audit.report()
    brief = report.split("## In brief", 1)[1].split("\n## ", 1)[0].strip()
    print(f"{contract.name} on {scenario.name}: {args.replications} replication(s), behaviour off, base and stress "
          f"on common random numbers\n\n{brief}\n")
    summary = audit.mechanism_summary()
    table = summary.pivot_table(index="measure", columns="mode", values="mean", sort=False)
    print(table.reindex(columns=list(audit.modes)).round(4).to_string())
    print(f"\nreport, tables and plots written to {out}/ (report.md)")
    return 0


def cmd_behaviour_sweep(args) -> int:
    from sim.cli import _executor, _wide, output_folder
    from sim.experiments.core import progress_bar
    from sim.experiments.sweep import design_points

    spec = load_behaviour_sweep(args.spec)
    total = len(design_points(spec)) * spec.replications
    with output_folder(args, "behaviour-sweep", "sweeps", spec.name, replace=False) as folder:
        out = folder.path
        with _executor(args) as executor, progress_bar(total, spec.name) as bar:
            points, table = run_behaviour_sweep(spec, executor, store=out / "runs", progress=bar)
        summary = write_behaviour_sweep(spec, points, table, out, with_plots=not args.no_plots)
    print(f"{spec.name}: {len(points)} points x {spec.replications} replications, behaviour on\n")
    with _wide():
        print(summary.round(4).to_string())
    print(f"\nresults written to {out}/ (finished runs are kept in {out / 'runs'}: a rerun resumes)")
    return 0


def add_commands(sub) -> None:
    """Register ``audit-contract`` and ``behaviour-sweep`` on the ``pbrsim`` sub-command parser."""
    from sim.cli import _add_executor_options, replications, seed, whole_number, workers, years

    audit = sub.add_parser("audit-contract", help="what a contract design invites: behaviour off, base and stress "
                                                  "on common random numbers, with a Markdown report")
    audit.add_argument("scenario", help="scenario file (TOML); its [behaviour] block sets the provider")
    audit.add_argument("contract", nargs="?", default=None, help="contract file (default: the scenario's)")
    audit.add_argument("-n", "--replications", type=replications, default=5, help="replications (default 5)")
    audit.add_argument("--seed", type=seed, default=None, help="root seed (default: the scenario's)")
    audit.add_argument("--years", type=years, default=None, help="reported years after the contract start")
    audit.add_argument("--iterations", type=whole_number(1, 100, "iterations"), default=3, help="most runs of the M7 cash fixed point (default 3)")
    audit.add_argument("--workers", type=workers, default=1, help="processes running replications (default 1)")
    audit.add_argument("--out", default=None, help="output directory (default: results/<scenario>/audit_<contract>)")
    audit.add_argument("--no-plots", action="store_true", help="skip the plots")
    audit.set_defaults(func=cmd_audit_contract)

    sweep = sub.add_parser("behaviour-sweep", help="a sweep spec run with the provider responding (contract "
                                                   "features, derived band-weight steepness)")
    sweep.add_argument("spec", help="sweep spec file (TOML)")
    sweep.add_argument("--out", default=None, help="output directory (default: results/sweeps/<name>)")
    sweep.add_argument("--no-plots", action="store_true", help="skip the plots")
    _add_executor_options(sweep)
    sweep.set_defaults(func=cmd_behaviour_sweep)
