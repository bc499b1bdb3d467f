"""The ``[behaviour]`` block of a scenario: how a provider may respond to the payments in its contract.

A provider paid on outcomes may respond to the payments: select easier clients (M1 cream-skimming), give
low-return clients less keyworking (M2 parking), shift effort to paid in-treatment measures and time TOP reviews
(M3), hold or fast-track discharges around the non-re-presentation window (M4), slow entry for low-margin
referrals when capacity is tight (M5), drift bands upwards where it assesses (M6), and cut capacity, freeze
intake or hand the contract back under cash stress (M7). Parameterisation, evidence and defaults:
``../shared/reference/provider-behaviour.md`` (section numbers below refer to it; source keys [Bn] to its list).

The block holds ``mode`` (``off``, ``base``, ``stress``), the provider profile (``[behaviour.provider]``) and one
block per mechanism, each with ``enabled`` and parameters that hold a ``base`` and a ``stress`` value, each
checked against its range (a bare number sets both). :func:`parameter_ranges` lists every parameter with its
ranges and source. A schema only: what the mechanisms do is in :mod:`sim.provider`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator, model_validator

from sim.config.base import ConfigError, Section, read_with_extends, validated
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.measures import EFFORT_GROUPS
from sim.core.vocabulary import BANDS

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    pass



MONTH_DAYS = DAYS_PER_YEAR / 12.0
STRUCTURED_BANDS: tuple[str, ...] = tuple(b for b in BANDS if b != "no_need")
MODES = ("off", "base", "calibrated", "stress")
REF = "provider-behaviour.md"

# the calibrated profile's fit: `pbrsim calibrate scenarios/calibration/pilot_response.toml
# scenarios/targets/pilot_evaluation.toml -n 20 --workers 2 --params behaviour.discharge_timing.caution.calibrated=1:40
# behaviour.discharge_timing.held_decline_per_week.calibrated=0.01:1` (README, "The pilot evaluation, in silico")
PILOT_FIT = "pbrsim calibrate against scenarios/targets/pilot_evaluation.toml (Mason et al. 2015, year 1)"

# profit orientation (weight on margin against the clinical norm) by provider type [E], §3.2: for-profits
# respond more [B44], [B47]; norms and altruism pull against gaming [B15], [B40], [B51]
PROFIT_ORIENTATION = {"nhs_trust": 0.2, "voluntary": 0.3, "for_profit": 0.5}

# M3 effort groups (§3.5): paid in-treatment TOP states, exit and completion work, unpaid care; from the measure
# registry (sim.core.measures), where every payable outcome names its group. ``engagement`` is in none: it pays
# when a new presentation starts treatment, the engagement fee F_b of the intake margin (§3.1), not effort on
# clients already in treatment (sim.provider.features lists it as the damper of M1 and M5)
REVIEW_MEASURES = EFFORT_GROUPS["paid_reviews"]

# mean wait from the day a claim can be made to the day it is paid (claims spread evenly over the period)
PAYMENT_WAIT_DAYS = {"on_evidence": 0.0, "monthly_in_arrears": MONTH_DAYS / 2, "quarterly_in_arrears": 1.5 * MONTH_DAYS,
                     "annually_in_arrears": DAYS_PER_YEAR / 2}


class BehaviourError(ConfigError):
    what = "behaviour"


# --- 1. schema ---------------------------------------------------------------------------------------------------


class Level(Section):
    """A parameter's value in the base mode (mild, anchored on evidence), in the calibrated mode (fitted to the
    national pilot evaluation: ``scenarios/targets/pilot_evaluation.toml``; the base value where nothing was
    fitted) and in the stress mode (what-if analysis for commissioners)."""

    base: float
    stress: float
    calibrated: float | None = None

    def at(self, mode: str) -> float:
        if mode == "calibrated":
            return self.base if self.calibrated is None else self.calibrated
        return self.stress if mode == "stress" else self.base


def level(base: float, stress: float | None = None, *, low: float, high: float, stress_low: float | None = None,
          stress_high: float | None = None, calibrated: float | None = None, source: str,
          description: str) -> Any:
    """A mechanism parameter: defaults, the base range (which the calibrated value keeps to), the stress range
    (default: the base range), the source."""
    stress = base if stress is None else stress
    ranges = {"base": (low, high), "calibrated": (low, high),
              "stress": (low if stress_low is None else stress_low, high if stress_high is None else stress_high)}
    return Field(default=Level(base=base, stress=stress, calibrated=calibrated),
                 description=f"{description} [{source}]", json_schema_extra={"ranges": ranges, "source": source})


class Mechanism(Section):
    """A switchable mechanism. Each ``Level`` parameter may be written as a number (both modes) or a table
    ``{base = .., stress = ..}`` (a missing mode keeps its default); each value must lie in its mode's range."""

    enabled: bool = Field(True, description="switch this mechanism off without touching the others")

    @model_validator(mode="before")
    @classmethod
    def _levels(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, f in cls.model_fields.items():
            if name not in out or not isinstance(f.default, Level):
                continue
            v = out[name]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[name] = {"base": v, "stress": v}
            elif isinstance(v, dict):
                out[name] = {"base": f.default.base, "stress": f.default.stress,
                             "calibrated": f.default.calibrated, **v}
        return out

    @field_validator("*", mode="after")
    @classmethod
    def _in_range(cls, v: Any, info: ValidationInfo) -> Any:
        extra = cls.model_fields[info.field_name].json_schema_extra
        if isinstance(v, Level) and isinstance(extra, dict):
            for mode in ("base", "calibrated", "stress"):
                lo, hi = extra["ranges"][mode]
                x = v.at(mode)
                if not lo <= x <= hi:
                    raise ValueError(f"{mode} value {x:g} is outside the {mode} range [{lo:g}, {hi:g}] "
                                     f"({extra['source']})")
        return v

    def resolve(self, mode: str, on: bool) -> SimpleNamespace:
        """Plain numbers for one mode; ``enabled`` is False when the mode is off."""
        values = {name: (v.at(mode) if isinstance(v, Level) else v) for name, v in self}
        values["enabled"] = bool(on and self.enabled)
        return SimpleNamespace(**values)


class ProviderProfile(Section):
    """Who the provider is: how much it weighs margin against the clinical norm, its cash, how fast it learns
    the rules and how well it can tell a client's prospects (§3.2, §3.9)."""

    type: Literal["nhs_trust", "voluntary", "for_profit"] = Field(
        "voluntary", description="provider type; sets the default profit orientation (NHS trust 0.2, voluntary "
                                 "sector 0.3, for-profit 0.5) [E, B44, B47]")
    profit_orientation: float | None = Field(None, ge=0, le=1, description="lambda: weight on margin against the "
                                             "clinical norm, 0-1; default by type [E]")
    opening_reserve_months: float = Field(2.0, ge=0, le=24, description="R0: the provider's own cash reserve at "
                                          "the contract start (months of operating cost; reference range 0-6) "
                                          "[E §3.9], on top of the working capital it arranges for the design's "
                                          "payment lags at the performance it expects")
    cash_stress_gain: float = Field(1.0, ge=0, le=3, description="kappa_cash: how much cash stress amplifies "
                                    "gaming (0-3) [E, B1]")
    learning_months: float = Field(9.0, gt=0, le=60, description="tau_learn: gaming builds up as 1 - exp(-t / "
                                   "tau) from the contract start (months; reference range 3-24) [E, B16, B13]")
    information_noise: float = Field(0.5, ge=0, le=3, description="sigma_info: sd of the provider's error about "
                                     "a client's prospects on the log-odds scale (reference range 0.3-1.0) [E, B38]")
    discount_per_month: float = Field(0.005, ge=0, le=0.1, description="discount rate on lagged receipts "
                                      "(per month) [E §3.2]")
    stress_discount_per_month: float = Field(0.02, ge=0, le=0.2, description="extra discount rate at full cash "
                                             "stress (per month) [E §3.2]")
    margin_sharpness: float = Field(4.0, gt=0, le=20, description="kappa: how sharply the provider separates "
                                    "clients by margin, where a mechanism has no sharpness of its own (reference "
                                    "range 1-10) [E §3.2]")

    @property
    def lam(self) -> float:
        """The profit orientation in force (as given, or the type's default)."""
        return PROFIT_ORIENTATION[self.type] if self.profit_orientation is None else self.profit_orientation


class CreamSkimming(Mechanism):
    """M1: deflection at referral or acceptance of clients whose expected margin is low (§3.3)."""

    discretion_independent: Level = level(0.05, 0.10, low=0, high=0.3, stress_high=0.7, source="E §3.3",
                                          description="provider discretion over acceptance and start order with "
                                                      "an independent LASARS service")
    discretion_embedded: Level = level(0.25, 0.5, low=0, high=0.3, stress_high=0.7, source="E §3.3",
                                       description="discretion with LASARS staff embedded in the provider")
    discretion_provider: Level = level(0.5, 0.7, low=0, high=0.7, source="E §3.3",
                                       description="discretion when the provider runs the assessment")
    max_deflected_share: Level = level(0.25, 0.5, low=0.05, high=0.3, stress_high=0.5, source="E §3.3",
                                       description="r_max: most of the low-margin referrals deflected")
    sharpness: Level = level(4.0, low=1, high=10, source="E §3.3", description="kappa_sel")
    threshold: Level = level(0.0, low=-0.5, high=0.5, source="E §3.3",
                             description="theta_sel: margin threshold in units of R-bar (0 = break-even)")
    signposted_share: Level = level(0.5, low=0.2, high=0.8, source="E §3.3",
                                    description="share of deflected referrals signposted out; the rest delayed")
    delay_mean_days: Level = level(21.0, low=7, high=42, source="E §3.3",
                                   description="mean extra delay of a delayed referral (days, exponential)")


class Parking(Mechanism):
    """M2: reduced keyworking for clients whose outcomes return less than the keywork costs (§3.4)."""

    max_parked_share: Level = level(0.3, 0.5, low=0.1, high=0.4, stress_high=0.6, source="E §3.4, stress B4",
                                    description="p_park_max: most of the caseload parked")
    sharpness: Level = level(4.0, low=1, high=10, source="E §3.4", description="kappa_park")
    contact_multiplier: Level = level(0.5, low=0.3, high=0.8, source="E §3.4, B5",
                                      description="phi_contact: contact-rate multiplier while parked")
    outcome_cut: Level = level(0.25, low=0.1, high=0.5, source="E §3.4",
                               description="eta_out: relative cut in positive-outcome hazards while parked")
    drop_out_multiplier: Level = level(1.3, low=1.0, high=2.0, source="E §3.4",
                                       description="drop-out ('declined to continue') hazard multiplier while parked")
    review_interval_days: float = Field(MONTH_DAYS, ge=1, le=365, description="parking is decided at each keywork review "
                                        "(monthly) [E §3.4]")
    standard_contacts_per_month: float = Field(4.0, gt=0, le=100, description="keyworker contacts a month at full effort "
                                               "(weekly keywork) [E]")


class EffortShift(Mechanism):
    """M3: effort shifted towards paid in-treatment measures; more frequent or strategically timed TOP reviews;
    measurement gaming (§3.5)."""

    base_share_paid_reviews: float = Field(0.35, gt=0, lt=1, description="base effort share on paid "
                                           "in-treatment TOP states [E §3.5]")
    base_share_exit_work: float = Field(0.25, gt=0, lt=1, description="base effort share on exit and completion "
                                        "work [E §3.5]")
    base_share_unpaid_care: float = Field(0.40, gt=0, lt=1, description="base effort share on unpaid care (harm "
                                          "reduction, BBV testing if unpaid, retention, aftercare) [E §3.5]")
    elasticity: Level = level(0.5, 2.5, low=0.2, high=1.0, stress_high=2.5, source="E §3.5, stress B50",
                              description="epsilon_shift: elasticity of an effort share to its relative price")
    outcome_elasticity: Level = level(0.5, low=0, high=1, source="E §3.5, to calibrate",
                                      description="gamma: elasticity of a task's outcome odds to its effort share")
    max_review_frequency: Level = level(1.5, 2.0, low=1, high=2, source="E §3.5",
                                        description="m_TOP_max: most the TOP review frequency is multiplied by")
    max_postpone: Level = level(0.3, 0.5, low=0, high=0.5, source="E §3.5, B16",
                                description="p_time_max: chance a review due soon after recorded use is postponed")
    postpone_within_days: float = Field(14.0, ge=0, le=365, description="a review this soon after recorded use may be "
                                        "postponed (days) [E §3.5]")
    max_misrecord: Level = level(0.02, 0.2, low=0, high=0.05, stress_high=0.2, source="E §3.5, stress B48",
                                 description="p_mis_max: chance an unfavourable TOP item is recorded favourably")

    @model_validator(mode="after")
    def _shares(self) -> Self:
        total = self.base_share_paid_reviews + self.base_share_exit_work + self.base_share_unpaid_care
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"base effort shares must sum to 1, got {total:.6g}")
        return self

    @property
    def base_shares(self) -> np.ndarray:
        return np.array([self.base_share_paid_reviews, self.base_share_exit_work, self.base_share_unpaid_care])


class DischargeTiming(Mechanism):
    """M4: holding clinically ready clients when a sustained non-re-presentation outcome pays; fast-tracking when
    only completion pays (§3.6)."""

    hold_step_days: Level = level(28.0, low=14, high=56, source="E §3.6", description="Delta_hold: hold step "
                                                                                      "evaluated (days)")
    max_hold_weeks: Level = level(26.0, 52.0, low=8, high=52, source="E §3.6, B44",
                                  description="H_max: most extra hold beyond clinical readiness (weeks)")
    max_fast_track_weeks: Level = level(8.0, 12.0, low=0, high=12, source="E §3.6, B1",
                                        description="most a discharge is brought forward (weeks, x G)")
    max_defer: Level = level(0.0, 0.2, low=0, high=0, stress_high=0.2, source="E §3.6, B45, B44",
                             description="p_defer_max: chance a returning client's re-entry is deferred past the "
                                         "window end (stress only)")
    defer_within_days: float = Field(56.0, ge=0, le=365, description="re-entry this close to the window end may be "
                                     "deferred (days) [E §3.6]")
    max_recode: Level = level(0.0, 0.05, low=0, high=0, stress_high=0.05, source="E §3.6",
                              description="p_recode_max: chance an unplanned exit is coded as a transfer (stress only)")
    # caution under a re-presentation test (Mason et al. 2015: providers "more cautious about discharging clients"
    # when the sustained outcome carried a 12-month test): not an expected-value calculation, so its own numbers
    caution: Level = level(0.0, 0.0, low=0, high=40, calibrated=7.0, source=f"E; calibrated: {PILOT_FIT}",
                           description="holds per unit of pressure: a client ready for a planned exit is held with "
                                       "probability min(max_held_share, caution x G) when the contract pays a "
                                       "sustained non-re-presentation outcome")
    # the fit saw the first contract year only: its caution rises with the learning ramp to 7 x 0.0552 = 0.386 of
    # ready clients at the year's end under West Kent's PbR (25% at risk, its voluntary provider). Higher pressure
    # later in the term, or under another design, is not extrapolated past the most the evidence covers
    max_held_share: Level = level(1.0, low=0, high=1, calibrated=0.39,
                                  source="E; calibrated: the fitted caution's hold share at the end of the "
                                         "pilot's first year",
                                  description="the most of the clients ready for a planned exit that caution "
                                              "holds: probability min(max_held_share, caution x G)")
    caution_hold_weeks: Level = level(8.0, low=2, high=26, source="E",
                                      description="mean extra stay of a client held by caution (weeks, "
                                                  "exponential)")
    held_decline_per_week: Level = level(0.0, 0.0, low=0, high=1, calibrated=0.12,
                                         source=f"E; calibrated: {PILOT_FIT}",
                                         description="hazard that a client held past readiness declines to "
                                                     "continue (per week): the exit is recorded as declined")


class Gatekeeping(Mechanism):
    """M5: intake throttled for low-margin referrals when the caseload is nearly full; places reserved for
    high-margin referrals (§3.7). Assessment waits, attrition while waiting and hand-off loss are the scenario's
    (``assessment.*``, ``treatment.waiting_list_patience_days``, ``assessment.attends_treatment``)."""

    utilisation_threshold: Level = level(0.85, low=0.7, high=0.95, source="E §3.7",
                                         description="throttling starts above this caseload utilisation")
    max_throttle: Level = level(0.3, 0.5, low=0, high=0.5, source="E §3.7",
                                description="most the service-start rate of low-margin referrals falls (x G)")
    reserved_share: Level = level(0.3, 0.5, low=0, high=0.5, source="E §3.7",
                                  description="psi: share of free places reserved for high-margin referrals (x G)")


class BandDrift(Mechanism):
    """M6: band manipulation at assessment (upcoding), only where the provider assesses (§3.8)."""

    eligibility_margin: Level = level(0.5, 1.0, low=0.25, high=1.0, source="E §3.8",
                                      description="delta_b: a domain score within this many bands of the next "
                                                  "more severe band can drift (bands; 0.5 of a 0-4 score)")
    baseline_drift: Level = level(0.02, 0.05, low=0, high=0.05, source="E §3.8",
                                  description="u0: drift whenever money rides on the band")
    price_response: Level = level(0.5, 1.0, low=0, high=1, source="E §3.8, B47, B40",
                                  description="u1: response to the relative weight gap to the next band")
    suspension_months: Level = level(12.0, low=3, high=24, source="E §3.8",
                                     description="gaming stops this long after an audit finds a discrepancy")
    independence_independent: float = Field(1.0, ge=0, le=1, description="I with an independent LASARS service "
                                            "[E §3.8]")
    independence_embedded: float = Field(0.5, ge=0, le=1, description="I with LASARS staff in the provider [E §3.8]")
    independence_provider: float = Field(0.0, ge=0, le=1, description="I when the provider assesses [E §3.8]")


class CashStress(Mechanism):
    """M7: capacity cuts, intake freezes and contract hand-back under cash stress (§3.9). No drug-PbR cash
    figures exist: this block is for scenario work, not calibration."""

    stress_trigger_months: Level = level(2.0, low=1, high=3, source="E §3.9",
                                         description="R_min: cash stress starts below this reserve (months of cost)")
    overdraft_per_month: Level = level(0.01, 0.02, low=0.005, high=0.02, source="E §3.9",
                                       description="cost of a negative reserve (per month)")
    cut_per_quarter: Level = level(0.10, 0.25, low=0, high=0.25, source="E §3.9, B5, B7, B8",
                                   description="c_cut: capacity cut each quarter while the reserve is below R_min")
    freeze_below_months: Level = level(1.0, low=0, high=2, source="E §3.9",
                                       description="intake frozen while the reserve is below this (months of cost)")
    recovery_per_quarter: Level = level(0.05, low=0, high=0.10, source="E §3.9",
                                        description="capacity restored each quarter once the reserve is above R_min")
    hand_back_after_months: Level = level(6.0, 3.0, low=3, high=12, source="E §3.9",
                                          description="contract handed back after this many consecutive months "
                                                      "with a negative reserve")
    reprocurement_months: Level = level(6.0, low=3, high=12, source="E §3.9",
                                        description="interim block provision after a hand-back (months)")


MECHANISMS: dict[str, type[Mechanism]] = {
    "cream_skimming": CreamSkimming, "parking": Parking, "effort_shift": EffortShift,
    "discharge_timing": DischargeTiming, "gatekeeping": Gatekeeping, "band_drift": BandDrift,
    "cash_stress": CashStress,
}


class BehaviourSpec(Section):
    """The ``[behaviour]`` block: the mode, the provider, and the seven mechanisms. Off by default."""

    mode: Literal["off", "base", "calibrated", "stress"] = Field(
        "off", description="off: the contract-blind model; base: anchored defaults; calibrated: fitted to the "
                           "national pilot evaluation's year-1 odds ratios; stress: the stress settings")
    provider: ProviderProfile = Field(default_factory=ProviderProfile)
    cream_skimming: CreamSkimming = Field(default_factory=CreamSkimming)
    parking: Parking = Field(default_factory=Parking)
    effort_shift: EffortShift = Field(default_factory=EffortShift)
    discharge_timing: DischargeTiming = Field(default_factory=DischargeTiming)
    gatekeeping: Gatekeeping = Field(default_factory=Gatekeeping)
    band_drift: BandDrift = Field(default_factory=BandDrift)
    cash_stress: CashStress = Field(default_factory=CashStress)

    def resolve(self, mode: str | None = None) -> Behaviour:
        """Plain numbers for ``mode`` (default: the block's own)."""
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        on = mode != "off"
        return Behaviour(mode=mode, profile=self.provider, profit_orientation=self.provider.lam,
                         **{name: getattr(self, name).resolve(mode, on) for name in MECHANISMS})


@dataclass(frozen=True)
class Behaviour:
    """A behaviour block resolved for one mode: the profile and each mechanism's numbers (``enabled`` is False
    for every mechanism when the mode is off)."""

    mode: str
    profile: ProviderProfile
    profit_orientation: float
    cream_skimming: SimpleNamespace
    parking: SimpleNamespace
    effort_shift: SimpleNamespace
    discharge_timing: SimpleNamespace
    gatekeeping: SimpleNamespace
    band_drift: SimpleNamespace
    cash_stress: SimpleNamespace

    @property
    def active(self) -> bool:
        return self.mode != "off"


OFF = BehaviourSpec().resolve()


class _BehaviourFile(Section):
    behaviour: BehaviourSpec


def load_behaviour(path: str | Path) -> BehaviourSpec:
    """A behaviour block from a TOML file (``extends`` allowed): a ``[behaviour]`` table (so a scenario file
    works too; its other sections are ignored), or the block's keys at the top level."""
    path = Path(path)
    raw, provenance = read_with_extends(path, BehaviourError)
    return behaviour_from_dict(raw, str(path), provenance)


def behaviour_from_dict(raw: dict, source: str = "<dict>", provenance: dict | None = None) -> BehaviourSpec:
    if "behaviour" in raw:
        data, prov = {"behaviour": copy.deepcopy(raw["behaviour"])}, provenance or {}
        root: type[Section] = _BehaviourFile
    else:
        data = copy.deepcopy(raw)
        data.pop("name", None)
        data.pop("description", None)
        prov, root = provenance or {}, BehaviourSpec
    spec = validated(data, root, BehaviourError, source, prov)
    return spec.behaviour if isinstance(spec, _BehaviourFile) else spec


def parameter_ranges() -> pd.DataFrame:
    """Every mechanism parameter: its default in each mode, the base (and calibrated) and stress ranges and the
    source."""
    rows = []
    for name, cls in MECHANISMS.items():
        for field, f in cls.model_fields.items():
            extra = f.json_schema_extra
            if not isinstance(f.default, Level) or not isinstance(extra, dict):
                continue
            (blo, bhi), (slo, shi) = extra["ranges"]["base"], extra["ranges"]["stress"]
            rows.append((name, field, f.default.base, blo, bhi, f.default.at("calibrated"), f.default.stress, slo,
                         shi, extra["source"], (f.description or "").rsplit(" [", 1)[0]))
    return pd.DataFrame(rows, columns=["mechanism", "parameter", "base", "base_low", "base_high", "calibrated",
                                       "stress", "stress_low", "stress_high", "source", "description"])
