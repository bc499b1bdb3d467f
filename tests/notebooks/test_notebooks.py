"""The notebooks in notebooks/ run end to end, with small parameters, and write their figures.

Each notebook is executed in a fresh kernel by papermill, which injects values after the cell tagged
"parameters". Every notebook must declare ``out_dir`` there (where its PNG figures go); the notebooks this file
knows get the small values in ``SMALL`` for the parameters they declare, and any other notebook runs with its own
defaults, which must be CI-sized. Notebooks are stored without outputs.

Every notebook runs in the fast tier (about 30 s for 01-04 on two cores); notebook 02 for other sites and for a
scenario without a contract runs in the slow tier (``pytest -m slow``).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import papermill
import pytest

from sim import load_scenario

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Small values by notebook (the prefix of its name): a short warm-up and horizon, two replications.
SMALL = {
    "01": {"warmup_years": 2, "years": 2},
    "02": {"replications": 2, "warmup_years": 2, "years": 2},
    "03": {"replications": 2, "warmup_years": 2, "years": 2},
    "04": {"samples": 2, "replications": 1, "warmup_years": 2},
}
PILOT_EVALUATION = ROOT / "notebooks" / "02_west_kent_pbr_pilot_evaluation.ipynb"
OTHER_SITES = ("essex", "east_sussex_star", "herefordshire")  # sites for notebook 02, calibrated or not, if there


def parameters_cell(path: Path) -> nbformat.NotebookNode | None:
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    return cells[0] if len(cells) == 1 else None


def declared(path: Path) -> set[str]:
    """The names the parameters cell assigns at the start of a line."""
    return set(re.findall(r"^([A-Za-z_]\w*)\s*=", parameters_cell(path).source, flags=re.M))


def run(path: Path, out: Path, cwd: Path, **parameters) -> Path:
    """Execute a notebook into ``out`` and return the folder its figures went to."""
    figures = out / "figures"
    papermill.execute_notebook(str(path), str(out / path.name), parameters={"out_dir": str(figures), **parameters},
                               cwd=str(cwd), kernel_name="python3", progress_bar=False)
    return figures


def small(path: Path) -> dict:
    return {k: v for k, v in SMALL.get(path.name[:2], {}).items() if k in declared(path)}


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png") if p.stat().st_size > 0)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_clean_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: clear the outputs before committing (cells {dirty})"
    assert parameters_cell(path) is not None, f"{path.name}: tag exactly one cell 'parameters'"
    assert "out_dir" in declared(path), f"{path.name}: the parameters cell must set out_dir (where figures go)"


def test_the_notebooks_are_there():
    names = {p.name[:2] for p in NOTEBOOKS}
    assert {"01", "02", "03", "04"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_writes_figures(path, tmp_path):
    figures = run(path, tmp_path, ROOT / "notebooks", **small(path))
    assert pngs(figures), f"{path.name} wrote no figures to out_dir"


def other_sites() -> list[Path]:
    """Each other site's scenario: the calibrated one (scenarios/) before the uncalibrated (scenarios/sites/)."""
    found = []
    for name in OTHER_SITES:
        files = [ROOT / "scenarios" / f"{name}.toml", ROOT / "scenarios" / "sites" / f"{name}.toml"]
        found += [f for f in files if f.is_file()][:1]
    return found or [ROOT / "scenarios" / "west_kent_vacancies.toml"]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", other_sites(), ids=lambda p: p.stem)
def test_pilot_evaluation_runs_for_another_site(scenario, tmp_path):
    """Notebook 02 takes any site scenario (relative to the repository root), run from the repository root."""
    figures = run(PILOT_EVALUATION, tmp_path, ROOT, scenario=str(scenario.relative_to(ROOT)),
                  **small(PILOT_EVALUATION))
    assert {"income_by_component.png", "paired_differences_by_year.png"} <= set(pngs(figures))
    assert f"site: {load_scenario(scenario).name}:" in printed(tmp_path / PILOT_EVALUATION.name)


@pytest.mark.slow
def test_pilot_evaluation_falls_back_for_a_scenario_without_a_contract(tmp_path):
    """A scenario that names no contract is evaluated under the West Kent design, and says so."""
    text = (ROOT / "scenarios" / "west_kent.toml").read_text()
    bare = re.sub(r"^contract\s*=.*$", "", text, count=1, flags=re.M)
    assert bare != text
    scenario = tmp_path / "no_contract.toml"
    scenario.write_text(bare)
    assert load_scenario(scenario).contract is None
    figures = run(PILOT_EVALUATION, tmp_path, ROOT, scenario=str(scenario), **small(PILOT_EVALUATION))
    assert pngs(figures)
    assert "names no contract" in printed(tmp_path / PILOT_EVALUATION.name)


def printed(executed: Path) -> str:
    """What the cells of an executed notebook printed."""
    nb = nbformat.read(executed, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
