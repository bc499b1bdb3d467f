"""Scenarios: TOML files validated into frozen pydantic models before anything runs.

A scenario says what the treatment system is: its horizon, who arrives, how LASARS assesses them, the pathway's
routing, durations, probabilities and hazards, the capacities, and dated changes to any of these. Units are in
the key names (``*_days``, ``*_weeks``, ``*_years``, ``*_per_year``, ``*_per_100py`` = per 100 person-years).

A scenario may ``extends = "other.toml"`` (a path relative to the file). Tables are merged key by key, the
extending file winning; arrays (such as ``schedule``) are replaced whole.

Every problem is reported before anything runs, each naming the file the value came from, the key path and the
value: ``west_kent.toml: treatment.drop_out_rate_per_year.by_group.opiate = -0.2: a rate must be >= 0, got -0.2``.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from pathlib import Path
from typing import Any, Self

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from sim.config.base import ConfigError, PlainName, problems, read_with_extends, set_path, source_of, validated
from sim.config.base import Section as _Section
from sim.config.behaviour import BehaviourSpec
from sim.core.calendar import DAYS_PER_YEAR
from sim.core.distributions import MAX_POUNDS, Dist, Growth, Money, Probability, Rate, Ratio, shares_of
from sim.core.vocabulary import BANDS, GROUPS, MODALITIES, REHAB_OUTCOMES, SOURCES, USE_AT_REVIEW, Group

SourceShares = shares_of(*SOURCES, name="SourceShares")
BandShares = shares_of(*BANDS, name="BandShares")
ModalityShares = shares_of(*MODALITIES, name="ModalityShares")
UseShares = shares_of(*USE_AT_REVIEW, name="UseShares")
RehabOutcomeShares = shares_of(*REHAB_OUTCOMES, name="RehabOutcomeShares")

MAX_YEARS = 50  # a horizon or warm-up longer than this is refused (the calendar and memory stay in bounds)
# first referrals a run may simulate over warm-up and horizon (with re-presentations, about 1.5 KiB each: see
# sim.engine.history.MAX_EPISODES); a district sees about 2,000 a year
MAX_REFERRALS = 3_000_000
MAX_ARRIVALS_PER_YEAR = 1_000_000  # first referrals per year in one group (England sees about 130,000 in all)


class ScenarioError(ConfigError):
    """Problems found in a scenario, each as (file, key path, value, message)."""

    what = "scenario"


class Horizon(_Section):
    contract_start: dt.date = Field(description="first day of the contract; simulation time 0 (date)")
    years: float | None = Field(None, gt=0, le=MAX_YEARS, description="length of the reported period after contract start (years, at most 50)")
    end: dt.date | None = Field(None, description="first day after the reported period (date); instead of years")
    warmup_years: float = Field(5.0, ge=0, le=MAX_YEARS, description="simulated before contract start to build the "
                                                        "stock of clients; never reported (years, at most 50)")
    settled_after_years: float | None = Field(
        None, ge=0, le=MAX_YEARS, description="the warm-up the system needs to settle (years, as `pbrsim warmup` "
                                              "finds it): a shorter warmup_years warns, and prices from the year "
                                              "before the contract are refused")

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("contract_start")
        if end is not None and info.data.get("years") is not None:  # reported here, on the key and its value
            raise ValueError("give exactly one of years and end")
        if end is not None and start is not None and end <= start:
            raise ValueError(f"the end must be after contract_start ({start})")
        return end

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if (self.years is None) == (self.end is None):
            raise ValueError("give exactly one of years and end")
        return self

    def unsettled(self, name: str) -> str | None:
        """Why a run of scenario ``name`` starts its contract before the system has settled, or None."""
        if self.settled_after_years is None or self.warmup_years >= self.settled_after_years:
            return None
        return (f"scenario {name}: horizon.warmup_years = {self.warmup_years:g} is shorter than the "
                f"{self.settled_after_years:g} years its system needs to settle (horizon.settled_after_years, from "
                f"pbrsim warmup): the caseload is still filling at contract start, so trends, prices from the year "
                f"before and money are biased")

    @property
    def end_date(self) -> dt.date:
        if self.end is not None:
            return self.end
        whole = int(self.years)
        if whole == self.years:
            try:
                return self.contract_start.replace(year=self.contract_start.year + whole)
            except ValueError:  # 29 February
                return self.contract_start.replace(year=self.contract_start.year + whole, day=28)
        return self.contract_start + dt.timedelta(days=round(self.years * DAYS_PER_YEAR))

    @property
    def end_day(self) -> float:
        """Simulation time (days since contract start) at which reporting ends."""
        return float((self.end_date - self.contract_start).days)

    @property
    def start_day(self) -> float:
        """Simulation time (days, negative) at which the warm-up begins."""
        return -self.warmup_years * DAYS_PER_YEAR

    def day(self, date: dt.date) -> float:
        return float((date - self.contract_start).days)


class Population(_Section):
    arrivals_per_year: dict[Group, float] = Field(description="first referrals per year by substance group "
                                                              "(people/year); re-presentations come on top")
    trend_per_year: Growth = Field(Growth(value=0.0), description="compound growth of first referrals per year, "
                                                                  "by group (0.05 = +5% a year, relative to the contract start)")
    seasonality_amplitude: float = Field(0.0, ge=0, lt=1, description="relative amplitude of a yearly cycle")
    seasonality_peak_month: int = Field(1, ge=1, le=12, description="month in which referrals peak")
    referral_source: SourceShares = Field(description="share of first referrals by source, per group")
    male: Probability = Field(description="probability a client is male")
    age_years: Dist = Field(description="age at first referral (years)")
    injecting: Probability = Field(description="probability of injecting at first referral")
    dual_diagnosis: Probability = Field(description="probability of a co-occurring mental health condition")
    housing_problem: Probability = Field(description="probability of a housing problem at first referral")
    criminal_justice: Probability = Field(description="probability of criminal-justice involvement when not "
                                                      "referred by a criminal-justice route")
    active_offender: Probability = Field(description="probability of active acquisitive offending, given "
                                                     "criminal-justice involvement")
    offending_rate_per_year: Dist = Field(description="personal offending rate of an active offender when "
                                                      "untreated (offences/year)")

    @field_validator("arrivals_per_year")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not (0 <= x <= MAX_ARRIVALS_PER_YEAR)}
        if bad:
            raise ValueError(f"arrival rates must be in [0, {MAX_ARRIVALS_PER_YEAR:,}] a year, got {bad}")
        return v


class Assessment(_Section):
    booking_delay_days: Dist = Field(description="referral to the assessment queue (days)")
    assessment_days: Dist = Field(description="assessor time per assessment; with `capacity.assessors` this "
                                              "sets the queue for assessment (days)")
    dependency_domain: BandShares = Field(description="need score in the dependency domain, per group")
    wider_needs_domain: BandShares = Field(description="need score in the wider-needs domain (health, social, "
                                                       "offending), per group; band = the more severe")
    attends_treatment: Probability = Field(description="probability an assessed client attends treatment")


class Treatment(_Section):
    start_delay_days: Dist = Field(description="assessment to first intervention when a caseload place is "
                                               "free (days)")
    modality: ModalityShares = Field(description="main modality by group and band")
    completion_weeks: Dist = Field(description="treatment start to being judged free of dependence, absent "
                                               "any other exit (weeks)")
    abstinent_before_completion_weeks: Dist = Field(description="how long a completer has been abstinent when "
                                                                "judged free of dependence (weeks)")
    planned_exit_min_abstinence_weeks: float = Field(12.0, ge=0, le=520, description="planned exit rule: abstinent "
                                                                              "at least this long (weeks)")
    drop_out_rate_per_year: Rate = Field(description="hazard of dropping out (per year)")
    declined_share: Probability = Field(description="share of exits on the drop-out hazard recorded as declined "
                                                    "further treatment")
    withdrawn_share: Probability = Field(description="share of exits on the drop-out hazard recorded as NDTMS's "
                                                     "other incomplete exits (treatment withdrawn by the provider, "
                                                     "moved away, other): `withdrawn`")
    transfer_rate_per_year: Rate = Field(description="hazard of transfer to a service outside the system")
    custody_rate_per_year: Rate = Field(description="hazard of custody, clients with criminal-justice "
                                                    "involvement (per year)")
    waiting_list_patience_days: Dist | None = Field(None, description="how long a client waits for a caseload "
                                                                      "place before leaving (days); none: waits")

    @field_validator("withdrawn_share")
    @classmethod
    def _one_record_per_exit(cls, withdrawn: Probability, info: ValidationInfo) -> Probability:
        declined = info.data.get("declined_share")
        if declined is None:  # reported on its own key
            return withdrawn
        for g, row in zip(GROUPS, zip(declined.table(), withdrawn.table())):
            for b, d, w in zip(BANDS, *row):
                if d.value + w.value > 1.0:
                    raise ValueError(f"declined_share + withdrawn_share must be at most 1 (one record per exit), "
                                     f"got {d.value:g} + {w.value:g} for {g}, {b}")
        return withdrawn


class Reviews(_Section):
    interval_weeks: float = Field(12.0, ge=1, le=520, description="TOP reviews at start and every interval "
                                                                "(weeks, 1 to 520)")
    completed: Probability = Field(description="probability a due TOP review is done and recorded")
    use: UseShares = Field(description="substance use at a review before sustained abstinence")
    persistence: float = Field(0.5, ge=0, lt=1, description="correlation of a client's review results "
                                                            "between reviews (Gaussian copula)")
    stop_injecting_weeks: Dist = Field(description="treatment start to stopping injecting (weeks)")
    housing_resolved_weeks: Dist = Field(description="treatment start to housing problem resolved (weeks)")
    quality_of_life_mean: dict[str, float] = Field(description="mean TOP quality of life (0-20) by use at review")
    quality_of_life_sd: float = Field(3.0, ge=0, le=20, description="spread of TOP quality-of-life scores (points)")
    bbv_test: Probability = Field(description="probability of a blood-borne virus test in the episode")
    bbv_test_days: Dist = Field(description="treatment start to BBV test (days)")
    hep_b_course: Probability = Field(description="probability a hepatitis B course is started")
    hep_b_course_days: float = Field(21.0, ge=0, le=3650, description="length of the hepatitis B course (days)")

    @field_validator("quality_of_life_mean")
    @classmethod
    def _qol(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(USE_AT_REVIEW):
            raise ValueError(f"give a mean for each of {', '.join(USE_AT_REVIEW)}")
        bad = {k: x for k, x in v.items() if not 0 <= x <= 20}
        if bad:
            raise ValueError(f"quality of life is scored 0-20, got {bad}")
        return v


class CommunityDetox(_Section):
    probability: Probability = Field(description="probability an episode includes a community detox")
    timing_weeks: Dist = Field(description="treatment start to detox (weeks)")
    duration_days: Dist = Field(description="length of the detox (days)")
    completion: Probability = Field(description="probability the detox is completed")


class InpatientDetox(_Section):
    probability: Probability = Field(description="probability an episode includes an inpatient detox")
    timing_weeks: Dist = Field(description="treatment start to referral for inpatient detox (weeks)")
    stay_days: Dist = Field(description="length of stay (days)")
    completion: Probability = Field(description="probability the detox is completed")
    patience_days: Dist = Field(description="how long a client waits for a bed before leaving the list (days)")


class Rehab(_Section):
    probability: Probability = Field(description="probability an episode includes residential rehab")
    timing_weeks: Dist = Field(description="treatment start to referral for rehab (weeks)")
    stay_weeks: Dist = Field(description="planned length of stay (weeks)")
    outcome: RehabOutcomeShares = Field(description="complete free of dependence / step down to community / "
                                                    "drop out")
    drop_out_weeks: Dist = Field(description="admission to drop-out, for those who drop out (weeks)")
    patience_days: Dist = Field(description="how long a client waits for a place before leaving the list (days)")


class Aftercare(_Section):
    weeks: Dist = Field(description="after a completed detox or a rehab step-down: abstinence start to planned "
                                    "exit (weeks)")
    drop_out_ratio: Ratio = Field(description="drop-out hazard in aftercare relative to treatment")


class MutualAid(_Section):
    engagement: Probability = Field(description="probability a client engages with mutual aid in an episode")
    drop_out_ratio: Ratio = Field(description="drop-out hazard ratio when engaged")
    relapse_ratio: Ratio = Field(description="relapse hazard ratio after a planned exit when engaged")
    signposted_engagement: Probability = Field(description="probability a signposted client engages")


class AfterExit(_Section):
    relapse_years: Dist = Field(description="planned exit to relapse (years)")
    represent_after_relapse: Probability = Field(description="probability a relapsed client re-presents")
    represent_delay_weeks: Dist = Field(description="relapse to re-presentation (weeks)")
    disengaged_return_years: Dist = Field(description="unplanned exit (drop-out, missed start, release) to "
                                                      "re-presentation (years); `never` is the share who do not "
                                                      "return (recovered without treatment, moved away)")
    signposted_return_years: Dist = Field(description="signposting (no need for structured treatment) to "
                                                      "re-referral (years); `never`: the share who do not come back")
    arrest_referral: Probability = Field(description="probability that a recorded offence by an active offender "
                                                     "out of treatment (disengaged or relapsed) leads to a "
                                                     "criminal-justice referral back into treatment (arrest "
                                                     "referral, court order)")
    arrest_window_years: float = Field(ge=0, le=50, description="years after leaving treatment in which an "
                                                                 "arrest can bring a client back (years)")
    training_after_planned_exit: Probability = Field(description="probability of entering education, training "
                                                                 "or employment after a planned exit")
    training_weeks: Dist = Field(description="planned exit to entering training (weeks), if still recovered")


class Custody(_Section):
    sentence_weeks: Dist = Field(description="time in custody (weeks)")
    represent_on_release: Probability = Field(description="probability of re-presenting on release (prison "
                                                          "release route)")


class Mortality(_Section):
    in_treatment_per_100py: Rate = Field(description="deaths per 100 person-years in treatment")
    out_of_treatment_per_100py: Rate = Field(description="deaths per 100 person-years out of treatment "
                                                         "(disengaged, relapsed, signposted, in custody)")
    recovered_per_100py: Rate = Field(description="deaths per 100 person-years after a planned exit")
    post_exit_ratio: Ratio = Field(description="mortality multiplier in the weeks after leaving opioid "
                                               "substitution, detox, rehab or custody")
    post_exit_weeks: float = Field(4.0, ge=0, le=520, description="how long the raised risk lasts (weeks)")


class Offending(_Section):
    """Offending relative to a client's personal untreated rate, by state (offences are counted afterwards,
    from the spells; see :mod:`sim.analysis.offending`)."""

    before_treatment: Ratio = Field(description="referred, awaiting assessment or treatment")
    in_treatment: Ratio = Field(description="in structured treatment (also used for TOP review answers)")
    after_planned_exit: Ratio = Field(description="recovered after a planned exit")
    after_drop_out: Ratio = Field(description="disengaged after an unplanned exit or a missed start")
    relapsed: Ratio = Field(description="relapsed after a planned exit")
    signposted: Ratio = Field(description="signposted after a no-need assessment")
    in_custody: Ratio = Field(description="in custody")
    recorded_share: Probability = Field(description="share of offences that lead to a police record (PNC)")
    savings_per_recorded_offence: float = Field(
        ge=0, le=MAX_POUNDS, description="community savings per recorded offence saved (pounds): the commissioner's "
                                         "figure under every contract, offending pot or not")


class Costs(_Section):
    """Provider delivery costs (pounds, one price base) and the commissioner's cost of assessment."""

    recovery_worker_per_year: float = Field(ge=0, le=MAX_POUNDS, description="cost of a recovery worker (pounds per FTE-year)")
    overheads_per_year: float = Field(ge=0, le=MAX_POUNDS, description="premises, management, recovery programme (pounds/year)")
    ost_per_client_year: Money = Field(description="prescribing, dispensing and supervision of opioid substitution "
                                                  "(pounds per client-year on OST)")
    community_detox: Money = Field(description="pounds per community detox")
    inpatient_detox_per_day: Money = Field(description="pounds per inpatient detox bed-day")
    rehab_per_week: Money = Field(description="pounds per week of residential rehab")
    bbv_test: float = Field(ge=0, le=MAX_POUNDS, description="pounds per blood-borne virus test")
    hep_b_course: float = Field(ge=0, le=MAX_POUNDS, description="pounds per hepatitis B course started")
    mutual_aid_per_client_year: float = Field(ge=0, le=MAX_POUNDS, description="recovery support for engaged clients (pounds "
                                                                 "per client-year in treatment)")
    assessment: float = Field(ge=0, le=MAX_POUNDS, description="pounds per LASARS assessment, paid by the commissioner")


class Capacity(_Section):
    assessors: int = Field(ge=0, le=10_000, description="LASARS assessors (people, at most 10,000)")
    recovery_workers: float = Field(ge=0, le=100_000, description="recovery workers (full-time equivalents, at most "
                                                                 "100,000)")
    caseload_per_worker: float = Field(gt=0, le=1000, description="clients per recovery worker (at most 1,000)")
    inpatient_detox_beds: int = Field(ge=0, le=100_000, description="inpatient detox beds (at most 100,000)")
    rehab_places: int = Field(ge=0, le=100_000, description="residential rehab places (at most 100,000)")

    @property
    def caseload(self) -> int:
        """Treatment places: recovery workers x caseload per worker."""
        return int(math.floor(self.recovery_workers * self.caseload_per_worker + 1e-9))


class Change(_Section):
    """A dated change: from ``date`` on, ``set`` replaces and ``scale`` multiplies the values at the key paths."""

    date: dt.date
    note: str = ""
    set: dict[str, Any] = Field(default_factory=dict)
    scale: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.set and not self.scale:
            raise ValueError("a change needs `set` or `scale`")
        return self


class Scenario(_Section):
    """A validated, frozen scenario. ``epochs()`` gives the scenario in force from each dated change."""

    name: PlainName
    description: str = ""
    seed: int = Field(0, ge=0, lt=2**63, description="root seed of the default replication")
    horizon: Horizon
    population: Population
    assessment: Assessment
    treatment: Treatment
    reviews: Reviews
    community_detox: CommunityDetox
    inpatient_detox: InpatientDetox
    rehab: Rehab
    aftercare: Aftercare
    mutual_aid: MutualAid
    after_exit: AfterExit
    custody: Custody
    mortality: Mortality
    offending: Offending
    costs: Costs
    capacity: Capacity
    contract: str | None = Field(None, description="the contract file this system is paid under (a path "
                                                   "relative to the scenario file that names it)")
    counterfactual: str | None = Field(None, description="the scenario file of the system without the pilot, for "
                                                         "`pbrsim evaluate-pilot` (relative to the scenario file "
                                                         "that names it)")
    uncertainty: dict[str, Dist] = Field(default_factory=dict, description="probabilistic sensitivity analysis: "
                                         "a distribution for the number at each dotted key path, drawn once per "
                                         "replication (see sim.experiments.uncertainty)")
    schedule: list[Change] = Field(default_factory=list)
    behaviour: BehaviourSpec = Field(default_factory=BehaviourSpec, description="how the provider responds to "
                                     "the contract's incentives (sim.provider.model); mode 'off', the default, is the "
                                     "contract-blind model")

    _epochs: list[tuple[float, Scenario]] | None = PrivateAttr(default=None)
    _source: str = PrivateAttr(default="<scenario>")
    _provenance: dict[tuple, str] = PrivateAttr(default_factory=dict)
    _raw: dict[str, Any] | None = PrivateAttr(default=None)  # the merged file, as written

    @model_validator(mode="after")
    def _uncertain_paths_exist(self) -> Self:
        if not self.uncertainty:
            return self
        raw = self.model_dump(mode="python", exclude_none=True)
        for path in self.uncertainty:
            if path.startswith("contract."):
                continue  # checked against the contract when one is settled (sim.money.settlement.check)
            try:
                set_path(copy.deepcopy(raw), path.split("."), 1.0, must_exist=True, scale=True)
            except KeyError:
                raise ValueError(f"uncertainty: no number at key path {path!r}") from None
            if path.split(".")[0] in ("horizon", "schedule", "uncertainty", "seed", "contract"):
                raise ValueError(f"uncertainty: {path!r} cannot be uncertain")
        return self

    def epochs(self) -> list[tuple[float, Scenario]]:
        """[(start day, scenario in force)], the first starting at the warm-up start."""
        if self._epochs is None:
            self._epochs = _build_epochs(self)
        return self._epochs

    def with_changes(self, changes: dict[str, Any]) -> Scenario:
        """A copy with values replaced at dotted key paths, validated again (for variants and sweeps).

        Changes apply to the scenario as written, so a change to a base parameter reaches the overrides that
        inherit from it, exactly as the same edit in the file would. ``None`` removes a key.
        """
        raw = copy.deepcopy(self.raw())
        provenance = dict(self._provenance)
        label = f"{self._source} (with changes)"
        for path, value in changes.items():
            parts = path.split(".")
            set_path(raw, parts, value, must_exist=False)
            provenance[tuple(parts)] = label
        return _validate(raw, label, provenance)

    def contract_path(self) -> Path | None:
        """Where the named contract file is: relative to the file that names it."""
        return self._named_path("contract")

    def counterfactual_path(self) -> Path | None:
        """Where the named counterfactual scenario file is: relative to the file that names it."""
        return self._named_path("counterfactual")

    def _named_path(self, key: str) -> Path | None:
        value = getattr(self, key)
        if value is None:
            return None
        named_in = Path(source_of((key,), self._provenance, self._source).removesuffix(" (with changes)"))
        return (named_in.parent / value) if named_in.suffix == ".toml" else Path(value)

    def raw(self) -> dict[str, Any]:
        """The scenario as written (after ``extends``), before validation filled in defaults."""
        if self._raw is None:
            self._raw = self.model_dump(mode="python", exclude_none=True)
        return self._raw


# --- loading -----------------------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Read, merge (``extends``) and validate a scenario file and all its dated changes."""
    path = Path(path)
    raw, provenance = read_with_extends(path, ScenarioError)
    return _validate(raw, str(path), provenance, dates=True)


def scenario_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Scenario:
    raw = copy.deepcopy(raw)
    raw.pop("extends", None)
    return _validate(raw, source, {(k,): source for k in raw})


def _validate(raw: dict, source: str, provenance: dict, dates: bool = False) -> Scenario:
    scenario = validated(raw, Scenario, ScenarioError, source, provenance)
    scenario._source = source
    scenario._provenance = provenance
    scenario._raw = raw
    scenario.epochs()  # validate every dated change now, before anything runs
    found = _out_of_bounds(scenario, dates)
    if found:
        raise ScenarioError(found)
    return scenario


def expected_first_referrals(scenario: Scenario) -> float:
    """First referrals expected over the warm-up and the horizon, with the trend, under the values in force at
    the warm-up start (people)."""
    h, pop = scenario.horizon, scenario.population
    start, end = h.start_day / DAYS_PER_YEAR, h.end_day / DAYS_PER_YEAR
    total = 0.0
    for group, rate in pop.arrivals_per_year.items():
        g = pop.trend_per_year.resolve(group).value
        k = math.log1p(g) if g else 0.0
        total += rate * ((math.exp(k * end) - math.exp(k * start)) / k if k else end - start)
    return total


def _out_of_bounds(scenario: Scenario, dates: bool) -> list[tuple[str, str, Any, str]]:
    """What validates field by field but would run past the calendar or this machine: a horizon beyond
    ``MAX_YEARS``, more than ``MAX_REFERRALS`` first referrals in a run, and (``dates``: in a file as written,
    not in a variant whose horizon was shortened on purpose) dated changes that would never apply."""
    where = scenario._source
    h = scenario.horizon
    found = []
    if h.end_day / DAYS_PER_YEAR > MAX_YEARS + 1e-9:
        found.append((source_of(("horizon", "end"), scenario._provenance, where), "horizon.end", h.end_date,
                      f"more than {MAX_YEARS} years after contract_start ({h.contract_start})"))
    for i, change in enumerate(scenario.schedule if dates else ()):
        if change.date >= h.end_date:
            found.append((source_of(("schedule",), scenario._provenance, where), f"schedule[{i}].date", change.date,
                          f"on or after the end of the horizon ({h.end_date}): the change would never apply"))
    for start, epoch in scenario.epochs():
        n = expected_first_referrals(epoch)
        if n > MAX_REFERRALS:
            when = "" if start == h.start_day else f" (with the changes in force from day {start:g})"
            found.append((where, "population.arrivals_per_year", dict(epoch.population.arrivals_per_year),
                          f"about {n:,.0f} first referrals over the warm-up and horizon{when}: more than the "
                          f"{MAX_REFERRALS:,} a run may simulate on one machine (about 1.5 KiB each)"))
            break
    return found


# --- dated changes -------------------------------------------------------------------------------------------


def _build_epochs(base: Scenario) -> list[tuple[float, Scenario]]:
    epochs: list[tuple[float, Scenario]] = [(base.horizon.start_day, base)]
    if not base.schedule:
        return epochs
    raw = copy.deepcopy(base.raw())
    raw["schedule"] = []
    order = sorted(range(len(base.schedule)), key=lambda i: base.schedule[i].date)
    found = []
    for i in order:
        change = base.schedule[i]
        for kind, items in (("set", change.set), ("scale", change.scale)):
            for path, value in items.items():
                parts = path.split(".")
                if parts[0] in ("horizon", "schedule", "name", "description", "seed", "contract", "behaviour"):
                    found.append((source_of(("schedule",), base._provenance, base._source),
                                     f"schedule[{i}].{kind}.{path}", value,
                                     "the horizon, seed, contract, behaviour and schedule cannot change over "
                                     "time"))
                    continue
                try:
                    set_path(raw, parts, value, must_exist=kind == "scale", scale=kind == "scale")
                except KeyError:
                    found.append((source_of(("schedule",), base._provenance, base._source),
                                     f"schedule[{i}].{kind}.{path}", value,
                                     "no number at this key path to scale" if kind == "scale"
                                     else "no such key path"))
        if found:
            continue
        try:
            epoch = Scenario.model_validate(raw)
        except ValidationError as e:
            for f, k, v, m in problems(e, Scenario, base._source, {}):
                found.append((source_of(("schedule",), base._provenance, base._source),
                                 f"schedule[{i}] ({change.date}): {k}", v, m))
            continue
        start = max(base.horizon.day(change.date), base.horizon.start_day)
        if epochs[-1][0] == start:
            epochs[-1] = (start, epoch)
        else:
            epochs.append((start, epoch))
    if found:
        raise ScenarioError(found)
    return epochs
