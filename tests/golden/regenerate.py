"""Regenerate the golden outputs after a deliberate change to the model: ``python tests/golden/regenerate.py``.

Review the diff of the CSV files before committing them: every change in them is a change in results.

The files: two measure tables of a small contract-blind run; a contract-blind run settled under the West Kent PbR contract
(payments summed by component, band, year and due day; provider and commissioner by contract year); and a small behaviour-on run (behaviour ``base``, its
cash response included) under the same contract, settled (``behaviour_*``). One seed; the money runs have
the 2-year warm-up the contract's baselines need and its 2-year term.
"""

from functools import cache
from pathlib import Path

from sim import load_scenario, measures, simulate
from sim.config.contract import load_contract
from sim.experiments.provider_runs import simulate_with_provider
from sim.money.settlement import commissioner_by_year, provider_by_year, settle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHANGES = {"horizon.warmup_years": 1, "horizon.years": 1}
# the contract's prices and baselines come from the year before it starts: a 2-year warm-up; its 2-year term
MONEY_CHANGES = {"horizon.warmup_years": 2, "horizon.years": 2}
BEHAVIOUR_CHANGES = {**MONEY_CHANGES, "behaviour.mode": "base"}
SEED = 7
CONTRACT = ROOT / "scenarios" / "contracts" / "west_kent_pbr.toml"

NAMES = {
    "measures": ["measures_year_by_group.csv", "measures_quarter.csv"],
    "settlement": ["settlement_payments.csv", "settlement_provider_by_year.csv",
                   "settlement_commissioner_by_year.csv"],
    "behaviour": ["behaviour_payments.csv", "behaviour_provider_by_year.csv",
                  "behaviour_commissioner_by_year.csv"],
}


def payments_summary(payments):
    """The payments, small: per component, kind, band, contract year and due day, the number of payments, the
    sum of their client ids (who was paid) and the amount."""
    keys = ["component", "kind", "band", "contract_year", "due"]
    return (payments.groupby(keys, sort=True, dropna=False)
            .agg(payments=("amount", "size"), client_id_sum=("client_id", "sum"), amount=("amount", "sum"))
            .reset_index())


def _money(prefix, settlement):
    return {
        f"{prefix}_payments.csv": payments_summary(settlement.payments),
        f"{prefix}_provider_by_year.csv": provider_by_year(settlement).reset_index(),
        f"{prefix}_commissioner_by_year.csv": commissioner_by_year(settlement).reset_index(),
    }


@cache
def _contract_blind(changes=tuple(CHANGES.items())):
    """A small contract-blind run (its scenario and History)."""
    scenario = load_scenario(ROOT / "scenarios" / "west_kent.toml").with_changes(dict(changes))
    return scenario, simulate(scenario, seed=SEED)


@cache
def golden_tables(part=None):
    """The fresh tables by file name: all of them, or one ``part`` of :data:`NAMES` (each part runs once)."""
    if part is None:
        return {name: table for p in NAMES for name, table in golden_tables(p).items()}
    if part == "measures":
        _, history = _contract_blind()
        return {
            "measures_year_by_group.csv": measures.by_period(history, "year", "group"),
            "measures_quarter.csv": measures.by_period(history, "quarter"),
        }
    contract = load_contract(CONTRACT)
    if part == "settlement":
        scenario, history = _contract_blind(tuple(MONEY_CHANGES.items()))
        return _money("settlement", settle(contract, history, scenario))
    if part == "behaviour":
        scenario = load_scenario(ROOT / "scenarios" / "west_kent.toml").with_changes(BEHAVIOUR_CHANGES)
        run = simulate_with_provider(scenario, contract, SEED)
        return _money("behaviour", run.settlement)
    raise KeyError(part)


if __name__ == "__main__":
    for name, table in golden_tables().items():
        table.to_csv(HERE / name, index=False)
        print(f"wrote {HERE / name}")
