"""The command line as a user runs it: run, validate, list; bad input; outputs whole or not at all."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from tests.builders import CONTRACT_BLIND

ROOT = Path(__file__).resolve().parents[2]
WEST_KENT = ROOT / "scenarios" / "west_kent.toml"


def _tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "tiny"\n'
                    "[horizon]\nwarmup_years = 2\nyears = 1\n" + CONTRACT_BLIND)
    return path


def test_run_writes_tables_measures_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(_tiny(tmp_path)), "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "scenario tiny" in printed and "opiate" in printed
    for table in ("clients", "episodes", "spells", "events", "reviews", "capacity"):
        assert (out / "tables" / f"{table}.parquet").is_file()
        assert (out / "tables" / f"{table}.csv").is_file()
    clients = pd.read_parquet(out / "tables" / "clients.parquet")
    assert len(clients) == len(pd.read_csv(out / "tables" / "clients.csv")) > 100
    years = pd.read_csv(out / "measures_year.csv")
    assert set(years["breakdown"]) == {"all", "band", "group"}
    assert (out / "summary.txt").read_text().startswith("pbrsim")
    for plot in ("caseload_by_group", "waiting_list", "exits_by_type", "completions_by_group"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 10_000
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 3 and run["scenario"] == "tiny"
    assert not list(tmp_path.glob(".out.*")), "no temporary directory is left behind"


def test_run_years_option_and_same_seed_same_tables(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["run", str(_tiny(tmp_path)), "--seed", "1", "--years", "0.5", "--out", str(out),
                     "--no-plots", "--formats", "parquet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(a / "tables" / "spells.parquet"),
                                  pd.read_parquet(b / "tables" / "spells.parquet"))
    assert not (a / "plots").exists() and not list((a / "tables").glob("*.csv"))
    assert len(pd.read_csv(a / "measures_quarter.csv").query("breakdown == 'all'")) == 2


def test_bad_scenario_is_refused_before_anything_runs(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{WEST_KENT.as_posix()}"\n[capacity]\nrehab_places = -3\n')
    out = tmp_path / "out"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "capacity.rehab_places" in err and "-3" in err
    assert not out.exists()


def test_validate_and_list(tmp_path, capsys):
    assert main(["validate", str(WEST_KENT)]) == 0
    assert "ok:" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{WEST_KENT.as_posix()}"\n[assessment]\nattends_treatment = 1.5\n')
    assert main(["validate", str(bad)]) == 2
    assert "assessment.attends_treatment = 1.5" in capsys.readouterr().err
    assert main(["list", str(ROOT / "scenarios")]) == 0
    assert "west_kent.toml" in capsys.readouterr().out


def test_interrupted_run_leaves_previous_results_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert main(["run", str(_tiny(tmp_path)), "--seed", "1", "--out", str(out), "--no-plots"]) == 0
    before = (out / "summary.txt").read_text()

    import sim.report.output

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim.report.output.measures, "summary", broken)
    assert main(["run", str(_tiny(tmp_path)), "--seed", "2", "--out", str(out), "--no-plots"]) == 130
    assert (out / "summary.txt").read_text() == before
    assert (out / "tables" / "spells.parquet").is_file()


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_console_script_help(args):
    done = subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)
    assert done.returncode == 0 and "usage" in done.stdout


def test_run_settles_under_the_scenarios_contract_and_swaps_it(tmp_path, capsys):
    out = tmp_path / "out"
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "tiny"\n'
                    "[horizon]\nwarmup_years = 2\nyears = 1\n" + CONTRACT_BLIND)
    assert main(["run", str(tiny), "--seed", "3", "--out", str(out), "--formats", "parquet"]) == 0
    assert "Contract west_kent_pbr" in capsys.readouterr().out
    for name in ("payments.csv", "income_by_year.csv", "provider_by_year.csv", "commissioner_by_year.csv",
                 "cash_monthly.csv", "offending_by_year.csv", "income_by_component.png", "cumulative_cash.png"):
        assert (out / "contract" / name).is_file(), name
    income = pd.read_csv(out / "contract" / "income_by_year.csv")
    assert income.loc[0, "core"] == pytest.approx(0.75 * 4_000_000)  # 25% at risk in the first year
    block = ROOT / "scenarios" / "contracts" / "block.toml"
    assert main(["run", str(tiny), "--seed", "3", "--out", str(out), "--contract", str(block), "--no-plots"]) == 0
    assert pd.read_csv(out / "contract" / "income_by_year.csv").loc[0, "total"] == pytest.approx(4_000_000)
    assert main(["run", str(tiny), "--seed", "3", "--out", str(out), "--contract", "none", "--no-plots"]) == 0
    assert not (out / "contract").exists()


def test_too_short_a_warm_up_for_the_contract_is_refused_before_running(tmp_path, capsys):
    short = tmp_path / "short.toml"
    short.write_text(f'extends = "{WEST_KENT.as_posix()}"\n[horizon]\nwarmup_years = 1\n')
    own_year = tmp_path / "own_year.toml"  # planned exits priced from the simulated year before the contract
    own_year.write_text(f'extends = "{(ROOT / "scenarios" / "contracts" / "west_kent_pbr.toml").as_posix()}"\n'
                        '[outcomes.planned_exit]\nexpected_volume = "baseline"\n')
    assert main(["run", str(short), "--contract", str(own_year), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "own_year.toml" in err and "warmup_years = 1" in err
    assert not (tmp_path / "o").exists()


def test_bad_contract_is_refused_naming_file_key_and_value(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{(ROOT / "scenarios" / "contracts" / "block.toml").as_posix()}"\n'
                   "annual_value = -5\n")
    assert main(["run", str(WEST_KENT), "--contract", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "invalid contract" in err and str(bad) in err and "annual_value = -5" in err


def test_compare_writes_paired_tables(tmp_path, capsys):
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "tiny"\n'
                    "[horizon]\nwarmup_years = 2\nyears = 1\n" + CONTRACT_BLIND)
    contracts = [str(ROOT / "scenarios" / "contracts" / f"{n}.toml") for n in ("block", "west_kent_pbr")]
    out = tmp_path / "cmp"
    assert main(["compare", str(tiny), "--contracts", *contracts, "--replications", "2", "--seed", "4",
                 "--out", str(out), "--no-plots"]) == 0
    assert "Paired differences against block" in capsys.readouterr().out
    assert main(["compare", str(tiny), "--contracts", *contracts, "--replications", "2", "--seed", "4",
                 "--out", str(tmp_path / "cmp2"), "--no-plots", "--executor", "processes", "--workers", "2"]) == 0
    for table in ("by_year.csv", "fingerprints.csv", "summary.csv"):
        assert (out / table).read_text() == (tmp_path / "cmp2" / table).read_text(), table
    prints = pd.read_csv(out / "fingerprints.csv")
    assert (prints.groupby("replication")["history"].nunique() == 1).all()
    assert prints["history"].nunique() == 2
    summary = pd.read_csv(out / "summary.csv", index_col="contract")
    assert set(summary.index) == {"block", "west_kent_pbr"}


def test_replicate_with_parameter_uncertainty_splits_the_variance(tmp_path, capsys):
    uncertain = tmp_path / "uncertain.toml"
    uncertain.write_text(f'extends = "{(ROOT / "scenarios" / "west_kent_uncertain.toml").as_posix()}"\n'
                         'name = "tiny_uncertain"\n[horizon]\nwarmup_years = 2\nyears = 1\n' + CONTRACT_BLIND)
    out = tmp_path / "rep"
    assert main(["replicate", str(uncertain), "-n", "4", "--runs-per-draw", "2", "--contract", "none",
                 "--out", str(out)]) == 0
    assert "4 replications of tiny_uncertain" in capsys.readouterr().out
    summary = pd.read_csv(out / "summary.csv")
    done = summary[(summary["metric"] == "in_treatment") & (summary["category"] == "all")]
    assert (done["n"] == 4).all() and (done["ci_low"] <= done["mean"]).all()
    split = pd.read_csv(out / "variance_split.csv")
    assert (split["draws"] == 2).all() and (split["runs_per_draw"] == 2).all()
    assert split["parameter_share"].dropna().between(0, 1).all()
    # every run records its parameter draw; runs 0-1 share draw 0, runs 2-3 draw 1
    parts = pd.concat(pd.read_parquet(p) for p in sorted((out / "runs").rglob("*.parquet")))
    draws = parts[parts["metric"] == "draw"].sort_values("replication")["value"].tolist()
    assert draws == [0.0, 0.0, 1.0, 1.0]
    assert main(["summarise", str(out)]) == 0


def test_sweep_runs_resumes_without_recomputing_and_computes_indices(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text(f'name = "tiny"\nscenario = "{WEST_KENT.as_posix()}"\ndesign = "morris"\nsamples = 2\n'
                    'replications = 1\nseed = 3\n[changes]\n"horizon.warmup_years" = 2\n"horizon.years" = 1\n'
                    '"behaviour.mode" = "off"\n"contract.extension_years" = 0\n"contract.term_years" = 1\n'
                    '"contract.pbr_share.by_year" = [0.25]\n'
                    '[[parameters]]\npath = "capacity.recovery_workers"\nlow = 8\nhigh = 16\ninteger = true\n'
                    '[[parameters]]\npath = "treatment.drop_out_rate_per_year.by_group.opiate"\nlow = 0.1\nhigh = 0.3\n')
    out = tmp_path / "sw"
    assert main(["sweep", str(spec), "--out", str(out), "--executor", "processes", "--workers", "2"]) == 0
    assert "Sensitivity of margin" in capsys.readouterr().out
    indices = pd.read_csv(out / "indices_margin.csv")
    assert set(indices["parameter"]) == {"capacity.recovery_workers",
                                         "treatment.drop_out_rate_per_year.by_group.opiate"}
    assert len(pd.read_csv(out / "points.csv")) == 6  # Morris: 2 trajectories x (2 parameters + 1)
    parts = sorted((out / "runs").rglob("*.parquet"))
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts}
    first = pd.read_parquet(out / "results.parquet")
    assert main(["sweep", str(spec), "--out", str(out)]) == 0  # everything is done: nothing is recomputed
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts} == stamps
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), first)


def test_a_bad_sweep_spec_is_refused_naming_file_and_key(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(f'name = "bad"\nscenario = "{WEST_KENT.as_posix()}"\ndesign = "morris"\nsamples = 2\n'
                    '[[parameters]]\npath = "capacity.rehab_placez"\nlow = 1\nhigh = 2\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(spec) in err and "parameters[0].path" in err and "rehab_placez" in err


def test_the_readme_python_example_runs(monkeypatch):
    """Docs that are executed: the README's Python example, as written."""
    import re

    code = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert code, "the README has a Python example"
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert {"history", "yearly", "settlement"} <= set(namespace)
    assert len(namespace["yearly"]) > 0 and len(namespace["settlement"].payments) > 0


def test_the_app_command_is_offered(capsys):
    from sim.cli import main

    with pytest.raises(SystemExit) as e:
        main(["app", "--help"])
    assert e.value.code == 0
    assert "127.0.0.1" in capsys.readouterr().out


def test_version_prints_the_package_version_and_exits_0(capsys):
    from sim.core.version import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"pbrsim {__version__}"


def test_python_m_sim_cli_version():
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("pbrsim "), proc.stderr


def test_verbose_and_quiet_set_the_pbrsim_logger(tmp_path, capsys):
    import logging

    log = logging.getLogger("pbrsim")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["list", str(empty)]) == 1  # a notice, on stderr through the logger
    assert log.level == logging.INFO and f"no scenarios in {empty}/" in capsys.readouterr().err
    assert main(["--verbose", "list", str(empty)]) == 1
    assert log.level == logging.DEBUG
    log.debug("a debugging note")
    assert "a debugging note" in capsys.readouterr().err
    assert main(["--quiet", "list", str(empty)]) == 1
    assert log.level == logging.WARNING
    log.info("an informational note")
    assert "an informational note" not in capsys.readouterr().err
    assert main(["list", str(empty)]) == 1
    err = capsys.readouterr().err
    assert err.count("no scenarios in") == 1 and err.strip() == f"no scenarios in {empty}/"  # one plain line


def _subcommand_parsers():
    import argparse

    from sim.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


# the same thing is spelt the same way in every subcommand: (the option's long name, the short one or None)
SPELLINGS = {"replications": ("--replications", "-n"), "workers": ("--workers", None),
             "executor": ("--executor", None), "scheduler": ("--scheduler", None), "seed": ("--seed", None),
             "out": ("--out", None), "no_plots": ("--no-plots", None), "years": ("--years", None)}


def test_every_subcommand_spells_the_shared_options_the_same_way():
    import argparse

    for name, parser in _subcommand_parsers().items():
        for action in parser._actions:
            if action.dest not in SPELLINGS or not action.option_strings:
                continue
            long, short = SPELLINGS[action.dest]
            if action.help == argparse.SUPPRESS:  # a former spelling, still accepted, not shown
                continue
            assert long in action.option_strings, (name, action.option_strings)
            if short is not None:
                assert short in action.option_strings, (name, action.option_strings)
        for action in parser._actions:  # and nothing else means replications under another visible name
            if action.help != argparse.SUPPRESS and action.dest in ("seeds", "n", "reps", "runs"):
                raise AssertionError((name, action.option_strings))


def test_the_old_seeds_spelling_still_works_but_is_hidden():
    parsers = _subcommand_parsers()
    for name in ("calibrate", "report-validation"):
        assert "--seeds" not in parsers[name].format_help()
    args = parsers["calibrate"].parse_args(["S", "T", "--seeds", "3"])
    assert args.replications == 3
    assert parsers["calibrate"].parse_args(["S", "T"]).replications == 2
    assert parsers["report-validation"].parse_args(["-n", "5"]).replications == 5
    assert parsers["compare"].parse_args(["S", "--contracts", "C", "-n", "7"]).replications == 7


def test_a_reader_that_goes_away_is_not_an_internal_error(monkeypatch, capsys):
    """``pbrsim list scenarios | head -1``: the pipe closes while pbrsim prints; it stops quietly (exit 141, as a
    shell reports SIGPIPE), without "internal error"."""
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["list", "scenarios"]) == 141
    assert "internal error" not in capsys.readouterr().err


def test_warmup_reports_the_mser5_cut_of_every_priced_series_and_fails_a_run_too_short_to_tell(tmp_path, capsys):
    table = tmp_path / "warmup.csv"
    code = main(["warmup", str(WEST_KENT), "--years", "8", "-n", "1", "--table", str(table)])
    out = capsys.readouterr().out
    assert code == 1  # 8 years from empty cannot show that a 10-year warm-up is enough
    assert "MSER-5" in out and "warm-up" in out
    written = pd.read_csv(table)
    assert {"measure", "category", "years", "settled", "level"} <= set(written.columns)
    assert set(written["measure"]) <= {"in_treatment", "planned_exits", "re_presentations", "treatment_starts"}
    assert (written["years"] <= 4).all()  # the cut is looked for in the first half only


def test_the_provider_is_one_switch_away_and_the_run_says_which(tmp_path, capsys):
    """--provider overrides the scenario's [behaviour] mode; the run says whether the provider was contract-blind
    or responding, and a responding provider changes what happens to clients, not only the money."""
    tiny = _tiny(tmp_path)
    assert main(["run", str(tiny), "--seed", "3", "--out", str(tmp_path / "blind"), "--no-plots"]) == 0
    assert "provider contract-blind (behaviour off)" in capsys.readouterr().out
    assert main(["run", str(tiny), "--provider", "calibrated", "--out", str(tmp_path / "cal")]) == 2
    assert "horizon.years must be above 1, got 1" in capsys.readouterr().err  # a provider needs a year's follow-up
    assert main(["run", str(tiny), "--seed", "3", "--out", str(tmp_path / "blind"), "--no-plots", "--years", "2"]) == 0
    capsys.readouterr()
    assert main(["run", str(tiny), "--seed", "3", "--provider", "calibrated", "--out", str(tmp_path / "cal"),
                 "--no-plots", "--years", "2"]) == 0
    assert "provider responding to west_kent_pbr (behaviour calibrated" in capsys.readouterr().out
    events = {k: pd.read_parquet(tmp_path / k / "tables" / "events.parquet") for k in ("blind", "cal")}
    held = {k: int((e["kind"] == "discharge_held").sum()) for k, e in events.items()}
    assert held["blind"] == 0 < held["cal"]
    with pytest.raises(SystemExit):
        main(["run", str(tiny), "--provider", "greedy"])
    assert "invalid choice: 'greedy'" in capsys.readouterr().err


def test_a_responding_provider_under_a_contract_with_nothing_at_risk_is_the_contract_blind_run(tmp_path, capsys):
    """Block puts nothing at risk: a responding provider has nothing to respond to (and needs no year's follow-up),
    so the run is the contract-blind run, table for table, and says why."""
    tiny, block = _tiny(tmp_path), str(ROOT / "scenarios" / "contracts" / "block.toml")
    args = ["run", str(tiny), "--seed", "3", "--contract", block, "--no-plots", "--formats", "parquet"]
    assert main([*args, "--out", str(tmp_path / "blind")]) == 0
    assert main([*args, "--provider", "calibrated", "--out", str(tmp_path / "cal")]) == 0
    assert "nothing at risk under block: the provider (behaviour calibrated)" in capsys.readouterr().out
    for table in ("episodes", "events", "reviews"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "blind" / "tables" / f"{table}.parquet"),
                                      pd.read_parquet(tmp_path / "cal" / "tables" / f"{table}.parquet"))


def test_compare_with_a_willingness_to_pay_writes_the_cost_effectiveness_and_value_of_information(tmp_path, capsys):
    uncertain = tmp_path / "uncertain.toml"
    uncertain.write_text(f'extends = "{(WEST_KENT.parent / "west_kent_uncertain.toml").as_posix()}"\n'
                         'name = "tiny_uncertain"\n[horizon]\nwarmup_years = 2\nyears = 1\n' + CONTRACT_BLIND)
    contracts = [str(WEST_KENT.parent / "contracts" / f"{c}.toml") for c in ("block", "west_kent_pbr")]
    out = tmp_path / "cmp"
    assert main(["compare", str(uncertain), "--contracts", *contracts, "-n", "3", "--wtp", "10000", "£20,000",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 parameter draws of its [uncertainty] shared by every design" in printed
    assert "Expected value of perfect information" in printed and "warning: only 3 replications" in printed
    assert "Partial EVPI: not estimated from 3 draws" in printed
    for table in ("cost_effectiveness", "net_benefit", "acceptability", "value_of_information", "evppi",
                  "parameters"):
        assert (out / f"{table}.csv").is_file(), table
    for plot in ("acceptability", "value_of_information", "cost_effectiveness_plane"):
        assert (out / f"{plot}.png").stat().st_size > 10_000, plot
    nb = pd.read_csv(out / "net_benefit.csv")
    assert sorted(nb["wtp"].unique()) == [10000.0, 20000.0] and set(nb["contract"]) == {"block", "west_kent_pbr"}
    assert len(pd.read_csv(out / "parameters.csv")) == 3
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert {"margin_ci_low", "margin_ci_high", "margin_ui_low", "margin_ui_high", "losses"} <= set(summary.columns)
    with pytest.raises(SystemExit):
        main(["compare", str(uncertain), "--contracts", *contracts, "--wtp", "-5"])
    assert "at least 0 pounds" in capsys.readouterr().err


def test_replicate_to_a_precision_writes_the_convergence_and_refuses_an_impossible_one(tmp_path, capsys):
    tiny = _tiny(tmp_path)
    out = tmp_path / "prec"
    assert main(["replicate", str(tiny), "-n", "3", "--precision", "0.2", "--precision-metrics", "in_treatment",
                 "--max-replications", "12", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--precision 0.2 after" in printed and "give every output a 95% CI within ±20.0%" in printed
    assert (out / "convergence.png").stat().st_size > 10_000
    assert set(pd.read_csv(out / "convergence.csv")["metric"]) == {"in_treatment"}
    with pytest.raises(SystemExit):
        main(["replicate", str(tiny), "--precision", "5"])
    assert "above 0 and below 1" in capsys.readouterr().err
    assert main(["replicate", str(tiny), "-n", "8", "--precision", "0.1", "--max-replications", "4",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--max-replications 4 is below -n 8" in capsys.readouterr().err
