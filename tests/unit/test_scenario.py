"""Scenario loading and validation: extends, clear errors, dated changes, the horizon.

Bad scenarios are small files in ``tmp_path`` that extend ``scenarios/west_kent.toml`` and override one key.
No simulation is run.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

import sim
from sim import ScenarioError, load_scenario
from sim.config.scenario import Horizon, Scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[2]
WEST_KENT = ROOT / "scenarios" / "west_kent.toml"
START = dt.date(2012, 4, 1)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def extending(tmp_path: Path, body: str, name: str = "variant.toml", parent: Path = WEST_KENT) -> Path:
    """A scenario file in tmp_path that extends ``parent`` (by absolute path) and adds ``body``."""
    return write(tmp_path / name, f'extends = "{parent.as_posix()}"\n{body}\n')


def load_error(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    return e.value


def assert_names(err: ScenarioError, file: Path | str, key: str, value: str, *fragments: str) -> str:
    """The message names the file, the dotted key path and the value (and any further fragments)."""
    msg = str(err)
    assert str(file) in msg, msg
    assert key in msg, msg
    assert value in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# --- loading the shipped scenario ---------------------------------------------------------------------------


def test_west_kent_loads(west_kent):
    assert isinstance(west_kent, Scenario)
    assert west_kent.name == "west_kent"
    assert west_kent.horizon.contract_start == START
    assert west_kent.capacity.rehab_places == 14
    assert west_kent.capacity.caseload == west_kent.capacity.recovery_workers * 50 == 1750
    assert west_kent.population.arrivals_per_year["opiate"] == west_kent.raw()["population"]["arrivals_per_year"]["opiate"]
    # partial overrides in the file inherit from the base entry
    age_alcohol = west_kent.population.age_years.resolve("alcohol")
    assert (age_alcohol.dist, age_alcohol.median, age_alcohol.sigma, age_alcohol.min) == ("lognormal", 43, 0.25, 18)
    assert west_kent.treatment.completion_weeks.resolve("alcohol").sigma == 0.8
    assert west_kent.population.male.resolve("alcohol").value == 0.64
    assert west_kent.epochs() == [(west_kent.horizon.start_day, west_kent)]


def dump(x) -> dict:
    """Compare models by their data."""
    return x.model_dump(mode="python")


def test_load_scenario_accepts_str_and_path():
    assert dump(load_scenario(str(WEST_KENT))) == dump(load_scenario(WEST_KENT))
    assert sim.load_scenario is load_scenario


def test_two_loads_of_one_file_are_equal():
    assert load_scenario(WEST_KENT) == load_scenario(WEST_KENT)


def test_scenario_is_frozen(west_kent):
    with pytest.raises(ValidationError):
        west_kent.capacity.rehab_places = 24
    with pytest.raises(ValidationError):
        west_kent.name = "other"
    with pytest.raises(ValidationError):
        west_kent.rehab.stay_weeks.median = 1.0
    assert west_kent.capacity.rehab_places == 14
    assert west_kent.name == "west_kent"


def test_with_changes_gives_a_new_validated_scenario(west_kent):
    changed = west_kent.with_changes({"capacity.rehab_places": 24})
    assert isinstance(changed, Scenario)
    assert changed is not west_kent
    assert changed.capacity.rehab_places == 24
    assert west_kent.capacity.rehab_places == 14  # the original is unchanged
    # everything else is carried over
    assert changed.capacity.assessors == west_kent.capacity.assessors
    assert dump(changed.population) == dump(west_kent.population)
    assert dump(changed.treatment) == dump(west_kent.treatment)
    assert dump(changed.model_copy(update={"capacity": west_kent.capacity})) == dump(west_kent)


def test_with_changes_several_and_nested(west_kent):
    changed = west_kent.with_changes({
        "assessment.attends_treatment": 0.5,
        "treatment.drop_out_rate_per_year.by_group.opiate": 0.3,
        "population.arrivals_per_year.alcohol": 300,
    })
    assert changed.assessment.attends_treatment.resolve("alcohol").value == 0.5
    assert changed.treatment.drop_out_rate_per_year.resolve("opiate").value == 0.3
    assert changed.treatment.drop_out_rate_per_year.resolve("alcohol").value == \
        west_kent.treatment.drop_out_rate_per_year.resolve("alcohol").value
    assert changed.population.arrivals_per_year["alcohol"] == 300
    assert west_kent.assessment.attends_treatment.value == 0.9


def test_with_changes_is_validated(west_kent):
    with pytest.raises(ScenarioError) as e:
        west_kent.with_changes({"capacity.rehab_places": -1})
    assert_names(e.value, "", "capacity.rehab_places", "-1", "greater than or equal to 0")
    with pytest.raises(ScenarioError, match="did you mean 'rehab_places'"):
        west_kent.with_changes({"capacity.rehab_placez": 24})


def test_with_changes_error_names_the_change_not_the_file(west_kent):
    with pytest.raises(ScenarioError) as e:
        west_kent.with_changes({"capacity.rehab_places": -1})
    assert "with changes" in str(e.value)


def test_with_changes_reaches_inheriting_overrides(west_kent, tmp_path):
    via_file = load_scenario(extending(tmp_path, "[inpatient_detox.timing_weeks]\nsigma = 1.5"))
    assert via_file.inpatient_detox.timing_weeks.resolve("alcohol").sigma == 1.5
    via_changes = west_kent.with_changes({"inpatient_detox.timing_weeks.sigma": 1.5})
    assert via_changes.inpatient_detox.timing_weeks.resolve("alcohol").sigma == 1.5


def test_scenario_from_dict_round_trip(west_kent):
    raw = west_kent.model_dump(mode="python", exclude_none=True)
    again = scenario_from_dict(raw)
    assert dump(again) == dump(west_kent)
    raw["capacity"]["assessors"] = -1
    with pytest.raises(ScenarioError, match="<dict>: capacity.assessors = -1"):
        scenario_from_dict(raw)


# --- clear errors -------------------------------------------------------------------------------------------


def test_unknown_key_with_did_you_mean(tmp_path):
    path = extending(tmp_path, "[capacity]\nrehab_placez = 3")
    err = load_error(path)
    msg = assert_names(err, path, "capacity.rehab_placez", "= 3", "unknown key", "did you mean 'rehab_places'?")
    assert f"{path}: capacity.rehab_placez = 3: unknown key (did you mean 'rehab_places'?)" in msg
    assert err.problems == [(str(path), "capacity.rehab_placez", 3, "unknown key (did you mean 'rehab_places'?)")]


def test_unknown_section_and_unknown_top_level_key(tmp_path):
    path = extending(tmp_path, 'nmae = "x"\n[capacty]\nassessors = 3')
    err = load_error(path)
    msg = str(err)
    assert f"{path}: nmae = 'x': unknown key (did you mean 'name'?)" in msg
    assert f"{path}: capacty = {{'assessors': 3}}: unknown key (did you mean 'capacity'?)" in msg


def test_unknown_key_inside_a_distribution(tmp_path):
    path = extending(tmp_path, "[rehab.stay_weeks]\nmedain = 10")
    assert_names(load_error(path), path, "rehab.stay_weeks.medain", "10", "unknown key", "did you mean 'median'")


def test_unknown_group_in_an_override(tmp_path):
    path = extending(tmp_path, "[treatment.drop_out_rate_per_year]\nby_group.opiates = 0.5")
    err = load_error(path)
    assert_names(err, path, "treatment.drop_out_rate_per_year.by_group.opiates", "'opiates'", "unknown key",
                 "'opiate'")
    assert len(err.problems) == 1


def test_child_can_add_an_override_to_a_bare_number(tmp_path):
    s = load_scenario(extending(tmp_path, "[assessment.attends_treatment]\nby_group.opiate = 0.5"))
    assert s.assessment.attends_treatment.resolve("opiate").value == 0.5
    assert s.assessment.attends_treatment.resolve("alcohol").value == 0.9


def test_with_changes_can_add_an_override_to_a_bare_number(west_kent):
    s = west_kent.with_changes({"assessment.attends_treatment.by_group.opiate": 0.5})
    assert s.assessment.attends_treatment.resolve("opiate").value == 0.5
    assert s.assessment.attends_treatment.resolve("alcohol").value == 0.9


def test_wrong_type(tmp_path):
    path = extending(tmp_path, '[capacity]\nassessors = "three"')
    assert_names(load_error(path), path, "capacity.assessors", "'three'", "valid integer")


def test_probability_out_of_range(tmp_path):
    path = extending(tmp_path, "[assessment]\nattends_treatment = 1.5")
    msg = assert_names(load_error(path), path, "assessment.attends_treatment", "1.5",
                       "a probability must be in [0, 1]")
    assert f"{path}: assessment.attends_treatment = 1.5: a probability must be in [0, 1], got 1.5" in msg


def test_probability_out_of_range_inside_by_group(tmp_path):
    path = extending(tmp_path, "[assessment]\nattends_treatment = { value = 0.9, by_group.opiate = 1.5 }")
    err = load_error(path)
    assert_names(err, path, "assessment.attends_treatment.by_group.opiate", "1.5", "a probability must be in [0, 1]")
    assert len(err.problems) == 1


def test_negative_rate_inside_by_group(tmp_path):
    path = extending(tmp_path, "[treatment.drop_out_rate_per_year]\nby_group.opiate = -0.2")
    assert_names(load_error(path), path, "treatment.drop_out_rate_per_year.by_group.opiate", "-0.2",
                 "a rate must be")


def test_negative_rate_message_matches_the_documented_format(tmp_path):
    path = extending(tmp_path, "[treatment.drop_out_rate_per_year]\nby_group.opiate = -0.2")
    assert f"{path}: treatment.drop_out_rate_per_year.by_group.opiate = -0.2: a rate must be >= 0" in str(
        load_error(path))


def test_bad_distribution_parameter(tmp_path):
    path = extending(tmp_path, "[community_detox.duration_days]\nmode = 20")
    assert_names(load_error(path), path, "community_detox.duration_days", "'mode': 20", "triangular needs")


def test_shares_do_not_sum_to_one(tmp_path):
    path = extending(tmp_path, "[rehab.outcome]\ndrop_out = 0.2")
    msg = assert_names(load_error(path), path, "rehab.outcome", "'drop_out': 0.2", "shares must sum to 1, got 1.1")
    assert f"{path}: rehab.outcome = " in msg


def test_shares_unknown_category(tmp_path):
    path = extending(tmp_path, "[rehab.outcome]\nrelapse = 0.0")
    assert_names(load_error(path), path, "rehab.outcome", "'relapse': 0.0", "unknown category 'relapse'")


def test_shares_in_a_group_override_do_not_sum_to_one(tmp_path):
    path = extending(tmp_path, "[treatment.modality.by_group.opiate.p]\nost = 0.95")
    # a table of shares replaces the inherited one whole, so 0.95 alone does not sum to 1
    assert_names(load_error(path), path, "treatment.modality.by_group.opiate", "'ost': 0.95",
                 "shares must sum to 1, got 0.95")


def test_declined_and_withdrawn_shares_over_one_in_one_group(tmp_path):
    path = extending(tmp_path, "[treatment.withdrawn_share]\nvalue = 0.08\nby_group.alcohol = 0.95")
    msg = assert_names(load_error(path), path, "treatment", "0.07 + 0.95",
                       "declined_share + withdrawn_share must be at most 1", "alcohol")
    assert "opiate" not in msg.split("0.07 + 0.95")[1].split("\n")[0]  # only the group that breaks it


def test_negative_capacity(tmp_path):
    path = extending(tmp_path, "[capacity]\nrehab_places = -1")
    msg = assert_names(load_error(path), path, "capacity.rehab_places", "-1", "greater than or equal to 0")
    assert f"{path}: capacity.rehab_places = -1:" in msg


def test_several_problems_are_all_reported(tmp_path):
    path = extending(tmp_path, "[capacity]\nrehab_places = -1\nassessors = -2\n[assessment]\nattends_treatment = 2")
    err = load_error(path)
    keys = {k for _, k, _, _ in err.problems}
    assert keys == {"capacity.rehab_places", "capacity.assessors", "assessment.attends_treatment"}
    assert all(f == str(path) for f, _, _, _ in err.problems)


def _without_years(tmp_path: Path, end: str) -> Path:
    text = WEST_KENT.read_text(encoding="utf-8")
    assert "\nyears = 4 " in text
    return write(tmp_path / "ends.toml", text.replace("\nyears = 4 ", f"\nend = {end} ", 1))


def test_end_before_start(tmp_path):
    path = _without_years(tmp_path, "2011-01-01")
    assert_names(load_error(path), path, "horizon.end", "2011-01-01", "must be after contract_start (2012-04-01)")


def test_end_on_the_start_is_also_an_error(tmp_path):
    path = _without_years(tmp_path, "2012-04-01")
    assert_names(load_error(path), path, "horizon", "2012-04-01", "must be after contract_start")


def test_end_after_start_loads(tmp_path):
    s = load_scenario(_without_years(tmp_path, "2016-04-01"))
    assert s.horizon.years is None
    assert s.horizon.end_date == dt.date(2016, 4, 1)
    assert s.horizon.end_day == 1461.0


def test_end_before_start_names_the_dotted_key(tmp_path):
    path = _without_years(tmp_path, "2011-01-01")
    assert f"{path}: horizon.end = 2011-01-01" in str(load_error(path))


def test_both_years_and_end_is_an_error(tmp_path):
    path = extending(tmp_path, "[horizon]\nend = 2016-04-01")
    assert_names(load_error(path), path, "horizon", "2016", "give exactly one of years and end")


def test_missing_extends_file(tmp_path):
    path = write(tmp_path / "variant.toml", 'extends = "no_such_parent.toml"\nname = "x"\n')
    msg = assert_names(load_error(path), path, "extends", "'no_such_parent.toml'", "no such file")
    assert str(tmp_path / "no_such_parent.toml") in msg


def test_missing_scenario_file(tmp_path):
    missing = tmp_path / "nothing_here.toml"
    err = load_error(missing)
    assert f"{missing}: no such file" in str(err)


def test_circular_extends(tmp_path):
    a = write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    msg = str(load_error(a))
    assert "circular extends" in msg
    assert "extends" in msg
    assert "a.toml -> b.toml -> a.toml" in msg


def test_extends_itself(tmp_path):
    a = write(tmp_path / "a.toml", 'extends = "a.toml"\n')
    msg = str(load_error(a))
    assert "circular extends" in msg and f"{a}: extends = 'a.toml'" in msg and "a.toml -> a.toml" in msg


def test_circular_extends_names_the_file_that_closes_the_loop(tmp_path):
    a = write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    b = write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    assert f"{b}: extends = 'a.toml'" in str(load_error(a))


def test_extends_must_be_a_string(tmp_path):
    path = write(tmp_path / "variant.toml", "extends = 3\n")
    assert_names(load_error(path), path, "extends", "3", "must be a file name")


def test_invalid_toml(tmp_path):
    path = write(tmp_path / "broken.toml", 'name = "x"\n[capacity\nassessors = 3\n')
    assert_names(load_error(path), path, "", "", "not valid TOML")


def test_invalid_toml_in_a_parent_names_the_parent_and_the_file_that_extends_it(tmp_path):
    parent = write(tmp_path / "parent.toml", "x = [1,\n")
    child = extending(tmp_path, 'name = "child"', name="child.toml", parent=parent)
    msg = str(load_error(child))
    assert msg.index(f"{parent}: not valid TOML") < msg.index(f"reached from {child}: extends = ")


def test_bad_value_in_a_parent_names_the_parent(tmp_path):
    parent = extending(tmp_path, "[capacity]\nrehab_places = -3", name="parent.toml")
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\nname = "child"\n[capacity]\nassessors = 2\n')
    err = load_error(child)
    msg = assert_names(err, parent, "capacity.rehab_places", "-3", "greater than or equal to 0")
    assert f"{parent}: capacity.rehab_places = -3" in msg
    assert str(child) not in msg
    assert err.problems[0][0] == str(parent)


def test_bad_value_in_the_child_names_the_child(tmp_path):
    parent = extending(tmp_path, "[capacity]\nrehab_places = 20", name="parent.toml")
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\n[capacity]\nassessors = -2\n')
    msg = str(load_error(child))
    assert f"{child}: capacity.assessors = -2" in msg
    assert str(parent) not in msg


def test_bad_value_in_the_grandparent_names_the_grandparent(tmp_path):
    bad = extending(tmp_path, "[assessment]\nattends_treatment = 1.5", name="grandparent.toml")
    write(tmp_path / "parent.toml", 'extends = "grandparent.toml"\nname = "parent"\n')
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\n[assessment]\nbooking_delay_days = 3\n')
    msg = str(load_error(child))
    assert f"{bad}: assessment.attends_treatment = 1.5" in msg


# --- extends semantics --------------------------------------------------------------------------------------


def test_extends_relative_path(tmp_path):
    rel = os.path.relpath(WEST_KENT, tmp_path)
    path = write(tmp_path / "variant.toml", f'extends = "{Path(rel).as_posix()}"\nname = "relative"\n')
    s = load_scenario(path)
    assert s.name == "relative"
    assert s.capacity.rehab_places == 14


def test_tables_merge_key_by_key_child_wins(tmp_path, west_kent):
    path = extending(tmp_path, 'name = "variant"\n[capacity]\nrehab_places = 20\n'
                               "[population.age_years]\nmedian = 40\n"
                               "[population.arrivals_per_year]\nopiate = 200\n")
    s = load_scenario(path)
    assert s.name == "variant"
    assert s.description == west_kent.description
    assert s.capacity.rehab_places == 20
    assert (s.capacity.assessors, s.capacity.recovery_workers) == (west_kent.capacity.assessors,
                                                                 west_kent.capacity.recovery_workers)  # siblings kept
    age = s.population.age_years
    assert (age.dist, age.median, age.sigma, age.min) == ("lognormal", 40, 0.22, 18)
    assert age.resolve("alcohol").median == 43  # the parent's overrides are kept
    assert s.population.arrivals_per_year == {**west_kent.population.arrivals_per_year, "opiate": 200}
    assert dump(s.treatment) == dump(west_kent.treatment)


def test_child_base_change_reaches_inheriting_overrides(tmp_path):
    s = load_scenario(extending(tmp_path, "[inpatient_detox.timing_weeks]\nsigma = 1.5"))
    t = s.inpatient_detox.timing_weeks
    assert t.sigma == 1.5
    assert t.resolve("alcohol").sigma == 1.5   # inherited, not given in the file
    assert t.resolve("alcohol").median == 8


def test_child_can_change_a_distribution_family(tmp_path):
    s = load_scenario(extending(tmp_path, '[rehab.stay_weeks]\ndist = "gamma"\nmean = 12\nshape = 2'))
    assert s.rehab.stay_weeks.dist == "gamma"


SCHEDULE_PARENT = """
[[schedule]]
date = 2013-04-01
set = { "capacity.rehab_places" = 20 }

[[schedule]]
date = 2014-04-01
set = { "capacity.assessors" = 5 }
"""


def test_arrays_are_replaced_whole(tmp_path):
    parent = extending(tmp_path, SCHEDULE_PARENT, name="parent.toml")
    assert len(load_scenario(parent).schedule) == 2
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\n[[schedule]]\ndate = 2015-04-01\n'
                                           'set = { "capacity.inpatient_detox_beds" = 6 }\n')
    s = load_scenario(child)
    assert [c.date for c in s.schedule] == [dt.date(2015, 4, 1)]
    assert [day for day, _ in s.epochs()] == [s.horizon.start_day, s.horizon.day(dt.date(2015, 4, 1))]
    assert s.epochs()[-1][1].capacity.rehab_places == 14  # the parent's changes are gone
    assert s.epochs()[-1][1].capacity.inpatient_detox_beds == 6
    empty = write(tmp_path / "empty.toml", 'extends = "parent.toml"\nschedule = []\n')
    assert load_scenario(empty).schedule == []


def test_arrays_of_numbers_are_replaced_whole(tmp_path):
    categorical = '{ dist = "categorical", values = [4, 8, 12], weights = [1, 1, 2] }'
    parent = extending(tmp_path, f"[rehab.stay_weeks.by_group]\nalcohol = {categorical}", name="parent.toml")
    assert load_scenario(parent).rehab.stay_weeks.resolve("alcohol").values == [4, 8, 12]
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\n[rehab.stay_weeks.by_group.alcohol]\n'
                                           "values = [6, 10]\nweights = [3, 1]\n")
    alcohol = load_scenario(child).rehab.stay_weeks.resolve("alcohol")
    assert (alcohol.dist, alcohol.values, alcohol.weights) == ("categorical", [6, 10], [3, 1])


# --- dated changes ------------------------------------------------------------------------------------------

SCHEDULE = """
[[schedule]]
date = 2014-04-01
note = "more referrals"
scale = { "population.arrivals_per_year.opiate" = 1.1 }

[[schedule]]
date = 2013-04-01
note = "fewer workers"
set = { "capacity.recovery_workers" = 20 }
"""


def test_schedule_epochs(tmp_path, west_kent):
    s = load_scenario(extending(tmp_path, SCHEDULE))
    assert s.horizon.day(dt.date(2013, 4, 1)) == 365.0
    assert s.horizon.day(dt.date(2014, 4, 1)) == 730.0
    epochs = s.epochs()
    assert [day for day, _ in epochs] == [-7305.0, 365.0, 730.0]
    base, first, second = (sc for _, sc in epochs)
    assert base is s
    assert base.capacity.recovery_workers == west_kent.capacity.recovery_workers
    assert base.population.arrivals_per_year["opiate"] == west_kent.population.arrivals_per_year["opiate"]
    # sorted by date: the 2013 change comes first, and changes accumulate
    assert first.capacity.recovery_workers == 20
    assert first.capacity.caseload == 1000
    arrivals = west_kent.population.arrivals_per_year
    assert first.population.arrivals_per_year["opiate"] == arrivals["opiate"]
    assert second.capacity.recovery_workers == 20
    assert second.population.arrivals_per_year["opiate"] == pytest.approx(1.1 * arrivals["opiate"])
    assert second.population.arrivals_per_year["alcohol"] == arrivals["alcohol"]
    # epochs carry no schedule of their own; everything else is as in the base
    assert first.schedule == [] and second.schedule == []
    assert dump(second.treatment) == dump(west_kent.treatment)
    assert s.epochs() is epochs  # cached


def test_schedule_scales_a_scalar_and_sets_an_override(tmp_path, west_kent):
    s = load_scenario(extending(tmp_path, """
[[schedule]]
date = 2013-01-01
scale = { "assessment.attends_treatment" = 0.5 }
set = { "treatment.drop_out_rate_per_year.by_group.opiate" = 0.3 }
"""))
    (_, base), (day, later) = s.epochs()
    assert day == float((dt.date(2013, 1, 1) - START).days) == 275.0
    assert later.assessment.attends_treatment.value == pytest.approx(0.45)
    assert later.treatment.drop_out_rate_per_year.resolve("opiate").value == 0.3
    assert base.treatment.drop_out_rate_per_year.resolve("opiate").value == \
        west_kent.treatment.drop_out_rate_per_year.resolve("opiate").value


def test_schedule_same_date_and_before_warmup(tmp_path):
    s = load_scenario(extending(tmp_path, """
[[schedule]]
date = 1990-01-01
set = { "capacity.assessors" = 4 }

[[schedule]]
date = 2013-04-01
set = { "capacity.rehab_places" = 20 }

[[schedule]]
date = 2013-04-01
set = { "capacity.inpatient_detox_beds" = 6 }
"""))
    epochs = s.epochs()
    # a change before the warm-up applies from the warm-up start; two changes on one day make one epoch
    assert [day for day, _ in epochs] == [s.horizon.start_day, 365.0]
    assert epochs[0][1].capacity.assessors == 4
    assert (epochs[1][1].capacity.assessors, epochs[1][1].capacity.rehab_places,
            epochs[1][1].capacity.inpatient_detox_beds) == (4, 20, 6)


def test_schedule_scale_of_a_key_without_a_number(tmp_path):
    path = extending(tmp_path, """
[[schedule]]
date = 2014-04-01
set = { "capacity.assessors" = 4 }

[[schedule]]
date = 2013-04-01
scale = { "population.referral_source" = 2 }

[[schedule]]
date = 2015-04-01
scale = { "capacity.nothing" = 2 }
""")
    err = load_error(path)
    msg = assert_names(err, path, "schedule[1].scale.population.referral_source", "2",
                       "no number at this key path to scale")
    # indices are the file's, not the date order
    assert f"{path}: schedule[2].scale.capacity.nothing = 2.0: no number at this key path to scale" in msg
    assert len(err.problems) == 2


def test_schedule_bad_key_path(tmp_path):
    path = extending(tmp_path, '[[schedule]]\ndate = 2013-04-01\nset = { "capacity.rehab_placez" = 3 }')
    assert_names(load_error(path), path, "schedule[0]", "capacity.rehab_placez", "= 3",
                 "unknown key", "did you mean 'rehab_places'")


def test_schedule_bad_value(tmp_path):
    path = extending(tmp_path, '[[schedule]]\ndate = 2013-04-01\nset = { "capacity.rehab_places" = -3 }')
    msg = assert_names(load_error(path), path, "schedule[0]", "capacity.rehab_places", "-3",
                       "greater than or equal to 0")
    assert "2013-04-01" in msg


def test_schedule_bad_probability(tmp_path):
    path = extending(tmp_path, '[[schedule]]\ndate = 2013-04-01\n'
                               'set = { "assessment.attends_treatment.by_group.opiate" = 1.5 }')
    assert_names(load_error(path), path, "schedule[0]", "assessment.attends_treatment.by_group.opiate", "1.5",
                 "a probability must be in [0, 1]")


def test_schedule_cannot_change_the_horizon(tmp_path):
    path = extending(tmp_path, '[[schedule]]\ndate = 2013-04-01\nset = { "horizon.years" = 2 }')
    assert_names(load_error(path), path, "schedule[0].set.horizon.years", "2", "cannot change over time")


def test_schedule_entry_needs_a_change(tmp_path):
    path = extending(tmp_path, '[[schedule]]\ndate = 2013-04-01\nnote = "nothing"')
    assert_names(load_error(path), path, "schedule[0]", "nothing", "a change needs `set` or `scale`")


def test_schedule_in_a_parent_names_the_parent(tmp_path):
    parent = extending(tmp_path, '[[schedule]]\ndate = 2013-04-01\nset = { "capacity.rehab_places" = -3 }',
                       name="parent.toml")
    child = write(tmp_path / "child.toml", 'extends = "parent.toml"\nname = "child"\n')
    msg = str(load_error(child))
    assert f"{parent}: schedule[0]" in msg
    assert str(child) not in msg


# --- horizon ------------------------------------------------------------------------------------------------


def test_horizon_whole_years():
    h = Horizon(contract_start=START, years=4, warmup_years=10)
    assert h.end_date == dt.date(2016, 4, 1)
    assert h.end_day == 1461.0  # 2012-16 includes 29 February 2016
    assert h.start_day == -3652.5
    assert h.day(START) == 0.0
    assert h.day(dt.date(2012, 3, 31)) == -1.0


def test_horizon_fractional_years():
    h = Horizon(contract_start=START, years=2.5)
    # 2.5 * 365.25 = 913.125 days -> 913: 2014-04-01 + 183 days
    assert h.end_date == dt.date(2014, 10, 1)
    assert h.end_day == 913.0
    assert h.start_day == -5 * 365.25  # the default warm-up is 5 years


def test_horizon_from_29_february():
    h = Horizon(contract_start=dt.date(2012, 2, 29), years=1)
    assert h.end_date == dt.date(2013, 2, 28)
    assert h.end_day == 365.0
    assert Horizon(contract_start=dt.date(2012, 2, 29), years=4).end_date == dt.date(2016, 2, 29)


def test_horizon_end():
    h = Horizon(contract_start=START, end=dt.date(2013, 1, 1), warmup_years=0.5)
    assert h.end_date == dt.date(2013, 1, 1)
    assert h.end_day == 275.0
    assert h.start_day == -182.625


@pytest.mark.parametrize("kwargs, fragment", [
    ({"years": 4, "end": dt.date(2016, 4, 1)}, "give exactly one of years and end"),
    ({}, "give exactly one of years and end"),
    ({"end": dt.date(2012, 1, 1)}, "must be after contract_start"),
    ({"years": 0}, "greater than 0"),
    ({"years": -1}, "greater than 0"),
    ({"years": 1, "warmup_years": -1}, "greater than or equal to 0"),
])
def test_horizon_errors(kwargs, fragment):
    with pytest.raises(ValidationError) as e:
        Horizon(contract_start=START, **kwargs)
    assert fragment in str(e.value)


def test_horizon_error_through_a_file(tmp_path):
    text = WEST_KENT.read_text(encoding="utf-8").replace("\nyears = 4 ", "\n# no years ", 1)
    path = write(tmp_path / "no_end.toml", text)
    assert_names(load_error(path), path, "horizon", "contract_start", "give exactly one of years and end")


def test_a_key_path_may_name_a_list_element_by_its_index():
    from sim.config.base import has_number, set_path
    from sim.config.contract import load_contract

    raw = {"pbr_share": {"by_year": [0.25, 0.37]}}
    set_path(raw, ["pbr_share", "by_year", "1"], 0.5, must_exist=True)
    assert raw["pbr_share"]["by_year"] == [0.25, 0.5]
    set_path(raw, ["pbr_share", "by_year", "0"], 2.0, must_exist=True, scale=True)
    assert raw["pbr_share"]["by_year"] == [0.5, 0.5]
    with pytest.raises(KeyError, match="pbr_share.by_year.2"):
        set_path(raw, ["pbr_share", "by_year", "2"], 0.1, must_exist=True)
    contract = load_contract(ROOT / "scenarios" / "contracts" / "west_kent_pbr.toml")
    assert contract.with_changes({"pbr_share.by_year.3": 0.3}).pbr_share.by_year[3] == 0.3
    assert has_number(contract, "pbr_share.by_year.0") and not has_number(contract, "pbr_share.by_year.4")
