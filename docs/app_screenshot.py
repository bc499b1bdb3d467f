"""Take docs/app.png (the README's picture of the web app) and a picture of every page (docs/app_<page>.png),
and time a run and a tariff change.

    python docs/app_screenshot.py [--replications 5] [--out docs/app.png]

Starts the app as ``pbrsim app`` does (127.0.0.1, telemetry off) on the shipped scenarios, drives it with
Playwright in Debian's chromium (``apt-get install chromium``; never ``playwright install``), runs West Kent under
its own contract (the page's default: the calibrated provider), saves the Results page, then changes one tariff and times the re-settle.
"""

from __future__ import annotations

import argparse
import shutil
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from sim.webapp import free_port, launch

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
        "--disable-default-apps", "--disable-extensions"]


def timed_run(page) -> str:
    """Press Run, wait for the script to finish, and return what the page says the run took."""
    page.get_by_role("button", name="Run").click()
    page.wait_for_timeout(500)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=900_000)
    return page.get_by_text("settlement").first.inner_text()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    args = parser.parse_args()
    port = free_port(8650)
    proc = launch(port, wait=False, scenarios=ROOT / "scenarios", log=open("/tmp/pbrsim_app.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("button", name="Run").wait_for(timeout=60_000)
            box = page.get_by_role("spinbutton", name="Replications", exact=True)
            box.fill(str(args.replications))
            box.press("Enter")
            print(f"first run ({args.replications} replications): {timed_run(page)}")
            page.get_by_role("tab", name="Results").click()
            page.locator("[data-testid=stPlotlyChart]:visible .js-plotly-plot").nth(3).wait_for(timeout=60_000)
            page.set_viewport_size({"width": 1400, "height": 1900})  # the page scrolls inside a div
            page.wait_for_timeout(2500)
            page.screenshot(path=args.out)
            print(f"saved {args.out}")
            for tab, name in (("Design a contract", "design"), ("Results", "results"), ("Compare", "compare"),
                              ("Download", "download"), ("About", "about")):
                # Compare is long (money, outcomes, the provider's responses, differences, cost-effectiveness)
                page.set_viewport_size({"width": 1400, "height": 4600 if tab == "Compare" else 1900})
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(4000 if tab == "Compare" else 1500)
                page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=900_000)
                shot = Path(args.out).with_name(f"app_{name}.png")
                page.screenshot(path=str(shot))
                print(f"saved {shot}")
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.get_by_role("tab", name="Design a contract").click()
            box = page.get_by_role("spinbutton", name="Tariff for planned_exit", exact=True)
            box.fill("20")
            box.press("Enter")
            print(f"after a tariff change: {timed_run(page)}")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(15)


if __name__ == "__main__":
    main()
