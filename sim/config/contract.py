"""Contracts as data: how a treatment system is paid. TOML files, validated like scenarios.

A contract has an annual value, a term (and extension), a payment-by-results share for each contract year (the
escalation schedule), a core paid up front, a menu of outcomes with tariffs by need band, an offending pot with
attachment points, rules (once per client per window, caps, floors, clawback), optional subcontractors who take
shares of income and cost, for a social impact bond an investor who funds delivery, and optional service terms
(who assesses, contact floors, audit) that pay nothing but bound how the provider may respond. Money is never
computed inside the simulation: :mod:`sim.money.settlement` turns a History into dated payments under a contract.

Units: pounds; days for lags and windows; shares as fractions. Contract year k (1-based) runs from the contract
start plus k-1 years to the contract start plus k years.
"""

from __future__ import annotations

import calendar
import datetime as dt
from pathlib import Path
from typing import Annotated, Literal, Self

import numpy as np
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from sim.config.base import ConfigError, PlainName, Section, read_with_extends, set_path, validated
from sim.core.distributions import MAX_POUNDS
from sim.core.measures import PAYABLE_OUTCOMES
from sim.core.vocabulary import BANDS, Band

MAX_YEARS = 50  # contract years (term and extension)
MAX_DAYS = 3650  # any window, lag or standard (days)
Weight = Annotated[float, Field(ge=0, le=1000, description="a tariff weight (1 = the unit price)")]

MEASURES = PAYABLE_OUTCOMES  # name -> definition: the payable outcomes of the registry (sim.core.measures)
Measure = Literal[tuple(MEASURES)]  # type: ignore[valid-type]


class ContractError(ConfigError):
    what = "contract"


class PbrShare(Section):
    """Share of the annual value paid on outcomes, per contract year: exactly one of the three forms."""

    by_year: list[float] | None = Field(None, min_length=1, max_length=MAX_YEARS,
                                        description="one share per contract year (term + extension)")
    linear: tuple[float, float] | None = Field(None, description="[first year, last year], linear between")
    step: tuple[float, float, float] | None = Field(None, description="[first year, rise a year, maximum]")

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        given = [f for f in ("by_year", "linear", "step") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of by_year, linear and step")
        values = list(self.by_year or self.linear or (self.step[0], self.step[2]))
        if any(not 0 <= v <= 1 for v in values):
            raise ValueError(f"shares must be in [0, 1], got {values}")
        return self

    def for_year(self, year: int, years: int) -> float:
        """The share in contract year ``year`` (1-based) of ``years``."""
        if self.by_year is not None:
            return self.by_year[min(year, len(self.by_year)) - 1]
        if self.linear is not None:
            first, last = self.linear
            return first if years == 1 else first + (last - first) * (year - 1) / (years - 1)
        first, rise, top = self.step
        return min(first + rise * (year - 1), top)


Payment = Literal["monthly_in_arrears", "quarterly_in_arrears", "annually_in_arrears", "on_evidence"]


class Escalator(Section):
    """Cohort escalator (Wigan-style): the unit price is multiplied according to the contract year's
    achievement rate (achievements / people in treatment) relative to a baseline rate."""

    baseline_rate: Annotated[float, Field(le=1e3)] | Literal["baseline"] = Field(
        description="achievements per person in treatment a year at baseline; 'baseline': the rate in the year "
                    "before the contract")
    thresholds: list[Annotated[float, Field(ge=-1e3, le=1e3)]] = Field(max_length=100, description="relative changes on the rate (e.g. [0, 0.1]) that separate "
                                                "the multipliers, ascending")
    multipliers: list[Annotated[float, Field(le=1e3)]] = Field(max_length=101, description="one more than thresholds, e.g. [0.5, 1.0, 1.5]")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if len(self.multipliers) != len(self.thresholds) + 1:
            raise ValueError("give one more multiplier than thresholds")
        if sorted(self.thresholds) != self.thresholds or any(m < 0 for m in self.multipliers):
            raise ValueError("thresholds must ascend and multipliers be >= 0")
        return self

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.baseline_rate != "baseline" and not self.baseline_rate > 0:
            raise ValueError("baseline_rate must be > 0 or 'baseline'")
        return self

    def multiplier(self, rate: float, baseline_rate: float) -> float:
        change = rate / baseline_rate - 1.0 if baseline_rate > 0 else np.inf
        return self.multipliers[sum(change >= t for t in self.thresholds)]


class Outcome(Section):
    """One paid outcome: what is measured, its price, and its rules."""

    measure: Measure = Field(description="the outcome measure (see sim.config.contract.MEASURES)")
    price: float | None = Field(None, ge=0, le=MAX_POUNDS, description="pounds per outcome before the band weight")
    share_of_pot: float | None = Field(None, ge=0, le=1, description="share of the outcome pot; the price is "
                                       "pot x share / expected_volume")
    expected_volume: Annotated[float, Field(le=1e9)] | dict[Band, Annotated[float, Field(ge=0, le=1e9)]] | \
        Literal["baseline"] | None = Field(
        None, description="outcomes expected a year: a table by band (people or outcomes a year, the tender's "
                          "expected volumes; the price divides the band-weighted total), a band-weighted number, or "
                          "'baseline': the band-weighted number achieved in the year before the contract, so that "
                          "baseline performance earns exactly the share of the pot")
    band_weights: dict[Band, Weight] | None = Field(None, description="tariff weight by band (overrides the "
                                                    "contract's)")
    window_days: float = Field(365.0, gt=0, le=MAX_DAYS, description="the measure's window: two reviews within it; no "
                                                        "re-presentation within it (days)")
    once_per: Literal["episode", "client", "window"] = Field(
        "window", description="paid once per treatment episode, once per client over the contract, or once per "
                              "client per rolling window")
    lag_days: float = Field(0.0, ge=0, le=MAX_DAYS, description="evidence lag before the outcome can be claimed (days)")
    payment: Payment = Field("quarterly_in_arrears", description="when claimed outcomes are paid")
    cap_per_year: float | None = Field(None, ge=0, le=MAX_POUNDS, description="most paid for this outcome in a contract year "
                                                               "(pounds)")
    clawback_days: float | None = Field(None, gt=0, le=MAX_DAYS, description="recover the payment if the client re-presents "
                                                                "within this many days of the outcome")
    escalator: Escalator | None = None

    @model_validator(mode="after")
    def _priced(self) -> Self:
        if (self.price is None) == (self.share_of_pot is None):
            raise ValueError("give exactly one of price and share_of_pot")
        if self.share_of_pot is not None and self.expected_volume is None:
            raise ValueError("share_of_pot needs expected_volume")
        if isinstance(self.expected_volume, float) and not self.expected_volume > 0:
            raise ValueError("expected_volume must be > 0, a table by band, or 'baseline'")
        return self

    @property
    def baseline_key(self) -> str | None:
        """The key through which this outcome is priced from the year before the contract (``expected_volume``
        or ``escalator.baseline_rate`` set to "baseline"), or None."""
        if self.expected_volume == "baseline":
            return "expected_volume"
        if self.escalator is not None and self.escalator.baseline_rate == "baseline":
            return "escalator.baseline_rate"
        return None

    def weighted_volume(self, weight) -> float | None:
        """The band-weighted expected volume a year (``weight(band)`` the tariff weight); None for 'baseline'."""
        if isinstance(self.expected_volume, dict):
            return float(sum(weight(b) * n for b, n in self.expected_volume.items()))
        return None if self.expected_volume == "baseline" else self.expected_volume


class OffendingPayment(Section):
    """The offending pot (Home Office model): paid on the cohort's recorded offences against a baseline year."""

    pot: float = Field(ge=0, le=MAX_POUNDS, description="the offending pot, within the PbR share (pounds a year)")
    measure: Literal["per_member", "volume"] = Field(
        "per_member", description="the cohort's average recorded offences per member (the Home Office model) or "
                                  "their total")
    paid_at_baseline: float = Field(0.53, ge=0, le=1, description="share of the pot paid if offences equal the "
                                                                  "baseline")
    full_at_reduction: float = Field(0.043, gt=0, lt=1, description="reduction at which the whole pot is paid")
    below_baseline: Literal["extend", "zero", "hold"] = Field(
        "extend", description="above the baseline: continue the line down to 0 (extend), pay nothing (zero), or "
                              "pay the baseline share (hold)")
    price_per_offence: float = Field(ge=0, le=MAX_POUNDS, description="Estimated Community Savings per offence saved (pounds)")
    baseline_offences: float | None = Field(None, gt=0, le=1e9, description="a fixed baseline in the measure's unit "
                                            "(recorded offences a year, per member or in total); default: the "
                                            "cohort's in the year before the contract")
    lag_days: float = Field(274.0, ge=0, le=MAX_DAYS, description="reconciled this long after each contract year ends "
                                                     "(police records lag)")


class Subcontractor(Section):
    """A partner of the prime provider taking shares of income and of delivery cost, until it withdraws."""

    name: str
    share_of_income: float = Field(ge=0, le=1)
    share_of_cost: float = Field(ge=0, le=1)
    until: dt.date | None = Field(None, description="the day it withdraws (its shares return to the prime)")


class Investor(Section):
    """A social impact bond: an investor funds delivery and is repaid from the outcome payments."""

    name: str = "investor"
    capital: float = Field(gt=0, le=MAX_POUNDS, description="capital committed (pounds)")


class ServiceTerms(Section):
    """Terms of the service specification that settle no money but bound what a provider can do to respond to
    the payments (read by :mod:`sim.provider.model`; settlement ignores them, so adding them changes no payment).
    Absent, they describe the system the pathway simulates: an independent LASARS service, no contact floor,
    no audit, self-reported TOP reviews and no wait-time standard."""

    assessment: Literal["independent", "embedded", "provider"] = Field(
        "independent", description="who assesses need and sets the band: an independent LASARS service, LASARS "
                                   "staff embedded in the provider, or the provider itself (pbr-contracts.md §2)")
    intake: Literal["provider", "assessor"] = Field(
        "provider", description="who decides acceptance and start order after assessment: the provider, or the "
                                "assessor allocating every assessed client to a start (no provider discretion)")
    contact_floor_per_month: float | None = Field(None, ge=0, le=100, description="minimum keyworker contacts a client "
                                                  "on the caseload must have each month, with audit (contacts a "
                                                  "month)")
    audit_share: float = Field(0.0, ge=0, le=1, description="share of assessments and TOP reviews re-checked "
                                                            "independently; a discrepancy is clawed back")
    verified_reviews: bool = Field(False, description="TOP results verified by testing or an independent "
                                                      "reviewer rather than self-reported")
    wait_standard_days: float | None = Field(None, gt=0, le=MAX_DAYS, description="wait-time standard: referral to treatment "
                                             "start at most this long (days)")


class Contract(Section):
    """A validated, frozen contract."""

    name: PlainName
    description: str = ""
    annual_value: float = Field(gt=0, le=MAX_POUNDS, description="contract value (pounds a year, at most £1bn)")
    term_years: int = Field(ge=1, le=25, description="initial term (years, 1 to 25)")
    extension_years: int = Field(0, ge=0, le=25, description="optional extension (years, at most 25), simulated "
                                                             "as taken")
    pbr_share: PbrShare
    core_payment: Literal["monthly_in_advance", "monthly_in_arrears", "quarterly_in_advance"] = "monthly_in_advance"
    band_weights: dict[Band, Weight] = Field(default_factory=lambda: {b: 1.0 for b in BANDS},
                                            description="tariff weight by band (1 = the unit price)")
    outcomes: dict[str, Outcome] = Field(default_factory=dict)
    offending: OffendingPayment | None = None
    pbr_cap: float | None = Field(None, gt=0, le=10, description="outcome and offending payments in a contract year are "
                                                          "at most this multiple of its PbR pot")
    income_floor: float | None = Field(None, ge=0, le=10, description="total income in a contract year is topped up to "
                                                               "at least this share of the annual value")
    income_cap: float | None = Field(None, gt=0, le=10, description="total income in a contract year is cut to at most "
                                                             "this share of the annual value")
    term_cap: float | None = Field(None, gt=0, le=MAX_POUNDS, description="most paid on outcomes over the whole term (pounds)")
    reconciliation_lag_days: float = Field(91.0, ge=0, le=MAX_DAYS, description="year-end adjustments are paid this long after "
                                                                   "the contract year ends")
    subcontractors: list[Subcontractor] = Field(default_factory=list)
    investor: Investor | None = None
    service_terms: ServiceTerms | None = Field(None, description="service-specification terms that shape the "
                                               "provider's room to respond (no money; see sim.provider.model)")

    _source: str = PrivateAttr(default="<contract>")
    _raw: dict | None = PrivateAttr(default=None)

    @field_validator("pbr_share")
    @classmethod
    def _a_share_a_year(cls, share: PbrShare, info: ValidationInfo) -> PbrShare:
        if "term_years" not in info.data or "extension_years" not in info.data:
            return share  # reported on those keys
        years = info.data["term_years"] + info.data["extension_years"]
        if share.by_year is not None and len(share.by_year) != years:
            raise ValueError(f"by_year needs one share per contract year ({years}), got {len(share.by_year)}")
        shares = [share.for_year(k, years) for k in range(1, years + 1)]
        if any(not 0 <= x <= 1 for x in shares):
            raise ValueError(f"gives shares outside [0, 1]: {[round(x, 4) for x in shares]}")
        return share

    @field_validator("income_cap")
    @classmethod
    def _cap_above_floor(cls, cap: float | None, info: ValidationInfo) -> float | None:
        floor = info.data.get("income_floor")
        if cap is not None and floor is not None and floor > cap:
            raise ValueError(f"below income_floor = {floor:g}: the floor must not be above the cap")
        return cap

    @field_validator("outcomes")
    @classmethod
    def _pot_shared_once(cls, outcomes: dict[str, Outcome]) -> dict[str, Outcome]:
        shared = sum(o.share_of_pot or 0.0 for o in outcomes.values())
        if shared > 1 + 1e-9:
            shares = ", ".join(f"{k} {o.share_of_pot:g}" for k, o in outcomes.items() if o.share_of_pot)
            raise ValueError(f"share_of_pot of the outcomes add up to {shared:.6g}, more than 1 ({shares})")
        return outcomes

    @model_validator(mode="after")
    def _volumes_weigh_something(self) -> Self:
        for name, o in self.outcomes.items():
            if isinstance(o.expected_volume, dict) and not o.weighted_volume(lambda b: self.weight(o, b)) > 0:
                raise ValueError(f"outcomes.{name}.expected_volume = {o.expected_volume}: the band-weighted volume "
                                 f"is 0 (every band with a volume has tariff weight 0), so no price can be set")
        return self

    @field_validator("subcontractors")
    @classmethod
    def _shares_of_the_prime(cls, subs: list[Subcontractor]) -> list[Subcontractor]:
        for key in ("share_of_income", "share_of_cost"):
            total = sum(getattr(sub, key) for sub in subs)
            if total > 1 + 1e-9:
                raise ValueError(f"{key} of the subcontractors add up to {total:.6g}, more than 1 (the prime "
                                 f"would keep less than nothing)")
        return subs

    @property
    def years(self) -> int:
        return self.term_years + self.extension_years

    def share(self, year: int) -> float:
        """PbR share of the annual value in contract year ``year`` (1-based)."""
        return self.pbr_share.for_year(year, self.years)

    def pot(self, year: int) -> float:
        """Outcome-linked money of contract year ``year``: the PbR share of the annual value."""
        return self.share(year) * self.annual_value

    def outcome_pot(self, year: int) -> float:
        """The pot less the offending pot: what ``share_of_pot`` prices divide."""
        return max(self.pot(year) - (self.offending.pot if self.offending else 0.0), 0.0)

    @property
    def terms(self) -> ServiceTerms:
        """The service terms in force: as written, or the defaults (the system the pathway simulates)."""
        return self.service_terms if self.service_terms is not None else ServiceTerms()

    def weight(self, outcome: Outcome, band: str) -> float:
        weights = outcome.band_weights if outcome.band_weights is not None else self.band_weights
        return weights.get(band, 0.0)

    def raw(self) -> dict:
        """The contract as written (after ``extends``)."""
        return self._raw if self._raw is not None else self.model_dump(mode="python", exclude_none=True)

    def with_changes(self, changes: dict) -> Contract:
        """A copy with values replaced at dotted key paths, validated again."""
        import copy

        raw = copy.deepcopy(self.raw())
        for path, value in changes.items():
            set_path(raw, path.split("."), value, must_exist=False)
        return _validate(raw, f"{self._source} (with changes)", {})


def load_contract(path: str | Path) -> Contract:
    """Read, merge (``extends``) and validate a contract file."""
    path = Path(path)
    raw, provenance = read_with_extends(path, ContractError)
    return _validate(raw, str(path), provenance)


def contract_from_dict(raw: dict, source: str = "<dict>") -> Contract:
    """A contract from a plain dict (as written in a file, after ``extends``)."""
    import copy

    raw = copy.deepcopy(raw)
    raw.pop("extends", None)
    return _validate(raw, source, {(k,): source for k in raw})


def _validate(raw: dict, source: str, provenance: dict) -> Contract:
    contract = validated(raw, Contract, ContractError, source, provenance)
    contract._source = source
    contract._raw = raw
    return contract


def contract_years(contract_start: dt.date, years: int, first: int = 1) -> list[tuple[int, float, float]]:
    """[(contract year, start day, end day)] counted from the contract start; year 0 is the year before it."""
    out = []
    for k in range(first - 1, first - 1 + years):
        a = _add_years(contract_start, k)
        b = _add_years(contract_start, k + 1)
        out.append((k + 1, float((a - contract_start).days), float((b - contract_start).days)))
    return out


def add_months(d: dt.date, months: int) -> dt.date:
    """The same day ``months`` later, or the month's last day when it is shorter (31 January -> 29 February)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _add_years(d: dt.date, n: int) -> dt.date:
    try:
        return d.replace(year=d.year + n)
    except ValueError:  # 29 February
        return d.replace(year=d.year + n, day=28)
