"""The measure registry (sim.core.measures) covers every measure pbrsim computes, and everything derives from it."""

from __future__ import annotations

import pytest

from sim.analysis import measures as period
from sim.analysis import outcomes
from sim.analysis import targets as target_measures
from sim.config import behaviour, contract, targets
from sim.core import measures as registry
from sim.experiments import core


def test_each_measure_is_registered_once_with_a_unit_and_a_kind():
    names = [m.name for m in registry.REGISTRY]
    assert len(names) == len(set(names))
    for m in registry.REGISTRY:
        assert m.unit in registry.UNITS and m.kinds and set(m.kinds) <= set(registry.KINDS), m
        assert m.description


def test_contract_measures_are_the_payable_outcomes_and_each_is_computable(small):
    from sim import simulate

    assert contract.MEASURES == registry.PAYABLE_OUTCOMES
    assert set(outcomes.COMPUTED) | set(outcomes.RECORDED_EVENTS) == set(contract.MEASURES)
    h = simulate(small, 5)
    for m in contract.MEASURES:
        assert list(outcomes.achievements(h, m).columns) == outcomes.COLUMNS, m


def test_every_payable_outcome_has_an_effort_group_and_every_member_is_payable():
    payable = set(registry.PAYABLE_OUTCOMES)
    assert behaviour.EFFORT_GROUPS is registry.EFFORT_GROUPS
    assert tuple(behaviour.EFFORT_GROUPS) == registry.EFFORT_GROUP_NAMES
    members = [m for group in behaviour.EFFORT_GROUPS.values() for m in group]
    assert len(members) == len(set(members)) and set(members) <= payable
    # engagement is priced at intake (the engagement fee), in no effort group; nothing else is left out
    assert payable - set(members) == {"engagement"}
    assert registry.BY_NAME["engagement"].effort_group == registry.AT_INTAKE
    for m in registry.of_kind(registry.PAYABLE):
        assert m.effort_group in (*registry.EFFORT_GROUP_NAMES, registry.AT_INTAKE), m


def test_the_effort_groups_are_the_ones_the_provider_model_always_used():
    assert registry.EFFORT_GROUPS == {
        "paid_reviews": ("reliable_improvement", "abstinence", "stopped_injecting", "housing_resolved",
                         "normative_quality_of_life"),
        "exit_work": ("planned_exit", "sustained_recovery", "entered_training"),
        "unpaid_care": ("hep_b_completed", "bbv_tested"),
    }


@pytest.mark.parametrize("freq", ["year", "quarter"])
@pytest.mark.parametrize("by", period.BREAKDOWNS)
def test_by_period_columns_are_the_registry_period_measures(small, freq, by):
    from sim import simulate

    table = period.by_period(simulate(small, 5), freq, by)
    numeric = set(table.columns) - {"period", "period_start", "period_end", "breakdown", "category"}
    capacity = {"caseload_use", "detox_bed_use", "rehab_place_use"}  # all clients only
    assert numeric == set(registry.PERIOD_MEASURES) - (capacity if by else set())  # (in by_period's own order)
    assert core.MEASURE_COLUMNS == registry.PERIOD_MEASURES


def test_target_measures_are_registered_and_implemented():
    assert targets.MEASURES is registry.TARGET_MEASURES
    assert list(target_measures.MEASURES) == list(registry.TARGET_MEASURES)
    for name, m in target_measures.MEASURES.items():
        assert (m.unit, m.description) == (registry.BY_NAME[name].unit, registry.BY_NAME[name].description)
    table = target_measures.measures_table()
    assert list(table["measure"]) == list(registry.TARGET_MEASURES)


def test_the_target_schema_imports_no_engine():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(targets.__file__).read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
               [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith(("sim.engine", "sim.analysis"))]
