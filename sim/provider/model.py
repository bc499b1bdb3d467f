"""Provider behaviour under outcome payments: the decision core, outside SimPy (issue 7).

A provider paid on outcomes may respond to the payments: select easier clients (M1 cream-skimming), give
low-return clients less keyworking (M2 parking), shift effort to paid in-treatment measures and time TOP reviews
(M3), hold or fast-track discharges around the non-re-presentation window (M4), slow entry for low-margin
referrals when capacity is tight (M5), drift bands upwards where it assesses (M6), and cut capacity, freeze
intake or hand the contract back under cash stress (M7). Parameterisation, evidence and defaults:
``../shared/reference/provider-behaviour.md`` (section numbers below refer to it; source keys [Bn] to its list).

Three layers, all pure and vectorised (numpy arrays broadcast; scalars work too):

1. **Schema** — ``[behaviour]``: ``mode`` (``off``, ``base``, ``stress``), the provider profile
   (``[behaviour.provider]``) and one block per mechanism, each with ``enabled`` and parameters that hold a
   ``base`` and a ``stress`` value, each checked against its range (a bare number sets both).
   :func:`parameter_ranges` lists every parameter with its ranges and source.
2. **Money, before a run** — :func:`price_schedule` turns a contract into the net value to the provider of each
   outcome for a client of each band, per contract year: after caps, floors, clawback and payment lags,
   discounted. :func:`share_at_risk` is the share of income that still responds to outcomes at the margin (zero
   where a cap binds), and :func:`gaming_pressure` G combines it with the provider's profit orientation, cash
   stress and learning. :func:`band_profile` and :func:`margin_neutral_weights` read a contract-blind History.
3. **Decisions** — one function per mechanism returns the probability or multiplier the engine applies. Every
   one is exactly neutral (probability 0, multiplier 1.0) when G = 0, so a run at zero pressure is the
   contract-blind run draw for draw. :class:`ProviderModel` bundles them for the engine.

Units: pounds; days unless the name says months or weeks (a month is 365.25 / 12 days); margins in units of the
mean expected outcome revenue per client (R-bar). Money is never computed inside SimPy: the engine reads these
tables and probabilities.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Literal, Self

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator, model_validator
from scipy import special

from sim.config.base import ConfigError, Section, read_with_extends, validated
from sim.config.contract import Contract, Outcome, ServiceTerms
from sim.core.vocabulary import BANDS

if TYPE_CHECKING:  # sim.config.scenario will import this module (the [behaviour] section): no import at run time
    from sim.engine.history import History
    from sim.config.scenario import Scenario

DAYS_PER_YEAR = 365.25            # as sim.config.scenario
MONTH_DAYS = DAYS_PER_YEAR / 12.0
STRUCTURED_BANDS: tuple[str, ...] = tuple(b for b in BANDS if b != "no_need")
MODES = ("off", "base", "stress")
REF = "provider-behaviour.md"

# profit orientation (weight on margin against the clinical norm) by provider type [E], §3.2: for-profits
# respond more [B44], [B47]; norms and altruism pull against gaming [B15], [B40], [B51]
PROFIT_ORIENTATION = {"nhs_trust": 0.2, "voluntary": 0.3, "for_profit": 0.5}

# M3 effort groups (§3.5): paid in-treatment TOP states, exit and completion work, unpaid care
EFFORT_GROUPS: dict[str, tuple[str, ...]] = {
    "paid_reviews": ("reliable_improvement", "abstinence", "stopped_injecting", "housing_resolved",
                     "normative_quality_of_life"),
    "exit_work": ("planned_exit", "sustained_recovery", "entered_training"),
    "unpaid_care": ("bbv_tested", "hep_b_completed"),
}
REVIEW_MEASURES = EFFORT_GROUPS["paid_reviews"]

# mean wait from the day a claim can be made to the day it is paid (claims spread evenly over the period)
PAYMENT_WAIT_DAYS = {"on_evidence": 0.0, "monthly_in_arrears": MONTH_DAYS / 2, "quarterly_in_arrears": 1.5 * MONTH_DAYS,
                     "annually_in_arrears": DAYS_PER_YEAR / 2}


class BehaviourError(ConfigError):
    what = "behaviour"


# --- 1. schema ---------------------------------------------------------------------------------------------------


class Level(Section):
    """A parameter's value in the base mode (mild, anchored on evidence, for calibration) and in the stress mode
    (what-if analysis for commissioners)."""

    base: float
    stress: float

    def at(self, mode: str) -> float:
        return self.stress if mode == "stress" else self.base


def level(base: float, stress: float | None = None, *, low: float, high: float, stress_low: float | None = None,
          stress_high: float | None = None, source: str, description: str) -> Any:
    """A mechanism parameter: defaults, the base range, the stress range (default: the base range), the source."""
    stress = base if stress is None else stress
    ranges = {"base": (low, high), "stress": (low if stress_low is None else stress_low,
                                              high if stress_high is None else stress_high)}
    return Field(default=Level(base=base, stress=stress), description=f"{description} [{source}]",
                 json_schema_extra={"ranges": ranges, "source": source})


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
                out[name] = {"base": f.default.base, "stress": f.default.stress, **v}
        return out

    @field_validator("*", mode="after")
    @classmethod
    def _in_range(cls, v: Any, info: ValidationInfo) -> Any:
        extra = cls.model_fields[info.field_name].json_schema_extra
        if isinstance(v, Level) and isinstance(extra, dict):
            for mode in ("base", "stress"):
                lo, hi = extra["ranges"][mode]
                x = getattr(v, mode)
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
    opening_reserve_months: float = Field(2.0, ge=0, le=24, description="R0: cash reserve at the contract start "
                                          "(months of operating cost; reference range 0-6) [E §3.9]")
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

    mode: Literal["off", "base", "stress"] = Field("off", description="off: the contract-blind model; base: "
                                                   "anchored defaults; stress: the stress settings")
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
    """Every mechanism parameter: its default in each mode, the base and stress ranges and the source."""
    rows = []
    for name, cls in MECHANISMS.items():
        for field, f in cls.model_fields.items():
            extra = f.json_schema_extra
            if not isinstance(f.default, Level) or not isinstance(extra, dict):
                continue
            (blo, bhi), (slo, shi) = extra["ranges"]["base"], extra["ranges"]["stress"]
            rows.append((name, field, f.default.base, blo, bhi, f.default.stress, slo, shi, extra["source"],
                         (f.description or "").rsplit(" [", 1)[0]))
    return pd.DataFrame(rows, columns=["mechanism", "parameter", "base", "base_low", "base_high", "stress",
                                       "stress_low", "stress_high", "source", "description"])


# --- 2. money before a run: the price schedule ---------------------------------------------------------------------


SCHEDULE_COLUMNS = ["contract_year", "outcome", "measure", "band", "unit_price", "weight", "multiplier", "gross",
                    "volume", "delay_days", "evidence_days", "discount", "clawback_risk", "cap_factor",
                    "floor_factor", "value", "present_value"]


def discount_factor(days, discount_per_month: float, stress=0.0, stress_discount_per_month: float = 0.0):
    """Present value of a pound received ``days`` from now: delta ** (days / month), with the monthly factor
    delta = 1 / (1 + r + r_stress x stress) (§3.2)."""
    rate = discount_per_month + stress_discount_per_month * np.asarray(stress, dtype=float)
    return (1.0 + rate) ** (-np.asarray(days, dtype=float) / MONTH_DAYS)


def baseline_volumes(contract: Contract, history: History) -> pd.DataFrame:
    """Outcomes achieved in the year before the contract start, by band, under each outcome's once-per rule:
    ``outcome``, ``band``, ``volume``. This is the volume that prices an outcome with ``expected_volume =
    "baseline"`` in settlement, and the provider's forecast of a year's volume."""
    from sim.analysis.outcomes import achievements
    from sim.money.settlement import _baseline_year  # the settlement's own baseline rule, so prices agree with it

    rows = []
    for name, o in contract.outcomes.items():
        found = achievements(history, o.measure, o.window_days).sort_values(["time", "client_id"], kind="stable")
        try:
            base = _baseline_year(history, found, o)
        except ValueError:
            raise ValueError("baseline volumes need a History with at least a year of warm-up before the contract "
                             "start") from None
        counts = base["band"].value_counts()
        rows += [(name, b, float(counts.get(b, 0))) for b in BANDS]
    return pd.DataFrame(rows, columns=["outcome", "band", "volume"])


def _slack(cap: float | None, expected: float, variance: float) -> float:
    """Probability that a cap does not bind over a period in which payments are expected to total ``expected``
    with variance ``variance``: the chance that one more outcome is paid at the margin. Once a cap binds an extra
    outcome only brings the day the cap is reached forward, so its marginal value is zero (§3.1)."""
    if cap is None:
        return 1.0
    if variance <= 0:
        return 1.0 if expected < cap else 0.0
    return float(special.ndtr((cap - expected) / math.sqrt(variance)))


def _clawback_risk(history: History, outcome: Outcome) -> pd.Series:
    """By band: the share of achievements followed by a re-presentation within ``clawback_days`` (windows that
    close after the horizon are left out)."""
    from sim.analysis.outcomes import achievements

    found = achievements(history, outcome.measure, outcome.window_days)
    found = found[found["time"] + outcome.clawback_days <= history.end]
    if found.empty:
        return pd.Series(0.0, index=list(BANDS))
    refs = history.episodes[["client_id", "referral"]].dropna().sort_values("referral")
    merged = pd.merge_asof(found.sort_values("time").rename(columns={"time": "t"}),
                           refs.rename(columns={"referral": "t"}).assign(next_referral=lambda d: d["t"]),
                           on="t", by="client_id", direction="forward", allow_exact_matches=False)
    back = (merged["next_referral"] - merged["t"]) < outcome.clawback_days
    return back.groupby(merged["band"]).mean().reindex(list(BANDS), fill_value=0.0).astype(float)


def _offending_unit(contract: Contract, scenario: Scenario | None, history: History | None) -> float:
    """Marginal pounds per recorded offence avoided, on the attachment line at the baseline."""
    o = contract.offending
    total = None
    if history is not None and scenario is not None:
        from sim.analysis.offending import cohort_offences

        cohort = cohort_offences(history, scenario, "year")
        before = cohort[cohort["end"] <= 0]
        if len(before):
            row = before.iloc[-1]
            if o.baseline_offences is None:
                total = float(row["offences"])
            else:
                total = o.baseline_offences * (float(row["cohort"]) if o.measure == "per_member" else 1.0)
    elif o.baseline_offences is not None and o.measure == "volume":
        total = o.baseline_offences
    if not total or total <= 0:
        return float("nan")
    return o.pot * (1.0 - o.paid_at_baseline) / (o.full_at_reduction * total)


def price_schedule(contract: Contract, scenario: Scenario | None = None, history: History | None = None, *,
                   volumes: pd.DataFrame | None = None, profile: ProviderProfile | None = None) -> pd.DataFrame:
    """The marginal price schedule: what one more outcome of each kind, for a client of each band, is worth to
    the provider in each contract year. Computed before a run; every provider decision reads it.

    ``history`` is a contract-blind History of the same scenario covering the year before the contract: it
    supplies the baseline volumes that price ``share_of_pot`` outcomes (exactly as settlement does), the volumes
    the provider expects (for caps and floors), clawback risks and the offending baseline. ``volumes``
    (``outcome, band, volume``: expected achievements a year) overrides the History's. Without either, prices
    from the baseline cannot be set (an error) and caps and floors are taken not to bind.

    Columns (one row per contract year, outcome and band; the offending pot as outcome ``offending``, priced
    per recorded offence avoided): ``unit_price`` (pounds before the band weight), ``weight``, ``multiplier``
    (an escalator's at the baseline rate), ``gross`` = unit x weight x multiplier; ``volume`` (expected a year);
    ``delay_days`` (evidence to cash: lag, the wait for the payment date, an escalator's year-end
    reconciliation); ``evidence_days`` (from the deciding event, a planned exit, to evidence: the window of a
    sustained outcome, else 0); ``discount`` (of ``delay_days``); ``clawback_risk``; ``cap_factor`` (chance
    every cap that applies is slack at the margin: the outcome's cap per year, the PbR cap, the term cap);
    ``floor_factor`` (chance total income is between the income floor and cap, where one more pound counts);
    ``value`` = gross x discount x (1 - clawback_risk) x cap_factor x floor_factor (pounds at evidence);
    ``present_value`` = value discounted over ``evidence_days`` (pounds at the deciding event).
    """
    if profile is None:
        spec = getattr(scenario, "behaviour", None)
        profile = spec.provider if isinstance(spec, BehaviourSpec) else ProviderProfile()
    needs_baseline = any(o.expected_volume == "baseline" for o in contract.outcomes.values())
    if volumes is None and history is not None:
        volumes = baseline_volumes(contract, history)
    if volumes is None and needs_baseline:
        raise ValueError(f"contract {contract.name}: prices from the baseline year need a contract-blind History "
                         f"(history=...) or expected volumes (volumes=...)")
    vol = {} if volumes is None else {(r.outcome, r.band): float(r.volume) for r in volumes.itertuples()}
    known = volumes is not None
    rows = []
    for year in range(1, contract.years + 1):
        for name, o in contract.outcomes.items():
            weights = {b: contract.weight(o, b) for b in BANDS}
            if o.price is not None:
                unit = o.price
            else:
                v = (sum(weights[b] * vol.get((name, b), 0.0) for b in BANDS) if o.expected_volume == "baseline"
                     else float(o.expected_volume))
                unit = contract.outcome_pot(year) * o.share_of_pot / v if v > 0 else 0.0
            mult = o.escalator.multiplier(1.0, 1.0) if o.escalator is not None else 1.0
            delay = o.lag_days + PAYMENT_WAIT_DAYS[o.payment]
            if o.escalator is not None:  # the multiplier is known, and paid, after the year ends
                delay = max(delay, DAYS_PER_YEAR / 2 + contract.reconciliation_lag_days)
            evidence = o.window_days if o.measure == "sustained_recovery" else 0.0
            claw = _clawback_risk(history, o) if (o.clawback_days and history is not None) else None
            for b in BANDS:
                rows.append((year, name, o.measure, b, unit, weights[b], mult, unit * weights[b] * mult,
                             vol.get((name, b), 0.0 if known else np.nan), delay, evidence,
                             0.0 if claw is None else float(claw[b])))
        if contract.offending is not None:
            unit = _offending_unit(contract, scenario, history)
            for b in BANDS:
                rows.append((year, "offending", "offending", b, unit, 1.0, 1.0, unit, np.nan,
                             DAYS_PER_YEAR / 2 + contract.offending.lag_days, 0.0, 0.0))
    out = pd.DataFrame(rows, columns=SCHEDULE_COLUMNS[:11] + ["clawback_risk"])
    out["discount"] = discount_factor(out["delay_days"], profile.discount_per_month)
    out["cap_factor"], out["floor_factor"] = _margin_factors(contract, out)
    out["value"] = out["gross"] * out["discount"] * (1 - out["clawback_risk"]) * out["cap_factor"] * \
        out["floor_factor"]
    out["present_value"] = out["value"] * discount_factor(out["evidence_days"], profile.discount_per_month)
    return out[SCHEDULE_COLUMNS]


def _margin_factors(contract: Contract, s: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Cap and floor factors per row (see ``price_schedule``): payments per year treated as a sum of Poisson
    counts of outcomes, with the variance that implies, against each cap."""
    paid = s[s["outcome"] != "offending"].copy()
    vol = paid["volume"].fillna(0.0)
    paid["mean"] = paid["gross"] * (1 - paid["clawback_risk"]) * vol
    paid["var"] = paid["gross"] ** 2 * vol
    per = paid.groupby(["contract_year", "outcome"])[["mean", "var"]].sum()
    own = {}
    for (y, name), r in per.iterrows():
        cap = contract.outcomes[name].cap_per_year
        own[(y, name)] = (_slack(cap, r["mean"], r["var"]), r["mean"] if cap is None else min(r["mean"], cap),
                          r["var"])
    offending = contract.offending.pot * contract.offending.paid_at_baseline if contract.offending else 0.0
    year_mean, year_var, pbr = {}, {}, {}
    for y in range(1, contract.years + 1):
        parts = [v for (yy, _), v in own.items() if yy == y]
        year_mean[y] = sum(p[1] for p in parts) + offending
        year_var[y] = sum(p[2] for p in parts)
        cap = contract.pbr_cap * contract.pot(y) if contract.pbr_cap is not None else None
        pbr[y] = _slack(cap, year_mean[y], year_var[y])
    term = _slack(contract.term_cap, sum(year_mean.values()), sum(year_var.values()))
    floor = {}
    for y in range(1, contract.years + 1):
        income = contract.annual_value * (1 - contract.share(y)) + min(
            year_mean[y], contract.pbr_cap * contract.pot(y) if contract.pbr_cap is not None else np.inf)
        sd = math.sqrt(year_var[y])
        top = np.inf if contract.income_cap is None else contract.income_cap * contract.annual_value
        low = -np.inf if contract.income_floor is None else contract.income_floor * contract.annual_value
        if sd > 0:
            floor[y] = float(special.ndtr((top - income) / sd) - special.ndtr((low - income) / sd))
        else:
            floor[y] = float(low < income < top) if np.isfinite(low) or np.isfinite(top) else 1.0
    cap_factor = np.array([min(own.get((y, n), (1.0,))[0], pbr[y], term)
                           for y, n in zip(s["contract_year"], s["outcome"])])
    floor_factor = np.array([floor[y] for y in s["contract_year"]])
    return cap_factor, floor_factor


def share_at_risk(contract: Contract, schedule: pd.DataFrame) -> pd.Series:
    """By contract year: the share of income that responds to outcomes at the margin, *s* of §3.2: the PbR share
    times the payment-weighted share of outcome money whose caps and floors are slack. Zero under a block
    contract, with nothing priced, or where a cap binds."""
    out = {}
    for y in range(1, contract.years + 1):
        rows = schedule[(schedule["contract_year"] == y) & (schedule["outcome"] != "offending")]
        live = rows["cap_factor"] * rows["floor_factor"]
        money = rows["gross"] * rows["volume"].fillna(0.0)
        if money.sum() > 0:
            share_live = float((money * live).sum() / money.sum())
        elif (rows["gross"] > 0).any():  # volumes unknown: the priced outcomes count alike
            share_live = float(live[rows["gross"] > 0].mean())
        else:
            share_live = 0.0
        out[y] = contract.share(y) * share_live
    return pd.Series(out, name="share_at_risk", dtype=float).rename_axis("contract_year")


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
        steps = np.where(p > 0, np.floor(np.log(u) / np.log(np.where(p > 0, p, 0.5))), 0.0)
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


CASH_COLUMNS = ["start", "income", "cost", "reserve", "stress", "capacity_multiplier", "intake_frozen",
                "handed_back", "overdraft_cost", "discount_per_month"]


def cash_response(monthly: pd.DataFrame, behaviour: Behaviour, active: bool = True) -> pd.DataFrame:
    """M7: the provider's reserve month by month and its response (§3.9), from a run's monthly cash (``start``
    (day), ``income``, ``cost`` and optionally ``staff`` pounds, as :func:`sim.money.settlement.monthly_cash` and
    :func:`sim.analysis.costs.delivery_costs` give them). Pure: the engine applies the result on a re-run (capacity as
    dated changes, see :func:`capacity_changes`; intake freezes; the stress feeds G and the discount rate).

    The reserve opens at ``opening_reserve_months`` of operating cost (the mean monthly cost of the first year)
    and moves by income less cost less overdraft interest. Stress = max(0, (R_min - R) / R_min). At each
    quarter's end the capacity is cut by c_cut while R < R_min and restored by the recovery rate once R > R_min;
    staff cost falls with it in the same pass. Intake is frozen while R is below ``freeze_below_months``. After
    ``hand_back_after_months`` consecutive months opening with R < 0 the contract is handed back: the commissioner's
    interim block provision follows (no stress, full capacity, no freeze). With ``active`` False (behaviour off,
    the mechanism disabled, or nothing at risk) the reserve is reported and nothing responds."""
    cs, p = behaviour.cash_stress, behaviour.profile
    active = bool(active and behaviour.active and cs.enabled)
    cost = monthly["cost"].to_numpy(float)
    income = monthly["income"].to_numpy(float)
    staff = monthly["staff"].to_numpy(float) if "staff" in monthly else np.zeros(len(monthly))
    operating = float(np.mean(cost[:12])) if len(cost) else 0.0
    reserve = p.opening_reserve_months * operating
    r_min = cs.stress_trigger_months * operating
    freeze = cs.freeze_below_months * operating
    mult, negative, handed = 1.0, 0, False
    rows = []
    for m in range(len(monthly)):
        negative = negative + 1 if reserve < 0 else 0  # months opening with a negative reserve, in a row
        stress = max(0.0, (r_min - reserve) / r_min) if (r_min > 0 and active and not handed) else 0.0
        frozen = bool(active and not handed and reserve < freeze)
        spent = cost[m] - staff[m] * (1.0 - mult)
        overdraft = cs.overdraft_per_month * max(-reserve, 0.0)
        rows.append((monthly["start"].iloc[m], income[m], spent, reserve, stress, mult, frozen, handed, overdraft,
                     p.discount_per_month + p.stress_discount_per_month * stress))
        reserve += income[m] - spent - overdraft
        if not active or handed:
            continue
        if negative >= cs.hand_back_after_months:
            handed, mult = True, 1.0
        elif m % 3 == 2:  # a quarter's end
            if reserve < r_min:
                mult *= 1.0 - cs.cut_per_quarter
            elif reserve > r_min:
                mult = min(1.0, mult + cs.recovery_per_quarter)
    return pd.DataFrame(rows, columns=CASH_COLUMNS)


def cash_inputs(settlement) -> pd.DataFrame:
    """The monthly inputs of :func:`cash_response` from a :class:`sim.money.settlement.Settlement`: ``start``,
    ``income`` and ``cost`` of :func:`sim.money.settlement.monthly_cash`, and ``staff``, the recovery workers' pay
    in each month (what a capacity cut saves)."""
    from sim.analysis.costs import delivery_costs
    from sim.money.settlement import monthly_cash

    cash = monthly_cash(settlement)
    rows = delivery_costs(settlement.history, settlement.scenario, "month")
    staff = rows[rows["item"] == "staff"].set_index("start")["cost"]
    out = cash[["start", "income", "cost"]].copy()
    out["staff"] = staff.reindex(out["start"].to_numpy(), fill_value=0.0).to_numpy()
    return out


def capacity_changes(response: pd.DataFrame, scenario: Scenario) -> list[dict]:
    """M7: the capacity path of a :func:`cash_response` as ``[[schedule]]`` changes (``date``, ``note``, ``set``
    of ``capacity.recovery_workers``), each the workers in force that day times the multiplier, for
    ``scenario.with_changes({"schedule": [*existing, *changes]})``. Staff costs follow the workers in post."""
    import datetime as dt

    out, last = [], 1.0
    start = scenario.horizon.contract_start
    epochs = scenario.epochs()
    for r in response.itertuples():
        if r.capacity_multiplier == last:
            continue
        day = float(r.start)
        in_force = [s for t, s in epochs if t <= day][-1]
        out.append({"date": start + dt.timedelta(days=int(day)),
                    "note": f"provider cash stress: capacity x{r.capacity_multiplier:.3f}",
                    "set": {"capacity.recovery_workers": in_force.capacity.recovery_workers * r.capacity_multiplier}})
        last = r.capacity_multiplier
    return out


# --- 6. from a contract-blind History: outcomes and costs by band, the margin-neutral tariff --------------------------


@dataclass(frozen=True)
class BandProfile:
    """Per structured band, from the treatment episodes that started in the reference period of a contract-blind
    History: ``starters``, ``months`` (mean months on the caseload), ``cost`` (mean delivery cost per starter,
    pounds: variable items of :func:`sim.analysis.costs.delivery_costs` plus staff and overheads per caseload-day), and
    ``achievements`` (band x outcome: paid achievements per starter, under each outcome's once-per rule)."""

    starters: pd.Series
    months: pd.Series
    cost: pd.Series
    achievements: pd.DataFrame


def band_profile(contract: Contract, history: History, scenario: Scenario, follow_up_days: float = 365.0
                 ) -> BandProfile:
    """Outcomes and delivery cost per treatment starter by band (see :class:`BandProfile`). The reference
    episodes start in [0, end - follow_up_days): inside the costed horizon and followed at least that long."""
    from sim.analysis import costs as costs_module
    from sim.analysis.outcomes import achievements
    from sim.money.settlement import _once_per  # the settlement's own once-per rule
    from sim.core.vocabulary import TREATMENT_STATES

    ep = history.episodes
    ref = ep[(ep["treatment_start"] >= 0) & (ep["treatment_start"] < history.end - follow_up_days)
             & ep["band"].isin(STRUCTURED_BANDS)]
    if ref.empty:
        raise ValueError(f"no treatment starts in [0, {history.end - follow_up_days:g}): the History needs more "
                         f"than follow_up_days = {follow_up_days:g} days after the contract start")
    ref = ref[["client_id", "episode"]].assign(band=ref["band"].astype(object).to_numpy())
    key = pd.MultiIndex.from_frame(ref[["client_id", "episode"]])
    starters = ref["band"].value_counts().reindex(list(STRUCTURED_BANDS), fill_value=0).astype(float)

    per = pd.DataFrame(0.0, index=list(STRUCTURED_BANDS), columns=list(contract.outcomes))
    for name, o in contract.outcomes.items():
        found = achievements(history, o.measure, o.window_days).sort_values(["time", "client_id"], kind="stable")
        paid = _once_per(found[found["time"] >= 0], o)
        inside = pd.MultiIndex.from_frame(paid[["client_id", "episode"]]).isin(key)
        counts = paid.loc[inside, "band"].astype(object).value_counts()
        per[name] = counts.reindex(per.index, fill_value=0).to_numpy() / starters.where(starters > 0).to_numpy()
    per = per.fillna(0.0)

    sp = history.spells
    on_caseload = sp[sp["state"].isin(TREATMENT_STATES)]
    mine = on_caseload[["client_id", "episode", "start", "end"]].merge(ref, on=["client_id", "episode"])
    days = (mine["end"].clip(upper=history.end) - mine["start"].clip(lower=0)).clip(lower=0)
    band_days = days.groupby(mine["band"]).sum().reindex(list(STRUCTURED_BANDS), fill_value=0.0)
    all_days = (on_caseload["end"].clip(upper=history.end) - on_caseload["start"].clip(lower=0)).clip(lower=0).sum()
    total = costs_module.delivery_costs(history, scenario, "year")
    fixed = total.loc[total["item"].isin(["staff", "overheads"]), "cost"].sum()
    per_day = fixed / all_days if all_days > 0 else 0.0
    cost = pd.Series(0.0, index=list(STRUCTURED_BANDS))
    for b in STRUCTURED_BANDS:
        keys = pd.MultiIndex.from_frame(ref.loc[ref["band"] == b, ["client_id", "episode"]])
        if not len(keys):
            continue
        sub = _restrict(history, keys)
        rows = costs_module.delivery_costs(sub, scenario, "year")
        variable = rows.loc[~rows["item"].isin(["staff", "overheads"]), "cost"].sum()
        cost[b] = (variable + per_day * band_days[b]) / starters[b]
    months = band_days / starters.where(starters > 0) / MONTH_DAYS
    return BandProfile(starters=starters, months=months.fillna(0.0), cost=cost, achievements=per)


def _restrict(history: History, keys: pd.MultiIndex) -> History:
    """The History of some episodes only (clients, their spells, events and reviews in those episodes)."""
    def keep(d: pd.DataFrame) -> pd.DataFrame:
        return d[pd.MultiIndex.from_frame(d[["client_id", "episode"]]).isin(keys)]

    clients = history.clients[history.clients["client_id"].isin(keys.get_level_values(0))]
    return dataclasses.replace(history, clients=clients, episodes=keep(history.episodes), spells=keep(history.spells),
                               events=keep(history.events), reviews=keep(history.reviews))


@dataclass(frozen=True)
class TariffCheck:
    """The margin-neutral tariff check (§3.2). ``table`` per structured band: ``starters`` (treatment starts in
    the reference period), ``unit_value`` (expected outcome payments per starter at weight 1, pounds, discounted), ``fee``
    (payments per starter under outcomes with their own band weights), ``cost`` (delivery cost per starter),
    ``design_weight``, ``neutral_weight``, ``design_margin`` and ``neutral_margin`` (pounds per starter: outcome
    payments less the at-risk share of cost). ``distance``: sum of starters x |w - w*| / sum of starters x w.
    ``margin_spread``: most minus least profitable band's margin under the design, in units of R-bar.
    ``steepness``: log(w_critical / w_low) / log(w*_critical / w*_low) (below 1 flatter than neutral: invites
    cream-skimming and parking; above 1 steeper: invites upcoding). ``feasible``: no neutral weight is negative
    (otherwise outcome weights alone cannot make bands equally profitable at this share at risk: a block or
    cost element for high-need bands is needed)."""

    table: pd.DataFrame
    distance: float
    margin_spread: float
    steepness: float
    feasible: bool
    invites: str


def margin_neutral_weights(contract: Contract, scenario: Scenario, history: History | None = None, *,
                           seed: int | None = None, follow_up_days: float = 365.0) -> TariffCheck:
    """Band weights under which no band is more profitable to take on than another, and how far the contract's
    weights are from them (§3.2).

    A starter of band b brings w_b x U_b + F_b in outcome payments (U_b: expected payments per starter at weight
    1 from the price schedule and the band's per-starter outcome rates in a contract-blind History; F_b from
    outcomes priced by their own band weights) and costs c_b (:mod:`sim.analysis.costs`), of which the share at risk s is
    not covered by the core. Neutral: w*_b x U_b + F_b - s x c_b equal across bands, with the design's expected
    outcome money. Averaged over the contract years (prices and shares change with the year). ``history``:
    a contract-blind History of the scenario; simulated (``seed``) when not given. Offending money, paid per
    cohort rather than per band, is left out. Neutral levels do not remove parking, which follows the return to
    effort, nor creaming within bands."""
    if history is None:
        from sim.engine.system import simulate

        blind = scenario
        if "behaviour" in type(scenario).model_fields:
            blind = scenario.with_changes({"behaviour.mode": "off"})
        history = simulate(blind, seed)
    schedule = price_schedule(contract, scenario, history)
    prof = band_profile(contract, history, scenario, follow_up_days)
    s = schedule[(schedule["outcome"] != "offending") & schedule["band"].isin(STRUCTURED_BANDS)].copy()
    evidence = discount_factor(s["evidence_days"], _profile(scenario).discount_per_month)
    s["per_weight"] = s["unit_price"] * s["multiplier"] * s["discount"] * (1 - s["clawback_risk"]) * evidence
    own = {name for name, o in contract.outcomes.items() if o.band_weights is not None}
    per_weight = s.groupby(["outcome", "band"])["per_weight"].mean().unstack("band")
    weight = s.groupby(["outcome", "band"])["weight"].first().unstack("band")
    bands = list(STRUCTURED_BANDS)
    unit_value = pd.Series(0.0, index=bands)
    fee = pd.Series(0.0, index=bands)
    for name in contract.outcomes:
        n = prof.achievements[name]
        if name in own:
            fee += per_weight.loc[name, bands] * weight.loc[name, bands] * n
        else:
            unit_value += per_weight.loc[name, bands] * n
    share = float(np.mean([contract.share(y) for y in range(1, contract.years + 1)]))
    N = prof.starters
    w = pd.Series({b: contract.band_weights.get(b, 0.0) for b in bands})
    budget = float((N * w * unit_value).sum())
    margin = w * unit_value + fee - share * prof.cost
    M = float((budget + (N * fee).sum() - share * (N * prof.cost).sum()) / N.sum())
    neutral = ((M - fee + share * prof.cost) / unit_value.where(unit_value > 0)).astype(float)
    table = pd.DataFrame({"starters": N, "unit_value": unit_value, "fee": fee, "cost": prof.cost,
                          "design_weight": w, "neutral_weight": neutral, "design_margin": margin,
                          "neutral_margin": M}).rename_axis("band")
    revenue = (budget + float((N * fee).sum())) / N.sum()
    feasible = bool(neutral.notna().all() and (neutral >= 0).all())
    distance = float((N * (w - neutral).abs()).sum() / (N * w).sum()) if (N * w).sum() > 0 else float("nan")
    spread = float((margin.max() - margin.min()) / revenue) if revenue > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = neutral["critical"] / neutral["low"]
        steep = float(np.log(w["critical"] / w["low"]) / np.log(ratio)) if (
            feasible and ratio > 0 and ratio != 1 and w["low"] > 0) else float("nan")
    gap = margin["critical"] - margin["low"]
    invites = ("cream-skimming and parking (Critical clients less profitable than Low)" if gap < 0 else
               "upcoding (Critical clients more profitable than Low)" if gap > 0 else "neither")
    return TariffCheck(table=table, distance=distance, margin_spread=spread, steepness=steep, feasible=feasible,
                       invites=invites)


def _profile(scenario: Scenario | None) -> ProviderProfile:
    spec = getattr(scenario, "behaviour", None)
    return spec.provider if isinstance(spec, BehaviourSpec) else ProviderProfile()


# --- 7. the engine's view ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
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


_PILOTS: dict[tuple[str, int], History] = {}
_MODELS: dict[tuple[str, str, int], ProviderModel] = {}
_KEEP = 4  # a sweep changes the scenario or contract at every point: keep only the latest few


def _remember(cache: dict, key, make):
    found = cache.get(key)
    if found is None:
        found = cache[key] = make()
        while len(cache) > _KEEP:
            cache.pop(next(iter(cache)))
    return found


def provider_model(scenario: Scenario, contract: Contract | None, seed: int | None = None,
                   cash: pd.DataFrame | None = None) -> ProviderModel | None:
    """The provider's view of ``contract`` for runs of ``scenario``, or None when its behaviour mode is off or
    there is no contract. Beliefs are expectations, the same for every replication: they come from one
    contract-blind pilot run of the scenario (behaviour off) on ``seed`` (default: the scenario's own). The
    pilot run and the model (without a cash path) are kept in memory for further calls in this process, so
    replications of one design build them once."""
    if contract is None or scenario.behaviour.mode == "off":
        return None
    from sim.engine.system import simulate
    from sim.experiments.store import digest

    blind = scenario.with_changes({"behaviour.mode": "off"})
    seed = scenario.seed if seed is None else int(seed)
    pilot = _remember(_PILOTS, (digest(blind.raw()), seed), lambda: simulate(blind, seed))

    def build() -> ProviderModel:
        return ProviderModel.build(scenario, contract, pilot, scenario.behaviour.resolve(), cash=cash)

    if cash is not None:
        return build()
    return _remember(_MODELS, (digest(scenario.raw()), digest(contract.raw()), seed), build)
