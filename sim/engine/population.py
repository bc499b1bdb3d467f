"""Who arrives, when, and with which attributes.

Arrivals are non-homogeneous Poisson processes, one per substance group and referral source, generated whole
before the run by inverting the cumulative rate: unit-rate Poisson times mapped through the inverse of
Lambda(t) = integral of the rate. The rate in force on each day comes from the dated changes, the trend and the
seasonality. Because the mapping is monotone, a change to the rate after some date leaves every arrival before
that date, and its client id, exactly as it was.
"""

from __future__ import annotations

import math

import numpy as np

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.randomness import Stream, sequence_generator
from sim.core.vocabulary import GROUPS, SOURCES

CLIENTS_PER_STREAM = 1_000_000


def stream_index(g: int, s: int) -> int:
    return g * len(SOURCES) + s


def client_id(g: int, s: int, seq: int) -> int:
    """Stable client id: arrival stream x 1,000,000 + sequence within the stream."""
    return stream_index(g, s) * CLIENTS_PER_STREAM + seq


def daily_rates(scenario: Scenario, g: int, s: int, days: np.ndarray) -> np.ndarray:
    """First referrals per day of group g from source s, for each day starting at ``days``."""
    epochs = scenario.epochs()
    starts = np.array([e[0] for e in epochs])
    which = np.searchsorted(starts, days, side="right") - 1
    group = GROUPS[g]
    base = np.array([ep.population.arrivals_per_year[group]
                     * ep.population.referral_source.resolve(group).p.get(SOURCES[s], 0.0)
                     for _, ep in epochs]) / DAYS_PER_YEAR
    rate = base[which]
    pop = scenario.population
    mid = days + 0.5
    trend = pop.trend_per_year.resolve(group).value
    if trend:
        rate = rate * (1.0 + trend) ** (mid / DAYS_PER_YEAR)
    if pop.seasonality_amplitude:
        start = scenario.horizon.contract_start
        doy0 = start.timetuple().tm_yday
        peak = (pop.seasonality_peak_month - 1) * DAYS_PER_YEAR / 12 + 15
        rate = rate * (1 + pop.seasonality_amplitude * np.cos(2 * math.pi * (mid + doy0 - peak) / DAYS_PER_YEAR))
    return rate


def arrivals(scenario: Scenario, seed: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """(times, client ids) of every first referral in the simulated window, in time order."""
    h = scenario.horizon
    days = np.arange(math.floor(h.start_day), math.ceil(h.end_day), dtype=float)
    times, ids = [], []
    for g in range(len(GROUPS)):
        for s in range(len(SOURCES)):
            rate = daily_rates(scenario, g, s, days)
            cum = np.concatenate([[0.0], np.cumsum(rate)])
            total = cum[-1]
            if total <= 0:
                continue
            gen = sequence_generator(seed, Stream.ARRIVALS, g, s)
            unit = _unit_poisson_times(gen, total)
            day = np.searchsorted(cum, unit, side="right") - 1
            t = days[day] + (unit - cum[day]) / rate[day]
            keep = t >= h.start_day
            t = t[keep]
            if len(t) >= CLIENTS_PER_STREAM:
                raise ValueError(f"more than {CLIENTS_PER_STREAM} arrivals in one stream; shorten the horizon")
            times.append(t)
            ids.append(client_id(g, s, 0) + np.arange(len(t), dtype=np.int64))
    if not times:
        return np.array([]), np.array([], dtype=np.int64)
    t, cid = np.concatenate(times), np.concatenate(ids)
    order = np.lexsort((cid, t))
    return t[order], cid[order]


def _unit_poisson_times(gen: np.random.Generator, total: float) -> np.ndarray:
    """Event times of a unit-rate Poisson process on [0, total)."""
    chunks, last = [], 0.0
    n = int(total + 5 * math.sqrt(total) + 10)
    while True:
        t = last + np.cumsum(gen.exponential(1.0, n))
        chunks.append(t[t < total])
        if t[-1] >= total:
            return np.concatenate(chunks)
        last = t[-1]


def group_and_source(cid: int) -> tuple[int, int]:
    k = cid // CLIENTS_PER_STREAM
    return k // len(SOURCES), k % len(SOURCES)
