"""The web app's plain functions: the design form as contract data, validation messages, simulation keys, the
settled tables and the figures and tables drawn from them (no Streamlit)."""

from __future__ import annotations

import dataclasses
import tomllib

import numpy as np
import pandas as pd
import pytest

from sim.config.contract import contract_from_dict
from sim.config.scenario import load_scenario
from sim.money.settlement import commissioner_by_year, contract_year_metrics, settle
from sim.webapp import design as D
from sim.webapp import runs as R

pytest.importorskip("plotly")
pytest.importorskip("tomli_w")
from sim.webapp import views as V  # noqa: E402


@pytest.fixture(scope="module")
def site(fast_sites):
    found, skipped = D.sites(fast_sites)
    assert [s.file for s in found] == ["west_kent_fast.toml", "west_kent_vacancies_fast.toml"]
    assert len(skipped) == 1 and "broken.toml" in skipped[0] and "unknown key" in skipped[0]
    return found[0]


@pytest.fixture(scope="module")
def design(site):
    """West Kent's own contract over a two-year term, two replications."""
    contract = D.site_contract(load_scenario(site.path))
    form = dataclasses.replace(D.form_from_contract(contract, years=2), term_years=2, extension_years=0)
    return D.build_design(site, form, replications=2, seed=11, behaviour="off")


@pytest.fixture(scope="module")
def histories(design):
    return R.simulate_replications(design.scenario.raw(), design.seeds)


@pytest.fixture(scope="module")
def settled(design, histories):
    return R.settle_replications(design.contract.raw(), histories, design.scenario.raw())


@pytest.mark.parametrize("name", sorted(D.shipped_contracts()))
def test_the_form_reproduces_every_shipped_contract(name):
    contract = D.shipped_contracts()[name]
    again = contract_from_dict(D.contract_raw(D.form_from_contract(contract)), "form")
    assert again == contract


def test_bad_input_is_refused_in_the_form_s_words_and_units_then_with_the_toml_messages(site):
    contract = D.site_contract(load_scenario(site.path))
    form = D.form_from_contract(contract)
    bad = dataclasses.replace(form, shares_by_year=[25.0, 150.0, 48.0, 60.0], annual_value=-5.0, term_years=0)
    with pytest.raises(D.DesignError) as e:
        D.build_design(site, bad, replications=500, seed=1, behaviour="off")
    text = "\n".join(e.value.lines)
    # the fields as the page labels them, in its units (percent, pounds, years), every one at once
    for line in ("Year 2 PbR share (%) = 150%: must be between 0% and 100%",
                 "Annual value (£) = -5: must be between 1 and 1,000,000,000",
                 "Term (years) = 0: must be between 1 and 25", "Replications = 500: must be between 1 and 200"):
        assert line in text
    assert "[0, 1]" not in text  # no fractions for a form that takes percentages
    volume = dataclasses.replace(form, outcomes=[dataclasses.replace(form.outcomes[0], expected_volume="lots"),
                                                 *form.outcomes[1:]])
    with pytest.raises(D.DesignError, match="Expected volume for .* = 'lots': give the number of outcomes"):
        D.build_design(site, volume, replications=2, seed=1, behaviour="off")
    # what only the files' validation knows is still refused, in its words
    with pytest.raises(D.DesignError) as e:
        D.build_design(site, form, replications=2, seed=-1, behaviour="off")
    assert "seed = -1" in "\n".join(e.value.lines)


def test_pot_shares_that_do_not_add_to_100_are_warned_of(site):
    form = D.form_from_contract(D.site_contract(load_scenario(site.path)))
    assert D.form_warnings(form) == []
    short = dataclasses.replace(form, outcomes=[dataclasses.replace(form.outcomes[0], amount=0.0),
                                                *form.outcomes[1:]])
    assert "add to 90%, not 100%: 10% of the pot is paid on nothing" in D.form_warnings(short)[0]


def test_provider_behaviour_is_a_scenario_change_and_responds_to_the_contract(site):
    form = dataclasses.replace(D.form_from_contract(D.site_contract(load_scenario(site.path)), years=2),
                               term_years=2, extension_years=0)
    assert D.behaviour_changes("off") == {"behaviour.mode": "off"}  # whatever the site says: West Kent responds
    if not D.behaviour_available():
        with pytest.raises(D.DesignError) as e:
            D.build_design(site, form, 1, 1, "stress")
        assert "not available" in str(e.value)
        return
    from sim import simulate
    from sim.experiments.providers import provider_model
    from sim.experiments.seeds import replication_seed

    design = D.build_design(site, form, 1, 5, "stress")
    assert design.scenario.behaviour.mode == "stress"
    assert R.responds_to(design) == design.contract.raw()
    history = R.simulate_replications(design.scenario.raw(), design.seeds, contract_raw=R.responds_to(design))[0]
    engine = simulate(design.scenario, replication_seed(5, 0), provider=provider_model(design.scenario, design.contract))
    assert history.spells.equals(engine.spells)  # as pbrsim compare runs a responding provider


def test_tariffs_are_not_in_the_simulation_key(design):
    cheaper = design.contract.with_changes({"outcomes.planned_exit.share_of_pot": 0.1})
    other = D.for_compare(design, cheaper)
    assert R.simulation_key(other) == R.simulation_key(design)
    reseeded = dataclasses.replace(design, scenario=design.scenario.with_changes({"seed": 12}))
    assert R.simulation_key(reseeded) != R.simulation_key(design)
    # when the provider responds to the contract, the contract changes what is simulated
    responsive = dataclasses.replace(other, behaviour="base")
    assert R.simulation_key(responsive) != R.simulation_key(dataclasses.replace(design, behaviour="base"))


def test_replication_r_is_pbrsim_compares_replication_r(design, histories):
    from sim import simulate
    from sim.experiments.compare import compare, fingerprint
    from sim.experiments.seeds import replication_seed

    assert design.seeds == ((11, 0), (11, 1))
    again = simulate(design.scenario, replication_seed(11, 1))
    assert again.spells.equals(histories[1].spells)
    # parallel equals sequential, across commands: the page's replication r is pbrsim compare's replication r
    cmp = compare(design.scenario, [design.contract], replications=2, seed=11)
    assert list(cmp.fingerprints["history"]) == [fingerprint(h) for h in histories]


def test_settled_tables_match_the_settlement_api(design, histories, settled):
    s = settle(design.contract, histories[1], design.scenario)
    want = contract_year_metrics(s)
    got = settled.by_year[settled.by_year["replication"] == 1].set_index("contract_year")
    assert np.allclose(got["margin"], want["margin"]) and np.allclose(got["income"], want["income"])
    comm = commissioner_by_year(s)
    got_c = settled.commissioner[settled.commissioner["replication"] == 1].set_index("contract_year")
    assert np.allclose(got_c["spend"], comm["spend"])
    income = settled.income[settled.income["replication"] == 1].groupby("contract_year")["amount"].sum()
    assert np.allclose(income, want["income"])
    assert set(settled.term["replication"]) == {0, 1}


def test_paired_comparison_sees_the_same_histories(design, histories, settled):
    block = D.shipped_contracts()["block"]
    other = R.settle_replications(block.raw(), histories, design.scenario.raw())
    comp = R.comparison([settled, other])
    assert (comp.fingerprints.groupby("replication")["history"].nunique() == 1).all()
    diff = comp.paired_differences().set_index("metric")
    margins = comp.term.pivot(index="replication", columns="contract", values="margin")
    assert np.isclose(diff.loc["margin", "mean_difference"], (margins["block"] - margins[settled.contract]).mean())
    # the block contract buys the same service: the commissioner's cost differences are the payment differences
    assert np.isclose(diff.loc["cost", "mean_difference"], 0.0)
    table = V.comparison_table(comp)
    assert list(table.index) == [settled.contract, "block"]
    assert list(V.differences_table(comp).index) == ["block"]
    assert len(V.differences_figure(comp).data) == 1 and len(V.spend_per_exit_figure(comp).data) == 1


def test_figures_and_tables(design, histories, settled):
    act = R.activity(histories, design.scenario.raw())
    fig = V.outcomes_figure(act)
    names = {t.name for t in fig.data}
    assert "planned exits" in names
    line = next(t for t in fig.data if t.name == "planned exits")
    assert list(line.x) == ["2012-13", "2013-14"]
    planned = act.measures.groupby("period")["planned_exits"].mean()
    assert np.allclose(line.y, planned.to_numpy())
    income = V.income_figure(settled)
    core = next(t for t in income.data if t.name == "core")
    assert np.allclose(core.y, [design.contract.annual_value * (1 - design.contract.share(k)) for k in (1, 2)])
    assert len(V.cash_figure(settled).data) == 2
    assert len(V.offending_figure(act, settled).data) >= 1
    head = V.headline(settled)
    assert head["Chance of a loss over the term"].endswith(" of 2 replications") or \
        head["Chance of a loss over the term"].startswith(("under 1 in 2", "over 1 in 2"))
    assert "Provider margin" in head
    assert list(V.outcomes_table(act).index) == ["2012-13", "2013-14"]
    assert list(V.commissioner_table(settled).index) == ["year 1", "year 2"]
    assert set(V.paid_outcomes_table(settled).index) <= set(design.contract.outcomes)
    tariffs = V.tariffs_table(settled)
    # critical clients are paid more per outcome than low-need clients (band weights 1.8 vs 0.45)
    row = tariffs.loc["planned_exit"]
    assert row["critical"] > row["low"]


def test_spend_per_sustained_recovery_counts_only_years_whose_follow_up_has_closed(design, histories, settled):
    """A year whose last exits are still inside their 6-month follow-up at the horizon's end has recoveries not yet
    known: its spend is not set against them (issue 21). Spend is said with and without the assessments."""
    from sim.analysis.delivered import OBSERVABLE, OBSERVABLE_TERM
    from sim.analysis.evaluation import FOLLOW_UP_DAYS
    from sim.experiments.statistics import ratio_of_means

    from sim.money.settlement import settle

    by_year = settled.by_year
    years = by_year.groupby("contract_year")[[OBSERVABLE]].first().join(
        settle(design.contract, histories[0], design.scenario).years.set_index("contract_year")["end"])
    assert ((years["end"] + FOLLOW_UP_DAYS <= histories[0].end) == (years[OBSERVABLE] > 0)).all()
    assert years[OBSERVABLE].iloc[-1] == 0  # the horizon ends with the term: the last year's follow-up is open
    assert years[OBSERVABLE].iloc[0] == 1
    for r, d in by_year.groupby("replication"):
        d = d[d["observed"].astype(bool)]
        row = settled.term.set_index("replication").loc[r]
        assert row[OBSERVABLE_TERM[0]] == pytest.approx(d.loc[d[OBSERVABLE] > 0, "spend"].sum())
        assert row[OBSERVABLE_TERM[1]] == d.loc[d[OBSERVABLE] > 0, "sustained_recoveries"].sum()
        assert row["assessments"] > 0 and row["spend"] > row["assessments"]
    ratio = ratio_of_means(*(settled.term[k] for k in OBSERVABLE_TERM))
    assert V.headline(settled)[V.SPEND_PER_RECOVERY].startswith(V.money(ratio.ratio))
    comp = R.comparison([settled])
    assert comp.summary().loc[settled.contract, "spend_per_sustained_recovery"] == pytest.approx(ratio.ratio)
    table = V.comparison_table(comp)
    assert {"spend (payments and assessments)", "of which assessments"} <= set(table.columns)


def test_money_and_intervals():
    assert V.money(1_234_567) == "£1.23m" and V.money(-45_600) == "−£46k" and V.money(-0.1) == "£0"
    assert V.with_ci(10.0, 5.0, 15.0, fmt=lambda v: f"{v:.0f}") == "10 (5 to 15)"
    assert R.mean_ci([1.0])[0] == 1.0 and np.isnan(R.mean_ci([1.0])[1])
    lo, hi = R.mean_ci([1.0, 2.0, 3.0])[1:]
    assert lo < 2.0 < hi


def test_downloaded_files_are_valid_toml_that_load(design, tmp_path):
    scenario_path = tmp_path / D.scenario_file_name(design)
    contract_path = tmp_path / D.contract_file_name(design.contract)
    scenario_path.write_text(D.scenario_toml(design))
    contract_path.write_text(D.contract_toml(design))
    tomllib.loads(scenario_path.read_text())
    loaded = load_scenario(scenario_path)
    assert loaded == design.scenario.with_changes({"contract": contract_path.name})
    assert loaded.contract_path() == contract_path
    from sim.config.contract import load_contract

    assert load_contract(contract_path) == design.contract


def test_the_page_applies_a_scenario_s_uncertainty_as_pbrsim_compare_does(fast_sites):
    """Replication r of the page carries parameter draw r, shared by every design; a pot drawn for PbR is
    ignored by the block contract; the term totals equal pbrsim compare's on the same seeds."""
    import pandas as pd

    from sim.config.contract import load_contract
    from sim.experiments.compare import compare

    scenario = load_scenario(fast_sites / "west_kent_fast.toml").with_changes({
        "horizon.years": 1, "behaviour.mode": "off", "uncertainty": {
        "costs.rehab_per_week": {"dist": "triangular", "low": 300, "mode": 600, "high": 1000},
        "contract.offending.pot": {"dist": "triangular", "low": 100_000, "mode": 200_000, "high": 300_000}}})
    shipped = D.shipped_contracts()
    pbr, block = shipped["west_kent_pbr"], shipped["block"]
    D.check(block, scenario, compared_with=[pbr, block])
    seeds = [(7, r) for r in range(2)]
    histories = R.simulate_replications(scenario.raw(), seeds)
    page = R.comparison([R.settle_replications(c.raw(), histories, scenario.raw()) for c in (pbr, block)])
    cli = compare(scenario, [pbr, block], 2, seed=7)
    cols = ["replication", "contract", "income", "cost", "spend", "margin", "offending_payment"]
    def ordered(term):
        return term[cols].sort_values(["contract", "replication"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(ordered(page.term), ordered(cli.term), check_dtype=False)
    assert page.term.groupby("contract")["cost"].nunique().eq(2).all()  # the draws differ between replications


def test_compare_shows_what_each_design_buys_and_says_when_outcomes_are_identical(design, histories, settled):
    block = D.shipped_contracts()["block"]
    comp = R.comparison([settled, R.settle_replications(block.raw(), histories, design.scenario.raw())])
    table = V.comparison_outcomes_table(comp)
    assert {"planned exits", "sustained recoveries (no referral within 6 months)", "recorded offences", "deaths",
            "treatment starts"} <= set(table.columns)
    assert comp.outcomes_identical()  # contract-blind: the same clients, the same outcomes
    assert (table.iloc[0] == table.iloc[1]).all()
    diffs = comp.paired_differences().set_index("metric")
    assert diffs.loc["sustained_recoveries", "mean_difference"] == 0
    assert list(V.outcome_differences_table(comp).columns)[:2] == ["treatment starts", "people in treatment (a year)"]


def test_a_downloaded_design_names_and_describes_itself_and_loads_back_as_the_same_design(site):
    """Download -> upload -> the identical design: the file carries the page's own name (not a shipped design's)
    and a description of the terms on the form, and every term the form does not show is kept and said."""
    import tomllib

    template = D.form_from_contract(D.site_contract(load_scenario(site.path)))
    form = dataclasses.replace(template, shares_by_year=[10.0, 20.0, 30.0, 30.0], name="west_kent_pbr_page")
    form = dataclasses.replace(form, description=D.describe(form))
    design = D.build_design(site, form, replications=2, seed=5, behaviour="off")
    assert design.contract.name != "west_kent_pbr" and "10% / 20% / 30% / 30%" in design.contract.description
    assert "60%" not in design.contract.description  # not the template's 25% rising to 60%
    assert any(t.startswith("subcontractors: nhs_trust") for t in D.kept_terms(template))
    text = D.contract_toml(design)
    loaded = D.contract_from_dict(tomllib.loads(text), "downloaded.toml")
    again = D.form_from_contract(loaded)
    again = dataclasses.replace(again, description=D.describe(again))
    assert D.build_design(site, again, replications=2, seed=5, behaviour="off").contract.raw() == \
        design.contract.raw()


def test_the_about_pages_come_from_the_repository_s_own_files():
    overview, md = D.about_text("Overview")
    assert md and overview.startswith("# pbrsim") and "## The model" in overview and "![" not in overview
    limits, _ = D.about_text("Assumptions and limitations")
    assert limits.startswith("## Limitations") and "Mortality" in limits
    cite, md = D.about_text("Citation")
    assert not md and "cff-version" in cite
    assert "MIT" in D.about_text("Licence")[0] and "## [Unreleased]" in D.about_text("Change log")[0]
    assert "[P]" in D.about_text("Sources and how to cite")[0]


def test_a_what_if_on_referrals_moves_waits_and_numbers_in_treatment(site):
    """More referrals into the same places: more people in treatment and longer waits; the what-ifs are refused
    outside their ranges in the page's words."""
    form = dataclasses.replace(D.form_from_contract(D.site_contract(load_scenario(site.path)), years=1),
                               term_years=1, extension_years=0)
    base = D.system_defaults(load_scenario(site.path))
    same = D.build_design(site, form, 1, 3, "off", base)
    more = D.build_design(site, form, 1, 3, "off", {**base, "referral_change": 60.0, "vacancies": 10.0})
    assert more.scenario.capacity.recovery_workers == pytest.approx(0.9 * base["recovery_workers"])
    shown = []
    for design in (same, more):
        act = R.activity(R.simulate_replications(design.scenario.raw(), design.seeds), design.scenario.raw())
        year = act.measures[act.measures["period"] == act.measures["period"].max()].iloc[0]
        shown.append(year)
    assert shown[1]["in_treatment"] > shown[0]["in_treatment"]
    assert shown[1]["mean_wait_days"] > shown[0]["mean_wait_days"]
    with pytest.raises(D.DesignError, match=r"Referral change \(%\) = 300%: must be between -50% and 100%"):
        D.build_design(site, form, 1, 3, "off", {**base, "referral_change": 300.0})


def test_cost_effectiveness_views_read_the_comparison_s_paired_replications(design, histories, settled):
    """The Compare page's cost-effectiveness views are sim.experiments.cost_effectiveness on the page's term table:
    with a contract-blind provider the outcomes are identical, so the ICER gives way to that verdict, the design
    that spends less is best in every replication and the value of information is nil."""
    from sim.experiments.cost_effectiveness import analyse
    from sim.experiments.statistics import chance_text

    block = D.shipped_contracts()["block"]
    comp = R.comparison([settled, R.settle_replications(block.raw(), histories, design.scenario.raw())])
    ce = analyse(comp.term, comp.contracts, "sustained_recoveries", [5000.0], comp.observed_years())
    table = V.incremental_table(ce)
    assert list(table.index) == ["block"] and table.index.name == f"design against {settled.contract}"
    assert table.loc["block", "£ per extra sustained recovery (ICER)"] == "identical outcomes"
    assert table.loc["block", "extra sustained recoveries"] == "–" or \
        table.loc["block", "extra sustained recoveries"].startswith("0.0")
    spend = comp.term.pivot(index="replication", columns="contract", values="spend")
    extra = spend["block"] - spend[settled.contract]
    assert table.loc["block", "extra spend"].startswith(V._signed(extra.mean()))
    cheaper = "block" if (extra < 0).all() else settled.contract if (extra > 0).all() else None
    view = V.net_benefit_view(ce)
    if cheaper is not None:
        assert view.loc[cheaper, "best in"] == f"{chance_text(2, 2)} replications"  # every one, at its resolution
        assert ce.value_of_information.loc[ce.value_of_information["asked"], "evpi"].iloc[0] == pytest.approx(0.0)
    fig = V.acceptability_figure(ce)
    assert [t.name for t in fig.data] == comp.contracts
    assert "perfect information at £5,000" in V.value_of_information_text(ce, uncertain=False)


def test_measuring_where_each_replication_is_simulated_gives_the_same_histories_and_activity(design, histories):
    """The page's first run measures each History in the worker that simulated it: the same Histories, in seed
    order, and the same Activity as measuring them afterwards, with a pool or without."""
    from concurrent.futures import ThreadPoolExecutor

    from sim.experiments.compare import fingerprint

    expected = R.activity(histories, design.scenario.raw())
    for pool in (None, ThreadPoolExecutor(2)):
        got, act = R.simulate_measured(design.scenario.raw(), design.seeds, pool)
        assert [fingerprint(h) for h in got] == [fingerprint(h) for h in histories]
        pd.testing.assert_frame_equal(act.measures, expected.measures)
        pd.testing.assert_frame_equal(act.offending, expected.offending)
