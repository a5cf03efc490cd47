"""The Dagster UI in a real browser (Debian's headless Chromium, driven by Playwright): the asset
graph, an event asset's partitions and checks, a snapshot's columns with the contract's descriptions.
A page that shows an error fails the test."""

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .dev_server import LAUNCH, STATUS, Dev, gql

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium stalls on a closed network; Playwright's own browser
# download does not work here, so it drives Debian's build (.ci/run installs it).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ERRORS = ["Something went wrong", "Unexpected error", "PythonError", "could not be loaded", "Page not found"]
DAY = "2026-03-10"


def _launch(url: str, job: str, partition: str | None = None) -> str:
    params = {
        "selector": {"repositoryLocationName": "aptrinsic_dagster", "repositoryName": "__repository__", "jobName": job},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}] if partition else []},
    }
    launched = gql(url, LAUNCH, p=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _wait(url: str, run_ids: list[str]) -> dict[str, str]:
    deadline, statuses = time.monotonic() + 300, {}
    while time.monotonic() < deadline:
        statuses = {r: gql(url, STATUS, id=r)["runOrError"]["status"] for r in run_ids}
        if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()):
            break
        time.sleep(2)
    return statuses


def _open(page: Page, url: str, shot: Path) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_load_state("networkidle")
    skip = page.get_by_role("button", name="Skip")  # "Join the Dagster community", first visit only
    if skip.count():
        skip.first.click()
    page.screenshot(path=str(shot))
    body = page.locator("body").inner_text()
    assert not [e for e in ERRORS if e in body], (url, body[:2000])


@pytest.mark.slow
def test_the_ui_shows_the_graph_partitions_checks_and_columns(dagster_dev: Dev, tmp_path: Path):
    assert CHROMIUM.exists(), "apt-get install -y chromium (.ci/run does)"
    url = dagster_dev.url
    runs = [_launch(url, "aptrinsic_snapshots"), _launch(url, "aptrinsic_daily_events", DAY)]
    assert set(_wait(url, runs).values()) == {"SUCCESS"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # two shared cores: the UI can take a while to fill in

        _open(page, f"{url}/asset-groups", tmp_path / "graph.png")
        expect(page.get_by_text("aptrinsic_events").first).to_be_visible()
        expect(page.get_by_text("aptrinsic_snapshots").first).to_be_visible()
        _open(page, f"{url}/assets/aptrinsic/user_preferences?view=lineage", tmp_path / "lineage.png")
        expect(page.get_by_text("users", exact=True).first).to_be_visible()

        _open(page, f"{url}/assets/aptrinsic/events_session?view=partitions", tmp_path / "partitions.png")
        expect(page.get_by_text("Materialized (1)")).to_be_visible()
        page.get_by_placeholder("Filter by name").fill(DAY)
        page.get_by_text(DAY, exact=True).first.click()
        expect(page.get_by_text("dagster/partition_row_count")).to_be_visible()
        page.screenshot(path=str(tmp_path / "partition.png"))

        _open(page, f"{url}/assets/aptrinsic/events_session?view=checks", tmp_path / "checks.png")
        for check in ("rows_match_api", "no_duplicate_keys", "not_empty", "freshness_check"):
            expect(page.get_by_text(check, exact=True).first).to_be_visible()
        expect(page.get_by_text("Succeeded").first).to_be_visible()

        _open(page, f"{url}/assets/aptrinsic/users", tmp_path / "users.png")
        expect(page.get_by_text("Row count")).to_be_visible()
        expect(page.get_by_text("Freshness policy").first).to_be_visible()
        expect(page.get_by_text("One of LEAD, USER, VISITOR, EMPTY_USER_TYPE.").first).to_be_visible()
        browser.close()
