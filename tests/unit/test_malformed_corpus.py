"""Every malformed file of the corpus (``tests/corpus``) is refused before anything runs, by the command that
would run it and by ``pbrsim validate`` alike: exit code 2, one message naming the file, the key path (or byte
offset) and the value, and no traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import sim.engine.system
from sim.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MALFORMED = CORPUS / "malformed"
EXPECTED = tomllib.loads((CORPUS / "expected.toml").read_text())
WEST_KENT = Path(__file__).resolve().parents[2] / "scenarios" / "west_kent.toml"


def test_the_corpus_is_large_and_covers_every_kind():
    kinds = [case["kind"] for case in EXPECTED.values()]
    assert len(kinds) >= 60
    assert {k: kinds.count(k) >= 8 for k in ("scenario", "contract", "sweep", "targets")} == dict.fromkeys(
        ("scenario", "contract", "sweep", "targets"), True)
    assert {p.stem for p in MALFORMED.glob("*.toml")} >= set(EXPECTED)


@pytest.fixture
def nothing_runs(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a simulation started although the input is malformed")

    monkeypatch.setattr(sim.engine.system.TreatmentSystem, "__init__", refuse)  # every run starts here


def _command(kind: str, path: Path, tmp_path: Path) -> list[str]:
    out = str(tmp_path / "out")
    return {"scenario": ["run", str(path), "--out", out],
            "contract": ["run", str(WEST_KENT), "--contract", str(path), "--out", out],
            "sweep": ["sweep", str(path), "--out", out],
            "targets": ["calibrate", str(WEST_KENT), str(path), "--table", str(tmp_path / "fit.csv")]}[kind]


def _refused(argv: list[str], capsys) -> str:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}: {err}"
    assert "Traceback" not in err and "internal error" not in err, err
    return err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_refused_before_running_naming_file_key_and_value(name, tmp_path, capsys, nothing_runs, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is written where the tests run
    case = EXPECTED[name]
    path = MALFORMED / f"{name}.toml"
    for argv in (_command(case["kind"], path, tmp_path), ["validate", str(path)]):
        err = _refused(argv, capsys)
        assert path.name in err, err
        if "in" in case:
            assert case["in"] in err, err
        for fragment in case["expect"]:
            assert fragment in err, f"{fragment!r} not in: {err}"
        assert len(err.splitlines()) <= 30, err
    assert not (tmp_path / "out").exists()


def test_a_flood_of_unknown_keys_is_summarised(tmp_path, capsys, nothing_runs):
    path = tmp_path / "flood.toml"
    path.write_text(f'extends = "{WEST_KENT.as_posix()}"\n' + "".join(f"k{i} = {i}\n" for i in range(200_000)))
    for argv in (["run", str(path), "--out", str(tmp_path / "out")], ["validate", str(path)]):
        err = _refused(argv, capsys)
        assert "unknown key" in err and "k0 = 0" in err
        assert "199,980 more problems (199,980 of them unknown keys)" in err
        assert len(err) < 5_000


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + f'extends = "{WEST_KENT.as_posix()}"\nname = "bom"\n'.encode())
    assert main(["validate", str(path)]) == 0
