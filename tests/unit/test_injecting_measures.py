"""Known answers: the two injecting measures on a hand-built History (two reported years, days 0-365 and 365-730).

Kent's "just under 25% of the drug users currently accessing the service were currently injecting" is the
caseload's injecting status recorded at the start of each episode (``currently_injecting_in_treatment``); what TOP
reviews record in treatment (``injecting_at_review``) is a different, lower figure, and the two must not agree by
construction.
"""

from __future__ import annotations

import pytest

from sim.analysis.targets import measure
from tests.builders import Build

DRUG = ["opiate", "non_opiate", "non_opiate_alcohol"]


@pytest.fixture(scope="module")
def history():
    b = Build()
    # A: injecting at the start, stops by the first review; in treatment in both years
    a = b.client(1, injecting=True)
    b.episode(a, 5, start=10, exit=400)
    b.review(a, 10, stage="start", injecting=True)
    b.review(a, 94, injecting=False)
    # B: not injecting, in treatment in the first year only
    c_b = b.client(2)
    b.episode(c_b, 40, start=50, exit=200, reason="dropped_out")
    b.review(c_b, 50, stage="start")
    # C: injecting in an episode from the warm-up; back in year 2 recorded not injecting at its new start
    c = b.client(3, injecting=True)
    b.episode(c, -120, start=-100, exit=100, reason="dropped_out")
    b.review(c, -100, stage="start", injecting=True)
    b.review(c, -16, injecting=True, use="neither")
    b.episode(c, 490, start=500)
    b.review(c, 500, stage="start", injecting=False)
    # D: alcohol, injecting, in both years: outside the drug groups
    d = b.client(4, group="alcohol", injecting=True)
    b.episode(d, 0, start=1)
    b.review(d, 1, stage="start", injecting=True)
    return b.finish(years=2, warmup=1.0)


def test_currently_injecting_is_the_start_status_of_each_persons_latest_episode_in_the_year(history):
    # year 1: A yes, B no, C yes (its warm-up episode); year 2: A yes, C no (its new episode) -> 3 of 5
    assert measure(history, "currently_injecting_in_treatment", groups=DRUG) == pytest.approx(3 / 5)
    # with D, in treatment and injecting in both years: 5 of 7
    assert measure(history, "currently_injecting_in_treatment") == pytest.approx(5 / 7)


def test_injecting_at_review_counts_completed_reviews_in_the_reported_years(history):
    # reviews in the years: A 10 (yes), 94 (no); B 50 (no); C 500 (no) -> 1 of 4 (C's reviews are in the warm-up)
    assert measure(history, "injecting_at_review", groups=DRUG) == pytest.approx(1 / 4)
