"""TOP reviews and harm-reduction interventions of treatment episodes, generated after the run, vectorised.

Nothing in a review feeds back into the journey, so the simulation records only each treatment episode's
facts (who, when it started and ended, whether planned, when abstinence began, the parameters in force at its
start) and this module turns all of them into the ``reviews`` table and the ``bbv_test`` and ``hep_b_course_*``
events in one pass over arrays. The draws are the same keyed uniforms a per-episode loop would use
(:class:`sim.core.randomness.ClientRandom`, stream ``REVIEW``: indices 1-6 per episode, then 4 per review from 17),
so the result does not depend on how the work is batched.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from sim.config.scenario import Scenario
from sim.core.calendar import DAYS_PER_WEEK, DAYS_PER_YEAR
from sim.core.randomness import ClientRandom, Stream
from sim.core.vocabulary import USE_AT_REVIEW

NEITHER = USE_AT_REVIEW.index("neither")
EPISODE_COLUMNS = ("client_id", "episode", "g", "b", "epoch", "start", "end", "planned", "abstinent_from",
                   "injecting", "housing_problem", "offending_rate")
REVIEW_COLUMNS = ("client_id", "episode", "time", "number", "completed", "use", "injecting", "offending",
                  "housing_problem", "quality_of_life", "stage", "misrecorded")
_PER_EPISODE = 6   # uniforms per episode (indices 1-6); reviews use 4 each from index 17
_FIRST_REVIEW_INDEX = 17


def _ppf_each(dist, u: np.ndarray) -> np.ndarray:
    """Quantiles of many uniforms at once."""
    return np.asarray(dist.ppf(u), dtype=float).reshape(u.shape)


def generate(episodes: dict[str, np.ndarray], epochs: list[tuple[float, Scenario]], rng: ClientRandom,
             provider=None, chunk: int = 4096):
    """The reviews (a list of blocks, each a dict of columns) and the intervention events (a list of row tuples) of every treatment
    episode in ``episodes`` (columns ``EPISODE_COLUMNS``; ``epoch`` indexes ``epochs``), a chunk of episodes
    at a time so that the working arrays stay small. ``provider``: a :class:`sim.engine.provider.Provider` that acts in this run (None: the contract-blind model)
    whose effort shift (M3) changes review frequency, results, recording and unpaid care; None, or zero
    pressure, changes nothing."""
    n_ep = len(episodes["client_id"])
    parts, events = [], []
    for lo in range(0, max(n_ep, 1), chunk):
        part, part_events = _generate({k: v[lo:lo + chunk] for k, v in episodes.items()}, epochs, rng, provider)
        parts.append(part)
        events += part_events
    return parts, events


def _generate(episodes: dict[str, np.ndarray], epochs: list[tuple[float, Scenario]], rng: ClientRandom, provider):
    n_ep = len(episodes["client_id"])
    cid, epi = episodes["client_id"], episodes["episode"]
    start, end = episodes["start"], episodes["end"]
    planned = episodes["planned"]
    # per episode: the parameters in force at its start, by (epoch, group, band)
    step = np.empty(n_ep)
    p_completed, rho = np.empty(n_ep), np.empty(n_ep)
    ratio_before, ratio_in = np.empty(n_ep), np.empty(n_ep)
    qol_sd, stop_inj, housed, bbv_day = np.empty(n_ep), np.full(n_ep, np.inf), np.full(n_ep, -np.inf), np.empty(n_ep)
    p_bbv, p_hep, hep_days = np.empty(n_ep), np.empty(n_ep), np.empty(n_ep)
    cum_use = np.empty((n_ep, len(USE_AT_REVIEW)))
    qol_means = np.empty((n_ep, len(USE_AT_REVIEW)))
    u0 = rng.keyed(Stream.REVIEW, np.repeat(cid, _PER_EPISODE), np.repeat(epi, _PER_EPISODE),
                   np.tile(np.arange(1, _PER_EPISODE + 1, dtype=np.uint64), n_ep)).reshape(n_ep, _PER_EPISODE)
    key = (episodes["epoch"].astype(np.int64) * 64 + episodes["g"]) * 64 + episodes["b"]
    for k in np.unique(key):
        rows = np.flatnonzero(key == k)
        e, g, b = int(k) // 4096, int(k) // 64 % 64, int(k) % 64
        sc = epochs[e][1]
        rv, off = sc.reviews, sc.offending
        step[rows] = DAYS_PER_WEEK * rv.interval_weeks
        p_completed[rows] = rv.completed.at(g, b).value
        rho[rows] = rv.persistence
        cum_use[rows] = np.cumsum(rv.use.at(g, b).probabilities())
        ratio_before[rows] = off.before_treatment.at(g, b).value
        ratio_in[rows] = off.in_treatment.at(g, b).value
        qol_means[rows] = [rv.quality_of_life_mean[x] for x in USE_AT_REVIEW]
        qol_sd[rows] = rv.quality_of_life_sd
        inj = rows[episodes["injecting"][rows]]
        stop_inj[inj] = start[inj] + DAYS_PER_WEEK * _ppf_each(rv.stop_injecting_weeks.at(g, b), u0[inj, 3])
        hou = rows[episodes["housing_problem"][rows]]
        housed[hou] = start[hou] + DAYS_PER_WEEK * _ppf_each(rv.housing_resolved_weeks.at(g, b), u0[hou, 4])
        bbv_day[rows] = _ppf_each(rv.bbv_test_days.at(g, b), u0[rows, 1])
        p_bbv[rows] = rv.bbv_test.at(g, b).value
        p_hep[rows] = rv.hep_b_course.at(g, b).value
        hep_days[rows] = rv.hep_b_course_days

    misrecord = np.zeros(n_ep)
    if provider is not None and n_ep:
        effects = provider.review_effects(episodes["b"], start)
        misrecord = np.broadcast_to(effects.misrecord, (n_ep,)).astype(float)
        often = np.broadcast_to(effects.frequency, (n_ep,)) != 1.0
        step[often] = step[often] / np.broadcast_to(effects.frequency, (n_ep,))[often]
        good, unpaid = effects.multipliers[..., 0], effects.multipliers[..., 2]
        better = good != 1.0
        if better.any():  # odds of a good result (abstinent or improved) times the multiplier
            shares = np.diff(cum_use[better], prepend=0.0, axis=1)
            p_good = shares[:, :NEITHER].sum(axis=1)
            odds = p_good / np.maximum(1.0 - p_good, 1e-12) * good[better]
            scale = np.divide(odds / (1.0 + odds), p_good, out=np.ones_like(p_good), where=p_good > 0)
            shares[:, :NEITHER] *= scale[:, None]
            shares[:, NEITHER] = 1.0 - shares[:, :NEITHER].sum(axis=1)
            cum_use[better] = np.cumsum(shares, axis=1)
        care = unpaid != 1.0
        p_bbv[care] = np.minimum(p_bbv[care] * unpaid[care], 1.0)
        p_hep[care] = np.minimum(p_hep[care] * unpaid[care], 1.0)

    # per review: reviews at start and every interval to the end, plus a discharge review on a planned exit. A
    # routine review due on the exit day is held (a planned exit after exactly 12 weeks abstinent often falls on
    # one): the tolerance keeps that from turning on the last bit of two sums of days
    grid = np.floor((end - start) / step + 1e-9).astype(np.int64) + 1
    n = grid + planned
    row = np.repeat(np.arange(n_ep), n)
    first = np.cumsum(n) - n
    number = np.arange(len(row)) - first[row]
    stage = np.where(number == 0, 0, 1)
    stage[number >= grid[row]] = 2
    times = start[row] + step[row] * number
    times[stage == 2] = end[row[stage == 2]]
    counter = (_FIRST_REVIEW_INDEX + 4 * number).astype(np.uint64)
    rid, rep = cid[row], epi[row]
    u = np.stack([rng.keyed(Stream.REVIEW, rid, rep, counter + np.uint64(j)) for j in range(4)], axis=1)

    completed = (u[:, 0] < p_completed[row]) | (stage == 2)  # a planned exit is evidenced by its discharge review
    z = np.sqrt(rho[row]) * special.ndtri(u0[row, 5]) + np.sqrt(1 - rho[row]) * special.ndtri(u[:, 1])
    cum = cum_use[row]
    use = np.minimum((cum <= special.ndtr(z)[:, None]).sum(axis=1), cum.shape[1] - 1)
    use[times >= episodes["abstinent_from"][row]] = 0  # abstinent
    use[stage == 0] = NEITHER  # the start review is the baseline
    injecting = episodes["injecting"][row] & (((times < stop_inj[row]) & (use != 0)) | (stage == 0))
    housing = times < housed[row]
    ratio = np.where(stage == 0, ratio_before[row], ratio_in[row])
    offending = u[:, 2] < -np.expm1(-episodes["offending_rate"][row] * ratio * 28.0 / DAYS_PER_YEAR)
    misrecorded = np.zeros(len(row), dtype=bool)
    gaming = (misrecord[row] > 0) & (stage > 0) & ((use != 0) | injecting)
    if gaming.any():  # an unfavourable answer recorded one step better, and injecting recorded as stopped
        u_mis = rng.keyed(Stream.REVIEW_GAMING, rid[gaming], rep[gaming], number[gaming].astype(np.uint64) + 1)
        hit = np.flatnonzero(gaming)[u_mis < misrecord[row][gaming]]
        misrecorded[hit] = True
        use[hit] = np.maximum(use[hit] - 1, 0)
        injecting[hit] = False
    means = qol_means[row, use]
    qol = np.clip(np.rint(means + qol_sd[row] * special.ndtri(u[:, 3])), 0, 20).astype(np.int64)
    reviews = dict(zip(REVIEW_COLUMNS, (rid, rep, times, number, completed, use.astype(np.int64), injecting,
                                        offending, housing, qol, stage, misrecorded)))

    events = []
    bbv = (u0[:, 0] < p_bbv) & (start + bbv_day <= end)
    hep = episodes["injecting"] & (u0[:, 2] < p_hep)
    for i in np.flatnonzero(bbv | hep).tolist():
        c, e, s = int(cid[i]), int(epi[i]), float(start[i])
        if bbv[i]:
            events.append((c, e, s + float(bbv_day[i]), "bbv_test", ""))
        if hep[i]:
            events.append((c, e, s, "hep_b_course_start", ""))
            if s + float(hep_days[i]) <= end[i]:
                events.append((c, e, s + float(hep_days[i]), "hep_b_course_complete", ""))
    return reviews, events
