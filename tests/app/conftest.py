"""Fixtures for the web app's tests: a fast West Kent variant offered as the only site, and a clean cache."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAST_NAME = "west_kent_fast"


def write_fast_site(folder: Path) -> Path:
    """West Kent with a two-year warm-up: every stage runs and a year before the contract exists for baselines."""
    path = folder / "west_kent_fast.toml"
    path.write_text(f'extends = "{(ROOT / "scenarios" / "west_kent.toml").as_posix()}"\n'
                    f'name = "{FAST_NAME}"\n'
                    'description = "West Kent, two-year warm-up (fast, for tests)"\n'
                    '[horizon]\nwarmup_years = 2   # estimate: short, for speed\n')
    return path


@pytest.fixture(scope="session")
def fast_sites(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sites")
    write_fast_site(folder)
    (folder / "west_kent_vacancies_fast.toml").write_text(  # a second site: one design across sites
        f'extends = "{(ROOT / "scenarios" / "west_kent_vacancies.toml").as_posix()}"\n'
        'name = "west_kent_vacancies_fast"\n'
        'description = "West Kent with vacancies, two-year warm-up (fast, for tests)"\n'
        '[horizon]\nwarmup_years = 2   # estimate: short, for speed\n')
    (folder / "broken.toml").write_text(  # not offered, with a note saying why
        f'extends = "{(ROOT / "scenarios" / "west_kent.toml").as_posix()}"\nname = "broken"\n'
        '[capacity]\nrecovery_workerz = 3\n')
    return folder


@pytest.fixture
def app_env(fast_sites, monkeypatch):
    """The app offers only the fast site."""
    monkeypatch.setenv("PBRSIM_SCENARIOS", str(fast_sites))
    return fast_sites


@pytest.fixture(autouse=True)
def _clear_streamlit_cache():
    """st.cache_data is shared by the whole process: clear it so tests do not see each other's runs."""
    try:
        import streamlit as st
    except ImportError:
        yield
        return
    st.cache_data.clear()
    yield
    st.cache_data.clear()
