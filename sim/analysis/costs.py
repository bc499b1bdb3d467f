"""What the treatment system costs, computed afterwards from a run's History (never inside SimPy).

Units: pounds, at the price base of the scenario's ``[costs]`` (West Kent: 2014-15 prices). Time is in days
since the contract start; a year is 365.25 days, as everywhere in the scenario. Only the reported horizon
[0, end) is costed: the warm-up that builds the stock of clients at contract start is never paid for, and a
spell that straddles day 0 or the end of the horizon is costed for its part inside.

Provider delivery costs, ``delivery_costs`` (items in ``PROVIDER_ITEMS``):

=================  ==========================================================================================
item               cost
=================  ==========================================================================================
staff              recovery workers in post x ``recovery_worker_per_year``, pro rata. Workers in post are the
                   caseload places in force (History ``capacity``) / ``caseload_per_worker`` of the scenario
                   epoch in force, so vacancies and new posts in ``[[schedule]]`` change the pay bill on their
                   day
overheads          hubs, management, clinical staff, recovery programme: ``overheads_per_year``, pro rata
prescribing        opioid substitution: client-days on the caseload (the six treatment states) in episodes
                   whose modality is ``ost`` x ``ost_per_client_year`` / 365.25
community_detox    ``community_detox`` per community detox started, dated at its start
inpatient_detox    bed-days in ``inpatient_detox`` x ``inpatient_detox_per_day``
rehab              days in ``residential_rehab`` / 7 x ``rehab_per_week``
bbv_tests          ``bbv_test`` per blood-borne virus test
hep_b              ``hep_b_course`` per hepatitis B vaccination course started
mutual_aid         recovery support: client-days on the caseload in episodes engaged with mutual aid x
                   ``mutual_aid_per_client_year`` / 365.25
=================  ==========================================================================================

Commissioner's costs, ``commissioner_costs``: ``assessments``, ``assessment`` per LASARS assessment completed
(the independent assessment service is paid by the commissioner, not the provider).

Prices per client (OST, detox, rehab) are taken by the episode's substance group and need band. Prices are
those of the scenario as given: a dated ``[[schedule]]`` change to a price is not applied (only the staff
numbers follow the epochs, through the capacity in force).

Rows are dated cash flows, tidy: ``period`` (``"2012-04"`` for months; financial years and quarters as in
:mod:`sim.core.calendar`), ``start`` and ``end`` (days), ``item``, ``cost`` (pounds), one row per period and item,
zero rows included. ``costs_by_period`` re-aggregates them into reporting periods.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_WEEK, DAYS_PER_YEAR, FREQUENCIES
from sim.core.calendar import periods as make_periods
from sim.core.distributions import Scalar
from sim.core.vocabulary import BANDS, GROUPS, TREATMENT_STATES
from sim.engine.history import History, derived

PROVIDER_ITEMS: tuple[str, ...] = ("staff", "overheads", "prescribing", "community_detox", "inpatient_detox",
                                   "rehab", "bbv_tests", "hep_b", "mutual_aid")
COMMISSIONER_ITEMS: tuple[str, ...] = ("assessments",)
COST_FREQUENCIES = ("month", *FREQUENCIES)
COLUMNS = ["period", "start", "end", "item", "cost"]

_TREATMENT = sorted(TREATMENT_STATES)
_NO_BAND = len(BANDS)  # column of a price table used when an episode has no band (never assessed)


# --- public --------------------------------------------------------------------------------------------------


@derived
def delivery_costs(history: History, scenario: Scenario, freq: str = "month") -> pd.DataFrame:
    """The provider's delivery costs (pounds), one row per period and item (``PROVIDER_ITEMS``).

    ``freq``: ``"month"`` (calendar months from the contract start, clipped to the horizon), or the financial
    ``"quarter"`` or ``"year"`` of :func:`sim.core.calendar.periods`.
    """
    labels, edges = _edges(history, freq)
    c = scenario.costs
    per_day = 1.0 / DAYS_PER_YEAR
    on_caseload = _spells(history, _TREATMENT)
    ost = on_caseload[on_caseload["ost"]]
    engaged = on_caseload[on_caseload["mutual_aid"]]
    detox = _spells(history, ["inpatient_detox"])
    rehab = _spells(history, ["residential_rehab"])
    amounts = {
        "staff": _staff(history, scenario, edges),
        # a fixed yearly sum, paid day by day
        "overheads": c.overheads_per_year * per_day * np.diff(edges),
        "prescribing": _accrue(ost, _prices(c.ost_per_client_year, ost) * per_day, edges),
        "community_detox": _count(_events(history, "community_detox_start"), edges, c.community_detox),
        "inpatient_detox": _accrue(detox, _prices(c.inpatient_detox_per_day, detox), edges),
        "rehab": _accrue(rehab, _prices(c.rehab_per_week, rehab) / DAYS_PER_WEEK, edges),
        "bbv_tests": _count(_events(history, "bbv_test"), edges, c.bbv_test),
        "hep_b": _count(_events(history, "hep_b_course_start"), edges, c.hep_b_course),
        "mutual_aid": _accrue(engaged, np.full(len(engaged), c.mutual_aid_per_client_year * per_day), edges),
    }
    return _frame(labels, edges, amounts)


@derived
def commissioner_costs(history: History, scenario: Scenario, freq: str = "month") -> pd.DataFrame:
    """The commissioner's own costs (pounds): LASARS assessments, one row per period (item ``assessments``)."""
    labels, edges = _edges(history, freq)
    amounts = {"assessments": _count(_events(history, "assessed"), edges, scenario.costs.assessment)}
    return _frame(labels, edges, amounts)


def costs_by_period(cost_rows: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """Cost rows (as from ``delivery_costs``) re-aggregated into reporting periods (as from
    :func:`sim.core.calendar.periods`): columns ``period``, one per item (in the order first met), ``total``.

    A row that straddles a period boundary is split in proportion to time (a month's one-off costs, such as
    tests, are treated as spread evenly over the month; financial years and quarters cut at month boundaries,
    so this only matters for periods of other shapes). Cost outside every period is left out.
    """
    items = list(dict.fromkeys(cost_rows["item"]))
    s = cost_rows["start"].to_numpy(float)[:, None]
    e = cost_rows["end"].to_numpy(float)[:, None]
    ps = periods["start"].to_numpy(float)[None, :]
    pe = periods["end"].to_numpy(float)[None, :]
    overlap = np.clip(np.minimum(e, pe) - np.maximum(s, ps), 0.0, None)
    length = e - s
    share = np.divide(overlap, length, out=np.zeros_like(overlap), where=length > 0)
    code = pd.Categorical(cost_rows["item"], categories=items).codes
    table = np.zeros((len(items), len(periods)))
    np.add.at(table, code, cost_rows["cost"].to_numpy(float)[:, None] * share)
    out = pd.DataFrame(table.T, columns=items)
    out.insert(0, "period", periods["period"].to_numpy())
    out["total"] = table.sum(axis=0)
    return out


# --- periods -------------------------------------------------------------------------------------------------


def _edges(h: History, freq: str) -> tuple[list[str], np.ndarray]:
    """Period labels and their boundaries (days): ``len(edges) == len(labels) + 1``, tiling [0, end)."""
    end = float(h.end)
    if freq in FREQUENCIES:
        per = make_periods(h.contract_start, end, freq)
        return list(per["period"]), np.r_[per["start"].to_numpy(float), per["end"].to_numpy(float)[-1:]]
    if freq != "month":
        raise ValueError(f"freq must be one of {COST_FREQUENCIES}, got {freq!r}")
    d0 = h.contract_start
    labels, edges = [], []
    y, m, day = d0.year, d0.month, 0.0
    while day < end:  # calendar months, the first and last clipped to the horizon
        labels.append(f"{y:04d}-{m:02d}")
        edges.append(day)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        day = float((dt.date(y, m, 1) - d0).days)
    return labels, np.array(edges + [end] if labels else [], dtype=float)


def _frame(labels: list[str], edges: np.ndarray, amounts: dict[str, np.ndarray]) -> pd.DataFrame:
    items = list(amounts)
    k = len(items)
    if not labels:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("start", "end", "cost") else object)
                             for c in COLUMNS})
    return pd.DataFrame({
        "period": np.repeat(labels, k),
        "start": np.repeat(edges[:-1], k),
        "end": np.repeat(edges[1:], k),
        "item": np.tile(items, len(labels)),
        "cost": np.column_stack([amounts[i] for i in items]).ravel(),
    })


# --- accrual -------------------------------------------------------------------------------------------------


def _accrue(spells: pd.DataFrame, rate_per_day: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Pounds accrued in each period by rates (pounds/day) that flow over the spells' [start, end).

    The running total F(B) = sum_i rate_i x (min(end_i, B) - start_i)+ at each boundary B, from cumulative
    sums over the sorted spell starts and ends: one sort, however many periods and spells.
    """
    if len(edges) == 0:
        return np.zeros(0)
    lo = np.clip(spells["start"].to_numpy(float), edges[0], edges[-1])  # the warm-up is never costed
    hi = np.clip(spells["end"].to_numpy(float), edges[0], edges[-1])
    keep = hi > lo
    rate = np.asarray(rate_per_day, dtype=float)[keep]
    t = np.r_[lo[keep], hi[keep]]
    d = np.r_[rate, -rate]
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    cum_rate = np.r_[0.0, np.cumsum(d)]
    cum_rate_t = np.r_[0.0, np.cumsum(d * t)]
    k = np.searchsorted(t, edges, side="right")
    running = edges * cum_rate[k] - cum_rate_t[k]
    return np.maximum(np.diff(running), 0.0)  # prices are never negative: below 0 is the sums' rounding


def _count(events: pd.DataFrame, edges: np.ndarray, price: float | Scalar) -> np.ndarray:
    """Pounds of one-off costs dated at their events, per period (events in [0, end) only)."""
    if len(edges) == 0:
        return np.zeros(0)
    t = events["time"].to_numpy(float)
    inside = (t >= edges[0]) & (t < edges[-1])
    each = _prices(price, events) if isinstance(price, Scalar) else np.full(len(events), float(price))
    period = np.searchsorted(edges, t[inside], side="right") - 1
    return np.bincount(period, weights=each[inside], minlength=len(edges) - 1)


def _staff(h: History, scenario: Scenario, edges: np.ndarray) -> np.ndarray:
    """Pay of the recovery workers in post: caseload places in force / caseload per worker of the epoch."""
    epochs = scenario.epochs()
    epoch_start = np.array([t for t, _ in epochs], dtype=float)
    per_worker = np.array([s.capacity.caseload_per_worker for _, s in epochs], dtype=float)
    cap = h.capacity[h.capacity["resource"] == "caseload"].sort_values("time", kind="stable")
    if len(cap):  # the capacity the run actually had
        cap_time, places = cap["time"].to_numpy(float), cap["capacity"].to_numpy(float)
    else:  # a History without a capacity table: the scenario's own caseload, epoch by epoch
        cap_time, places = epoch_start, np.array([s.capacity.caseload for _, s in epochs], dtype=float)
    # workers are piecewise constant between any capacity change and any epoch start
    breaks = np.unique(np.r_[cap_time, epoch_start])
    at = lambda times, t: np.clip(np.searchsorted(times, t, side="right") - 1, 0, None)  # noqa: E731
    workers = places[at(cap_time, breaks)] / per_worker[at(epoch_start, breaks)]
    segments = pd.DataFrame({"start": breaks, "end": np.r_[breaks[1:], np.inf]})
    return _accrue(segments, workers * scenario.costs.recovery_worker_per_year / DAYS_PER_YEAR, edges)


# --- joining spells and events to the episode's group, band, modality and mutual aid --------------------------


def _with_episode(h: History, rows: pd.DataFrame) -> pd.DataFrame:
    ep = h.episodes[["client_id", "episode", "band", "modality", "mutual_aid"]]
    out = rows.merge(ep, on=["client_id", "episode"], how="left").merge(
        h.clients[["client_id", "group"]], on="client_id", how="left")
    out["g"] = pd.Categorical(out["group"], categories=GROUPS).codes
    out["b"] = pd.Categorical(out["band"], categories=BANDS).codes
    if (out["g"] < 0).any():
        raise ValueError("costs: spells or events of clients missing from the clients table")
    out["ost"] = (out["modality"] == "ost").fillna(False).astype(bool).to_numpy()
    out["mutual_aid"] = out["mutual_aid"].fillna(False).astype(bool)
    return out


def _spells(h: History, states: list[str]) -> pd.DataFrame:
    sp = h.spells
    sp = sp[sp["state"].isin(states) & (sp["end"] > 0) & (sp["start"] < h.end)]
    return _with_episode(h, sp[["client_id", "episode", "start", "end"]])


def _events(h: History, kind: str) -> pd.DataFrame:
    ev = h.events
    ev = ev[ev["kind"] == kind]
    return _with_episode(h, ev[["client_id", "episode", "time"]])


def _prices(rate: Scalar, rows: pd.DataFrame) -> np.ndarray:
    """The price that applies to each row's substance group and need band."""
    table = np.empty((len(GROUPS), len(BANDS) + 1))
    for g, group in enumerate(GROUPS):
        for b in range(len(BANDS)):
            table[g, b] = rate.at(g, b).value
        table[g, _NO_BAND] = rate.resolve(group, None).value
    b = rows["b"].to_numpy()
    return table[rows["g"].to_numpy(), np.where(b < 0, _NO_BAND, b)]
