"""Settlement: a History and a contract in, dated payments out. Pure: the same History can be settled under many
contracts, which is what makes contract comparisons paired and cheap.

``settle(contract, history, scenario)`` returns a :class:`Settlement` whose ``payments`` table has one row per
payment: ``component`` (``core``, an outcome's name, ``offending``, ``floor``, ``cap``), ``kind`` (core,
outcome, clawback, offending, adjustment), ``client_id`` and ``band`` (outcomes only), ``earned`` (the day the
money was earned: a core month's first day, an outcome's evidence day, the end of an offending year), ``due``
(the day it is paid), ``contract_year`` (1-based, the year it was earned in) and ``amount`` (pounds; negative
only for clawback and income-cap adjustments).

Rules, in order: outcomes earned after the horizon or the term are not paid; once per episode / client /
rolling window; the price (pounds, or pot x share / expected volume) times the band weight, times the escalator's
multiplier for the year's achievement rate; the outcome's cap per contract year (first earned, first paid); then
the PbR cap per year and the term cap across outcomes and offending; then the income floor and cap per year
(paid or recovered after the year ends). A payment is due at the end of the month, quarter or contract year in
which its evidence lag has passed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.analysis import costs as costs_module
from sim.analysis import offending as offending_module
from sim.analysis.outcomes import achievements
from sim.config.base import ConfigError, has_number
from sim.config.contract import Contract, ContractError, Outcome, add_months, contract_years
from sim.config.scenario import Scenario
from sim.core.vocabulary import TREATMENT_STATES
from sim.engine.history import History

PAYMENT_COLUMNS = ["component", "kind", "client_id", "band", "earned", "due", "contract_year", "amount"]


@dataclass
class Settlement:
    contract: Contract
    history: History
    scenario: Scenario
    payments: pd.DataFrame
    years: pd.DataFrame           # contract_year, start, end (days), pot, share, observed (fully inside horizon)
    offending: pd.DataFrame       # per contract year: baseline, offences, reduction, fraction_paid, payment, ...

    def income_by_year(self) -> pd.DataFrame:
        """Income per contract year by component (pounds), with the total."""
        p = self.payments
        table = p.pivot_table(index="contract_year", columns="component", values="amount", aggfunc="sum",
                              fill_value=0.0)
        order = ["core", *self.contract.outcomes, "offending", "floor", "cap"]
        table = table.reindex(columns=[c for c in order if c in table.columns])
        table = table.reindex(self.years["contract_year"], fill_value=0.0)
        table["total"] = table.sum(axis=1)
        return table


# --- calendar helpers --------------------------------------------------------------------------------------------


def _month_start(start: dt.date, m: int) -> float:
    """Days from the contract start to the same day ``m`` months later (or that month's last day)."""
    return float((add_months(start, m) - start).days)


def _calendar_months(start: dt.date, until: float) -> np.ndarray:
    """Day 0 and the first day of each calendar month after the contract start, until past ``until``."""
    out, m = [0.0], 1
    first = start.replace(day=1)
    while out[-1] <= until:
        out.append(float((add_months(first, m) - start).days))
        m += 1
    return np.array(out)


def _month_bounds(start: dt.date, until: float, step: int = 1) -> np.ndarray:
    """Starts of the months (or quarters) from the contract start until past ``until`` (days)."""
    out, m = [], 0
    while True:
        out.append(_month_start(start, m))
        if out[-1] > until:
            return np.array(out)
        m += step


def _due(history: History, claim: np.ndarray, payment: str, years: pd.DataFrame) -> np.ndarray:
    """The day each claim is paid: the end of the month, quarter or contract year in which it falls."""
    claim = np.asarray(claim, dtype=float)
    if payment == "on_evidence" or len(claim) == 0:
        return claim
    if payment == "annually_in_arrears":
        ends = years["end"].to_numpy()
        idx = np.searchsorted(ends, claim, side="right")
        return np.where(idx < len(ends), ends[np.minimum(idx, len(ends) - 1)], claim)
    bounds = _month_bounds(history.contract_start, claim.max(), 1 if payment == "monthly_in_arrears" else 3)
    return bounds[np.searchsorted(bounds, claim, side="right")]


# --- settlement --------------------------------------------------------------------------------------------------


MIN_WARMUP_YEARS = 2.0


def check(contract: Contract, scenario: Scenario, compared_with: tuple[Contract, ...] | list[Contract] = ()) -> None:
    """Refuse, before anything runs, a contract that the scenario cannot be settled under. An uncertain
    ``contract.`` key path of the scenario must be a number in this contract or, when it is compared with others
    (``compared_with``), in at least one of them; a design without the path ignores it."""
    check_uncertain_paths(contract, scenario, compared_with)
    check_prices(contract, scenario)


def check_prices(contract: Contract, scenario: Scenario) -> None:
    """Refuse a contract priced (or its offending pot baselined) from the year before the contract on a scenario
    whose warm-up cannot give a settled year before it."""
    # outcomes priced from the year before the contract: the key path that says so
    priced = {name: f"outcomes.{name}.{o.baseline_key}" for name, o in contract.outcomes.items() if o.baseline_key}
    if contract.offending is not None and contract.offending.baseline_offences is None:
        priced["offending"] = "offending.baseline_offences"  # absent: the cohort's own year before
    needs_baseline = bool(priced)
    unsettled = scenario.horizon.unsettled(scenario.name)
    if priced and unsettled:
        first = next(iter(priced))
        raise ContractError([(contract._source, priced[first], None if first == "offending" else "baseline",
                              f"prices or baselines from the year before the contract ({', '.join(priced)}) need a "
                              f"settled year: {unsettled}. Give the tender's expected volumes by band (and the "
                              f"offending pot's baseline_offences), or a longer warm-up")])
    if needs_baseline and scenario.horizon.warmup_years < MIN_WARMUP_YEARS:
        raise ContractError([(contract._source, "", None,
                              f"prices or baselines from the year before the contract need a warm-up of at least "
                              f"{MIN_WARMUP_YEARS:g} years; scenario {scenario.name} has "
                              f"horizon.warmup_years = {scenario.horizon.warmup_years:g}")])


def check_uncertain_paths(contract: Contract, scenario: Scenario, compared_with=()) -> None:
    """Each uncertain ``contract.`` key path of the scenario is a number in ``contract`` (its central value
    valid there) or, when the contract is compared with others, in at least one of them."""
    for path in (p for p in scenario.uncertainty if p.startswith("contract.")):
        key = path.removeprefix("contract.")
        if not has_number(contract, key) and any(has_number(c, key) for c in compared_with):
            continue  # the path is another design's (an offending pot this design does not have)
        problem = None if has_number(contract, key) else (
            f"no number at {key!r} in the contract" + (" nor in any design it is compared with" if compared_with
                                                       else ""))
        if problem is None:
            try:
                contract.with_changes({key: scenario.uncertainty[path].ppf(0.5)})
            except ConfigError as e:
                problem = e.problems[0][3]
        if problem is not None:
            raise ContractError([(contract._source, path, None,
                                  f"[uncertainty] of scenario {scenario.name}: {problem}")]) from None


def settle(contract: Contract, history: History, scenario: Scenario) -> Settlement:
    """Dated payments for one History under one contract (see the module docstring for the rules)."""
    check_prices(contract, scenario)  # the draw's values are in place: its uncertain paths were checked before
    years = _years_frame(contract, history)
    rows = [_core(contract, history, years)]
    in_treatment = _people_in_treatment(history, years)
    for name, outcome in contract.outcomes.items():
        rows.append(_outcome(name, outcome, contract, history, years, in_treatment))
    offending = _offending(contract, history, scenario, years)
    if len(offending):
        paid = offending[offending["observed"]]
        rows.append(pd.DataFrame({
            "component": "offending", "kind": "offending", "client_id": -1, "band": "",
            "earned": paid["end"].to_numpy(), "due": paid["end"].to_numpy() + contract.offending.lag_days,
            "contract_year": paid["contract_year"].to_numpy(), "amount": paid["payment"].to_numpy()}))
    for name, outcome in contract.outcomes.items():
        if outcome.clawback_days is not None:
            rows.append(_clawback(name, _rows_of(rows, name), history, outcome, years))
    payments = pd.concat([r for r in rows if len(r)], ignore_index=True) if any(len(r) for r in rows) else \
        pd.DataFrame(columns=PAYMENT_COLUMNS)
    payments = _apply_caps(contract, payments, years)
    payments = _apply_floor_and_cap(contract, payments, years)
    payments = payments.sort_values(["due", "component", "client_id"], ignore_index=True, kind="stable")
    payments = payments.astype({"client_id": np.int64, "contract_year": np.int64, "earned": float, "due": float,
                                "amount": float})
    return Settlement(contract, history, scenario, payments[PAYMENT_COLUMNS], years, offending)


def _rows_of(rows: list[pd.DataFrame], component: str) -> pd.DataFrame:
    """The (uncapped) outcome payments of one component among the frames built so far."""
    found = [r[(r["component"] == component) & (r["kind"] == "outcome")] for r in rows if len(r)]
    return pd.concat(found) if found else pd.DataFrame(columns=PAYMENT_COLUMNS)


def _years_frame(contract: Contract, history: History) -> pd.DataFrame:
    rows = []
    for k, a, b in contract_years(history.contract_start, contract.years):
        if a >= history.end:
            break
        rows.append((k, a, b, contract.share(k), contract.pot(k), b <= history.end))
    return pd.DataFrame(rows, columns=["contract_year", "start", "end", "share", "pot", "observed"])


def _core(contract: Contract, history: History, years: pd.DataFrame) -> pd.DataFrame:
    """Core (up-front) payments: the annual value less the PbR share, by month or quarter."""
    quarterly = contract.core_payment == "quarterly_in_advance"
    step = 3 if quarterly else 1
    rows = []
    for y in years.itertuples():
        core = contract.annual_value * (1.0 - y.share)
        for m in range(0, 12, step):
            a = _month_start(history.contract_start, 12 * (y.contract_year - 1) + m)
            b = _month_start(history.contract_start, 12 * (y.contract_year - 1) + m + step)
            if a >= history.end:
                break
            due = b if contract.core_payment == "monthly_in_arrears" else a
            rows.append(("core", "core", -1, "", a, due, y.contract_year, core * step / 12.0))
    return pd.DataFrame(rows, columns=PAYMENT_COLUMNS)


def _people_in_treatment(history: History, years: pd.DataFrame) -> pd.Series:
    sp = history.spells[history.spells["state"].isin(TREATMENT_STATES)]
    return pd.Series({y.contract_year: sp.loc[(sp["start"] < y.end) & (sp["end"] > y.start), "client_id"].nunique()
                      for y in years.itertuples()}, dtype=float)


def once_per(found: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """The achievements an outcome pays for under its once-per rule (per episode, per client, or all)."""
    if outcome.once_per == "episode":
        return found.drop_duplicates(["client_id", "episode"])
    if outcome.once_per == "client":
        return found.drop_duplicates(["client_id"])
    keep, last, window = [], {}, outcome.window_days
    for i, (cid, t) in enumerate(zip(found["client_id"].tolist(), found["time"].tolist())):
        if cid not in last or t - last[cid] >= window:
            keep.append(i)
            last[cid] = t
    return found.iloc[keep]


def _outcome(name: str, outcome: Outcome, contract: Contract, history: History, years: pd.DataFrame,
             in_treatment: pd.Series) -> pd.DataFrame:
    everything = achievements(history, outcome.measure, outcome.window_days)  # by time, then client
    found = everything[(everything["time"] >= 0) & (everything["time"] < min(history.end, years["end"].max()))]
    found = once_per(found, outcome)
    if found.empty:
        return pd.DataFrame(columns=PAYMENT_COLUMNS)
    year = years["contract_year"].to_numpy()[np.searchsorted(years["start"].to_numpy(), found["time"], "right") - 1]
    found = found.assign(contract_year=year)
    bands = found["band"].to_numpy()
    weight = np.zeros(len(found))
    for b in np.unique(bands):
        weight[bands == b] = contract.weight(outcome, b)
    baseline = None
    if outcome.baseline_key:
        baseline = baseline_year(history, everything, outcome)
    if outcome.price is not None:
        unit = np.full(len(found), outcome.price)
    else:
        pot = {y.contract_year: contract.outcome_pot(y.contract_year) for y in years.itertuples()}
        if outcome.expected_volume == "baseline":
            volume = sum(contract.weight(outcome, b) for b in baseline["band"])
        else:
            volume = outcome.weighted_volume(lambda b: contract.weight(outcome, b))
        unit = np.array([pot[y] for y in year]) * outcome.share_of_pot / volume if volume > 0 else np.zeros(len(year))
    amount = unit * weight
    claim = found["time"].to_numpy() + outcome.lag_days
    due = _due(history, claim, outcome.payment, years)
    if outcome.escalator is not None:
        esc = outcome.escalator
        base_rate = esc.baseline_rate
        if base_rate == "baseline":
            a, b = _baseline_bounds(history)
            people = _people_in_treatment(history, pd.DataFrame({"contract_year": [0], "start": [a],
                                                                 "end": [b]})).get(0, 0.0)
            base_rate = len(baseline) / people if people else 0.0
        counts = found.groupby("contract_year").size()
        mult = {y: esc.multiplier(counts.get(y, 0) / max(in_treatment.get(y, 0.0), 1.0), base_rate)
                for y in counts.index}
        amount = amount * np.array([mult[y] for y in year])
        # the multiplier is known when the year's rate is: reconciled after the year ends
        ends = years.set_index("contract_year")["end"]
        due = np.maximum(due, np.array([ends[y] for y in year]) + contract.reconciliation_lag_days)
    out = pd.DataFrame({"component": name, "kind": "outcome", "client_id": found["client_id"].to_numpy(),
                        "band": found["band"].to_numpy(), "earned": found["time"].to_numpy(), "due": due,
                        "contract_year": year, "amount": amount})
    return out


def _baseline_bounds(history: History) -> tuple[float, float]:
    """The year before the contract start (days)."""
    _, a, b = contract_years(history.contract_start, 1, first=0)[0]
    return a, b


def baseline_year(history: History, everything: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """Achievements in the year before the contract start, under the same once-per rule."""
    a, b = _baseline_bounds(history)
    if history.start > a:
        raise ValueError("pricing from the baseline year needs at least a year of warm-up")
    return once_per(everything[(everything["time"] >= a) & (everything["time"] < b)], outcome)


def _clawback(name: str, paid: pd.DataFrame, history: History, outcome: Outcome,
              years: pd.DataFrame) -> pd.DataFrame:
    """Candidate recoveries of outcome payments when the client re-presents within ``clawback_days``; the
    amounts are settled with the caps (only what was paid is recovered)."""
    ep = history.episodes[["client_id", "referral"]]
    rows = []
    by_client = ep.groupby("client_id")["referral"].apply(np.sort)
    for r in paid[paid["amount"] > 0].itertuples():
        refs = by_client.get(r.client_id, np.array([]))
        later = refs[refs > r.earned]
        if len(later) and later[0] - r.earned < outcome.clawback_days and later[0] < history.end:
            rows.append((name, "clawback", r.client_id, r.band, later[0], later[0], r.contract_year, -r.amount))
    out = pd.DataFrame(rows, columns=PAYMENT_COLUMNS)
    if len(out):
        out["due"] = _due(history, out["earned"].to_numpy() + outcome.lag_days, outcome.payment, years)
    return out


def _offending(contract: Contract, history: History, scenario: Scenario, years: pd.DataFrame) -> pd.DataFrame:
    """The offending payment per contract year (Home Office cohort model; see :mod:`sim.analysis.offending`)."""
    if contract.offending is None or years.empty:
        return pd.DataFrame()
    o = contract.offending
    column = "offences_per_member" if o.measure == "per_member" else "offences"
    cohort = offending_module.cohort_offences(history, scenario, "year")
    before = cohort[cohort["end"] <= 0]
    if o.baseline_offences is not None:
        baseline = o.baseline_offences
    elif len(before):
        baseline = float(before.iloc[-1][column])
    else:
        raise ValueError("the offending baseline needs a year of warm-up before the contract start, or "
                         "contract.offending.baseline_offences")
    rows = []
    for y in years.itertuples():
        match = cohort[(cohort["start"] == y.start) & (cohort["end"] == y.end)]
        # contract years that are not financial years have no cohort figure: not settled
        value = float(match.iloc[0][column]) if len(match) else np.nan
        members = float(match.iloc[0]["cohort"]) if len(match) else np.nan
        valid = np.isfinite(baseline) and baseline > 0 and np.isfinite(value)
        reduction = 1.0 - value / baseline if valid else np.nan
        fraction = offending_module.attachment_fraction(reduction, o.paid_at_baseline, o.full_at_reduction,
                                                        o.below_baseline)
        saved = (baseline - value) * (members if o.measure == "per_member" else 1.0)
        observed = bool(y.observed and valid)  # no baseline or no cohort: nothing to settle
        rows.append((y.contract_year, y.start, y.end, observed, members, baseline, value, reduction, fraction,
                     o.pot * fraction if observed else 0.0, saved, saved * o.price_per_offence))
    out = pd.DataFrame(rows, columns=["contract_year", "start", "end", "observed", "cohort", "baseline",
                                      "measure", "reduction", "fraction_paid", "payment", "offences_saved",
                                      "community_savings"])
    out["unit"] = "recorded offences per cohort member" if o.measure == "per_member" else "recorded offences"
    return out


def _apply_caps(contract: Contract, payments: pd.DataFrame, years: pd.DataFrame, *,
                vectorised: bool = True) -> pd.DataFrame:
    """Pay outcome and offending money first earned, first paid, within every cap that applies: the outcome's
    cap per contract year, the PbR cap per year and the term cap. Caps bind on net payouts: a clawback recovers
    what its payment was actually paid and frees that room again.

    The rule is sequential, but every payment before the first that could meet a cap is paid in full: that prefix
    (in most settlements every payment) is settled with arrays, and payment by payment only from there on.
    ``vectorised=False`` settles every payment one by one: the reference the tests hold the arrays to."""
    limited = payments["kind"].isin(["outcome", "offending", "clawback"])
    if not limited.any():
        return payments
    rows = payments[limited].copy()
    # payments before clawbacks earned on the same day; clawbacks then recover in time order
    rows["order"] = (rows["kind"] == "clawback").astype(int)
    rows = rows.sort_values(["earned", "order", "client_id"], kind="stable").drop(columns="order")
    caps = _caps(contract, rows, years)
    head, room, paid = _paid_in_full(rows, caps) if vectorised else (
        np.empty(0), {key: cap for key, (cap, _) in caps.items()}, {})
    tail = _pay_in_order(rows.iloc[len(head):], caps, len(head), room, paid)
    rows["amount"] = np.concatenate([head, tail])
    rows = rows[(rows["kind"] != "clawback") | (rows["amount"] != 0)]
    return pd.concat([payments[~limited], rows], ignore_index=True)


LINK = ["component", "client_id", "contract_year", "band"]  # what a clawback recovers: one outcome's payments


def _caps(contract: Contract, rows: pd.DataFrame, years: pd.DataFrame) -> dict[tuple, tuple[float, np.ndarray]]:
    """Every cap that applies to some of ``rows``: key -> (the cap in pounds, which rows it applies to)."""
    pots = years.set_index("contract_year")["pot"].to_dict()
    kind, component, year = (rows[c].to_numpy() for c in ("kind", "component", "contract_year"))
    outcome_money = (kind == "outcome") | (kind == "clawback")
    out: dict[tuple, tuple[float, np.ndarray]] = {}
    for name, outcome in contract.outcomes.items():
        if outcome.cap_per_year is not None:
            for y in np.unique(year[outcome_money & (component == name)]):
                out[("outcome", name, int(y))] = (outcome.cap_per_year,
                                                  outcome_money & (component == name) & (year == y))
    if contract.pbr_cap is not None:
        for y in np.unique(year):
            out[("pbr", int(y))] = (contract.pbr_cap * pots.get(int(y), 0.0), year == y)
    if contract.term_cap is not None:
        out[("term",)] = (contract.term_cap, np.ones(len(rows), dtype=bool))
    return out


def _paid_in_full(rows: pd.DataFrame, caps: dict) -> tuple[np.ndarray, dict[tuple, float], dict[tuple, float]]:
    """The payments before the first that could meet a cap (counting what is earned, not the room clawbacks free
    again), settled with arrays; and the room left under each cap and what each link has been paid since its last
    clawback after them, summed in the same order as paying them one by one sums them."""
    kind = rows["kind"].to_numpy()
    pay = np.where(kind == "clawback", 0.0, np.maximum(rows["amount"].to_numpy(dtype=float), 0.0))
    n = len(rows)
    for cap, applies in caps.values():
        earned = np.cumsum(pay[applies])
        over = np.flatnonzero(earned > cap - 1e-7 * max(abs(cap), 1.0))  # the margin covers the rooms' rounding
        if len(over):
            n = min(n, int(np.flatnonzero(applies)[over[0]]))
    kind, pay, clawback = kind[:n], pay[:n], kind[:n] == "clawback"
    link = rows.iloc[:n].groupby(LINK, sort=False).ngroup().to_numpy()
    since = pd.Series(clawback.astype(int)).groupby(link).cumsum().to_numpy() - clawback  # clawbacks before
    owed = pd.Series(np.where(kind == "outcome", pay, 0.0)).groupby([link, since]).cumsum().to_numpy()
    amount = np.where(clawback, -owed, pay)  # a clawback recovers what its link was paid since the last one
    if n == len(rows):
        return amount, {}, {}  # nothing is paid one by one: no room or link to carry on
    room = {key: float(np.cumsum(np.concatenate([[cap], -amount[applies[:n]]]))[-1])
            for key, (cap, applies) in caps.items()}
    last = pd.Series(np.arange(n)).groupby(link).last().to_numpy()
    paid = {key: 0.0 if clawback[i] else float(owed[i])
            for key, i in zip(rows.iloc[last][LINK].itertuples(index=False, name=None), last)}
    return amount, room, paid


def _pay_in_order(rows: pd.DataFrame, caps: dict, offset: int, room: dict[tuple, float],
                  paid: dict[tuple, float]) -> np.ndarray:
    """Each payment of ``rows`` (from row ``offset`` of the capped rows on) paid within the room its caps have
    left, one by one; ``room`` and ``paid`` carry on from the payments before."""
    keys_of: dict[tuple, list[tuple]] = {}
    amounts = []
    # plain lists: this loop runs once per payment
    for i, (component, kind, client, year, band, amount) in enumerate(zip(
            rows["component"].tolist(), rows["kind"].tolist(), rows["client_id"].tolist(),
            rows["contract_year"].tolist(), rows["band"].tolist(), rows["amount"].tolist()), start=offset):
        which = (component, kind == "offending", year)  # the caps that apply are the same for all of these
        limits = keys_of.get(which)
        if limits is None:
            limits = keys_of[which] = [key for key, (_, applies) in caps.items() if applies[i]]
        link = (component, client, year, band)
        if kind == "clawback":
            back = paid.get(link, 0.0)
            if back > 0:
                paid[link] = 0.0
                for key in limits:
                    room[key] += back
            amounts.append(-back)
            continue
        pay = min([amount, *[room[key] for key in limits]]) if limits else amount
        pay = max(pay, 0.0)
        for key in limits:
            room[key] -= pay
        if kind == "outcome":
            paid[link] = paid.get(link, 0.0) + pay
        amounts.append(pay)
    return np.array(amounts, dtype=float)


def _apply_floor_and_cap(contract: Contract, payments: pd.DataFrame, years: pd.DataFrame) -> pd.DataFrame:
    if contract.income_floor is None and contract.income_cap is None:
        return payments
    rows = []
    for y in years[years["observed"]].itertuples():
        total = payments.loc[payments["contract_year"] == y.contract_year, "amount"].sum()
        due = y.end + contract.reconciliation_lag_days
        if contract.income_floor is not None and total < contract.income_floor * contract.annual_value:
            rows.append(("floor", "adjustment", -1, "", y.end, due, y.contract_year,
                         contract.income_floor * contract.annual_value - total))
        if contract.income_cap is not None and total > contract.income_cap * contract.annual_value:
            rows.append(("cap", "adjustment", -1, "", y.end, due, y.contract_year,
                         contract.income_cap * contract.annual_value - total))
    return pd.concat([payments, pd.DataFrame(rows, columns=PAYMENT_COLUMNS)], ignore_index=True)


# --- the provider's and the commissioner's view -------------------------------------------------------------------


def monthly_cash(settlement: Settlement) -> pd.DataFrame:
    """Calendar month by month from the contract start until the last payment: income received (payments by
    due date, also after the term: outcomes are paid in arrears), delivery cost (months of the contract's years
    only: after the term the provider no longer delivers this contract), net and cumulative cash (pounds)."""
    h = settlement.history
    cost = _by_contract_year(settlement.years, costs_module.delivery_costs(h, settlement.scenario, "month"))
    cost = cost.groupby("start")["cost"].sum()
    last = max(h.end, settlement.payments["due"].max() if len(settlement.payments) else h.end)
    bounds = _calendar_months(h.contract_start, last)
    months = pd.DataFrame({"start": bounds[:-1], "end": bounds[1:]})
    months.insert(0, "period", [str(d)[:7] for d in h.date(months["start"].to_numpy())])
    at = np.searchsorted(bounds, cost.index.to_numpy(), side="right") - 1  # costs are by calendar month
    months["cost"] = np.bincount(at, weights=cost.to_numpy(), minlength=len(months))[:len(months)]
    idx = np.searchsorted(bounds, settlement.payments["due"].to_numpy(), side="right") - 1
    months["income"] = np.bincount(np.clip(idx, 0, len(months) - 1),
                                   weights=settlement.payments["amount"].to_numpy(), minlength=len(months))
    months["net"] = months["income"] - months["cost"]
    months["cumulative_cash"] = months["net"].cumsum()
    return months


def _by_contract_year(years: pd.DataFrame, frame: pd.DataFrame, column: str = "start") -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` (a day) falls in a contract year, with their ``contract_year``;
    rows before the first year or after the last are dropped, never put into the nearest year."""
    t = frame[column].to_numpy(dtype=float)
    idx = np.searchsorted(years["start"].to_numpy(), t, side="right") - 1
    inside = (idx >= 0) & (t < years["end"].to_numpy()[np.clip(idx, 0, len(years) - 1)])
    return frame[inside].assign(contract_year=years["contract_year"].to_numpy()[idx[inside]])


def provider_by_year(settlement: Settlement) -> pd.DataFrame:
    """Per contract year: income by component, delivery cost, margin, and the cash position (pounds). Months
    outside the contract's years (a horizon that runs past the term) are in neither cost nor cash."""
    income = settlement.income_by_year()
    cost = costs_module.delivery_costs(settlement.history, settlement.scenario, "month")
    years = settlement.years
    cost = _by_contract_year(years, cost)
    by_year = cost.groupby("contract_year")["cost"].sum().reindex(income.index, fill_value=0.0)
    out = income.rename(columns={"total": "income"})
    out["cost"] = by_year
    out["margin"] = out["income"] - out["cost"]
    cash = _by_contract_year(years, monthly_cash(settlement))
    out["cash_at_year_end"] = cash.groupby("contract_year")["cumulative_cash"].last().reindex(out.index)
    out["lowest_cash"] = cash.groupby("contract_year")["cumulative_cash"].min().reindex(out.index)
    out["working_capital_needed"] = (-out["lowest_cash"].cummin()).clip(lower=0)
    out = _shares(settlement, out)
    out.insert(0, "observed", years.set_index("contract_year")["observed"].reindex(out.index))
    return out


def _shares(settlement: Settlement, out: pd.DataFrame) -> pd.DataFrame:
    """Income and cost passed to subcontractors; what the prime keeps."""
    years = settlement.years.set_index("contract_year")
    prime_income, prime_cost = out["income"].copy(), out["cost"].copy()
    for sub in settlement.contract.subcontractors:
        if sub.until is None:
            active = pd.Series(1.0, index=out.index)
        else:
            until = float((sub.until - settlement.history.contract_start).days)
            active = ((until - years["start"]) / (years["end"] - years["start"])).clip(0, 1).reindex(out.index)
        out[f"{sub.name}_income"] = out["income"] * sub.share_of_income * active
        out[f"{sub.name}_cost"] = out["cost"] * sub.share_of_cost * active
        prime_income -= out[f"{sub.name}_income"]
        prime_cost -= out[f"{sub.name}_cost"]
    if settlement.contract.subcontractors:
        out["prime_income"], out["prime_cost"] = prime_income, prime_cost
        out["prime_margin"] = prime_income - prime_cost
    return out


def commissioner_by_year(settlement: Settlement) -> pd.DataFrame:
    """Per contract year: what the commissioner spends and buys (pounds; counts of people)."""
    h, years = settlement.history, settlement.years
    pay = settlement.payments
    spend = pay.groupby("contract_year")["amount"].sum().reindex(years["contract_year"], fill_value=0.0)
    outcome_spend = pay[pay["kind"].isin(["outcome", "clawback", "offending"])].groupby("contract_year")[
        "amount"].sum().reindex(years["contract_year"], fill_value=0.0)
    assess = _by_contract_year(years, costs_module.commissioner_costs(h, settlement.scenario, "month"))
    assess_by = assess.groupby("contract_year")["cost"].sum().reindex(years["contract_year"], fill_value=0.0)
    planned = achievements(h, "planned_exit")
    sustained = achievements(h, "sustained_recovery", 365.0).assign(time=lambda d: d["time"] - 365.0)

    def count(frame):
        yi = np.searchsorted(years["start"].to_numpy(), frame["time"].to_numpy(), side="right") - 1
        ok = (yi >= 0) & (frame["time"].to_numpy() < years["end"].to_numpy()[np.clip(yi, 0, len(years) - 1)])
        return pd.Series(years["contract_year"].to_numpy()[yi[ok]]).value_counts().reindex(
            years["contract_year"], fill_value=0)

    out = pd.DataFrame({"payments": spend.to_numpy(), "assessments": assess_by.to_numpy()},
                       index=years["contract_year"])
    out["spend"] = out["payments"] + out["assessments"]
    out["outcome_share_of_payments"] = (outcome_spend / spend.where(spend > 0)).to_numpy()
    out["planned_exits"] = count(planned).to_numpy()
    sustained_n = count(sustained)
    # a 12-month window is evidenced a year after the exit: only years with that year observed count
    observed = (years["end"].to_numpy() + 365.0) <= h.end
    out["sustained_recoveries"] = np.where(observed, sustained_n.to_numpy(), np.nan)
    out["spend_per_planned_exit"] = out["spend"] / out["planned_exits"].where(out["planned_exits"] > 0)
    out["spend_per_sustained_recovery"] = out["spend"] / out["sustained_recoveries"].where(
        out["sustained_recoveries"] > 0)
    # the same offences under every contract: an offending pot changes what is paid, not what is saved
    saved = offending_module.community_savings(offending_module.cohort_offences(h, settlement.scenario, "year"),
                                               settlement.scenario.offending.savings_per_recorded_offence)
    bounds = pd.MultiIndex.from_frame(years[["start", "end"]])
    by_bounds = saved.set_index(["start", "end"])["community_savings"]
    # a contract year that is not a financial year has no cohort figure; an unobserved year is not reported
    savings = by_bounds.reindex(bounds).to_numpy()
    out["community_savings"] = np.where(years["observed"].to_numpy(bool), savings, np.nan)
    out["community_savings_per_pound"] = out["community_savings"] / out["spend"]
    out.insert(0, "observed", years.set_index("contract_year")["observed"])
    return out


def investor_view(settlement: Settlement) -> pd.DataFrame | None:
    """For a social impact bond: the investor funds delivery and receives the outcome payments.

    The investor's monthly cash flows are the provider's net cash flows (payments received less delivery cost).
    Returns one row: capital committed and drawn (the deepest cumulative shortfall), whether the capital
    sufficed, total repaid, net return, and the internal rate of return a year (NaN when it does not exist).
    """
    investor = settlement.contract.investor
    if investor is None:
        return None
    cash = monthly_cash(settlement)
    drawn = float(max(0.0, -cash["cumulative_cash"].min()))
    flows = cash["net"].to_numpy()
    return pd.DataFrame([{
        "investor": investor.name, "capital": investor.capital, "capital_drawn": drawn,
        "capital_sufficient": drawn <= investor.capital, "repaid": float(settlement.payments["amount"].sum()),
        "net_return": float(flows.sum()), "irr_per_year": _irr(flows, periods_per_year=12),
    }])


def _irr(flows: np.ndarray, periods_per_year: int) -> float:
    """Internal rate of return a year of equally spaced cash flows; NaN if there is no unique root."""
    from scipy.optimize import brentq

    flows = np.asarray(flows, dtype=float)
    if not (flows < 0).any() or not (flows > 0).any():
        return float("nan")
    t = np.arange(len(flows))

    def npv(rate: float) -> float:
        return float(np.sum(flows / (1.0 + rate) ** t))

    lo, hi = -0.99, 1.0
    if npv(lo) * npv(hi) > 0:
        return float("nan")
    monthly = brentq(npv, lo, hi, xtol=1e-12)
    return (1.0 + monthly) ** periods_per_year - 1.0


# --- the figures compared across contracts and replications ------------------------------------------------------

# Not measures of the registry (sim.core.measures): money per contract year of one settled run (pounds, and the
# planned exits they buy). sim.provider.outputs.METRICS is a different thing of the same name: the provider's
# behaviour outputs by band (deflection, band drift, review timing), compared with behaviour off.
METRICS = {
    "income": "provider income (pounds)",
    "outcome_payments": "payments on outcomes and offending, net of clawback (pounds)",
    "cost": "provider delivery cost (pounds)",
    "margin": "provider margin (pounds)",
    "working_capital_needed": "largest cash shortfall before payments arrive (pounds)",
    "spend": "commissioner spend including assessments (pounds)",
    "assessments": "of the spend, the independent assessments (LASARS) the commissioner pays for (pounds)",
    "planned_exits": "planned exits (people)",
    "spend_per_planned_exit": "commissioner spend per planned exit (pounds)",
    "community_savings": "estimated community savings from reduced offending (pounds)",
    "offending_payment": "payment from the offending pot (pounds; 0 without one)",
}
_TERM_SUMS = ("income", "outcome_payments", "cost", "margin", "spend", "assessments", "planned_exits",
              "community_savings", "offending_payment")


def contract_year_metrics(settlement: Settlement, commissioner: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per contract year (index ``contract_year``): ``observed``, the :data:`METRICS` and
    ``offending_fraction_paid`` (the share of the offending pot earned; NaN without a pot or before it is
    settled). ``commissioner``: :func:`commissioner_by_year` of the settlement, where the caller has it."""
    prov = provider_by_year(settlement)
    comm = commissioner_by_year(settlement) if commissioner is None else commissioner
    pay = settlement.payments
    outcome = pay[pay["kind"].isin(["outcome", "clawback", "offending"])]
    out = pd.DataFrame(index=prov.index)
    out["observed"] = prov["observed"].astype(bool)
    out["income"] = prov["income"]
    out["outcome_payments"] = outcome.groupby("contract_year")["amount"].sum().reindex(prov.index, fill_value=0.0)
    out["cost"] = prov["cost"]
    out["margin"] = prov["margin"]
    out["working_capital_needed"] = prov["working_capital_needed"]
    out["spend"] = comm["spend"].reindex(prov.index)
    out["assessments"] = comm["assessments"].reindex(prov.index)
    out["planned_exits"] = comm["planned_exits"].reindex(prov.index)
    out["spend_per_planned_exit"] = comm["spend_per_planned_exit"].reindex(prov.index)
    out["community_savings"] = comm["community_savings"].reindex(prov.index)
    offending = pay[pay["kind"] == "offending"]
    out["offending_payment"] = offending.groupby("contract_year")["amount"].sum().reindex(prov.index, fill_value=0.0)
    out["offending_fraction_paid"] = np.nan
    if len(settlement.offending):
        off = settlement.offending.set_index("contract_year")
        out["offending_fraction_paid"] = off["fraction_paid"].where(off["observed"]).reindex(prov.index)
    return out[["observed", *METRICS, "offending_fraction_paid"]]


def term_metrics(by_year: pd.DataFrame) -> pd.Series:
    """Totals over the observed contract years (the largest working capital; spend per planned exit of the
    totals)."""
    observed = by_year[by_year["observed"]]
    term = observed[list(_TERM_SUMS)].astype(float).sum()
    term["working_capital_needed"] = observed["working_capital_needed"].max() if len(observed) else np.nan
    term["spend_per_planned_exit"] = (term["spend"] / term["planned_exits"] if term["planned_exits"] > 0
                                      else np.nan)
    return term.reindex(list(METRICS))
