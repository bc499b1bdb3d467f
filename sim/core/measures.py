"""The measure registry: every measure pbrsim names, once, with its unit, definition and kind.

A measure is a number computed from a History. Its *kinds* say where it is used:

* ``period``: a column of :func:`sim.analysis.measures.by_period` (per financial year or quarter);
* ``payable``: an outcome a contract can pay on (``[outcome.*] measure``, :mod:`sim.config.contract`), computed
  per client by :func:`sim.analysis.outcomes.achievements`; each has the provider's ``effort_group`` (the M3
  effort groups of provider-behaviour.md §3.5) or is priced at intake;
* ``target``: a measure a calibration or validation target can name (:mod:`sim.config.targets`), computed over
  the reporting years by :mod:`sim.analysis.targets`.

Only names and words live here (config imports them without the engine); the functions that compute the measures
sit in :mod:`sim.analysis`, which checks at import that it implements every measure of its kind.
"""

from __future__ import annotations

from dataclasses import dataclass

PERIOD, PAYABLE, TARGET = "period", "payable", "target"
KINDS = (PERIOD, PAYABLE, TARGET)
UNITS = ("people", "share", "years", "days")

# M3 effort groups (provider-behaviour.md §3.5): paid in-treatment TOP states, exit and completion work, unpaid care
EFFORT_GROUP_NAMES = ("paid_reviews", "exit_work", "unpaid_care")
# A payable outcome earned when a new presentation starts treatment is not effort on clients already in treatment
# (M3): it is the engagement or attachment fee F_b of the intake margin (§3.1 EM_i(a)), so it is in no effort group
AT_INTAKE = "at_intake"


@dataclass(frozen=True)
class Measure:
    name: str
    unit: str                 # one of UNITS
    description: str
    kinds: tuple[str, ...]    # of KINDS
    effort_group: str | None = None   # payable outcomes: one of EFFORT_GROUP_NAMES or AT_INTAKE

    def __post_init__(self) -> None:
        if self.unit not in UNITS or not self.kinds or not set(self.kinds) <= set(KINDS):
            raise ValueError(f"measure {self.name}: bad unit {self.unit!r} or kinds {self.kinds!r}")
        if (PAYABLE in self.kinds) != (self.effort_group is not None):
            raise ValueError(f"measure {self.name}: a payable outcome needs an effort group (or AT_INTAKE), and "
                             f"only a payable outcome has one")
        if self.effort_group is not None and self.effort_group not in (*EFFORT_GROUP_NAMES, AT_INTAKE):
            raise ValueError(f"measure {self.name}: unknown effort group {self.effort_group!r}")


def _m(name, unit, description, *kinds, effort_group=None) -> Measure:
    return Measure(name, unit, description, kinds, effort_group)


_P, _O, _T = PERIOD, PAYABLE, TARGET

REGISTRY: tuple[Measure, ...] = (
    # --- period measures (by_period columns, in its column order) ---
    _m("referrals", "people", "referrals received (first referrals and re-presentations)", _P),
    _m("re_presentations", "people", "referrals of people who had been referred before", _P),
    _m("assessments", "people", "LASARS assessments completed", _P),
    _m("treatment_starts", "people", "structured treatment episodes started", _P),
    _m("in_treatment", "people", "people in structured treatment at any time in the period", _P),
    _m("in_treatment_at_end", "people", "people in structured treatment at the end of the period", _P),
    _m("waiting_at_end", "people", "assessed, waiting for a caseload place, at the end of the period", _P),
    _m("waiting_mean", "people", "time-average number waiting for a caseload place", _P),
    _m("mean_wait_days", "days", "referral to treatment start, mean over starts", _P, _T),
    _m("started_within_3_weeks", "share", "of treatment starts, referral to start within 21 days", _P, _T),
    _m("exits", "people", "treatment exits (every reason)", _P),
    _m("planned_exits", "people", "exits free of dependence (the NDTMS \"successful completion\")", _P),
    _m("dropped_out", "people", "unplanned exits: dropped out", _P),
    _m("declined", "people", "unplanned exits: declined further treatment", _P),
    _m("withdrawn", "people", "unplanned exits: treatment withdrawn, moved away or other (NDTMS's other "
                              "incomplete exits)", _P),
    _m("transferred", "people", "exits transferred in the community", _P),
    _m("custody", "people", "exits transferred to custody", _P),
    _m("died_in_treatment", "people", "exits by death in treatment", _P),
    _m("planned_share_of_exits", "share", "planned exits / treatment exits", _P, _T),
    _m("successful_completions", "share", "planned exits / people in treatment (the NDTMS successful-completion "
       "rate)", _P, _T),
    _m("re_presented_6m", "share", "of planned exits in the period, those re-presenting within 6 months (183 "
       "days); empty where the window runs past the horizon", _P),
    _m("re_presented_12m", "share", "of planned exits in the period, those re-presenting within 12 months (365 "
       "days); empty where the window runs past the horizon", _P),
    _m("deaths", "people", "deaths in or out of treatment", _P),
    _m("caseload_use", "share", "occupied caseload place-days / available place-days (all clients only)", _P),
    _m("detox_bed_use", "share", "occupied inpatient detox bed-days / available bed-days (a period table: all "
       "clients only; a target: its groups' clients)", _P, _T),
    _m("rehab_place_use", "share", "occupied residential rehab place-days / available place-days (a period table: "
       "all clients only; a target: its groups' clients)", _P, _T),
    # --- payable outcomes (contract measures, in sim.config.contract order) ---
    _m("reliable_improvement", "people", "1.1 use of every presenting substance reliably improved (or abstinent) "
       "at two completed TOP reviews within 12 months", _O, effort_group="paid_reviews"),
    _m("abstinence", "people", "1.2 abstinent at two completed TOP reviews within 12 months", _O,
       effort_group="paid_reviews"),
    _m("planned_exit", "people", "1.3 planned exit free of dependence (recorded discharge)", _O,
       effort_group="exit_work"),
    _m("sustained_recovery", "people", "1.4 planned exit and no re-presentation (to treatment, including by a "
       "criminal-justice route) within the window; evidenced at the window's end", _O, effort_group="exit_work"),
    _m("stopped_injecting", "people", "of those injecting at the start review: not injecting at two completed "
       "reviews within 12 months", _O, effort_group="paid_reviews"),
    _m("housing_resolved", "people", "of those with a housing problem at the start review: none at two completed "
       "reviews within 12 months, or at the exit review", _O, effort_group="paid_reviews"),
    _m("hep_b_completed", "people", "hepatitis B vaccination course completed", _O, effort_group="unpaid_care"),
    _m("normative_quality_of_life", "people", "TOP quality of life at least the norm (14) at two completed reviews "
       "within 12 months", _O, effort_group="paid_reviews"),
    _m("engagement", "people", "a new presentation starts structured treatment (presentation or engagement "
       "tariff)", _O, effort_group=AT_INTAKE),
    _m("bbv_tested", "people", "blood-borne virus test during treatment", _O, effort_group="unpaid_care"),
    _m("entered_training", "people", "entered education, training or employment after a planned exit", _O,
       effort_group="exit_work"),
    # --- target measures (over the reporting years; sim.analysis.targets) ---
    _m("in_treatment_per_year", "people", "people in structured treatment at any time in a reporting year (NDTMS "
       "'in treatment')", _T),
    _m("in_effective_treatment_per_year", "people", "people in treatment in a year who, by its end or their exit, "
       "were retained 12 weeks or left with a planned exit (NDTMS 'in effective treatment')", _T),
    _m("treatment_starts_per_year", "people", "structured treatment episodes started a year", _T),
    _m("caseload", "people", "time-average number on the treatment caseload (in treatment, detox or rehab): the "
       "service users at any one time", _T),
    _m("mean_years_in_treatment", "years", "caseload / exits a year: the mean time in treatment by Little's law, "
       "as the NDTMS-derived figures are computed", _T),
    _m("dropped_out_share_of_exits", "share", "exits dropped out / treatment exits", _T),
    _m("declined_share_of_exits", "share", "exits declining further treatment / treatment exits", _T),
    _m("withdrawn_share_of_exits", "share", "exits withdrawn, moved away or other / treatment exits", _T),
    _m("transferred_share_of_exits", "share", "exits transferred (in the community or to custody) / treatment "
       "exits", _T),
    _m("planned_discharges_per_in_treatment", "share", "planned discharges (planned exits and community "
       "transfers, the pre-2012 NDTMS 'planned exit') / people in treatment", _T),
    _m("planned_discharge_share_of_exits", "share", "planned discharges (planned exits and community transfers) / "
       "treatment exits", _T),
    _m("re_presented_within_1y", "share", "of planned exits, those referred again within 365 days (cohort: planned "
       "exits from 5 years before the contract start whose window ends inside the horizon)", _T),
    _m("re_presented_within_2y", "share", "as re_presented_within_1y, within 730 days", _T),
    _m("re_presented_within_3y", "share", "as re_presented_within_1y, within 1,096 days", _T),
    _m("re_presented_6_to_18m", "share", "of planned exits, those referred again after 6 and within 18 months "
       "(183-548 days; cohort as re_presented_within_1y)", _T),
    _m("review_attendance", "share", "TOP reviews completed / TOP reviews due", _T),
    _m("injecting_at_review", "share", "completed TOP reviews recording injecting / completed TOP reviews", _T),
    _m("currently_injecting_in_treatment", "share", "of people in treatment in a reporting year (as "
       "in_treatment_per_year), those whose latest episode was recorded 'currently injecting' at its start (NDTMS's "
       "injecting status, recorded at triage and kept on the record: the start review here), pooled over the years",
       _T),
    _m("not_injecting_at_6_month_review", "share", "of episodes injecting at their start review (in the reported "
       "years), those recorded not injecting at the completed review nearest 26 weeks after it (20-32 weeks)", _T),
    _m("rehab_uptake", "share", "people admitted to residential rehab in a reporting year / people in treatment that "
       "year, pooled over the years", _T),
    _m("inpatient_detox_uptake", "share", "people admitted to inpatient detox in a reporting year / people in "
       "treatment that year, pooled over the years", _T),
)

BY_NAME: dict[str, Measure] = {m.name: m for m in REGISTRY}
if len(BY_NAME) != len(REGISTRY):
    raise ValueError("a measure is registered twice")


def of_kind(kind: str) -> tuple[Measure, ...]:
    return tuple(m for m in REGISTRY if kind in m.kinds)


PERIOD_MEASURES: tuple[str, ...] = tuple(m.name for m in of_kind(PERIOD))
PAYABLE_OUTCOMES: dict[str, str] = {m.name: m.description for m in of_kind(PAYABLE)}
EFFORT_GROUPS: dict[str, tuple[str, ...]] = {
    g: tuple(m.name for m in of_kind(PAYABLE) if m.effort_group == g) for g in EFFORT_GROUP_NAMES}

# the order targets have always listed them in (sim.analysis.targets.measures_table)
TARGET_ORDER = (
    "in_treatment_per_year", "in_effective_treatment_per_year", "treatment_starts_per_year", "caseload",
    "mean_years_in_treatment", "successful_completions", "planned_share_of_exits", "dropped_out_share_of_exits",
    "declined_share_of_exits", "withdrawn_share_of_exits", "transferred_share_of_exits",
    "planned_discharges_per_in_treatment", "planned_discharge_share_of_exits", "started_within_3_weeks",
    "mean_wait_days", "re_presented_within_1y", "re_presented_within_2y", "re_presented_within_3y",
    "re_presented_6_to_18m", "review_attendance",
    "injecting_at_review", "currently_injecting_in_treatment", "not_injecting_at_6_month_review",
    "rehab_uptake", "inpatient_detox_uptake", "rehab_place_use", "detox_bed_use",
)
if set(TARGET_ORDER) != {m.name for m in of_kind(TARGET)} or len(TARGET_ORDER) != len(set(TARGET_ORDER)):
    raise ValueError("TARGET_ORDER must list every target measure once")
TARGET_MEASURES: dict[str, Measure] = {n: BY_NAME[n] for n in TARGET_ORDER}

# The national pilot evaluation's measures (sim.analysis.evaluation.PILOT_MEASURES computes them): a target file
# names one as ``pilot.<name>``, the paired odds ratio (rate ratio) of the pilot against its counterfactual
PILOT_PREFIX = "pilot."
PILOT_MEASURE_NAMES = (
    "successful_completion_y1", "declined_y1", "initiation", "completion", "completion_without_representation",
    "abstinence", "non_injecting", "mortality", "acquisitive_crime", "housing_problem", "waited_over_3_weeks",
)
