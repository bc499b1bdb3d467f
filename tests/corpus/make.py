"""Writes the corpus of malformed input files (``malformed/``) and what each must be refused with
(``expected.toml``). Run it again after changing a case: ``python tests/corpus/make.py``.

Each case is a file of one kind (scenario, contract, sweep, targets) with one thing wrong, most extending a
shipped file so that only that thing differs. ``expect`` lists what the error must name: the key path (or the
byte offset) and the value as written; the file's own name is always required too. A case may name the file its
error must be reported in (``in``: a parent reached through ``extends``, a contract a scenario names).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "malformed"
WEST_KENT = 'extends = "../../../scenarios/west_kent.toml"\n'
CONTRACT = 'extends = "../../../scenarios/contracts/west_kent_pbr.toml"\n'
TARGETS = 'extends = "../../../scenarios/targets/west_kent.toml"\n'
SWEEP = ('name = "corpus_sweep"\nscenario = "../../../scenarios/west_kent.toml"\ndesign = "morris"\nsamples = 2\n'
         'replications = 1\n')
PARAM = '\n[[parameters]]\npath = "capacity.recovery_workers"\nlow = 24\nhigh = 40\n'
TARGET = ('name = "corpus_targets"\nscenario = "../../../scenarios/west_kent.toml"\n')
ONE_TARGET = '\n[[target]]\nmeasure = "in_treatment_per_year"\nvalue = 2500\nrelative_tolerance = 0.1\nsource = "[E] corpus"\n'

# name: (kind, contents (str or bytes), [fragments the error must contain], {extra})
CASES: dict[str, tuple] = {
    # --- scenarios: names that would be paths
    "scenario_name_parent": ("scenario", WEST_KENT + 'name = "../../x"\n', ["name", "'../../x'"]),
    "scenario_name_absolute": ("scenario", WEST_KENT + 'name = "/tmp/x"\n', ["name", "'/tmp/x'"]),
    "scenario_name_empty": ("scenario", WEST_KENT + 'name = ""\n', ["name", "''"]),
    "scenario_name_dotdot": ("scenario", WEST_KENT + 'name = ".."\n', ["name", "'..'"]),
    "scenario_name_separator": ("scenario", WEST_KENT + 'name = "a/b"\n', ["name", "'a/b'"]),
    "scenario_name_not_text": ("scenario", WEST_KENT + 'name = 12\n', ["name", "12"]),
    # --- scenarios: encodings and structure
    "scenario_cp1252_pound": ("scenario", WEST_KENT.encode() + b'# costs in \xa3 (2012 prices)\nname = "x"\n',
                              [f"byte {len(WEST_KENT) + len('# costs in ')}", "not UTF-8"]),
    "scenario_utf16": ("scenario", ('name = "x"\n').encode("utf-16"), ["byte 0", "UTF-16"]),
    "scenario_binary": ("scenario", bytes(range(256)) * 4, ["byte 128", "not UTF-8"]),
    "scenario_nul_bytes": ("scenario", b'name = "x"\x00\x00\n', ["not valid TOML"]),
    "scenario_empty": ("scenario", "", ["name", "required key is missing"]),
    "scenario_syntax": ("scenario", WEST_KENT + "[capacity\nassessors = 3\n", ["not valid TOML"]),
    "scenario_deep_arrays": ("scenario", "x = " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply"]),
    "scenario_deep_tables": ("scenario", "x = " + "{a = " * 60 + "1" + "}" * 60 + "\n",
                             ["nested too deeply", "x.a.a"]),
    "scenario_extends_missing": ("scenario", 'extends = "nowhere.toml"\nname = "x"\n',
                                 ["extends", "'nowhere.toml'", "no such file"]),
    "scenario_extends_not_text": ("scenario", 'extends = 3\nname = "x"\n', ["extends", "3"]),
    "scenario_extends_itself": ("scenario", 'extends = "scenario_extends_itself.toml"\nname = "x"\n',
                                ["extends", "circular extends"]),
    "scenario_extends_bad_parent": ("scenario", 'extends = "parent_cp1252.toml"\nname = "x"\n',
                                    ["not UTF-8", "reached from", "extends = 'parent_cp1252.toml'"],
                                    {"in": "parent_cp1252.toml"}),
    "scenario_names_bad_contract": ("scenario", WEST_KENT + 'contract = "contract_unknown_key.toml"\n',
                                    ["reached from", "contract = 'contract_unknown_key.toml'", "pbr_sahre"],
                                    {"in": "contract_unknown_key.toml"}),
    "scenario_names_missing_contract": ("scenario", WEST_KENT + 'contract = "nowhere.toml"\n',
                                        ["no such file", "contract = 'nowhere.toml'"], {"in": "nowhere.toml"}),
    "scenario_unknown_key": ("scenario", WEST_KENT + "[capacity]\nasessors = 3\n",
                             ["capacity.asessors", "unknown key", "did you mean 'assessors'"]),
    "scenario_unknown_section": ("scenario", WEST_KENT + "[capacities]\nassessors = 3\n",
                                 ["capacities", "unknown key"]),
    "scenario_missing_section": ("scenario", 'name = "x"\n[horizon]\ncontract_start = 2012-04-01\nyears = 4\n',
                                 ["population", "required key is missing"]),
    "scenario_wrong_type": ("scenario", WEST_KENT + '[capacity]\nassessors = "three"\n',
                            ["capacity.assessors", "'three'"]),
    "scenario_bad_date": ("scenario", WEST_KENT + '[horizon]\ncontract_start = "next april"\n',
                          ["horizon.contract_start", "'next april'"]),
    "scenario_years_nan": ("scenario", WEST_KENT + '[horizon]\nyears = nan\n', ["horizon.years", "nan"]),
    # --- scenarios: values out of bounds
    "scenario_negative_capacity": ("scenario", WEST_KENT + "[capacity]\nrehab_places = -4\n",
                                   ["capacity.rehab_places", "-4"]),
    "scenario_impossible_probability": ("scenario", WEST_KENT + "[assessment]\nattends_treatment = 1.5\n",
                                        ["assessment.attends_treatment", "1.5", "[0, 1]"]),
    "scenario_arrivals_1e12": ("scenario", WEST_KENT + "[population.arrivals_per_year]\nopiate = 1e12\n",
                               ["population.arrivals_per_year", "1000000000000.0"]),
    "scenario_arrivals_too_many": ("scenario", WEST_KENT + "[population.arrivals_per_year]\nopiate = 400_000\n",
                                   ["population.arrivals_per_year", "3,000,000"]),
    "scenario_trend_explodes": ("scenario", WEST_KENT + "[horizon]\nyears = 50\n[population]\n"
                                                        "trend_per_year = 0.9\n",
                                ["population.arrivals_per_year", "first referrals"]),
    "scenario_warmup_1e9": ("scenario", WEST_KENT + "[horizon]\nwarmup_years = 1e9\n",
                            ["horizon.warmup_years", "1000000000.0", "50"]),
    "scenario_years_1e9": ("scenario", WEST_KENT + "[horizon]\nyears = 1e9\n", ["horizon.years", "1000000000.0"]),
    "scenario_change_after_horizon": ("scenario", WEST_KENT + '[[schedule]]\ndate = 2030-01-01\n'
                                                              'scale = { "capacity.recovery_workers" = 0.5 }\n',
                                      ["schedule[0].date", "2030-01-01", "never apply"]),
    "scenario_change_unknown_path": ("scenario", WEST_KENT + '[[schedule]]\ndate = 2013-01-01\n'
                                                             'scale = { "capacity.workers" = 0.5 }\n',
                                     ["schedule[0].scale.capacity.workers", "0.5"]),
    "scenario_change_horizon": ("scenario", WEST_KENT + '[[schedule]]\ndate = 2013-01-01\n'
                                                        'set = { "horizon.years" = 3 }\n',
                                ["schedule[0].set.horizon.years", "cannot change"]),
    "scenario_rate_1e6": ("scenario", WEST_KENT + "[treatment]\ndrop_out_rate_per_year = 1e6\n",
                          ["treatment.drop_out_rate_per_year", "1000000.0", "at most 365"]),
    "scenario_negative_rate": ("scenario", WEST_KENT + "[treatment.drop_out_rate_per_year]\n"
                                                       "by_group.opiate = -0.2\n",
                               ["treatment.drop_out_rate_per_year.by_group.opiate", "-0.2"]),
    "scenario_cost_1e12": ("scenario", WEST_KENT + "[costs]\nrecovery_worker_per_year = 1e12\n",
                           ["costs.recovery_worker_per_year", "1000000000000.0"]),
    "scenario_review_every_nanoweek": ("scenario", WEST_KENT + "[reviews]\ninterval_weeks = 1e-9\n",
                                       ["reviews.interval_weeks", "1e-09"]),
    "scenario_shares_do_not_sum": ("scenario", WEST_KENT + "[assessment.dependency_domain]\n"
                                                           "p = { critical = 0.5, substantial = 0.9, moderate = 0, "
                                                           "low = 0, no_need = 0 }\n",
                                   ["assessment.dependency_domain", "sum to 1"]),
    "scenario_unknown_band": ("scenario", WEST_KENT + "[treatment.drop_out_rate_per_year]\n"
                                                      "by_band.severe = 0.2\n",
                              ["treatment.drop_out_rate_per_year.by_band.severe", "unknown key"]),
    "scenario_unknown_dist": ("scenario", WEST_KENT + '[treatment]\ncompletion_weeks = { dist = "normal", '
                                                      'mean = 3 }\n', ["treatment.completion_weeks", "'normal'"]),
    "scenario_dist_huge": ("scenario", WEST_KENT + '[treatment]\ncompletion_weeks = { dist = "exponential", '
                                                   'mean = 1e300 }\n', ["treatment.completion_weeks", "1e+300"]),
    "scenario_categorical_mismatch": ("scenario", WEST_KENT + '[population]\nage_years = { dist = "categorical", '
                                                              'values = [20, 30], weights = [1] }\n',
                                      ["population.age_years", "as many weights"]),
    "scenario_negative_seed": ("scenario", WEST_KENT + "seed = -1\n", ["seed", "-1"]),
    "scenario_uncertain_horizon": ("scenario", WEST_KENT + '[uncertainty]\n"horizon.years" = { dist = "fixed", '
                                                           'value = 3 }\n', ["uncertainty", "horizon.years"]),
    "scenario_behaviour_unknown_mode": ("scenario", WEST_KENT + '[behaviour]\nmode = "greedy"\n',
                                        ["behaviour.mode", "'greedy'"]),
    "scenario_behaviour_out_of_range": ("scenario", WEST_KENT + '[behaviour.parking]\nreview_interval_days = 1e9\n',
                                        ["behaviour.parking.review_interval_days", "1000000000.0"]),
    # --- contracts
    "contract_unknown_key": ("contract", CONTRACT + "pbr_sahre = { by_year = [0.1] }\n",
                             ["pbr_sahre", "unknown key"]),
    "contract_cp1252": ("contract", CONTRACT.encode() + b"# \xa34m a year\n", [f"byte {len(CONTRACT) + 2}",
                                                                             "not UTF-8"]),
    "contract_syntax": ("contract", CONTRACT + "annual_value = \n", ["not valid TOML"]),
    "contract_empty_share_list": ("contract", CONTRACT + "pbr_share = { by_year = [] }\n", ["pbr_share", "[]"]),
    "contract_share_150": ("contract", CONTRACT + "pbr_share = { by_year = [0.1, 0.2, 1.5] }\n",
                           ["pbr_share", "1.5"]),
    "contract_term_zero": ("contract", CONTRACT + "term_years = 0\n", ["term_years", "0"]),
    "contract_annual_value_1e308": ("contract", CONTRACT + "annual_value = 1e308\n", ["annual_value", "1e+308"]),
    "contract_negative_value": ("contract", CONTRACT + "annual_value = -4e6\n", ["annual_value", "-4000000.0"]),
    "contract_subcontractors_160": ("contract", CONTRACT + '[[subcontractors]]\nname = "second"\n'
                                                           'share_of_income = 0.6\nshare_of_cost = 0.6\n'
                                                           '[[subcontractors]]\nname = "third"\n'
                                                           'share_of_income = 0.6\nshare_of_cost = 0.6\n',
                                    ["subcontractors", "share_of_income"]),
    "contract_negative_band_weight": ("contract", CONTRACT + "band_weights = { critical = -1.8, substantial = 1.3, "
                                                             "moderate = 0.75, low = 0.45, no_need = 0.0 }\n",
                                      ["band_weights.critical", "-1.8"]),
    "contract_floor_above_cap": ("contract", CONTRACT + "income_floor = 0.9\nincome_cap = 0.8\n",
                                 ["income_cap = 0.8", "below income_floor = 0.9"]),
    "contract_pot_shares_170": ("contract", CONTRACT + "[outcomes.abstinence]\nshare_of_pot = 0.9\n"
                                                       "[outcomes.planned_exit]\nshare_of_pot = 0.85\n",
                                ["outcomes", "share_of_pot", "add up to"]),
    "contract_unknown_measure": ("contract", CONTRACT + '[outcomes.abstinence]\nmeasure = "happiness"\n',
                                 ["outcomes.abstinence.measure", "'happiness'"]),
    "contract_offending_pot_negative": ("contract", CONTRACT + "[offending]\npot = -200_000\n",
                                        ["offending.pot", "-200000"]),
    "contract_extends_missing": ("contract", 'extends = "nowhere.toml"\n', ["extends", "no such file"]),
    # --- sweeps
    "sweep_name_parent": ("sweep", SWEEP.replace('"corpus_sweep"', '"../x"') + PARAM, ["name", "'../x'"]),
    "sweep_name_absolute": ("sweep", SWEEP.replace('"corpus_sweep"', '"/tmp/x"') + PARAM, ["name", "'/tmp/x'"]),
    "sweep_cp1252": ("sweep", (SWEEP + PARAM).encode() + b"# \xa3\n", ["not UTF-8", "byte"]),
    "sweep_samples_1e9": ("sweep", SWEEP.replace("samples = 2", "samples = 1_000_000_000") + PARAM,
                          ["samples", "1000000000"]),
    "sweep_too_many_runs": ("sweep", SWEEP.replace("samples = 2", "samples = 20_000")
                            .replace("replications = 1", "replications = 10") + PARAM, ["100,000"]),
    "sweep_no_parameters": ("sweep", SWEEP + "parameters = []\n", ["parameters"]),
    "sweep_unknown_path": ("sweep", SWEEP + '\n[[parameters]]\npath = "capacity.workers"\nlow = 1\nhigh = 2\n',
                           ["capacity.workers"]),
    "sweep_replications_zero": ("sweep", SWEEP.replace("replications = 1", "replications = 0") + PARAM,
                                ["replications", "0"]),
    "sweep_unknown_design": ("sweep", SWEEP.replace('"morris"', '"random"') + PARAM, ["design", "'random'"]),
    "sweep_missing_scenario": ("sweep", SWEEP.replace("../../../scenarios/west_kent.toml", "nowhere.toml") + PARAM,
                               ["scenario", "nowhere.toml"]),
    "sweep_bad_scenario": ("sweep", SWEEP.replace("../../../scenarios/west_kent.toml", "scenario_unknown_key.toml")
                           + PARAM, ["capacity.asessors", "unknown key", "reached from",
                                     "scenario = 'scenario_unknown_key.toml'"], {"in": "scenario_unknown_key.toml"}),
    "sweep_empty_grid": ("sweep", SWEEP.replace('"morris"', '"grid"').replace("samples = 2\n", "")
                         + '\n[[parameters]]\npath = "capacity.recovery_workers"\nvalues = []\n',
                         ["parameters[0].values", "[]"]),
    "sweep_value_out_of_range": ("sweep", SWEEP + '\n[[parameters]]\npath = "capacity.rehab_places"\nlow = 1\n'
                                                  'high = 1e15\n', ["parameters[0].high", "1000000000000000.0"]),
    "sweep_unknown_key": ("sweep", SWEEP + PARAM + "seeds = 3\n", ["seeds", "unknown key"]),
    # --- targets
    "targets_unknown_measure": ("targets", TARGET + '\n[[target]]\nmeasure = "happiness"\nvalue = 1\n'
                                                    'tolerance = 0.1\nsource = "[E] corpus"\n',
                                ["target[0].measure", "'happiness'"]),
    "targets_negative_tolerance": ("targets", TARGET + ONE_TARGET.replace("relative_tolerance = 0.1",
                                                                          "tolerance = -5"),
                                   ["target[0].tolerance", "-5"]),
    "targets_value_1e12": ("targets", TARGET + ONE_TARGET.replace("value = 2500", "value = 1e12"),
                           ["target[0].value", "1000000000000.0"]),
    "targets_none": ("targets", TARGET + "target = []\n", ["target", "[]"]),
    "targets_no_source": ("targets", TARGET + ONE_TARGET.replace('source = "[E] corpus"\n', ""),
                          ["target[0].source", "required key is missing"]),
    "targets_cp1252": ("targets", (TARGET + ONE_TARGET).encode() + b"# \xa3\n", ["not UTF-8", "byte"]),
    "targets_unknown_key": ("targets", TARGET + ONE_TARGET + "weigth = 2\n", ["target[0].weigth", "unknown key"]),
    "targets_extends_missing": ("targets", 'extends = "nowhere.toml"\n', ["extends", "no such file"]),
}
# files the cases point at (not cases themselves)
HELPERS = {"parent_cp1252": WEST_KENT.encode() + b'# \xa3 prices\n'}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.toml"):
        old.unlink()
    lines = ["# What each malformed file must be refused with (written by make.py; see its docstring)", ""]
    for name, (kind, contents, expect, *extra) in CASES.items():
        data = contents if isinstance(contents, bytes) else contents.encode()
        (OUT / f"{name}.toml").write_bytes(data)
        lines += [f"[{name}]", f'kind = "{kind}"', "expect = [" + ", ".join(_toml_str(e) for e in expect) + "]"]
        if extra and "in" in extra[0]:
            lines.append(f'in = "{extra[0]["in"]}"')
        lines.append("")
    for name, data in HELPERS.items():
        (OUT / f"{name}.toml").write_bytes(data)
    (HERE / "expected.toml").write_text("\n".join(lines))
    print(f"{len(CASES)} malformed files written to {OUT}")


def _toml_str(text: str) -> str:
    return "'" + text + "'" if "'" not in text else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
