"""pbrsim optimise: a known optimum found on a toy, the same search on every executor, resumable, checked specs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.experiments.compare import compare
from sim.experiments.executors import ProcessExecutor
from sim.experiments.optimise import OptimiseError, load_optimise, optimise, optimise_from_dict

ROOT = Path(__file__).resolve().parents[2]
BLOCK = ROOT / "scenarios" / "contracts" / "block.toml"
SEED = 3
VALUES = [2.80e6 + 2e4 * k for k in range(16)]  # £2.80m to £3.10m a year


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("optimise") / "tiny.toml"
    path.write_text(f'extends = "{(ROOT / "scenarios" / "west_kent.toml").as_posix()}"\nname = "tiny"\n'
                    "[horizon]\nwarmup_years = 2   # estimate: short, for speed\nyears = 1\n")
    return path


def toy(tiny: Path, **changes) -> dict:
    """The cheapest block contract the provider would not lose money on in more than 1 of 4 replications: with
    the provider contract-blind its cost does not depend on the price, so the best price is computable by hand."""
    return {"name": "toy", "scenario": str(tiny), "contract": str(BLOCK), "provider": "off",
            "objective": "recoveries_per_million", "trials": 24, "batch": 8, "replications": 4, "seed": SEED,
            "parameters": [{"path": "contract.annual_value", "values": VALUES}],
            "constraints": {"max_probability_of_loss": 0.25}, "re_evaluate": {"best": 3, "replications": 4},
            **changes}


@pytest.fixture(scope="module")
def searched(tiny, tmp_path_factory):
    store = tmp_path_factory.mktemp("search") / "runs"
    return optimise(optimise_from_dict(toy(tiny)), store), store


def test_the_search_finds_the_optimum_computed_by_hand(tiny, searched):
    result, _ = searched
    spec = optimise_from_dict(toy(tiny))
    scenario, contract = spec.base()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        costs = compare(scenario, [contract], 4, SEED).term["cost"].to_numpy()  # the same clients, any price
    # one year observed: a loss when the price is below the year's cost; at most 1 loss in 4 allowed
    feasible = [v for v in VALUES if (v < costs).sum() <= 1]
    assert result.trials.set_index("trial").loc[result.best_in_search(), "contract.annual_value"] == min(feasible)
    judged = result.trials.drop_duplicates("contract.annual_value").set_index("contract.annual_value")
    for v, row in judged.iterrows():  # every candidate judged as the hand rule says
        assert bool(row["feasible"]) == ((v < costs).sum() <= 1)
    # the finalists were judged again on fresh replications; the winner is one that stayed feasible
    assert len(result.finalists) == 3 and set(result.finalists["trial"]) <= set(result.trials["trial"])
    assert result.winner in set(result.finalists.loc[result.finalists["feasible"], "trial"])
    assert result.contract.annual_value == result.trials.set_index("trial").loc[result.winner,
                                                                                "contract.annual_value"]


def test_the_search_is_the_same_on_worker_processes_and_resumes_without_judging_again(tiny, searched, tmp_path):
    result, store = searched
    spec = optimise_from_dict(toy(tiny))
    with ProcessExecutor(2) as executor:
        elsewhere = optimise(spec, tmp_path / "runs", executor)
    pd.testing.assert_frame_equal(elsewhere.trials, result.trials)
    pd.testing.assert_frame_equal(elsewhere.finalists, result.finalists)
    judged = []
    again = optimise(spec, store, progress=judged.append)  # everything is in the store
    assert judged == [] and again.winner == result.winner
    pd.testing.assert_frame_equal(again.trials, result.trials)
    with pytest.raises(Exception, match="different experiment"):
        optimise(optimise_from_dict(toy(tiny, seed=4)), store)


def test_a_spec_that_cannot_run_is_refused_naming_the_key_and_value(tiny, tmp_path):
    with pytest.raises(OptimiseError, match="net_benefit objective needs a willingness to pay"):
        optimise_from_dict(toy(tiny, objective="net_benefit"))
    with pytest.raises(OptimiseError, match="optimise searches the contract"):
        optimise_from_dict(toy(tiny, parameters=[{"path": "capacity.recovery_workers", "low": 20, "high": 40}]))
    with pytest.raises(OptimiseError, match="no such key in contract block"):
        optimise_from_dict(toy(tiny, parameters=[{"path": "contract.pbr_share.by_year.9", "low": 0, "high": 1}]))
    with pytest.raises(OptimiseError, match=r"shares must be in \[0, 1\]"):
        optimise_from_dict(toy(tiny, parameters=[{"path": "contract.pbr_share.by_year.0", "low": 0, "high": 1.5}]))
    with pytest.raises(OptimiseError, match="trialz"):
        optimise_from_dict({**toy(tiny), "trialz": 3})
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "bad"\nscenario = "nowhere.toml"\ncontract = "nowhere.toml"\nobjective = '
                    '"sustained_recoveries"\n[[parameters]]\npath = "contract.annual_value"\nlow = 1\nhigh = 2\n')
    with pytest.raises(OptimiseError, match="bad.toml.*scenario"):
        load_optimise(spec)


def test_the_command_writes_the_winning_contract_and_the_shipped_spec_validates(tiny, tmp_path, capsys):
    spec = tmp_path / "toy.toml"
    lines = [f'name = "toy"\nscenario = "{tiny.as_posix()}"\ncontract = "{BLOCK.as_posix()}"\nprovider = "off"',
             'objective = "recoveries_per_million"\ntrials = 6\nbatch = 3\nreplications = 2\nseed = 3',
             "[constraints]\nmax_probability_of_loss = 0.5\n[re_evaluate]\nbest = 2\nreplications = 2",
             '[[parameters]]\npath = "contract.annual_value"\nlow = 2_800_000\nhigh = 3_200_000']
    spec.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["optimise", str(spec), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6 candidates judged on 2 replications each (provider off)" in printed
    assert (out / "trials.csv").is_file() and (out / "optimisation.png").stat().st_size > 10_000
    from sim.config.contract import load_contract

    best = load_contract(out / "best_contract.toml")  # a contract file, ready to compare or audit
    finalists = pd.read_csv(out / "finalists.csv")
    assert np.isclose(finalists["contract.annual_value"], best.annual_value).any()
    assert "Found by pbrsim optimise" in best.description
    assert main(["validate", str(ROOT / "scenarios" / "optimise" / "west_kent_share.toml")]) == 0
    assert "optimisation west_kent_share; 5 parameters" in capsys.readouterr().out
