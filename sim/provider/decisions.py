"""The provider's decisions: one pure, vectorised function per mechanism (§3 of provider-behaviour.md).

:func:`gaming_pressure` G combines the share at risk with the provider's profit orientation, cash stress and
learning; each mechanism's function returns the probability or multiplier the engine applies. Every one is
exactly neutral (probability 0, multiplier 1.0) when G = 0, so a run at zero pressure is the contract-blind run
draw for draw. Margins are in units of the mean expected outcome revenue per client (R-bar).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from scipy import special

from sim.config.behaviour import EFFORT_GROUPS, MONTH_DAYS, STRUCTURED_BANDS, Behaviour
from sim.config.contract import ServiceTerms
from sim.core.vocabulary import BANDS
from sim.provider.pricing import discount_factor

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    pass



# --- 3. gaming pressure ------------------------------------------------------------------------------------------


def learning_ramp(t_days, learning_months: float):
    """1 - exp(-t / tau) from the contract start (0 before it): gaming builds up as the provider learns the
    rules (§3.2)."""
    months = np.maximum(np.asarray(t_days, dtype=float), 0.0) / MONTH_DAYS
    return -np.expm1(-months / learning_months)


def gaming_pressure(behaviour: Behaviour | None, share: Any, t_days: Any, stress: Any = 0.0) -> np.ndarray:
    """G = min(1, lambda x s x (1 + kappa_cash x stress) x ramp(t)) (§3.2), in [0, 1]: exactly 0 when behaviour
    is off, nothing is at risk (``share`` = 0: a block contract, a binding cap) or before the contract starts."""
    shape = np.broadcast(np.asarray(share), np.asarray(t_days), np.asarray(stress)).shape
    if behaviour is None or not behaviour.active:
        return np.zeros(shape)
    p = behaviour.profile
    g = behaviour.profit_orientation * np.asarray(share, dtype=float) * \
        (1.0 + p.cash_stress_gain * np.asarray(stress, dtype=float)) * learning_ramp(t_days, p.learning_months)
    return np.clip(g, 0.0, 1.0) + np.zeros(shape)


def _neutral(pressure, computed, neutral: float) -> np.ndarray:
    """``neutral`` exactly wherever the pressure is zero, so zero pressure changes no number in the engine."""
    pressure = np.asarray(pressure, dtype=float)
    return np.where(pressure > 0, computed, neutral)


# --- 4. beliefs and margins ---------------------------------------------------------------------------------------


def believed_probability(p_true, z, noise: float) -> np.ndarray:
    """The provider's belief about an outcome probability: logit(p_hat) = logit(p) + sigma_info x z, with z a
    standard normal of the client's (§3.2). Certain outcomes (0, 1) stay certain."""
    p = np.asarray(p_true, dtype=float)
    with np.errstate(divide="ignore"):
        return special.expit(special.logit(p) + noise * np.asarray(z, dtype=float))


def believed_count(expected, z, noise: float) -> np.ndarray:
    """As :func:`believed_probability` for an expected number of outcomes per client (which can exceed 1 for
    outcomes paid once per rolling window): the chance of at least one is believed with noise and the count
    scaled with it."""
    n = np.asarray(expected, dtype=float)
    p = np.minimum(n, 1.0 - 1e-9)
    return np.where(n > 0, believed_probability(p, z, noise) * n / np.where(p > 0, p, 1.0), 0.0)


def margin_signal(revenue, cost, share: Any, revenue_scale) -> np.ndarray:
    """A client's expected margin in units of R-bar: (expected outcome revenue - s x delivery cost) / R-bar.
    The core pays for (1 - s) of a client's cost, so a client breaks even when outcome payments cover the share
    at risk (``share``: the contract year's PbR share)."""
    scale = np.asarray(revenue_scale, dtype=float)
    m = np.asarray(revenue, dtype=float) - np.asarray(share, dtype=float) * np.asarray(cost, dtype=float)
    return np.divide(m, scale, out=np.zeros(np.broadcast(m, scale).shape), where=scale > 0)


# --- 5. the mechanisms' decisions ----------------------------------------------------------------------------------


def discretion(terms: ServiceTerms, params: SimpleNamespace) -> float:
    """M1 d_disc: the provider's discretion over acceptance and start order, by who assesses; none when the
    assessor allocates every assessed client to a start."""
    if terms.intake == "assessor":
        return 0.0
    return getattr(params, f"discretion_{terms.assessment}")


def accept_probability(margin, pressure, *, discretion: float, max_deflected: float, sharpness: float,
                       threshold: float = 0.0) -> np.ndarray:
    """M1: the chance a referral is accepted for a start, 1 - d_disc x r_max x G x logistic(-kappa_sel x
    (margin - theta_sel)) (§3.3). Falls as the client's margin falls and as pressure rises (lowering the Critical
    share of starters where Critical clients return less than they cost). Damped to nothing by an independent
    assessor who allocates starts (``discretion`` 0), by pricing that lifts low-margin bands (engagement fees,
    steeper weights), and by a binding cap (pressure 0)."""
    p = discretion * max_deflected * np.asarray(pressure, dtype=float) * \
        special.expit(-sharpness * (np.asarray(margin, dtype=float) - threshold))
    return _neutral(pressure, 1.0 - p, 1.0)


def deflection_fate(u_fate, u_delay, *, signposted_share: float, delay_mean_days: float):
    """M1: what happens to a deflected referral: signposted out (True), or delayed by an exponential delay
    (days; 0 for the signposted). Two uniforms from the client's intake stream."""
    signposted = np.asarray(u_fate) < signposted_share
    delay = np.where(signposted, 0.0, -delay_mean_days * np.log1p(-np.asarray(u_delay, dtype=float)))
    return signposted, delay


def parking_effects(params: SimpleNamespace, contact_floor_per_month: float | None = None) -> SimpleNamespace:
    """M2: what parking does to a parked client, after the contract's contact floor (§3.4): the contact-rate
    multiplier, the multiplier on positive-outcome hazards (completion, improvement at review), the drop-out
    multiplier, and ``effort_cut`` (the share of keywork saved). A floor at or above the standard contacts
    leaves nothing to cut: every multiplier is 1 and nothing is saved."""
    phi = params.contact_multiplier
    if contact_floor_per_month is not None:
        phi = max(phi, min(1.0, contact_floor_per_month / params.standard_contacts_per_month))
    cut = 1.0 - phi
    full = 1.0 - params.contact_multiplier
    scale = cut / full if full > 0 else 0.0  # the floor bounds the harm as it bounds the saving
    return SimpleNamespace(contact_multiplier=phi, outcome_multiplier=1.0 - params.outcome_cut * scale,
                           drop_out_multiplier=1.0 + (params.drop_out_multiplier - 1.0) * scale, effort_cut=cut)


def parking_stakes(revenue, episode_months, keywork_cost_per_month: float, effects: SimpleNamespace):
    """M2: for a month parked, the expected outcome revenue lost (Delta R: the outcome cut times a month's
    share of the episode's expected revenue) and the keywork cost saved (Delta c), in pounds."""
    months = np.maximum(np.asarray(episode_months, dtype=float), 1.0)
    lost = (1.0 - effects.outcome_multiplier) * np.asarray(revenue, dtype=float) / months
    saved = effects.effort_cut * keywork_cost_per_month
    return lost, saved


def parking_probability(revenue_lost, cost_saved, pressure, *, max_parked: float, sharpness: float) -> np.ndarray:
    """M2: the chance a client is parked at a monthly keywork review, G x p_park_max x logistic(kappa_park x
    (Delta c - Delta R) / Delta c) (§3.4). Higher for clients whose outcomes return little (hard bands priced
    flat, binding caps at the margin of revenue, long lags); zero when a contact floor leaves nothing to save."""
    saved = np.asarray(cost_saved, dtype=float)
    z = np.divide(saved - np.asarray(revenue_lost, dtype=float), saved, out=np.zeros(np.broadcast(
        saved, np.asarray(revenue_lost)).shape), where=saved > 0)
    p = np.where(saved > 0, np.asarray(pressure, dtype=float) * max_parked * special.expit(sharpness * z), 0.0)
    return _neutral(pressure, p, 0.0)


def effort_prices(values: dict[str, float]) -> np.ndarray:
    """M3: the price of each effort group (paid reviews, exit work, unpaid care) from expected outcome values
    per client by measure (pounds)."""
    return np.array([sum(values.get(m, 0.0) for m in EFFORT_GROUPS[g]) for g in EFFORT_GROUPS])


def effort_shares(prices, pressure, *, base_shares, elasticity: float) -> np.ndarray:
    """M3: effort shares (paid reviews, exit work, unpaid care), share_j proportional to base_j x exp(epsilon x G
    x (pi_j - pi_bar) / pi_bar), pi_bar the base-weighted mean price (§3.5: the reference's power law
    (pi_j / pi_bar) ** (epsilon x G) is undefined for an unpaid task; this form agrees with it for small shifts
    and leaves unpaid care a share). Prices along the last axis; the base shares when nothing is paid."""
    base = np.asarray(base_shares, dtype=float)
    prices = np.asarray(prices, dtype=float)
    g = np.asarray(pressure, dtype=float)[..., None]
    mean = (prices * base).sum(axis=-1, keepdims=True)
    rel = np.divide(prices - mean, mean, out=np.zeros(np.broadcast(prices, mean).shape), where=mean > 0)
    w = base * np.exp(elasticity * g * rel)
    shares = w / w.sum(axis=-1, keepdims=True)
    return np.where(g > 0, shares, base)


def effort_multipliers(shares, base_shares, outcome_elasticity: float) -> np.ndarray:
    """M3: multiplier on each effort group's outcome odds or hazards, (share / base) ** gamma: paid reviews ->
    the odds of a good TOP result; exit work -> the completion hazard; unpaid care -> the chance of a BBV test
    or hepatitis B course, and the inverse on the drop-out hazard (retention is unpaid)."""
    shares = np.asarray(shares, dtype=float)
    base = np.asarray(base_shares, dtype=float)
    out = (shares / base) ** outcome_elasticity
    return np.where(np.isclose(shares, base, rtol=0, atol=0), 1.0, out)


def review_frequency_multiplier(pressure, reviews_paid: bool, *, max_review_frequency: float) -> np.ndarray:
    """M3: TOP reviews come this many times as often, 1 + G x (m_TOP_max - 1), where in-treatment review
    outcomes are paid (§3.5); 1 otherwise."""
    m = 1.0 + np.asarray(pressure, dtype=float) * (max_review_frequency - 1.0) * bool(reviews_paid)
    return _neutral(pressure, m, 1.0)


def postpone_probability(pressure, reviews_paid: bool, verified: bool, *, max_postpone: float) -> np.ndarray:
    """M3: the chance a review due within ``postpone_within_days`` of recorded use is postponed, G x p_time_max,
    where review outcomes are paid and TOP is self-reported; verified reviews remove it."""
    p = np.asarray(pressure, dtype=float) * max_postpone * (bool(reviews_paid) and not verified)
    return _neutral(pressure, p, 0.0)


def misrecord_probability(pressure, reviews_paid: bool, verified: bool, audit_share: float, *,
                          max_misrecord: float) -> np.ndarray:
    """M3: the chance an unfavourable TOP item is recorded favourably, G x p_mis_max x (1 - audit share), only
    where TOP is self-reported (verified reviews remove it; audit with clawback damps it)."""
    p = np.asarray(pressure, dtype=float) * max_misrecord * (1.0 - audit_share) * \
        (bool(reviews_paid) and not verified)
    return _neutral(pressure, p, 0.0)


def representation_risk(survival: Callable[[np.ndarray], np.ndarray], abstinent_days, window_days: float,
                        represent_probability=1.0) -> np.ndarray:
    """M4: rho, the chance a client discharged after ``abstinent_days`` of abstinence re-presents within the
    window: P(relapse within the window | abstinent so far) x P(re-present | relapse), from the survival
    function of time to relapse (days). With a falling relapse hazard, holding lowers it."""
    a = np.asarray(abstinent_days, dtype=float)
    s_now = survival(a)
    later = survival(a + window_days)
    risk = np.divide(s_now - later, s_now, out=np.ones(np.broadcast(s_now, later).shape), where=s_now > 0)
    return risk * np.asarray(represent_probability, dtype=float)


def discharge_signal(exit_value, sustained_value, window_days: float, risk_now, risk_hold, *, hold_days: float,
                     revenue_scale, discount_per_month: float, in_treatment_revenue_per_month=0.0,
                     holding_cost_per_month=0.0) -> np.ndarray:
    """M4: (EM_hold - EM_now) / R-bar for a clinically ready client (§3.6), with EM_now = pi_1.3 + pi_1.4 x
    (1 - rho_now) x delta ** W and EM_hold the same a hold step later (with rho after the hold) plus in-treatment
    revenue less holding cost over the step. Values are the schedule's ``value`` (pounds at evidence).
    Positive: holding pays (a heavy 1.4); negative: discharge now or sooner (1.3 priced without 1.4)."""
    d_window = discount_factor(window_days, discount_per_month)
    d_hold = discount_factor(hold_days, discount_per_month)
    now = exit_value + sustained_value * (1.0 - np.asarray(risk_now, dtype=float)) * d_window
    hold = d_hold * (exit_value + sustained_value * (1.0 - np.asarray(risk_hold, dtype=float)) * d_window) + \
        (np.asarray(in_treatment_revenue_per_month, dtype=float) - holding_cost_per_month) * hold_days / MONTH_DAYS
    scale = np.asarray(revenue_scale, dtype=float)
    return np.divide(hold - now, scale, out=np.zeros(np.broadcast(hold, scale).shape), where=scale > 0)


def hold_probability(signal, pressure, *, sharpness: float) -> np.ndarray:
    """M4: the chance a ready client is held for one more step, G x tanh(kappa x signal / 2) where holding pays
    (0 otherwise). The reference's G x logistic(kappa x signal) holds an indifferent client half the time; this
    form is 0 at indifference, so the response changes sign with the prices."""
    p = np.asarray(pressure, dtype=float) * np.maximum(np.tanh(sharpness * np.asarray(signal, dtype=float) / 2), 0)
    return _neutral(pressure, p, 0.0)


def hold_days(signal, pressure, u, *, sharpness: float, hold_step_days: float, max_hold_weeks: float) -> np.ndarray:
    """M4: extra days a ready client is kept, in whole hold steps: held k steps when u < p ** k (one uniform per
    client), up to H_max. Longer stays, fewer re-presentations within the window; slots blocked meanwhile."""
    p = hold_probability(signal, pressure, sharpness=sharpness)
    most = math.floor(max_hold_weeks * 7.0 / hold_step_days)
    u = np.asarray(u, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.where(p >= 1, most, np.where(p > 0, np.floor(np.log(u) / np.log(np.where(
            (p > 0) & (p < 1), p, 0.5))), 0.0))
    return _neutral(pressure, np.minimum(np.maximum(steps, 0.0), most) * hold_step_days, 0.0)


def fast_track_days(signal, pressure, *, sharpness: float, max_fast_track_weeks: float) -> np.ndarray:
    """M4: days a planned discharge is brought forward where discharging now pays better than holding
    (completion priced without a sustained test, or costly holding): 7 x weeks_max x G x tanh(kappa x |signal| / 2).
    Shorter stays, more re-presentations within the window."""
    s = np.asarray(signal, dtype=float)
    d = 7.0 * max_fast_track_weeks * np.asarray(pressure, dtype=float) * np.maximum(np.tanh(-sharpness * s / 2), 0)
    return _neutral(pressure, d, 0.0)


def defer_probability(pressure, days_to_window_end, sustained_priced: bool, *, max_defer: float,
                      within_days: float) -> np.ndarray:
    """M4 (stress only by default): the chance a returning client's re-entry, due within ``within_days`` before
    the window closes, is deferred past it: G x p_defer_max. Bunching of re-presentations just after W."""
    d = np.asarray(days_to_window_end, dtype=float)
    p = np.asarray(pressure, dtype=float) * max_defer * bool(sustained_priced) * ((d > 0) & (d <= within_days))
    return _neutral(pressure, p, 0.0)


def recode_probability(pressure, *, max_recode: float) -> np.ndarray:
    """M4 (stress only by default): the chance an unplanned exit is recorded as a transfer, G x p_recode_max."""
    return _neutral(pressure, np.asarray(pressure, dtype=float) * max_recode, 0.0)


def intake_throttle(margin, pressure, utilisation, *, utilisation_threshold: float, max_throttle: float,
                    sharpness: float, threshold: float = 0.0) -> np.ndarray:
    """M5: multiplier on the service-start rate of a referral (1 = none), 1 - throttle_max x G x
    logistic(-kappa x (margin - theta)) while caseload utilisation exceeds the threshold (§3.7). Slower starts
    and longer waits for low-margin (typically Critical) referrals when capacity binds. Damped by engagement
    fees (which lift the margin of every start) and by wait-time standards (:func:`throttled_delay`)."""
    busy = np.asarray(utilisation, dtype=float) > utilisation_threshold
    m = 1.0 - busy * max_throttle * np.asarray(pressure, dtype=float) * \
        special.expit(-sharpness * (np.asarray(margin, dtype=float) - threshold))
    return _neutral(pressure, m, 1.0)


def throttled_delay(delay_days, multiplier, wait_standard_days: float | None = None) -> np.ndarray:
    """M5: a start delay under a throttled start rate, delay / multiplier, no longer than the contract's wait
    standard allows (never shorter than the delay itself)."""
    delay = np.asarray(delay_days, dtype=float)
    m = np.asarray(multiplier, dtype=float)
    slow = np.divide(delay, m, out=np.full(np.broadcast(delay, m).shape, np.inf), where=m > 0)
    if wait_standard_days is not None:
        slow = np.minimum(slow, np.maximum(delay, wait_standard_days))
    return np.where(m >= 1.0, delay, slow)


def reserved_share(pressure, *, reserved_share: float) -> np.ndarray:
    """M5: share of freed caseload places offered first to high-margin referrals, psi x G."""
    return _neutral(pressure, reserved_share * np.asarray(pressure, dtype=float), 0.0)


def threshold_distance(u, cumulative) -> np.ndarray:
    """M6: how far a domain score drawn by inversion (uniform ``u`` against the cumulative band shares, most
    severe band first) lies from the boundary with the next more severe band, in bands (0 = on it, 1 = at the
    far edge). The most severe band has no band above it: infinity."""
    cum = np.asarray(cumulative, dtype=float)
    u = np.asarray(u, dtype=float)
    k = np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
    lower = np.where(k > 0, cum[np.maximum(k - 1, 0)], 0.0)
    width = cum[k] - lower
    d = np.divide(u - lower, width, out=np.zeros_like(u), where=width > 0)
    return np.where(k > 0, d, np.inf)


def band_weight_gap(weights: dict[str, float]) -> np.ndarray:
    """M6: per band (BANDS order), (w_{next more severe} - w_b) / w-bar, w-bar the mean weight of the structured
    bands; 0 for the most severe band."""
    w = np.array([weights.get(b, 0.0) for b in BANDS])
    mean = np.mean([weights.get(b, 0.0) for b in STRUCTURED_BANDS])
    gap = np.r_[0.0, w[:-1] - w[1:]]
    return gap / mean if mean > 0 else np.zeros(len(BANDS))


def independence(terms: ServiceTerms, params: SimpleNamespace) -> float:
    """M6 I: assessment independence by who assesses."""
    return getattr(params, f"independence_{terms.assessment}")


def band_drift_probability(distance, weight_gap, pressure, *, independence: float, audit_share: float,
                           eligibility_margin: float, baseline_drift: float, price_response: float) -> np.ndarray:
    """M6: the chance a client within delta_b of the next more severe band is recorded in it,
    (1 - I) x (u0 + u1 x G x (1 - audit share) x gap) for a positive gap (§3.8). More Critical and Substantial
    among the assessed, where the provider assesses and weights are steep. An independent LASARS service
    (I = 1) removes it; audit with clawback damps the price response. The baseline drift u0 applies only while
    money rides on the band (G > 0), so that zero pressure is the contract-blind model."""
    near = np.asarray(distance, dtype=float) < eligibility_margin
    g = np.asarray(pressure, dtype=float)
    p = (1.0 - independence) * near * (baseline_drift + price_response * g * (1.0 - audit_share) *
                                       np.maximum(np.asarray(weight_gap, dtype=float), 0.0))
    return _neutral(pressure, np.clip(p, 0.0, 1.0), 0.0)
