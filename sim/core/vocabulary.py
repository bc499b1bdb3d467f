"""The domain's words, in one place: substance groups, need bands, referral sources, modalities,
the states a client can be in, and the reasons an episode of treatment ends.

Order matters: tables indexed by group or band use these tuples' order, and bands run from the most
to the least severe (LASARS takes the more severe of two domain scores as the overall band).
"""

from typing import Literal

Group = Literal["opiate", "non_opiate", "alcohol", "non_opiate_alcohol"]
GROUPS: tuple[str, ...] = ("opiate", "non_opiate", "alcohol", "non_opiate_alcohol")
GROUP_LABELS = {
    "opiate": "Opiate and/or crack",
    "non_opiate": "Non-opiate only",
    "alcohol": "Alcohol only",
    "non_opiate_alcohol": "Non-opiate and alcohol",
}

Band = Literal["critical", "substantial", "moderate", "low", "no_need"]
BANDS: tuple[str, ...] = ("critical", "substantial", "moderate", "low", "no_need")
BAND_LABELS = {
    "critical": "Critical",
    "substantial": "Substantial",
    "moderate": "Moderate",
    "low": "Low",
    "no_need": "No need for structured treatment",
}

SOURCES: tuple[str, ...] = (
    "self", "gp", "arrest_referral", "court_order", "prison_release", "hospital", "mental_health", "other",
)
CRIMINAL_JUSTICE_SOURCES = frozenset({"arrest_referral", "court_order", "prison_release"})

MODALITIES: tuple[str, ...] = ("ost", "psychosocial", "intensive_key_working", "structured_group_work")

USE_AT_REVIEW: tuple[str, ...] = ("abstinent", "improved", "neither")

REVIEW_STAGES: tuple[str, ...] = ("start", "review", "exit")

REHAB_OUTCOMES: tuple[str, ...] = ("complete", "step_down", "drop_out")

# States: every client who has arrived is in exactly one of these at every time.
STATES: tuple[str, ...] = (
    "awaiting_assessment",      # referred; waiting for (or in) a LASARS assessment
    "awaiting_treatment",       # assessed into structured treatment; waiting for a caseload place
    "in_treatment",             # structured community treatment on a recovery worker's caseload
    "community_detox",          # community detoxification, inside the treatment episode
    "awaiting_inpatient_detox", # on the inpatient detox waiting list, still on the caseload
    "inpatient_detox",
    "awaiting_rehab",           # on the residential rehab waiting list, still on the caseload
    "residential_rehab",
    "in_custody",               # transferred to custody; treatment continues inside
    "recovered",                # left by a planned exit and not (yet) relapsed
    "relapsed",                 # relapsed after a planned exit, not back in treatment
    "disengaged",               # left without completing (dropped out, declined, withdrawn, never attended)
    "signposted",               # assessed as no need for structured treatment; signposted to mutual aid
    "transferred",              # transferred to another service outside the system (absorbing)
    "died",                     # absorbing
)
TREATMENT_STATES = frozenset({
    "in_treatment", "community_detox", "awaiting_inpatient_detox", "inpatient_detox",
    "awaiting_rehab", "residential_rehab",
})

EXIT_REASONS: tuple[str, ...] = ("planned", "dropped_out", "declined", "withdrawn", "transferred", "custody", "died")
# The unplanned exits that end an episode on its drop-out clock, as NDTMS records them: dropped out (or left),
# declined further treatment, and "withdrawn": NDTMS's other incomplete exits (treatment withdrawn by the
# provider, moved away, other), which the model does not tell apart.
UNPLANNED_EXITS: tuple[str, ...] = ("dropped_out", "declined", "withdrawn")

# Kinds of event in History.events, with what ``detail`` holds.
EVENT_KINDS: dict[str, str] = {
    "referral": "first referral; detail = referral source",
    "re_presentation": "referral of someone referred before; detail = referral source",
    "assessment_start": "an assessor starts the LASARS assessment",
    "assessed": "assessment done; detail = band",
    "signposted": "no need for structured treatment; detail = 'mutual_aid' if the client engages",
    "did_not_attend": "assessed but never attended treatment",
    "left_waiting_list": "gave up waiting; detail = caseload, inpatient_detox or rehab",
    "treatment_start": "structured treatment starts; detail = modality",
    "mutual_aid_engaged": "engages with mutual aid in this episode",
    "bbv_test": "blood-borne virus test",
    "hep_b_course_start": "hepatitis B vaccination course started",
    "hep_b_course_complete": "hepatitis B vaccination course completed",
    "community_detox_start": "community detox starts",
    "community_detox_end": "community detox ends; detail = completed or not_completed",
    "inpatient_detox_referral": "joins the inpatient detox waiting list",
    "inpatient_detox_start": "admitted to an inpatient detox bed",
    "inpatient_detox_end": "discharged from inpatient detox; detail = completed or not_completed",
    "rehab_referral": "joins the residential rehab waiting list",
    "rehab_start": "admitted to residential rehab",
    "rehab_end": "leaves rehab; detail = complete, step_down or drop_out",
    "exit": "leaves structured treatment; detail = exit reason",
    "custody_release": "released from custody",
    "relapse": "relapses after a planned exit",
    "entered_training": "enters education, training or employment after a planned exit",
    "death": "dies; detail = the state the client was in",
    # provider behaviour (sim.provider.model; none of these happen with behaviour off)
    "band_drift": "the provider records a more severe band than the independent assessment; detail = that band",
    "deflected": "the provider does not accept an assessed referral for a start; detail = signposted or delayed",
    "parked": "the provider gives the client reduced keyworking for the episode",
    "discharge_held": "a clinically ready client is kept on the caseload; detail = days",
    "discharge_fast_tracked": "a planned discharge is brought forward; detail = days",
    "exit_recoded": "an unplanned exit recorded as a transfer out; detail = the exit as it happened",
    "re_entry_deferred": "a returning client's re-entry put off until the payment window has closed; detail = days",
}

# how a treatment episode ends (the exits counted as treatment exits by measures, targets and provider outputs)
TREATMENT_EXITS = EXIT_REASONS
