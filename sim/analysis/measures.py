"""The measures commissioners already report, as pure functions of a History.

``by_period(history, freq, by)`` gives one row per reporting period (financial ``year`` or ``quarter``) and
category (``by=None``: all clients; ``"band"``: the episode's LASARS band; ``"group"``: the substance group),
with these columns:

=============================  ===========  =============================================================
column                         unit         definition
=============================  ===========  =============================================================
referrals                      people       referrals received (first referrals and re-presentations)
re_presentations               people       referrals of people who had been referred before
assessments                    people       LASARS assessments completed
treatment_starts               people       structured treatment episodes started
in_treatment                   people       people in structured treatment at any time in the period
in_treatment_at_end            people       people in structured treatment at the end of the period
waiting_at_end                 people       assessed, waiting for a caseload place, at the end of the period
waiting_mean                   people       time-average number waiting for a caseload place
mean_wait_days                 days         referral to treatment start, for starts in the period
started_within_3_weeks         share        of starts in the period, referral to start <= 21 days
exits                          people       treatment exits (every reason)
planned_exits                  people       exits free of dependence (the NDTMS "successful completion")
dropped_out, declined,         people       unplanned exits, by reason (withdrawn: treatment withdrawn,
withdrawn, transferred,                     moved away or other)
custody,
died_in_treatment
planned_share_of_exits         share        planned_exits / exits
successful_completions         share        planned_exits / in_treatment (NDTMS: of all in treatment)
re_presented_6m, _12m          share        of planned exits in the period, those re-presenting within 6
                                            (12) months = 183 (365) days; empty where the window of an
                                            exit at the end of the period runs past the horizon
deaths                         people       deaths in or out of treatment
caseload_use, detox_bed_use,   share        occupied place-days / available place-days (all clients only)
rehab_place_use
=============================  ===========  =============================================================

Periods are cut at financial-year boundaries (1 April) and clipped to [contract start, end of horizon); the
warm-up is never reported.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from sim.core.calendar import periods as make_periods
from sim.core.vocabulary import BANDS, GROUPS, TREATMENT_EXITS, TREATMENT_STATES
from sim.engine.history import History

BREAKDOWNS = (None, "band", "group")
WINDOW_DAYS = {6: 183.0, 12: 365.0}  # re-presentation windows, in whole days


def _episodes(h: History) -> pd.DataFrame:
    ep = h.episodes.merge(h.clients[["client_id", "group"]], on="client_id", how="left")
    ep["band"] = ep["band"].astype(object).where(ep["band"].notna(), "unassessed")
    ep["group"] = ep["group"].astype(object)
    nxt = ep.groupby("client_id")["referral"].shift(-1)
    ep["next_referral"] = nxt.to_numpy()
    return ep


def _category(frame: pd.DataFrame, by: str | None) -> pd.Series:
    return pd.Series("all", index=frame.index) if by is None else frame[by].astype(object)


def _count(times: pd.Series, cats: pd.Series, per: pd.DataFrame) -> Counter:
    """Count of times falling in each [start, end) period, by category: keyed (period index, category); only
    the pairs that occur."""
    t = times.to_numpy(dtype=float)
    idx = np.searchsorted(per["start"].to_numpy(), t, side="right") - 1
    ok = (idx >= 0) & ~np.isnan(t) & cats.notna().to_numpy()  # no category, no count (as a groupby drops it)
    ok[ok] = t[ok] < per["end"].to_numpy()[idx[ok]]
    return Counter(zip(idx[ok].tolist(), cats.to_numpy()[ok].tolist()))


def _count_table(counts: dict[str, Counter]) -> pd.DataFrame:
    """One column per count, one row per (period index, category) any of them has; 0 where one has none."""
    keys = sorted(set().union(*counts.values()))
    index = pd.MultiIndex.from_arrays([[k[0] for k in keys], [k[1] for k in keys]], names=["p", "category"])
    return pd.DataFrame({name: [c[k] for k in keys] for name, c in counts.items()}, index=index, dtype=np.int64)


def by_period(history: History, freq: str = "quarter", by: str | None = None) -> pd.DataFrame:
    """Measures per reporting period and category (see the module docstring)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {BREAKDOWNS}, got {by!r}")
    per = make_periods(history.contract_start, history.end, freq)
    ep = _episodes(history)
    ep["category"] = _category(ep, by)
    first = float(per["start"].iloc[0]) if len(per) else history.end
    spells = history.spells
    spells = spells[spells["end"] > first]  # a spell over before the first period counts in none (the warm-up)
    spells = spells.merge(ep[["client_id", "episode", "category"]], on=["client_id", "episode"], how="left")
    spells["category"] = spells["category"].fillna("unassessed")

    counts: dict[str, Counter] = {}
    counts["referrals"] = _count(ep["referral"], ep["category"], per)
    rep = ep[ep["episode"] > 0]
    counts["re_presentations"] = _count(rep["referral"], rep["category"], per)
    counts["assessments"] = _count(ep["assessed"], ep["category"], per)
    counts["treatment_starts"] = _count(ep["treatment_start"], ep["category"], per)
    treated = ep[ep["treatment_start"].notna() & ep["exit_reason"].isin(TREATMENT_EXITS)]
    counts["exits"] = _count(treated["exit"], treated["category"], per)
    for reason in TREATMENT_EXITS:
        sub = treated[treated["exit_reason"] == reason]
        name = "planned_exits" if reason == "planned" else ("died_in_treatment" if reason == "died" else reason)
        counts[name] = _count(sub["exit"], sub["category"], per)
    events = history.events
    deaths = events[(events["kind"] == "death") & (events["time"] >= first)].merge(
        ep[["client_id", "episode", "category"]], on=["client_id", "episode"], how="left")
    counts["deaths"] = _count(deaths["time"], deaths["category"].fillna("unassessed"), per)

    table = _count_table(counts)
    starts = ep[ep["treatment_start"].notna()].assign(wait=lambda d: d["treatment_start"] - d["referral"])
    t_idx = np.searchsorted(per["start"].to_numpy(), starts["treatment_start"].to_numpy(), side="right") - 1
    starts = starts.assign(p=t_idx)
    starts = starts[(starts["p"] >= 0) & (starts["treatment_start"] < history.end)]
    g = starts.groupby(["p", "category"])["wait"]
    table = table.join(g.mean().rename("mean_wait_days"), how="outer")
    within = (starts["wait"] <= 21).groupby([starts["p"], starts["category"]]).mean()
    table = table.join(within.rename("started_within_3_weeks"), how="outer")

    stocks = _stocks(spells, per)
    table = table.join(stocks, how="outer")
    categories = {None: ["all"], "band": list(BANDS), "group": list(GROUPS)}[by]
    categories += sorted(set(table.index.get_level_values("category")) - set(categories))  # e.g. unassessed
    table = table.reindex(pd.MultiIndex.from_product([range(len(per)), categories], names=["p", "category"]))
    int_cols = [c for c in table.columns if c not in ("mean_wait_days", "started_within_3_weeks", "waiting_mean")]
    table[int_cols] = table[int_cols].fillna(0).astype(int)
    table["waiting_mean"] = table["waiting_mean"].fillna(0.0)

    table["planned_share_of_exits"] = table["planned_exits"] / table["exits"].where(table["exits"] > 0)
    table["successful_completions"] = table["planned_exits"] / table["in_treatment"].where(table["in_treatment"] > 0)
    for months in (6, 12):
        table[f"re_presented_{months}m"] = _re_presented(treated, per, months, history.end)
    if by is None:
        use = _capacity_use(history, spells, per)
        table = table.join(use)
    table = table.reset_index()
    table.insert(1, "period", per["period"].to_numpy()[table["p"]])
    table.insert(2, "period_start", history.date(per["start"].to_numpy()[table["p"]]))
    table.insert(3, "period_end", history.date(per["end"].to_numpy()[table["p"]]))
    table.insert(4, "breakdown", by or "all")
    return table.drop(columns="p")


def _bounds(per: pd.DataFrame):
    """(period index, (start, end)) of each period, as plain floats."""
    return enumerate(zip(per["start"].tolist(), per["end"].tolist()))


def _stocks(spells: pd.DataFrame, per: pd.DataFrame) -> pd.DataFrame:
    """People in treatment during and at the end of each period, waiting at its end and on average, by
    category: index (period index, category), the categories with any of them."""
    treatment = spells[spells["state"].isin(TREATMENT_STATES)]
    waiting = spells[spells["state"] == "awaiting_treatment"]
    t_start, t_end = treatment["start"].to_numpy(float), treatment["end"].to_numpy(float)
    t_censored = treatment["censored"].to_numpy(bool)
    t_cat, t_id = treatment["category"].to_numpy(), treatment["client_id"].to_numpy()
    w_start, w_end = waiting["start"].to_numpy(float), waiting["end"].to_numpy(float)
    w_censored = waiting["censored"].to_numpy(bool)
    w_cat = waiting["category"].to_numpy()
    active, overlap, at_end, w_at_end = [], [], Counter(), Counter()
    for p, (a, b) in _bounds(per):
        m = (t_start < b) & (t_end > a)
        active.append((np.full(m.sum(), p), t_cat[m], t_id[m]))
        at_end.update((p, c) for c in t_cat[((t_start <= b) & (t_end > b)) | ((t_end == b) & t_censored)].tolist())
        w_at_end.update((p, c) for c in w_cat[((w_start <= b) & (w_end > b)) | ((w_end == b) & w_censored)].tolist())
        m = (w_start < b) & (w_end > a)
        overlap.append((np.full(m.sum(), p), w_cat[m], np.minimum(w_end[m], b) - np.maximum(w_start[m], a),
                        np.full(m.sum(), b - a)))
    active = pd.DataFrame(dict(zip(("p", "category", "client_id"), _stack(active, 3))))
    n = active.groupby(["p", "category"])["client_id"].nunique()
    w = pd.DataFrame(dict(zip(("p", "category", "days", "length"), _stack(overlap, 4))))
    grouped = w.groupby(["p", "category"])
    w_mean = grouped["days"].sum() / grouped["length"].first()
    keys = set(n.index) | set(w_mean.index) | set(at_end) | set(w_at_end)
    n, w_mean = n.to_dict(), w_mean.to_dict()
    rows = [(p, cat, n.get((p, cat), 0), at_end[(p, cat)], w_at_end[(p, cat)], float(w_mean.get((p, cat), 0.0)))
            for p, cat in keys]
    return pd.DataFrame(rows, columns=["p", "category", "in_treatment", "in_treatment_at_end", "waiting_at_end",
                                       "waiting_mean"]).set_index(["p", "category"])


def _stack(parts: list[tuple], width: int) -> list[np.ndarray]:
    """Per-period tuples of column arrays, concatenated column by column."""
    return [np.concatenate([part[i] for part in parts]) if parts else np.array([]) for i in range(width)]


def _re_presented(treated: pd.DataFrame, per: pd.DataFrame, months: int, end: float) -> pd.Series:
    """Share of planned exits in each period followed by a referral within ``months``; NaN if not observable."""
    planned = treated[treated["exit_reason"] == "planned"]
    exit_, cat = planned["exit"].to_numpy(), planned["category"].to_numpy()
    back = (planned["next_referral"].to_numpy() - exit_) <= WINDOW_DAYS[months]
    known = planned["category"].notna().to_numpy()
    out = {}
    for p, (a, b) in _bounds(per):
        m = (exit_ >= a) & (exit_ < b)
        if b + WINDOW_DAYS[months] > end:
            for c in pd.unique(cat[m]):
                out[(p, c)] = np.nan
            continue
        m &= known  # an exit with no category is in no share (as a groupby drops it)
        counts = Counter(cat[m].tolist())
        returned = Counter(cat[m & back].tolist())
        for c, total in counts.items():
            out[(p, c)] = returned[c] / total
    return pd.Series(out, dtype=float)


PLACE_USE = {  # a use measure: (the capacity resource, the states that occupy it)
    "caseload_use": ("caseload", TREATMENT_STATES),
    "detox_bed_use": ("inpatient_detox_beds", frozenset({"inpatient_detox"})),
    "rehab_place_use": ("rehab_places", frozenset({"residential_rehab"})),
}


def capacity_steps(h: History, resource: str) -> tuple[list, np.ndarray]:
    """A resource's capacity in force as steps: the capacities and the times they hold from (one more, inf)."""
    cap = h.capacity[h.capacity["resource"] == resource].sort_values("time")
    return cap["capacity"].tolist(), np.append(cap["time"].to_numpy(dtype=float), np.inf)


def available_place_days(steps: tuple[list, np.ndarray], a: float, b: float) -> float:
    """Place-days in force between days ``a`` and ``b`` (``steps`` from :func:`capacity_steps`)."""
    capacity, times = steps
    return sum(c * max(0.0, min(b, t1) - max(a, t0)) for c, t0, t1 in zip(capacity, times[:-1], times[1:]))


def _capacity_use(h: History, spells: pd.DataFrame, per: pd.DataFrame) -> pd.DataFrame:
    places = {}
    for name, (resource, states) in PLACE_USE.items():
        in_place = spells[spells["state"].isin(states)]
        places[name] = (in_place["start"].to_numpy(), in_place["end"].to_numpy(), capacity_steps(h, resource))
    rows = []
    for p, (a, b) in _bounds(per):
        values = {}
        for name, (start, end, steps) in places.items():
            m = (start < b) & (end > a)
            used = float((np.minimum(end[m], b) - np.maximum(start[m], a)).sum())
            avail = available_place_days(steps, a, b)
            values[name] = used / avail if avail > 0 else np.nan
        rows.append((p, "all", *values.values()))
    return pd.DataFrame(rows, columns=["p", "category", *PLACE_USE]).set_index(["p", "category"])


def all_breakdowns(history: History, freq: str = "quarter") -> pd.DataFrame:
    """``by_period`` for all clients, by band and by group, stacked."""
    return pd.concat([by_period(history, freq, by) for by in BREAKDOWNS], ignore_index=True)


def summary(history: History) -> pd.DataFrame:
    """Whole-horizon figures per substance group and overall, for the text summary and the README."""
    yearly = by_period(history, "year", "group")
    total = by_period(history, "year", None)
    rows = []
    for cat, d in [*yearly.groupby("category"), ("all", total)]:
        rows.append({
            "group": cat,
            "in_treatment_per_year": d["in_treatment"].mean(),
            "treatment_starts_per_year": d["treatment_starts"].mean(),
            "successful_completions": d["planned_exits"].sum() / d["in_treatment"].sum(),
            "planned_share_of_exits": d["planned_exits"].sum() / max(d["exits"].sum(), 1),
            "started_within_3_weeks": np.average(d["started_within_3_weeks"].fillna(0),
                                                 weights=d["treatment_starts"].clip(lower=1e-9)),
            "deaths_per_year": d["deaths"].mean(),
        })
    return pd.DataFrame(rows).set_index("group")
