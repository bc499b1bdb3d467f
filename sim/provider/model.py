"""The provider model: everything the engine asks of a provider responding to its contract, precomputed
before a run from the scenario, the contract and a contract-blind pilot History (an argument: who runs the pilot
and caches it is :mod:`sim.experiments.providers`). It implements :class:`sim.engine.provider.Provider`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.behaviour import EFFORT_GROUPS, MONTH_DAYS, OFF, REVIEW_MEASURES, STRUCTURED_BANDS, Behaviour, BehaviourSpec
from sim.config.contract import Contract, ServiceTerms
from sim.core.calendar import DAYS_PER_WEEK, DAYS_PER_YEAR
from sim.core.vocabulary import BANDS
from sim.provider.decisions import (
    accept_probability,
    band_drift_probability,
    believed_count,
    discharge_signal,
    discretion,
    effort_multipliers,
    effort_shares,
    fast_track_days,
    gaming_pressure,
    hold_days,
    independence,
    intake_throttle,
    margin_signal,
    misrecord_probability,
    parking_effects,
    parking_probability,
    parking_stakes,
    postpone_probability,
    reserved_share,
    review_frequency_multiplier,
)
from sim.provider.pricing import discount_factor, price_schedule, share_at_risk
from sim.provider.profiles import band_profile

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    from sim.config.scenario import Scenario
    from sim.engine.history import History



# --- 7. the engine's view ----------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ProviderModel:
    """Everything the engine needs, precomputed before a run: the resolved behaviour, the contract's service
    terms, the price schedule, the share at risk by contract year, per band the expected outcome values and
    counts, cost and length of stay, the revenue scale R-bar, and (M7) the cash path. Indexed by contract year
    (0-based here) and band (BANDS order; no_need rows are zero). Every method returns neutral values when the
    pressure is zero."""

    behaviour: Behaviour
    terms: ServiceTerms
    schedule: pd.DataFrame
    year_starts: np.ndarray          # days
    pbr_share: np.ndarray            # [year]
    share_at_risk: np.ndarray        # [year]
    outcomes: tuple[str, ...]
    measures: tuple[str, ...]        # [outcome]
    evidence_days: np.ndarray        # [outcome] deciding event (a planned exit) to evidence
    values: np.ndarray               # [year, outcome, band] present value at the deciding event (pounds)
    at_evidence: np.ndarray          # [year, outcome, band] value at evidence (pounds)
    expected: np.ndarray             # [band, outcome] paid achievements per starter
    cost: np.ndarray                 # [band] delivery cost per starter (pounds)
    months: np.ndarray               # [band] months on the caseload per starter
    revenue_scale: np.ndarray        # [year] R-bar (pounds)
    keywork_cost_per_month: float    # pounds per client-month on the caseload
    cash: pd.DataFrame | None = None

    def __post_init__(self):  # caches of the engine's questions (frozen: set once here)
        object.__setattr__(self, "_answers", {})
        object.__setattr__(self, "_by_day", {})
        object.__setattr__(self, "_daily", [])  # G by whole day from the contract start
        object.__setattr__(self, "_whole_years", all(float(x).is_integer() for x in self.year_starts))

    @classmethod
    def build(cls, scenario: Scenario, contract: Contract, history: History, behaviour: Behaviour | None = None,
              cash: pd.DataFrame | None = None, follow_up_days: float = 365.0) -> ProviderModel:
        """From a contract-blind History of the scenario (the same seed gives the same warm-up, hence the same
        baseline year, as the run with behaviour on)."""
        from sim.config.contract import contract_years

        if behaviour is None:
            spec = getattr(scenario, "behaviour", None)
            behaviour = spec.resolve() if isinstance(spec, BehaviourSpec) else OFF
        schedule = price_schedule(contract, scenario, history)
        prof = band_profile(contract, history, scenario, follow_up_days)
        names = tuple(contract.outcomes)
        years = contract.years
        values = np.zeros((years, len(names), len(BANDS)))
        at_evidence = np.zeros_like(values)
        by_key = schedule.set_index(["contract_year", "outcome", "band"])
        for y in range(years):
            for k, name in enumerate(names):
                rows = by_key.loc[[(y + 1, name, b) for b in BANDS]]
                values[y, k] = rows["present_value"].to_numpy()
                at_evidence[y, k] = rows["value"].to_numpy()
        first = schedule.drop_duplicates("outcome").set_index("outcome")
        expected = np.zeros((len(BANDS), len(names)))
        cost, months = np.zeros(len(BANDS)), np.zeros(len(BANDS))
        for i, b in enumerate(BANDS):
            if b in prof.achievements.index:
                expected[i] = prof.achievements.loc[b, list(names)].to_numpy()
                cost[i], months[i] = prof.cost[b], prof.months[b]
        revenue = np.einsum("yob,bo->yb", values, expected)
        starters = np.array([prof.starters.get(b, 0.0) for b in BANDS])
        scale = revenue @ starters / starters.sum()
        year_starts = np.array([a for _, a, _ in contract_years(scenario.horizon.contract_start, years)])
        c = scenario.capacity
        return cls(behaviour=behaviour, terms=contract.terms, schedule=schedule, year_starts=year_starts,
                   pbr_share=np.array([contract.share(y) for y in range(1, years + 1)]),
                   share_at_risk=share_at_risk(contract, schedule).to_numpy(), outcomes=names,
                   measures=tuple(first.loc[list(names), "measure"]) if names else (),
                   evidence_days=first.loc[list(names), "evidence_days"].to_numpy(float) if names else np.zeros(0),
                   values=values, at_evidence=at_evidence,
                   expected=expected, cost=cost, months=months, revenue_scale=scale,
                   keywork_cost_per_month=scenario.costs.recovery_worker_per_year / c.caseload_per_worker / 12.0,
                   cash=cash)

    def __repr__(self) -> str:  # the tables are large: a summary
        years = ", ".join(f"{x:.0%}" for x in np.asarray(self.share_at_risk, dtype=float))
        return (f"ProviderModel(mode={self.behaviour.mode!r}, provider={self.behaviour.profile.type!r}, "
                f"outcomes={len(self.outcomes)}, share at risk by contract year [{years}], "
                f"cash path={'yes' if self.cash is not None else 'no'})")

    # --- the engine's questions (sim.engine.provider.Provider) ---
    # One client decision at a time, as the engine meets them: plain float arithmetic over per-(contract year,
    # band) terms computed once (``_terms``), and per-pressure values cached, so that a responding provider
    # costs the engine little more than a contract-blind one. Each answer equals the vectorised functions of
    # sim.provider.decisions used by the methods below them (tests/unit/test_provider_answers.py).

    def acts_before(self, day: float) -> bool:
        """Whether the provider feels any gaming pressure before ``day`` (checked monthly from the contract
        start; a pressure below 1e-9, as a binding cap leaves, is none)."""
        if not self.behaviour.active:
            return False
        days = np.arange(0.0, day + 31.0, 30.0)
        return bool(np.any(self.pressure(days) > 1e-9))

    def responds(self, day: float) -> bool:
        """Gaming pressure is zero before the contract starts: the warm-up runs as the contract-blind model."""
        return day >= 0

    def band_drift_at(self, distance: float, band: int, day: float) -> float:
        """M6 for a domain score ``distance`` (:func:`threshold_distance`) from the next more severe band."""
        m = self.behaviour.band_drift
        if band == 0 or not m.enabled or not distance < m.eligibility_margin or \
                independence(self.terms, m) >= 1.0:
            return 0.0
        g, _ = self._on(day, band)
        return self._memo("drift", (g, self.year(day), band),
                          lambda: float(self.band_drift_probability(distance, band, day)))

    def accept_probability(self, band, day, belief=0.0):
        """M1: the chance an assessed referral is accepted for a start (vectorised over ``band``, ``day``,
        ``belief``; a float for one client's numbers, as the engine asks)."""
        m = self.behaviour.cream_skimming
        if not _one(band, day, belief):
            g = self.pressure(day) if m.enabled else np.zeros(np.shape(day))
            return accept_probability(self.margin(band, day, belief), g, discretion=discretion(self.terms, m),
                                      max_deflected=m.max_deflected_share, sharpness=m.sharpness,
                                      threshold=m.threshold)
        g, k = self._on(day, band)
        if g <= 0.0 or not m.enabled:
            return 1.0
        return 1.0 - discretion(self.terms, m) * m.max_deflected_share * g * \
            _expit(-m.sharpness * (k.margin(belief) - m.threshold))

    def deflection(self, u_fate: float, u_delay: float) -> tuple[bool, float]:
        m = self.behaviour.cream_skimming
        if u_fate < m.signposted_share:
            return True, 0.0
        return False, -m.delay_mean_days * math.log1p(-u_delay)

    def start_delay(self, band: int, day: float, delay: float, caseload_use: float, belief: float) -> float:
        """M5 (a low-margin start slowed while the caseload is nearly full, no longer than a wait standard
        allows) and M7 (a start waits out an intake freeze)."""
        m = self.behaviour.gatekeeping
        g, k = self._on(day, band)
        if g > 0.0 and m.enabled and caseload_use > m.utilisation_threshold:
            multiplier = 1.0 - m.max_throttle * g * _expit(-self.behaviour.profile.margin_sharpness * k.margin(belief))
            if multiplier < 1.0:
                slow = delay / multiplier if multiplier > 0 else math.inf
                if self.terms.wait_standard_days is not None:
                    slow = min(slow, max(delay, self.terms.wait_standard_days))
                delay = slow
        if self.cash is not None and bool(self.intake_frozen(day)):
            frozen = self.cash[self.cash["start"] > day]
            thaw = frozen.loc[~frozen["intake_frozen"].astype(bool), "start"]
            delay = max(delay, (float(thaw.iloc[0]) if len(thaw) else math.inf) - day)
        return delay

    def start_effort(self, band: int, day: float) -> tuple[float, float]:
        m = self.behaviour.effort_shift
        g, k = self._on(day, band)
        if g <= 0.0 or not m.enabled:
            return 1.0, 1.0
        base, rel = k.effort
        w = [b * math.exp(m.elasticity * g * r) for b, r in zip(base, rel)]
        total = sum(w)
        multipliers = [1.0 if x / total == b else (x / total / b) ** m.outcome_elasticity for x, b in zip(w, base)]
        return multipliers[1], 1.0 / multipliers[2]

    def parking_probability(self, band, t, z=0.0):
        """M2: the chance the episode is parked (vectorised over ``band``, ``t``, ``z``; a float for one
        client's numbers, as the engine asks)."""
        m = self.behaviour.parking
        if not _one(band, t, z):
            g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
            effects = self.parking_effects()
            lost, saved = parking_stakes(self.revenue(band, t, z), self.months[np.asarray(band)],
                                         self.keywork_cost_per_month, effects)
            return parking_probability(lost, saved, g, max_parked=m.max_parked_share, sharpness=m.sharpness)
        g, k = self._on(t, band)
        effects = self._memo("parking", None, self.parking_effects)
        saved = effects.effort_cut * self.keywork_cost_per_month
        if g <= 0.0 or not m.enabled or not saved > 0:
            return 0.0
        lost = (1.0 - effects.outcome_multiplier) * k.revenue(z) / k.months
        return g * m.max_parked_share * _expit(m.sharpness * (saved - lost) / saved)

    def discharge_shift(self, band: int, due: float, abstinent_days: float, relapse_years, represent_probability:
                        float, u: float) -> float:
        """M4: weigh holding one step against discharging now, from the chance of re-presenting within the
        year after discharge (``relapse_years``: the time-to-relapse distribution, years)."""
        m = self.behaviour.discharge_timing
        g, k = self._on(due, band)
        if g <= 0.0 or not m.enabled:
            return 0.0
        step, window = m.hold_step_days, 365.0
        s_now, s_later, s_held, s_held_later = (1.0 - relapse_years.cdf(np.array(
            [abstinent_days, abstinent_days + window, abstinent_days + step, abstinent_days + step + window])
            / DAYS_PER_YEAR)).tolist()
        risk_now = (s_now - s_later) / s_now * represent_probability if s_now > 0 else represent_probability
        risk_hold = (s_held - s_held_later) / s_held * represent_probability if s_held > 0 else \
            represent_probability
        signal = k.discharge_signal(risk_now, risk_hold)
        kappa = self.behaviour.profile.margin_sharpness
        p = g * max(math.tanh(kappa * signal / 2), 0.0)
        held = 0.0
        if p > 0:
            most = math.floor(m.max_hold_weeks * 7.0 / step)
            steps = most if p >= 1.0 else max(min(math.floor(math.log(u) / math.log(p)), most), 0)
            held = steps * step
        return held - 7.0 * m.max_fast_track_weeks * g * max(math.tanh(-kappa * signal / 2), 0.0)

    def caution_hold(self, band: int, due: float, u: float, u_weeks: float) -> float:
        """M4 caution: a ready client is held with probability min(max_held_share, caution x G) while the contract
        pays a sustained non-re-presentation outcome, for an exponential number of weeks (``u``, ``u_weeks``: the
        episode's uniforms for the decision and the length)."""
        m = self.behaviour.discharge_timing
        if not m.enabled or m.caution <= 0.0 or self.sustained_window() is None:
            return 0.0
        g, _ = self._on(due, band)
        if g <= 0.0 or u >= min(m.max_held_share, m.caution * g):
            return 0.0
        return -DAYS_PER_WEEK * m.caution_hold_weeks * math.log1p(-u_weeks)

    def held_decline_per_week(self) -> float:
        m = self.behaviour.discharge_timing
        return m.held_decline_per_week if m.enabled else 0.0

    def recode_probability(self, t) -> float:
        """M4 (stress only by default): the chance an unplanned exit is recorded as a transfer out."""
        m = self.behaviour.discharge_timing
        g = float(self.pressure(t)) if m.enabled else 0.0
        return g * m.max_recode if g > 0 else 0.0

    def sustained_window(self) -> float | None:
        """M4: the window (days from a planned exit) of the sustained non-re-presentation outcome, if the
        contract pays one; None otherwise."""
        def compute():
            sustained = self._by_measure(("sustained_recovery",))
            if not sustained.any() or not (self.at_evidence[:, sustained, :] > 0).any():
                return None
            return float(self.evidence_days[sustained].max())
        return self._memo("window", None, compute)

    def defer_probability(self, t, days_to_window_end) -> float:
        """M4 (stress only by default): the chance a returning client's re-entry is put off past the window."""
        m = self.behaviour.discharge_timing
        g = float(self.pressure(t)) if m.enabled else 0.0
        if g <= 0 or not 0 < days_to_window_end <= m.defer_within_days:
            return 0.0
        return g * m.max_defer

    def _memo(self, kind: str, key, compute):
        memo = self._answers
        value = memo.get((kind, key), memo)
        if value is memo:
            value = memo[(kind, key)] = compute()
        return value

    def _on(self, day: float, band: int) -> tuple[float, _Terms]:
        """G on ``day`` and the terms of its contract year for ``band``, kept by day (G is computed at the start
        of each day; contract years start on whole days)."""
        key = (math.floor(day), band) if self._whole_years else (day, band)
        hit = self._by_day.get(key)
        if hit is None:
            y = self.year(day)
            hit = self._by_day[key] = (float(self.pressure(day)),
                                       self._memo("terms", (y, band), lambda: _Terms.of(self, y, band)))
        return hit

    # --- time ---

    def year(self, t) -> np.ndarray:
        """0-based contract year of day(s) ``t`` (the first year before the start, the last after the term)."""
        if type(t) is float or type(t) is int:  # the engine asks about one day at a time
            starts = self._memo("year_starts", None, self.year_starts.tolist)
            return min(max(bisect.bisect_right(starts, t) - 1, 0), len(starts) - 1)
        return np.clip(np.searchsorted(self.year_starts, np.asarray(t, dtype=float), side="right") - 1, 0,
                       len(self.year_starts) - 1)

    def _cash_at(self, t, column: str, default):
        if self.cash is None or self.cash.empty:
            return np.full(np.shape(t), default)
        starts = self.cash["start"].to_numpy(float)
        i = np.searchsorted(starts, np.asarray(t, dtype=float), side="right") - 1
        vals = self.cash[column].to_numpy()
        return np.where(i >= 0, vals[np.clip(i, 0, len(vals) - 1)], default)

    def stress(self, t) -> np.ndarray:
        return self._cash_at(t, "stress", 0.0).astype(float)

    def intake_frozen(self, t) -> np.ndarray:
        return self._cash_at(t, "intake_frozen", False).astype(bool)

    def pressure(self, t) -> np.ndarray:
        """G at day(s) ``t``: zero before the contract, after a hand-back, and whenever behaviour is off. The
        engine asks about one day at a time: a single day's value is computed at the start of that day and kept
        (G moves over months: the learning ramp, the monthly cash path)."""
        if type(t) is float or type(t) is int:
            day, daily = math.floor(t), self._daily
            if not 0 <= day < len(daily):
                if day < 0:
                    return float(self.pressure(np.array([float(day)]))[0])
                daily[:] = self.pressure(np.arange(2 * day + 366, dtype=float)).tolist()  # the run's days at once
            return daily[day]
        handed = self._cash_at(t, "handed_back", False).astype(bool)
        g = gaming_pressure(self.behaviour, self.share_at_risk[self.year(t)], t, self.stress(t))
        return np.where(handed, 0.0, g)

    # --- margins ---

    def revenue(self, band, t, z=0.0) -> np.ndarray:
        """Expected outcome revenue of a starter of ``band`` (index), as the provider believes it (``z``: the
        client's standard normal belief shock)."""
        b = np.asarray(band)
        y = self.year(t)
        n = believed_count(self.expected[b], np.asarray(z, dtype=float)[..., None],
                           self.behaviour.profile.information_noise)
        return (self.values[y, :, b] * n).sum(axis=-1)

    def margin(self, band, t, z=0.0) -> np.ndarray:
        y = self.year(t)
        return margin_signal(self.revenue(band, t, z), self.cost[np.asarray(band)], self.pbr_share[y],
                             self.revenue_scale[y])

    # --- mechanisms ---

    def parking_effects(self) -> SimpleNamespace:
        return parking_effects(self.behaviour.parking, self.terms.contact_floor_per_month)

    def band_drift_probability(self, distance, band, t) -> np.ndarray:
        """M6: the chance the band (index) is recorded one more severe; ``distance`` from
        :func:`threshold_distance` of the domain score that set the band."""
        m = self.behaviour.band_drift
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        y = self.year(t)
        # the weight gap as the provider sees it: expected revenue of the next more severe band against this one
        gap = np.zeros((len(self.year_starts), len(BANDS)))
        rev = self.values.sum(axis=1)  # [year, band]: the band's prices at one of each outcome
        mean = rev[:, [BANDS.index(b) for b in STRUCTURED_BANDS]].mean(axis=1, keepdims=True)
        gap[:, 1:] = np.divide(rev[:, :-1] - rev[:, 1:], mean, out=np.zeros_like(rev[:, 1:]), where=mean > 0)
        b = np.asarray(band)
        p = band_drift_probability(distance, gap[y, b], g, independence=independence(self.terms, m),
                                   audit_share=self.terms.audit_share, eligibility_margin=m.eligibility_margin,
                                   baseline_drift=m.baseline_drift, price_response=m.price_response)
        return np.where(b > 0, p, 0.0)  # the most severe band has nowhere to drift to

    def intake_throttle(self, band, t, utilisation, z=0.0) -> np.ndarray:
        m = self.behaviour.gatekeeping
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        return intake_throttle(self.margin(band, t, z), g, utilisation, utilisation_threshold=m.utilisation_threshold,
                               max_throttle=m.max_throttle, sharpness=self.behaviour.profile.margin_sharpness)

    def effort(self, band, t) -> tuple[np.ndarray, np.ndarray]:
        """M3: effort shares and outcome multipliers (paid reviews, exit work, unpaid care) for a band."""
        m = self.behaviour.effort_shift
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        prices, base = self._effort_prices(self.year(t), np.asarray(band)), self._effort_base()
        shares = effort_shares(prices, g, base_shares=base, elasticity=m.elasticity)
        return shares, effort_multipliers(shares, base, m.outcome_elasticity)

    def _effort_prices(self, y, b) -> np.ndarray:
        """M3: the price of each effort group (the last axis) for contract year(s) ``y`` and band(s) ``b``."""
        per_measure: dict[str, np.ndarray] = {}
        for k, measure in enumerate(self.measures):
            per_measure[measure] = per_measure.get(measure, 0.0) + self.values[y, k, b] * self.expected[b, k]
        return np.stack([sum((per_measure.get(x, np.zeros(np.shape(y))) for x in EFFORT_GROUPS[grp]),
                             np.zeros(np.shape(y))) for grp in EFFORT_GROUPS], axis=-1)

    def _effort_base(self) -> np.ndarray:
        m = self.behaviour.effort_shift
        return np.array([m.base_share_paid_reviews, m.base_share_exit_work, m.base_share_unpaid_care])

    def reviews_paid(self) -> bool:
        """Whether any in-treatment TOP outcome is worth anything to the provider under this contract."""
        return bool(((self.at_evidence.max(axis=(0, 2)) > 0) & self._by_measure(REVIEW_MEASURES)).any())

    def review_effects(self, band, t) -> SimpleNamespace:
        """M3 at TOP reviews (applied where :mod:`sim.engine.reviews` writes them): the review-frequency multiplier,
        the chances a review soon after recorded use is postponed and an unfavourable item misrecorded, and the
        effort multipliers (paid reviews: odds of a good result; exit work: completion hazard; unpaid care: BBV
        test and hepatitis B chances, and the inverse on the drop-out hazard)."""
        m = self.behaviour.effort_shift
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        paid, verified = self.reviews_paid(), self.terms.verified_reviews
        _, multipliers = self.effort(band, t)
        return SimpleNamespace(
            frequency=review_frequency_multiplier(g, paid, max_review_frequency=m.max_review_frequency),
            postpone=postpone_probability(g, paid, verified, max_postpone=m.max_postpone),
            misrecord=misrecord_probability(g, paid, verified, self.terms.audit_share, max_misrecord=m.max_misrecord),
            multipliers=multipliers)

    def _by_measure(self, measures: tuple[str, ...]) -> np.ndarray:
        return np.array([m in measures for m in self.measures], dtype=bool)

    def discharge_signal(self, band, t, risk_now, risk_hold) -> np.ndarray:
        """M4 for a clinically ready client of ``band`` at day ``t``: holding one step against discharging now,
        from the contract's planned-exit and sustained-recovery values (the window of the heaviest sustained
        outcome), the paid in-treatment review outcomes earned meanwhile, and the at-risk share of the cost of a
        caseload month. ``risk_now`` / ``risk_hold``: re-presentation within the window if discharged now / after
        the hold (:func:`representation_risk`)."""
        y, b = self.year(t), np.asarray(band)
        exit_ = self._by_measure(("planned_exit",))
        sustained = self._by_measure(("sustained_recovery",))
        reviews = self._by_measure(REVIEW_MEASURES)
        window = float(self.evidence_days[sustained].max()) if sustained.any() else 365.0
        pi_exit = (self.at_evidence[y, :, b] * exit_).sum(axis=-1)
        pi_sustained = (self.at_evidence[y, :, b] * sustained).sum(axis=-1)
        months = np.maximum(self.months[b], 1.0)
        earning = (self.values[y, :, b] * self.expected[b] * reviews).sum(axis=-1) / months
        holding = self.pbr_share[y] * self.cost[b] / months
        return discharge_signal(pi_exit, pi_sustained, window, risk_now, risk_hold,
                                hold_days=self.behaviour.discharge_timing.hold_step_days,
                                revenue_scale=self.revenue_scale[y],
                                discount_per_month=self.behaviour.profile.discount_per_month,
                                in_treatment_revenue_per_month=earning, holding_cost_per_month=holding)

    def discharge_shift_days(self, band, t, risk_now, risk_hold, u) -> np.ndarray:
        """M4: days added to (held) or taken from (fast-tracked) a planned discharge; ``u`` one uniform."""
        m = self.behaviour.discharge_timing
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        s = self.discharge_signal(band, t, risk_now, risk_hold)
        kappa = self.behaviour.profile.margin_sharpness
        return hold_days(s, g, u, sharpness=kappa, hold_step_days=m.hold_step_days,
                         max_hold_weeks=m.max_hold_weeks) - \
            fast_track_days(s, g, sharpness=kappa, max_fast_track_weeks=m.max_fast_track_weeks)

    def reserved_share(self, t) -> np.ndarray:
        m = self.behaviour.gatekeeping
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        return reserved_share(g, reserved_share=m.reserved_share)


def _one(band, day, z) -> bool:
    """Whether a question is about one client (the engine's), not arrays of them."""
    return type(band) is int and isinstance(day, (float, int)) and isinstance(z, (float, int))


def _expit(x: float) -> float:
    """The logistic function of one number (as ``scipy.special.expit``, without overflow)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True)
class _Terms:
    """What a client's margin and a ready client's discharge signal are made of, for one contract year and
    band (:class:`ProviderModel`; pounds, months)."""

    noise: float
    outcomes: tuple[tuple[float, float, float], ...]  # (value, logit of the chance of one, count per chance)
    share_cost: float      # the at-risk share of the delivery cost
    scale: float           # R-bar
    months: float          # months on the caseload, at least 1
    exit_value: float
    sustained_value: float
    d_window: float        # discount over the sustained window and over a hold step
    d_hold: float
    hold_net: float        # in-treatment revenue less holding cost over a hold step
    effort: tuple          # M3: base effort shares, and prices relative to their base-weighted mean
    _revenue: dict = field(default_factory=dict, repr=False, compare=False)  # by belief shock

    @classmethod
    def of(cls, model: ProviderModel, y: int, b: int) -> _Terms:
        outcomes = []
        for k in range(len(model.outcomes)):
            n = float(model.expected[b, k])
            if n > 0:
                p = min(n, 1.0 - 1e-9)
                outcomes.append((float(model.values[y, k, b]), math.log(p / (1.0 - p)), n / p))
        exit_ = model._by_measure(("planned_exit",))
        sustained = model._by_measure(("sustained_recovery",))
        reviews = model._by_measure(REVIEW_MEASURES)
        window = float(model.evidence_days[sustained].max()) if sustained.any() else 365.0
        months = max(float(model.months[b]), 1.0)
        step = model.behaviour.discharge_timing.hold_step_days
        rate = model.behaviour.profile.discount_per_month
        earning = float((model.values[y, :, b] * model.expected[b] * reviews).sum()) / months
        holding = float(model.pbr_share[y] * model.cost[b]) / months
        prices, base = model._effort_prices(y, b), model._effort_base()
        mean = float((prices * base).sum())
        rel = (prices - mean) / mean if mean > 0 else np.zeros(len(base))
        return cls(noise=model.behaviour.profile.information_noise, outcomes=tuple(outcomes),
                   share_cost=float(model.pbr_share[y] * model.cost[b]), scale=float(model.revenue_scale[y]),
                   months=months, exit_value=float((model.at_evidence[y, :, b] * exit_).sum()),
                   sustained_value=float((model.at_evidence[y, :, b] * sustained).sum()),
                   d_window=float(discount_factor(window, rate)), d_hold=float(discount_factor(step, rate)),
                   hold_net=(earning - holding) * step / MONTH_DAYS, effort=(base.tolist(), rel.tolist()))

    def revenue(self, z: float) -> float:
        """Expected outcome revenue of a starter, as the provider believes it (``believed_count``)."""
        r = self._revenue.get(z)
        if r is None:
            r = self._revenue[z] = sum(v * (_expit(lp + self.noise * z) * f) for v, lp, f in self.outcomes)
        return r

    def margin(self, z: float) -> float:
        return (self.revenue(z) - self.share_cost) / self.scale if self.scale > 0 else 0.0

    def discharge_signal(self, risk_now: float, risk_hold: float) -> float:
        now = self.exit_value + self.sustained_value * (1.0 - risk_now) * self.d_window
        hold = self.d_hold * (self.exit_value + self.sustained_value * (1.0 - risk_hold) * self.d_window) + \
            self.hold_net
        return (hold - now) / self.scale if self.scale > 0 else 0.0
