"""The manifest every results folder carries: code, machine, inputs and their hashes, seeds, command, times."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sim.cli import main
from sim.config.scenario import load_scenario
from sim.core import provenance
from sim.core.folders import MANIFEST, OutputFolder
from tests.builders import CONTRACT_BLIND, WEST_KENT

ROOT = Path(__file__).resolve().parents[2]


def test_the_git_revision_is_the_checkout_s_or_says_it_is_not_one(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not running from a git checkout")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    revision = provenance.git_revision(ROOT)
    assert revision["commit"] == head.strip() and isinstance(revision["uncommitted_changes"], bool)
    assert provenance.git_revision(tmp_path) == provenance.NOT_A_CHECKOUT


def test_an_input_is_hashed_as_written_and_as_run(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "tiny"\n')
    scenario = load_scenario(path)
    written = provenance.input_record(scenario)
    assert written["file"] == str(path) and written["sha256"] == provenance.file_hash(path)
    assert "changed_by_the_command" not in written
    changed = provenance.input_record(scenario.with_changes({"horizon.years": 2}))
    assert changed["file"] == str(path) and changed["sha256"] == written["sha256"]
    assert changed["as_run_sha256"] != written["as_run_sha256"] and changed["changed_by_the_command"]
    assert provenance.input_record(load_scenario(path))["as_run_sha256"] == written["as_run_sha256"]  # stable
    path.write_text(path.read_text() + "seed = 5\n")
    assert provenance.input_record(load_scenario(path))["sha256"] != written["sha256"]


def test_a_folder_written_in_place_says_when_it_ended(tmp_path):
    with OutputFolder(tmp_path / "store", "replications", replace=False) as folder:
        folder.describe(seed=7, replications=3)
        opened = json.loads((tmp_path / "store" / MANIFEST).read_text())
    closed = json.loads((tmp_path / "store" / MANIFEST).read_text())
    assert opened["seed"] == closed["seed"] == 7 and closed["started"] == opened["started"]
    assert closed["written"] >= opened["written"]
    assert not list((tmp_path / "store").glob(".*.part")), "the manifest is written whole"


def test_a_run_s_manifest_names_everything_needed_to_run_it_again(tmp_path, capsys):
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(f'extends = "{WEST_KENT.as_posix()}"\nname = "tiny"\n[horizon]\nwarmup_years = 2\nyears = 1\n'
                    + CONTRACT_BLIND)
    out = tmp_path / "rep"
    assert main(["replicate", str(tiny), "-n", "2", "--seed", "11", "--out", str(out)]) == 0
    m = json.loads((out / MANIFEST).read_text())
    assert m["kind"] == "replications" and m["seed"] == 11 and m["replications"] == 2
    assert m["inputs"]["scenario"]["sha256"] == provenance.file_hash(tiny)
    assert m["inputs"]["contract"]["file"].endswith("west_kent_pbr.toml")
    assert m["started"] <= m["written"] and m["machine"]["cpus"] >= 1
    assert m["packages"]["simpy"] and m["packages"]["numpy"] and m["git"]
    capsys.readouterr()
    assert main(["summarise", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"root seed 11, replications 2" in printed and f"sha256 {provenance.file_hash(tiny)[:12]}" in printed
