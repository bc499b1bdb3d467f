"""What the provider's behaviour did in one run: a tidy long table, per contract year (and over the term) and per
need band, of what the mechanisms move (:func:`behaviour_outputs`): the share of referrals starting,
deflections, waits, parking and contacts, length of stay, TOP results and review frequency, completions and
completions without re-presentation, re-presentations bunched just after the window closes, unpaid
harm-reduction activity, the equity gap between Critical and Low, offending and deaths among people not served,
the provider's reserve and capacity, and the commissioner's cost per *true* outcome; paid against true outcomes
(:func:`paid_outcomes`, :func:`pair_outcomes`); and how strongly each mechanism switched on
(:func:`mechanism_strength`).

Units: days (times since the contract start), months of 365.25 / 12 days, pounds; shares are fractions.
Bands are *need* bands, the band the independent assessment gave (``assessed_band``), before any drift, except
where a metric says it reads the recorded band. Evidence and defaults: ``../shared/reference/provider-behaviour.md``
(section numbers refer to it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.behaviour import MONTH_DAYS, REVIEW_MEASURES, STRUCTURED_BANDS, BehaviourSpec
from sim.config.contract import Contract, contract_years
from sim.core.vocabulary import TREATMENT_EXITS, UNPLANNED_EXITS
from sim.provider.decisions import parking_effects
from sim.provider.model import ProviderModel

if TYPE_CHECKING:
    from sim.config.scenario import Scenario
    from sim.engine.history import History
    from sim.money.settlement import Settlement



GAP = "critical_minus_low"       # the equity gap rows: Critical minus Low
ALL = "all"                      # every structured band together
TERM = "term"
NOT_SERVED = ("deflected", "left_waiting_list")  # turned away at intake, or gave up waiting
SHIFT_MIN_DAYS = 7.0             # a planned exit moved by less than a week is not counted as held or fast-tracked
BUNCHING_DAYS = MONTH_DAYS       # re-presentations in the month after the window closes against the month before
DEFAULT_WINDOW_DAYS = 365.0      # the national 1.4 window, where the contract prices no sustained outcome
OUTPUT_COLUMNS = ["period", "contract_year", "band", "metric", "value"]

# metric -> what it is (units); the order of the report's tables. Provider behaviour outputs by band, not the
# contract money of sim.money.settlement.METRICS (a different thing of the same name) nor measures of the registry
# (sim.core.measures)
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
    "unplanned_exit_share": "share of exits dropped out, declined to continue or withdrawn",
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
    (:func:`sim.provider.cash.cash_response`) for the reserve rows.

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
        put("unplanned_exit_share", _per_band(ex["exit_reason"].isin(UNPLANNED_EXITS), ex["need"]))
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
