"""The web app's pages, headless (Streamlit's AppTest): inputs change, results appear, and no run raises.

Every test uses the fast West Kent variant over a two-year term with two replications."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.cli import main  # noqa: E402
from sim.webapp import APP  # noqa: E402
from sim.webapp import design as D  # noqa: E402

TIMEOUT = 120  # seconds per script run: a real simulation, on a shared machine


def ok(at: AppTest) -> AppTest:
    """No exception and no error block after a run."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def start(template: str | None = None, behaviour: str = "off") -> AppTest:
    """The design page over a two-year term with two replications; the provider contract-blind unless
    ``behaviour`` says otherwise (the page's default is the calibrated provider: slower, tested on its own)."""
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    if template is not None:
        ok(at.selectbox(key="template").select(template).run())
    ok(at.number_input(key="extension_years").set_value(0).run())  # a two-year term: a shorter simulation
    at.number_input(key="term_years").set_value(2).run()
    at.number_input(key="replications").set_value(2)
    if behaviour is not None:
        at.radio(key="behaviour").set_value(behaviour)
    return ok(at)


def run(at: AppTest) -> AppTest:
    at.button(key="FormSubmitter:contract_form-Run").click()
    return ok(at.run())


def headline(at: AppTest) -> pd.Series:
    return at.table[0].value["over the term"]


def test_design_page_offers_sites_and_templates_and_refuses_bad_input(app_env):
    at = ok(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    assert at.selectbox(key="site").options == ["west_kent_fast (west_kent_fast.toml)",
                                                "west_kent_vacancies_fast (west_kent_vacancies_fast.toml)"]
    assert any("broken.toml" in c.value for c in at.caption)
    assert at.selectbox(key="template").value == "west_kent_pbr"  # the site's own contract first
    assert [at.number_input(key=f"share_{k}").value for k in (1, 4)] == [25.0, 60.0]
    assert at.radio(key="behaviour").options == (list(D.BEHAVIOURS) if D.behaviour_available() else ["off"])
    assert "calibrated" in D.BEHAVIOURS
    # another template fills the form again
    ok(at.selectbox(key="template").select("national_pbr").run())
    assert at.number_input(key="share_1").value == 30.0
    assert at.checkbox(key="pay_hep_b").value and not at.checkbox(key="pay_engagement").value
    # impossible values: messages naming the field in the page's units, no traceback, nothing run
    at.number_input(key="share_2").set_value(150.0)
    at.number_input(key="annual_value").set_value(-1.0)
    at.button(key="FormSubmitter:contract_form-Run").click().run()
    assert not at.exception
    text = "\n".join(e.value for e in at.error)
    assert "Year 2 PbR share (%) = 150%: must be between 0% and 100%" in text
    assert "Annual value (£) = -1: must be between 1 and 1,000,000,000" in text
    assert at.session_state["run_design"] is None
    assert any("press Run" in i.value and "refused" in i.value for i in at.info)


def test_a_term_of_zero_and_too_many_replications_are_refused_in_words_and_a_change_marks_results_stale(app_env):
    at = start()
    at.number_input(key="term_years").set_value(0).run()
    at.button(key="FormSubmitter:contract_form-Run").click().run()
    assert not at.exception
    assert any("Term (years) = 0: must be between 1 and 25" in e.value for e in at.error)
    at.number_input(key="term_years").set_value(2).run()
    at.number_input(key="replications").set_value(500)
    at.button(key="FormSubmitter:contract_form-Run").click().run()
    assert any("Replications = 500: must be between 1 and 200" in e.value for e in at.error)
    assert not at.success  # no earlier design's green line stays
    at.number_input(key="replications").set_value(2)
    run(at)
    assert at.success and not any("has changed" in w.value for w in at.warning)
    ok(at.number_input(key="extension_years").set_value(1).run())  # the design changes after the run
    assert any("The design has changed since these results were run" in w.value for w in at.warning)


def test_outcome_shares_that_do_not_add_to_the_whole_pot_are_said(app_env):
    at = start()
    at.number_input(key="amount_abstinence").set_value(5.0)  # West Kent's 20% of the pot down to 5%
    run(at)
    assert any("add to 85%, not 100%: 15% of the pot is paid on nothing" in w.value for w in at.warning)


def test_run_shows_results_and_a_tariff_change_moves_the_totals(app_env):
    at = run(start("cohort_escalator"))  # a priced presentation tariff and no cap on payouts
    assert any("2 replications" in s.value for s in at.success)
    first = headline(at)
    assert first.index[0] == "Provider income" and "Chance of a loss over the term" in first.index
    frames = [df.value for df in at.dataframe]
    outcomes = next(f for f in frames if f.index.name == "financial year")  # outcomes per year
    assert list(outcomes.index) == ["2012-13", "2013-14"]
    assert any("presentation" in f.index for f in frames)                   # income by component
    # a tariff change: only a re-settle, and the provider's income moves with it
    at.number_input(key="amount_presentation").set_value(2_000.0)
    run(at)
    assert headline(at)["Provider income"] != first["Provider income"]
    # on the same simulated clients: what they did is unchanged
    again = next(df.value for df in at.dataframe if df.value.index.name == "financial year")
    assert again.equals(outcomes)


def test_compare_page_settles_designs_on_the_same_clients(app_env):
    at = run(start())
    names = list(at.table[1].value.index)
    assert names == ["west_kent_pbr_page", "block"]
    ok(at.multiselect(key="compare").select("national_pbr").run())
    assert list(at.table[1].value.index) == ["west_kent_pbr_page", "block", "national_pbr"]
    outcomes = at.table[2].value  # what each design buys, beside the money
    assert "sustained recoveries (no referral within 6 months)" in outcomes.columns and len(outcomes) == 3
    assert any("contract-blind" in i.value for i in at.info)
    diffs = at.table[3].value
    assert list(diffs.index) == ["block", "national_pbr"] and "margin" in diffs.columns
    comp = at.session_state["comparison"]
    assert (comp.fingerprints.groupby("replication")["history"].nunique() == 1).all()
    # cost-effectiveness against the reference, at a willingness to pay the page asks for
    ce = next(t.value for t in at.table if t.value.index.name == "design against west_kent_pbr_page")
    assert list(ce.index) == ["block", "national_pbr"]
    assert set(ce["£ per extra sustained recovery (ICER)"]) == {"identical outcomes"}  # contract-blind
    ok(at.selectbox(key="ce_outcome").select("planned_exits").run())
    ok(at.number_input(key="ce_wtp").set_value(20_000.0).run())
    assert any("perfect information at £20k per planned exit" in c.value for c in at.caption)
    # the same design on another site, each with its own system, without touching the form
    ok(at.multiselect(key="other_sites").select("west_kent_vacancies_fast.toml").run())
    sites = next(t.value for t in at.table if t.value.index.name == "site" and "margin" in t.value.columns)
    assert list(sites.index) == ["west_kent_fast", "west_kent_vacancies_fast"]
    assert sites.iloc[0]["margin"] != sites.iloc[1]["margin"]  # fewer staff for half a year: other clients, money
    assert at.selectbox(key="site").value == "west_kent_fast.toml"


def test_download_round_trips_through_pbrsim_compare(app_env, tmp_path):
    at = run(start())
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Scenario (TOML)", "Contract (TOML)", "by_contract_year.csv", "compare_summary.csv"} <= set(labels)
    design = at.session_state["run_design"]
    # the files the Download page offers, saved side by side
    scenario_file = tmp_path / D.scenario_file_name(design)
    scenario_file.write_text(D.scenario_toml(design))
    contract_file = tmp_path / D.contract_file_name(design.contract)
    contract_file.write_text(D.contract_toml(design))
    out = tmp_path / "out"
    assert main(["compare", str(scenario_file), "--contracts", str(contract_file), "--replications",
                 str(design.replications), "--seed", str(design.seed), "--out", str(out), "--no-plots"]) == 0
    # every replication r on the page is pbrsim compare's replication r, as the Download page says
    shown = at.session_state["comparison"]
    cli = pd.read_csv(out / "by_year.csv")
    for r in range(design.replications):
        page = shown.by_year[(shown.by_year["replication"] == r)
                             & (shown.by_year["contract"] == design.contract.name)]
        cmd = cli[cli["replication"] == r]
        assert len(cmd) == len(page) == 2
        for column in ("income", "cost", "margin", "spend", "planned_exits"):
            assert np.allclose(cmd[column], page[column]), (r, column)
    prints = pd.read_csv(out / "fingerprints.csv", dtype={"history": str})
    page_prints = shown.fingerprints[shown.fingerprints["contract"] == design.contract.name]
    assert list(prints["history"]) == list(page_prints["history"])


def test_the_calibrated_provider_is_the_default_and_compare_shows_what_its_responses_did(app_env):
    at = start(behaviour=None)
    if "stress" not in at.radio(key="behaviour").options:
        pytest.skip("the provider-behaviour model (sim.provider.model) is not there")
    assert at.radio(key="behaviour").value == "calibrated"  # the page's default, and said beside it
    assert any("calibrated (the default" in c.value for c in at.caption)
    at.number_input(key="replications").set_value(1)
    run(at)
    design = at.session_state["run_design"]
    assert design.scenario.behaviour.mode == "calibrated"
    assert list(at.table[1].value.index) == ["west_kent_pbr_page", "block"]
    assert "behaviour" in D.scenario_toml(design)  # the downloaded scenario says how the provider behaves
    assert not any("contract-blind" in i.value for i in at.info)
    gaming = next(t.value for t in at.table if t.value.index.name == "over the term")  # the gaming panel
    assert list(gaming.columns) == ["west_kent_pbr_page", "block"]
    assert {"share of starts: Critical", "episodes parked (M2)", "TOP reviews per client-year (M3)",
            "planned exits held a week or more (M4)", "referrals deflected at intake (M1)"} <= set(gaming.index)
    # block puts nothing at risk: its provider does not game
    assert gaming.loc["episodes parked (M2)", "block"] == "0.0%"
    assert any("pbrsim audit-contract" in c.value for c in at.caption)


def test_the_tender_report_of_the_compared_designs_downloads_from_the_page(app_env):
    at = run(start())
    ok(at.button(key="prepare_report").click().run())
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Tender report (HTML)" in labels
    html = at.session_state["report_html"]
    assert "<h2>The designs</h2>" in html and "west_kent_pbr_page" in html and "Designed on the pbrsim web app" in html
    assert any("Kept from the template as written" in c.value and "nhs_trust" in c.value for c in at.caption)
