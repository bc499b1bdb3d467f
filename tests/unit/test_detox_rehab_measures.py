"""Known answers: the uptake of inpatient detox and residential rehab, and the use of their places, on a hand-built
History (two reported years, days 0-365 and 365-730; rehab places 2, then 4 from day 365; one detox bed).

Uptake is NDTMS's count: people admitted in a year among the people in treatment that year, pooled over the
years. Place use is occupied place-days over the place-days in force.
"""

from __future__ import annotations

import pytest

from sim.analysis.targets import measure
from tests.builders import S, Build

DRUG = ["opiate", "non_opiate", "non_opiate_alcohol"]


def _stay(b: Build, c, state: str, kind: str, admitted: float, left: float) -> None:
    b.event(c, admitted, kind)
    b.rec.state(c, S[state], float(admitted))
    b.rec.state(c, S["in_treatment"], float(left))


def _exit(b: Build, c, ep, t: float, reason: str = "planned") -> None:
    ep.exit, ep.exit_reason = float(t), reason
    b.event(c, t, "exit", reason)
    b.rec.state(c, S["recovered" if reason == "planned" else "disengaged"], float(t))


@pytest.fixture(scope="module")
def history():
    b = Build()
    b.rec.capacity += [("rehab_places", -1000.0, 2), ("rehab_places", 365.0, 4), ("inpatient_detox_beds", -1000.0, 1)]
    # A: opiate, in treatment in both years, rehab for 84 days in year 1
    a = b.client(1)
    ep = b.episode(a, 5, start=10)
    _stay(b, a, "residential_rehab", "rehab_start", 100, 184)
    _exit(b, a, ep, 400)
    # B: non-opiate, year 1 only, inpatient detox for 10 days
    c_b = b.client(2, group="non_opiate")
    ep = b.episode(c_b, 40, start=50)
    _stay(b, c_b, "inpatient_detox", "inpatient_detox_start", 150, 160)
    _exit(b, c_b, ep, 200, "dropped_out")
    # C: opiate, year 2 only, rehab for 90 days
    c = b.client(3)
    b.episode(c, 490, start=500)
    _stay(b, c, "residential_rehab", "rehab_start", 600, 690)
    # D: alcohol, in both years, inpatient detox for 10 days in year 1
    d = b.client(4, group="alcohol")
    b.episode(d, 0, start=1)
    _stay(b, d, "inpatient_detox", "inpatient_detox_start", 20, 30)
    return b.finish(years=2, warmup=1.0)


def test_rehab_uptake_is_people_admitted_over_people_in_treatment_pooled_over_years(history):
    # drug groups: year 1 A, B in treatment, A admitted; year 2 A, C, C admitted -> 2 of 4
    assert measure(history, "rehab_uptake", groups=DRUG) == pytest.approx(2 / 4)
    # with D (alcohol, in treatment both years, never in rehab): 2 of 6
    assert measure(history, "rehab_uptake") == pytest.approx(2 / 6)


def test_inpatient_detox_uptake_by_group(history):
    assert measure(history, "inpatient_detox_uptake", groups=DRUG) == pytest.approx(1 / 4)  # B in year 1
    assert measure(history, "inpatient_detox_uptake", groups=["alcohol"]) == pytest.approx(1 / 2)  # D in year 1


def test_place_use_counts_occupied_days_over_the_places_in_force(history):
    # rehab: 84 + 90 days over 2 x 365 + 4 x 365 place-days; detox: 10 + 10 over 1 x 730
    assert measure(history, "rehab_place_use") == pytest.approx(174 / (6 * 365))
    assert measure(history, "detox_bed_use") == pytest.approx(20 / 730)
    # a target on some groups counts their clients' days only (the places are everyone's)
    assert measure(history, "detox_bed_use", groups=["alcohol"]) == pytest.approx(10 / 730)
