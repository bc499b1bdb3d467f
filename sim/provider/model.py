"""The provider model: everything the engine asks of a provider responding to its contract, precomputed
before a run from the scenario, the contract and a contract-blind pilot History (an argument: who runs the pilot
and caches it is :mod:`sim.experiments.providers`). It implements :class:`sim.engine.provider.Provider`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.config.behaviour import EFFORT_GROUPS, OFF, REVIEW_MEASURES, STRUCTURED_BANDS, Behaviour, BehaviourSpec
from sim.config.contract import Contract, ServiceTerms
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.vocabulary import BANDS
from sim.provider.decisions import (
    accept_probability,
    band_drift_probability,
    believed_count,
    defer_probability,
    deflection_fate,
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
    recode_probability,
    representation_risk,
    reserved_share,
    review_frequency_multiplier,
    threshold_distance,
    throttled_delay,
)
from sim.provider.pricing import price_schedule, share_at_risk
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

    def band_drift_at(self, score, cumulative, band: int, day: float) -> float:
        """M6 for a domain score drawn by inversion: how near it lies to the next more severe band, priced."""
        return float(self.band_drift_probability(threshold_distance(score, cumulative), band, day))

    def deflection(self, u_fate: float, u_delay: float) -> tuple[bool, float]:
        m = self.behaviour.cream_skimming
        signposted, delay = deflection_fate(u_fate, u_delay, signposted_share=m.signposted_share,
                                            delay_mean_days=m.delay_mean_days)
        return bool(signposted), float(delay)

    def start_delay(self, band: int, day: float, delay: float, caseload_use: float, belief: float) -> float:
        """M5 (a low-margin start slowed while the caseload is nearly full, no longer than a wait standard
        allows) and M7 (a start waits out an intake freeze)."""
        m = float(self.intake_throttle(band, day, caseload_use, belief))
        if m != 1.0:
            delay = float(throttled_delay(delay, m, self.terms.wait_standard_days))
        if self.cash is not None and bool(self.intake_frozen(day)):
            frozen = self.cash[self.cash["start"] > day]
            thaw = frozen.loc[~frozen["intake_frozen"].astype(bool), "start"]
            delay = max(delay, (float(thaw.iloc[0]) if len(thaw) else math.inf) - day)
        return delay

    def start_effort(self, band: int, day: float) -> tuple[float, float]:
        _, multipliers = self.effort(band, day)
        return float(multipliers[1]), 1.0 / float(multipliers[2])

    def discharge_shift(self, band: int, due: float, abstinent_days: float, relapse_years, represent_probability:
                        float, u: float) -> float:
        """M4: weigh holding one step against discharging now, from the chance of re-presenting within the
        year after discharge (``relapse_years``: the time-to-relapse distribution, years)."""
        def survival(days):
            return 1.0 - relapse_years.cdf(np.asarray(days) / DAYS_PER_YEAR)

        step = self.behaviour.discharge_timing.hold_step_days
        window = 365.0
        risk_now = representation_risk(survival, abstinent_days, window, represent_probability)
        risk_hold = representation_risk(survival, abstinent_days + step, window, represent_probability)
        return float(self.discharge_shift_days(band, due, risk_now, risk_hold, u))

    # --- time ---

    def year(self, t) -> np.ndarray:
        """0-based contract year of day(s) ``t`` (the first year before the start, the last after the term)."""
        if type(t) is float or type(t) is int:  # the engine asks about one day at a time
            return min(max(bisect.bisect_right(self.year_starts.tolist(), t) - 1, 0), len(self.year_starts) - 1)
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
            day = math.floor(t)
            memo = self.__dict__.setdefault("_pressure_by_day", {})
            g = memo.get(day)
            if g is None:
                g = memo[day] = float(self.pressure(np.array([float(day)]))[0])
            return np.float64(g)
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

    def accept_probability(self, band, t, z=0.0) -> np.ndarray:
        m = self.behaviour.cream_skimming
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        return accept_probability(self.margin(band, t, z), g, discretion=discretion(self.terms, m),
                                  max_deflected=m.max_deflected_share, sharpness=m.sharpness,
                                  threshold=m.threshold)

    def parking_probability(self, band, t, z=0.0) -> np.ndarray:
        m = self.behaviour.parking
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        effects = self.parking_effects()
        lost, saved = parking_stakes(self.revenue(band, t, z), self.months[np.asarray(band)],
                                     self.keywork_cost_per_month, effects)
        return parking_probability(lost, saved, g, max_parked=m.max_parked_share, sharpness=m.sharpness)

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
        y, b = self.year(t), np.asarray(band)
        per_measure: dict[str, np.ndarray] = {}
        for k, measure in enumerate(self.measures):
            per_measure[measure] = per_measure.get(measure, 0.0) + self.values[y, k, b] * self.expected[b, k]
        prices = np.stack([sum((per_measure.get(x, np.zeros(np.shape(y))) for x in EFFORT_GROUPS[grp]),
                               np.zeros(np.shape(y))) for grp in EFFORT_GROUPS], axis=-1)
        base = np.array([m.base_share_paid_reviews, m.base_share_exit_work, m.base_share_unpaid_care])
        shares = effort_shares(prices, g, base_shares=base, elasticity=m.elasticity)
        return shares, effort_multipliers(shares, base, m.outcome_elasticity)

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

    def sustained_window(self) -> float | None:
        """M4: the window (days from a planned exit) of the sustained non-re-presentation outcome, if the
        contract pays one; None otherwise."""
        sustained = self._by_measure(("sustained_recovery",))
        if not sustained.any() or not (self.at_evidence[:, sustained, :] > 0).any():
            return None
        return float(self.evidence_days[sustained].max())

    def defer_probability(self, t, days_to_window_end) -> float:
        """M4 (stress only by default): the chance a returning client's re-entry is put off past the window."""
        m = self.behaviour.discharge_timing
        g = self.pressure(t) if m.enabled else 0.0
        return float(defer_probability(g, days_to_window_end, True, max_defer=m.max_defer,
                                       within_days=m.defer_within_days))

    def recode_probability(self, t) -> float:
        """M4 (stress only by default): the chance an unplanned exit is recorded as a transfer out."""
        m = self.behaviour.discharge_timing
        g = self.pressure(t) if m.enabled else 0.0
        return float(recode_probability(g, max_recode=m.max_recode))

    def reserved_share(self, t) -> np.ndarray:
        m = self.behaviour.gatekeeping
        g = self.pressure(t) if m.enabled else np.zeros(np.shape(t))
        return reserved_share(g, reserved_share=m.reserved_share)
