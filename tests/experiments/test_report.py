"""pbrsim report: a self-contained tender report of a comparison, checked as text and in a real browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sim.cli import main
from sim.core.errors import UserError
from sim.report.sources import sourced_values, tag_counts
from sim.report.tender import write_report
from tests.builders import CONTRACT_BLIND

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
CHROMIUM = shutil.which("chromium")
SECTIONS = ("Summary", "The designs", "Outcomes and money, year by year", "The provider's risk",
            "What each design invites", "Cost-effectiveness and the value of information", "Figures",
            "Assumptions and the source of every default", "Reporting checklist (STRESS-DES)", "Run manifest")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A small probabilistic comparison with a willingness to pay, as a commissioner would run it."""
    d = tmp_path_factory.mktemp("report")
    scenario = d / "uncertain.toml"
    scenario.write_text(f'extends = "{(SCENARIOS / "west_kent_uncertain.toml").as_posix()}"\n'
                        'name = "tiny_uncertain"\n[horizon]\nwarmup_years = 2\nyears = 1\n' + CONTRACT_BLIND)
    out = d / "compare"
    assert main(["compare", str(scenario), "--contracts", str(SCENARIOS / "contracts" / "block.toml"),
                 str(SCENARIOS / "contracts" / "west_kent_pbr.toml"), "-n", "3", "--wtp", "15000",
                 "--out", str(out)]) == 0
    return out


def test_the_report_has_every_section_its_inputs_sources_and_no_external_reference(compared, capsys):
    capsys.readouterr()
    assert main(["report", str(compared), "--no-pdf"]) == 0
    assert "tender report written to" in capsys.readouterr().out
    page = (compared / "report.html").read_text()
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in page, heading
    assert "contract-blind" in page and "Only 3 simulations" in page  # said, not hidden
    assert "West Kent PbR" in page and "Block contract" in page  # each design's own description
    assert "west_kent.toml" in page and "[E]" in page  # the sources of the defaults, from the files run
    assert "1.1 Purpose" in page and "root seed" in page
    assert not re.search(r'(src|href)="(https?:)?//', page), "the report must not load anything"
    assert page.count('src="data:image/png;base64,') >= 5


def test_a_folder_that_is_not_a_comparison_is_refused_naming_it(tmp_path, compared):
    with pytest.raises(UserError, match="is not a pbrsim compare folder: it has no summary.csv"):
        write_report(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        write_report(tmp_path / "missing")


def test_every_shipped_number_has_a_source_tag_or_is_a_label():
    """The sources table the report prints: in the shipped scenarios and contracts every number carries [P], [D],
    [E] or [K] (or the word estimate); only labels (a distribution's family, a name) may go without."""
    for path in [*SCENARIOS.glob("*.toml"), *(SCENARIOS / "contracts").glob("*.toml")]:
        table = sourced_values(path)
        untagged = table[table["tags"] == ""]
        numbers = untagged[untagged["value"].str.match(r"^-?[\d_.]+$")]
        assert numbers.empty, f"{path.name}: {list(numbers['key'])}"
        assert sum(tag_counts(table)[t] for t in "PDEK") > 0


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed; .ci/run installs it")
def test_the_report_renders_offline_in_a_real_browser_with_its_images_and_prints_a_pdf(compared):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    html_path, pdf_path = write_report(compared)
    assert pdf_path is not None and pdf_path.read_bytes()[:5] == b"%PDF-" and pdf_path.stat().st_size > 50_000
    requests, errors = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.route("**/*", lambda route: (requests.append(route.request.url), route.continue_()))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(html_path.as_uri())
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
        browser.close()
    assert headings == list(SECTIONS)
    assert images and all(done and width > 300 for done, width in images)
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert errors == []
