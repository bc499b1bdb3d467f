"""Outcome measures for payment: known answers at each measure's window edges, on hand-built Histories (no SimPy).

The History builder ``Build`` is in ``tests/builders.py``, shared by every test that builds a History by hand.
"""

from __future__ import annotations

import pandas as pd
import pytest

from sim.analysis.outcomes import COLUMNS, NORMATIVE_QUALITY_OF_LIFE, achievements
from sim.config.contract import MEASURES
from tests.builders import AFTER_EXIT, S, Build  # noqa: F401  (AFTER_EXIT, S: as before, for importers)


def times(history, measure, window_days=365.0, client=None):
    a = achievements(history, measure, window_days)
    if client is not None:
        a = a[a["client_id"] == client]
    return a["time"].tolist()


# --- two completed reviews within the window -------------------------------------------------------------------

# what makes a review count (ok) or not (not_ok) for each two-review measure, and what the start review needs
TWO_REVIEW = {
    "reliable_improvement": ({"use": "improved"}, {"use": "neither"}, {}),
    "abstinence": ({"use": "abstinent"}, {"use": "improved"}, {}),
    "normative_quality_of_life": ({"qol": NORMATIVE_QUALITY_OF_LIFE}, {"qol": NORMATIVE_QUALITY_OF_LIFE - 1}, {}),
    "stopped_injecting": ({"injecting": False}, {"injecting": True}, {"injecting": True}),
    "housing_resolved": ({"housing": False}, {"housing": True}, {"housing": True}),
}


def _reviewed(measure, gaps, first=100.0, ok=None, completed=None, window_start=None):
    """One client in treatment from day 50, start review there, then reviews at ``first`` + cumulative gaps."""
    good, _, at_start = TWO_REVIEW[measure]
    b = Build()
    c = b.client(1, injecting=True, housing=True)
    b.episode(c, 40, start=50)
    b.review(c, 50, stage="start", **{"use": "neither", "qol": 5, "injecting": True, "housing": True,
                                      **at_start, **(window_start or {})})
    t = first
    for i, gap in enumerate([0.0, *gaps]):
        t += gap
        fields = dict(good) if ok is None or ok[i] else dict(TWO_REVIEW[measure][1])
        b.review(c, t, number=i + 1, completed=True if completed is None else completed[i], **fields)
    return b.finish()


@pytest.mark.parametrize("measure", list(TWO_REVIEW))
@pytest.mark.parametrize("window, gap, counted", [(365.0, 365.0, True), (365.0, 366.0, False),
                                                  (183.0, 183.0, True), (183.0, 184.0, False),
                                                  (365.0, 84.0, True)])
def test_two_reviews_at_the_window_edge(measure, window, gap, counted):
    h = _reviewed(measure, [gap])
    assert times(h, measure, window) == ([100.0 + gap] if counted else [])


@pytest.mark.parametrize("measure", list(TWO_REVIEW))
def test_a_missed_review_is_no_evidence(measure):
    # the second review would count, but was not completed; nor does a completed review that fails
    assert times(_reviewed(measure, [84.0], completed=[True, False]), measure) == []
    assert times(_reviewed(measure, [84.0], ok=[True, False]), measure) == []
    # a missed review between two good ones neither breaks nor makes the pair
    h = _reviewed(measure, [84.0, 84.0], completed=[True, False, True])
    assert times(h, measure) == [268.0]


@pytest.mark.parametrize("measure", list(TWO_REVIEW))
def test_the_start_review_never_counts(measure):
    good, _, at_start = TWO_REVIEW[measure]
    b = Build()
    c = b.client(1, injecting=True, housing=True)
    b.episode(c, 40, start=50)
    b.review(c, 50, stage="start", **(at_start or good))  # good already, where eligibility allows it
    b.review(c, 100, **good)  # one good review after a good start review: not two
    assert times(b.finish(), measure) == []


@pytest.mark.parametrize("measure", list(TWO_REVIEW))
def test_two_reviews_must_be_in_the_same_episode(measure):
    good, _, at_start = TWO_REVIEW[measure]
    b = Build()
    c = b.client(1, injecting=True, housing=True)
    b.episode(c, 40, start=50, exit=120, reason="dropped_out")
    b.review(c, 50, stage="start", **at_start)
    b.review(c, 100, **good)
    b.episode(c, 150, start=160)
    b.review(c, 160, stage="start", **at_start)
    b.review(c, 200, **good)
    assert times(b.finish(), measure) == []


def test_every_later_pair_is_an_achievement_and_the_band_is_the_episodes():
    b = Build()
    c = b.client(1, group="alcohol")
    b.episode(c, 40, band="critical", start=50)
    b.review(c, 50, stage="start")
    for i, t in enumerate([134, 218, 302]):
        b.review(c, t, number=i + 1, use="abstinent")
    a = achievements(b.finish(), "abstinence")
    assert list(a.columns) == COLUMNS
    assert a["time"].tolist() == [218.0, 302.0]
    assert a["band"].tolist() == ["critical", "critical"] and a["group"].tolist() == ["alcohol", "alcohol"]
    assert a["episode"].tolist() == [0, 0]


@pytest.mark.parametrize("measure, column", [("stopped_injecting", "injecting"), ("housing_resolved", "housing")])
def test_only_those_with_the_problem_at_the_start_review_are_eligible(measure, column):
    good, _, at_start = TWO_REVIEW[measure]
    b = Build()
    for cid, problem in ((1, False), (2, True)):
        c = b.client(cid, injecting=True, housing=True)
        b.episode(c, 40, start=50)
        b.review(c, 50, stage="start", **{**at_start, column: problem})
        b.review(c, 134, **good)
        b.review(c, 218, **good)
    assert times(b.finish(), measure) == [218.0]
    a = achievements(b.finish(), measure)
    assert a["client_id"].tolist() == [2]


def test_housing_resolved_at_a_completed_exit_review_once_per_episode():
    b = Build()
    c = b.client(1, housing=True)
    b.episode(c, 40, start=50, exit=200)
    b.review(c, 50, stage="start", housing=True)
    b.review(c, 134, housing=True)
    b.review(c, 200, stage="exit", housing=False)  # one review: enough at the exit
    d = b.client(2, housing=True)
    b.episode(d, 40, start=50, exit=200)
    b.review(d, 50, stage="start", housing=True)
    b.review(d, 200, stage="exit", housing=False, completed=False)  # missed: no evidence
    e = b.client(3, housing=True)
    b.episode(e, 40, start=50, exit=300)
    b.review(e, 50, stage="start", housing=True)
    b.review(e, 134, housing=False)
    b.review(e, 218, housing=False)
    b.review(e, 300, stage="exit", housing=False)
    a = achievements(b.finish(), "housing_resolved")
    assert list(zip(a["client_id"], a["time"])) == [(1, 200.0), (3, 218.0)]  # the first evidence only


# --- planned exit and sustained recovery ------------------------------------------------------------------------


def test_planned_exit_is_the_recorded_discharge():
    b = Build()
    c = b.client(1)
    b.episode(c, 10, band="substantial", start=20, exit=200, reason="planned")
    d = b.client(2)
    b.episode(d, 10, start=20, exit=150, reason="dropped_out")
    e = b.client(3)
    b.episode(e, 10, start=20)  # still in treatment at the end
    a = achievements(b.finish(), "planned_exit")
    assert list(zip(a["client_id"], a["time"], a["band"])) == [(1, 200.0, "substantial")]


def _recovery(back_after=None, died_after=None, exit=100.0, reason="planned"):
    b = Build()
    c = b.client(1)
    b.episode(c, 10, start=20, exit=exit, reason=reason)
    if back_after is not None:
        b.episode(c, exit + back_after, start=exit + back_after + 10)
    if died_after is not None:
        b.die(c, exit + died_after)
    return b.finish()  # ends on day 730


@pytest.mark.parametrize("back_after, evidenced", [(182.0, False), (183.0, True), (182.999, False), (30.0, False),
                                                   (400.0, True), (None, True)])
def test_sustained_recovery_re_presentation_at_the_window_edge(back_after, evidenced):
    h = _recovery(back_after=back_after)
    assert times(h, "sustained_recovery", 183.0) == ([283.0] if evidenced else [])  # evidenced at the window's end


def test_sustained_recovery_window_open_at_the_end_is_not_evidenced():
    assert times(_recovery(exit=600.0), "sustained_recovery", 183.0) == []   # closes on day 783 > 730
    assert times(_recovery(exit=547.0), "sustained_recovery", 183.0) == [730.0]  # closes on the last day
    assert times(_recovery(exit=548.0), "sustained_recovery", 183.0) == []


@pytest.mark.parametrize("died_after, evidenced", [(10.0, False), (182.0, False), (183.0, True), (300.0, True)])
def test_a_death_in_the_window_is_not_a_recovery(died_after, evidenced):
    assert times(_recovery(died_after=died_after), "sustained_recovery", 183.0) == ([283.0] if evidenced else [])


def test_sustained_recovery_needs_a_planned_exit_and_uses_the_next_referral_only():
    assert times(_recovery(reason="dropped_out"), "sustained_recovery", 183.0) == []
    b = Build()
    c = b.client(1)
    b.episode(c, 10, start=20, exit=100)
    b.episode(c, 400, start=410, exit=500)   # back after 300 days: the first exit is a 183-day recovery
    b.episode(c, 550, start=560)             # back after 50 days: the second is not
    a = achievements(b.finish(), "sustained_recovery", 183.0)
    assert list(zip(a["episode"], a["time"])) == [(0, 283.0)]
    assert times(b.finish(), "sustained_recovery", 365.0) == []  # nor a 12-month one (300 < 365)


# --- engagement and recorded events -----------------------------------------------------------------------------


def test_engagement_each_episode_that_starts_treatment():
    b = Build()
    c = b.client(1)
    b.episode(c, 10, start=25, exit=100, reason="dropped_out")
    b.episode(c, 200, start=230)
    d = b.client(2)
    b.episode(d, 10)  # referred, never started
    a = achievements(b.finish(), "engagement")
    assert list(zip(a["client_id"], a["episode"], a["time"])) == [(1, 0, 25.0), (1, 1, 230.0)]


@pytest.mark.parametrize("measure, kind, other", [("hep_b_completed", "hep_b_course_complete", "hep_b_course_start"),
                                                  ("bbv_tested", "bbv_test", "assessed"),
                                                  ("entered_training", "entered_training", "relapse")])
def test_recorded_events(measure, kind, other):
    b = Build()
    c = b.client(1)
    b.episode(c, 10, start=20, exit=300)
    b.event(c, 60, other)
    b.event(c, 90, kind)
    b.event(c, -5, kind)  # the warm-up is included: settlement picks the dates
    assert times(b.finish(), measure) == [-5.0, 90.0]


def test_every_measure_is_covered_here_and_unknown_ones_are_refused():
    covered = set(TWO_REVIEW) | {"planned_exit", "sustained_recovery", "engagement", "hep_b_completed",
                                 "bbv_tested", "entered_training"}
    assert covered == set(MEASURES)
    h = _reviewed("stopped_injecting", [84.0])
    for m in MEASURES:
        a = achievements(h, m)
        assert list(a.columns) == COLUMNS and isinstance(a, pd.DataFrame)
    with pytest.raises(ValueError, match="unknown measure"):
        achievements(h, "abstinence_forever")


@pytest.mark.parametrize("measure", list(TWO_REVIEW))
def test_no_qualifying_review_is_no_achievement_not_an_error(measure):
    """Regression (was outcomes.py _two_reviews: an IndexError when no review qualified at all). A History with
    no reviews, or where nobody had the problem at the start review, has no achievements."""
    assert achievements(_recovery(), measure).empty
    assert achievements(_reviewed(measure, [84.0], ok=[False, False]), measure).empty
    if measure in ("stopped_injecting", "housing_resolved"):
        column = {"stopped_injecting": "injecting", "housing_resolved": "housing"}[measure]
        assert achievements(_reviewed(measure, [84.0], window_start={column: False}), measure).empty


def test_achievements_come_in_time_then_client_order(small):
    """Settlement pays first earned, first paid in the order ``achievements`` gives (it does not sort again):
    by time, then client id, for every measure of a simulated History."""
    from sim import simulate

    h = simulate(small, 5)
    for m in MEASURES:
        a = achievements(h, m)
        assert len(a) > 0 or m in ("hep_b_completed", "bbv_tested"), m
        key = a[["time", "client_id"]]
        assert key.equals(key.sort_values(["time", "client_id"], ignore_index=True)), m
