"""Regenerate the golden outputs after a deliberate change to the model: ``python tests/golden/regenerate.py``.

Review the diff of the CSV files before committing them: every change in them is a change in results.
"""

from pathlib import Path

from sim import load_scenario, measures, simulate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHANGES = {"horizon.warmup_years": 1, "horizon.years": 1}
SEED = 7


def golden_tables():
    scenario = load_scenario(ROOT / "scenarios" / "west_kent.toml").with_changes(CHANGES)
    history = simulate(scenario, seed=SEED)
    return {
        "measures_year_by_group.csv": measures.by_period(history, "year", "group"),
        "measures_quarter.csv": measures.by_period(history, "quarter"),
    }


if __name__ == "__main__":
    for name, table in golden_tables().items():
        table.to_csv(HERE / name, index=False)
        print(f"wrote {HERE / name}")
