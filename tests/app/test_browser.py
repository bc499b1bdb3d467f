"""The web app in a real browser: Playwright driving Debian's chromium (never a downloaded browser) against
``launch()``'s server on 127.0.0.1, with a network guard (no request may leave 127.0.0.1), no console errors
and no exception block on the page.

Skipped, with the reason, where chromium or playwright is not installed (``.ci/run`` installs both).
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.request

import pandas as pd
import pytest

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); "
                                                ".ci/run installs it"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e "
                                                              "'.[browser]')")
pytest.importorskip("streamlit")

from sim.webapp import free_port, launch  # noqa: E402
from sim.webapp.views import money  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
                 "--disable-default-apps", "--disable-extensions"]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")
RUN_TIMEOUT = 180_000  # ms: a real simulation on a shared machine


@pytest.fixture(scope="module")
def server(fast_sites, tmp_path_factory):
    """The app as ``pbrsim app`` starts it, offering the fast site; ended by its own process id."""
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    port = free_port(8600)
    with log_path.open("w") as log:
        proc = launch(port, wait=False, scenarios=fast_sites, log=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the app did not start: {log_path.read_text()[-2000:]}")
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except Exception:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Guarded:
    """A page whose requests may not leave 127.0.0.1, recording console errors and off-host sockets."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        self.off_host: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("websocket", lambda ws: None if ws.url.startswith(LOCAL) else self.off_host.append(ws.url))

    def _route(self, route):
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            self.off_host.append(route.request.url)
            route.abort()

    def check(self):
        assert self.page.get_by_test_id("stException").count() == 0
        assert self.off_host == [], self.off_host
        assert self.errors == [], self.errors


@pytest.fixture
def guarded(browser):
    g = Guarded(browser)
    yield g
    g.context.close()


def spin(page, name: str, value) -> None:
    """Type into a number input and commit it."""
    box = page.get_by_role("spinbutton", name=name, exact=True)
    box.fill(str(value))
    box.press("Enter")


def settle_page(page) -> None:
    """Wait until the script has finished running."""
    page.wait_for_timeout(500)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=RUN_TIMEOUT)


def open_design(page, url: str, template: str | None = None, replications: int = 2,
                behaviour: str | None = "off") -> None:
    """The design page over a two-year term; the provider contract-blind unless ``behaviour`` says otherwise
    (None: the page's default, the calibrated provider)."""
    page.goto(url)
    page.get_by_role("button", name="Run").wait_for(timeout=60_000)
    if template:
        page.get_by_role("combobox", name="Start from contract").click()
        # the options read "<design in words>: <its description>"
        page.get_by_role("option", name=re.compile("^" + re.escape(template.replace("_", " ")) + "(:|$)")).click()
        settle_page(page)
    spin(page, "Extension (years)", 0)  # a two-year term: a short simulation
    settle_page(page)
    spin(page, "Term (years)", 2)
    settle_page(page)
    spin(page, "Replications", replications)
    if behaviour is not None:
        page.get_by_role("radiogroup", name="Provider behaviour").get_by_text(behaviour, exact=True).click()


def outline(page, name: str) -> str:
    """The computed outline colour of the number input labelled ``name``."""
    return page.get_by_role("spinbutton", name=name, exact=True).evaluate("e => getComputedStyle(e).outlineColor")


def run(page) -> None:
    """Press Run and wait for the script to finish (the last run's message stays on the page meanwhile, so also
    until no warning says the results are an earlier design's: on a loaded machine the script may not have
    started within ``settle_page``'s half second)."""
    page.get_by_role("button", name="Run").click()
    settle_page(page)
    page.get_by_text("see Results, Compare and Download").wait_for(timeout=RUN_TIMEOUT)
    page.get_by_text("The design has changed since these results were run").wait_for(state="hidden",
                                                                                     timeout=RUN_TIMEOUT)


def headline(page, figure: str) -> str:
    row = page.get_by_role("row").filter(has_text=figure).first
    return row.get_by_role("cell").last.inner_text().strip()


def test_design_run_see_charts_and_the_comparison(server, guarded):
    """The page as it opens: the calibrated provider responding to each design, so Compare shows what each buys,
    the paired differences in outcomes, and what the provider's responses did."""
    page = guarded.page
    open_design(page, server, behaviour=None)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("Simulating").first.wait_for(timeout=60_000)  # the progress bar
    page.get_by_text("see Results, Compare and Download").wait_for(timeout=RUN_TIMEOUT)
    page.get_by_role("tab", name="Results").click()
    page.get_by_role("heading", name="Results — west_kent_pbr_page on west_kent_fast").wait_for()
    charts = page.locator("[data-testid=stPlotlyChart]:visible .js-plotly-plot")
    charts.nth(3).wait_for(timeout=60_000)
    assert charts.count() == 4  # outcomes, offending, income by component, cumulative cash
    assert headline(page, "Chance of a loss over the term").endswith("replications")  # a count, not "0%"
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("heading", name="Comparison — west_kent_fast, 2 replications").wait_for()
    table = page.locator("[data-testid=stTable]:visible").first
    assert table.get_by_role("row").filter(has_text="west_kent_pbr_page").count() == 1
    assert table.get_by_role("row").filter(has_text="block").count() == 1
    page.get_by_text("Paired differences").first.wait_for()
    outcomes = page.locator("[data-testid=stTable]:visible").nth(1)
    for column in ("treatment starts", "people in treatment (a year)", "mean wait (days)", "deaths"):
        assert outcomes.get_by_role("columnheader", name=column).count() == 1, column
    page.get_by_text("What the provider's responses did").wait_for()
    gaming = page.locator("[data-testid=stTable]:visible").filter(has_text="episodes parked (M2)")
    assert gaming.get_by_role("row").filter(has_text="share of starts: Critical").count() == 1
    page.get_by_text("Paired differences in what each design buys").wait_for()
    guarded.check()


def test_a_refused_design_names_and_outlines_its_fields_and_a_change_marks_results_stale(server, guarded):
    page = guarded.page
    open_design(page, server, replications=1)
    run(page)
    spin(page, "Term (years)", 3)  # outside the form: the page reruns and says the results are the last design's
    settle_page(page)
    page.get_by_text("The design has changed since these results were run").first.wait_for()  # and on each tab
    spin(page, "Year 2 PbR share (%)", 150)
    page.get_by_role("button", name="Run").click()
    settle_page(page)
    page.get_by_text("Year 2 PbR share (%) = 150%: must be between 0% and 100%").wait_for()
    assert outline(page, "Year 2 PbR share (%)") == "rgb(176, 0, 32)"  # the field named is outlined
    assert outline(page, "Year 1 PbR share (%)") != "rgb(176, 0, 32)"
    assert page.get_by_text("The design has changed since these results were run").count() == 0  # none shown
    spin(page, "Year 2 PbR share (%)", 30)
    spin(page, "Term (years)", 0)
    settle_page(page)
    page.get_by_role("button", name="Run").click()
    settle_page(page)
    page.get_by_text("Term (years) = 0: must be between 1 and 25").wait_for()
    assert outline(page, "Term (years)") == "rgb(176, 0, 32)"
    guarded.check()


@pytest.mark.slow  # about 15 s: the fast tier keeps one browser test
def test_changing_one_tariff_moves_the_totals(server, guarded):
    page = guarded.page
    open_design(page, server, template="cohort_escalator")  # a priced presentation tariff, no payout cap
    run(page)
    page.get_by_role("tab", name="Results").click()
    page.get_by_role("heading", name="Results — cohort_escalator_page on west_kent_fast").wait_for()
    before = headline(page, "Provider income")
    page.get_by_role("tab", name="Design a contract").click()
    spin(page, "Tariff for presentation", 2000)
    run(page)
    page.get_by_role("tab", name="Results").click()
    page.wait_for_function("(before) => [...document.querySelectorAll('tr')].some(r => "
                           "r.innerText.includes('Provider income') && !r.innerText.includes(before))",
                           arg=before, timeout=RUN_TIMEOUT)
    after = headline(page, "Provider income")
    assert after != before
    guarded.check()


@pytest.mark.slow  # about 20 s; the fast tier round-trips the same files headless (test_app.py)
def test_downloaded_files_run_with_pbrsim_to_the_page_figures(server, guarded, tmp_path):
    page = guarded.page
    open_design(page, server, replications=1)
    run(page)
    page.get_by_role("tab", name="Download").click()
    for label in ("Scenario (TOML)", "Contract (TOML)"):
        with page.expect_download() as info:
            page.get_by_role("button", name=label).click()
        info.value.save_as(tmp_path / info.value.suggested_filename)
    page.get_by_role("tab", name="Compare").click()
    table = page.locator("[data-testid=stTable]:visible").first
    row = table.get_by_role("row").filter(has_text="west_kent_pbr_page")
    row.wait_for()
    cells = [c.inner_text().strip() for c in row.get_by_role("cell").all()]
    header = [c.inner_text().strip() for c in table.get_by_role("row").first.get_by_role("columnheader").all()]
    shown = dict(zip(header[-len(cells):], cells))
    guarded.check()

    from sim.cli import main

    # the page's replication 0 is replication 0 of pbrsim compare on the downloaded files (the scenario's seed)
    scenario = next(tmp_path.glob("*_app.toml"))
    contract = next(f for f in tmp_path.glob("*.toml") if f != scenario)
    assert main(["compare", str(scenario), "--contracts", str(contract), "--replications", "1",
                 "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    by_year = pd.read_csv(tmp_path / "out" / "by_year.csv")
    observed = by_year[(by_year["replication"] == 0) & by_year["observed"].astype(bool)]
    assert shown["income"] == money(observed["income"].sum())
    assert shown["margin"] == money(observed["margin"].sum())
    assert shown["spend (payments and assessments)"] == money(observed["spend"].sum())


def test_the_pages_have_no_serious_or_critical_accessibility_violations(server, guarded):
    """axe-core (axe-playwright-python's copy) on the design page and the About page."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright", reason="pip install -e '.[browser]'")
    page = guarded.page
    page.goto(server)
    page.get_by_role("button", name="Run").wait_for(timeout=60_000)
    settle_page(page)
    found = {}
    for tab in ("Design a contract", "About"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(800)
        results = axe.Axe().run(page)
        found[tab] = [(v["id"], v["impact"], len(v["nodes"])) for v in results.response["violations"]
                      if v["impact"] in ("serious", "critical")]
    assert found == {"Design a contract": [], "About": []}, found
    guarded.check()


@pytest.mark.slow
def test_two_sessions_running_different_designs_at_once_get_their_own_results(server, browser):
    """Two commissioners at once: each session's design, run concurrently, shows its own results."""
    first, second = Guarded(browser), Guarded(browser)
    try:
        open_design(first.page, server, replications=1)
        open_design(second.page, server, template="national_pbr", replications=1)
        for g in (first, second):  # both press Run before either finishes
            g.page.get_by_role("button", name="Run").click()
        for g in (first, second):
            settle_page(g.page)
            g.page.get_by_text("see Results, Compare and Download").wait_for(timeout=RUN_TIMEOUT)
        first.page.get_by_role("tab", name="Results").click()
        second.page.get_by_role("tab", name="Results").click()
        first.page.get_by_role("heading", name="Results — west_kent_pbr_page on west_kent_fast").wait_for()
        second.page.get_by_role("heading", name="Results — national_pbr_page on west_kent_fast").wait_for()
        assert first.page.get_by_role("heading", name="Results — national_pbr_page on west_kent_fast").count() == 0
        first.check()
        second.check()
    finally:
        first.context.close()
        second.context.close()


def outcome_cell(page, design: str, column: str) -> str:
    """One cell of Compare's 'what each design buys' table (the second table on the tab)."""
    table = page.locator("[data-testid=stTable]:visible").nth(1)
    header = [c.inner_text().strip() for c in table.get_by_role("row").first.get_by_role("columnheader").all()]
    row = table.get_by_role("row").filter(has_text=design).first
    cells = [c.inner_text().strip() for c in row.get_by_role("cell").all()]
    return dict(zip(header[-len(cells):], cells))[column]


def leading_number(text: str) -> float:
    return float(re.match(r"[\d,.]+", text).group(0).replace(",", ""))


@pytest.mark.slow  # two runs, about 30 s
def test_a_what_if_on_referrals_moves_waits_and_numbers_in_treatment(server, guarded):
    page = guarded.page
    open_design(page, server, replications=1)
    run(page)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("heading", name=re.compile("^Comparison")).wait_for()
    before = {c: leading_number(outcome_cell(page, "west_kent_pbr_page", c))
              for c in ("people in treatment (a year)", "mean wait (days)")}
    page.get_by_role("tab", name="Design a contract").click()
    page.get_by_text("System what-ifs").click()
    spin(page, "Referral change (%)", 60)
    settle_page(page)  # the page shows the design changed before Run is pressed
    run(page)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("heading", name=re.compile("^Comparison")).wait_for()
    after = {c: leading_number(outcome_cell(page, "west_kent_pbr_page", c)) for c in before}
    assert after["people in treatment (a year)"] > before["people in treatment (a year)"]
    assert after["mean wait (days)"] > before["mean wait (days)"]
    guarded.check()


@pytest.mark.slow  # one run, about 20 s
def test_a_downloaded_design_uploads_back_as_the_same_design(server, guarded, tmp_path):
    page = guarded.page
    open_design(page, server, replications=1)
    spin(page, "Year 1 PbR share (%)", 15)
    spin(page, "Year 2 PbR share (%)", 35)
    run(page)
    page.get_by_role("tab", name="Download").click()
    with page.expect_download() as info:
        page.get_by_role("button", name="Contract (TOML)").click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    guarded.check()

    fresh = guarded.context.new_page()  # a new session: nothing of the first design but the file
    fresh.goto(server)
    fresh.get_by_role("button", name="Run").wait_for(timeout=60_000)
    fresh.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(saved))
    settle_page(fresh)
    sync_api.expect(fresh.get_by_role("combobox", name="Start from contract")).to_have_value(
        re.compile("^west kent pbr page"))  # offered first and chosen as the template
    for name, value in (("Year 1 PbR share (%)", "15.00"), ("Year 2 PbR share (%)", "35.00")):
        sync_api.expect(fresh.get_by_role("spinbutton", name=name, exact=True)).to_have_value(value)
    fresh.close()
