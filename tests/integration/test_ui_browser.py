"""The web UI in headless Chromium (one browser for the module): list → filter → open a run → its steps in the
timeline → resume its hook with a JSON payload → it finishes; cancel a run; a dead letter and the link to its run;
a schedule paused and resumed; the run page of ``examples.basic`` (its screenshot: ``KFLOW_UI_SCREENSHOT=path``).

Every wait is a ``WebDriverWait`` on a condition (the pages refresh themselves while the runs move on)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from engine import ScheduleSpec
from streams import Settings
from ui_support import LoopThread, UiApp, chrome, ui_services

pytestmark = pytest.mark.integration

T = TypeVar("T")
WAIT_S = 45


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def ui(settings: Settings, loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiApp]:
    services = ui_services(settings, "uibr", tmp_path_factory.mktemp("uibr"))
    app = loop.run(services.__aenter__())
    yield app
    loop.run(services.__aexit__(None, None, None))


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chrome()
    yield driver
    driver.quit()


def until(browser: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """Wait for ``condition``; an element replaced by a live refresh meanwhile means "not yet"."""
    wait = WebDriverWait(browser, WAIT_S, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition, f"waiting for {what}")


def click(browser: WebDriver, selector: str, what: str, text: str | None = None) -> None:
    """Click the first element of ``selector`` (with ``text``, if given) once it is there."""

    def clicked(b: WebDriver) -> bool:
        found = [e for e in css(b, selector) if text is None or e.text == text]
        if found:
            found[0].click()
        return bool(found)

    until(browser, clicked, what)


def type_into(browser: WebDriver, selector: str, text: str, what: str) -> WebElement:
    """Type ``text`` into the first element of ``selector`` once it is there; the element."""

    def typed(b: WebDriver) -> WebElement | None:
        found = css(b, selector)
        if found:
            found[0].send_keys(text)
        return found[0] if found else None

    return until(browser, typed, what)


def css(browser: WebDriver, selector: str) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, selector)


def run_rows(browser: WebDriver) -> list[str]:
    return [link.text for link in css(browser, "#runs table.runs a.run-link")]


def status_of_run(browser: WebDriver) -> str | None:
    found = css(browser, "#run-status")
    return found[0].get_attribute("data-status") if found else None


def lanes(browser: WebDriver) -> list[tuple[str, str]]:
    found = css(browser, ".timeline .lane[data-kind]")
    return [(lane.get_attribute("data-kind") or "", lane.get_attribute("data-title") or "") for lane in found]


def test_list_filter_open_resume_and_see_it_finish(ui: UiApp, loop: LoopThread, browser: WebDriver) -> None:
    waiting = loop.run(ui.client.start("approval", "o-ui"))
    failed = loop.run(ui.client.start("broken", "b-ui"))
    browser.get(ui.url + "/")
    until(browser, lambda b: {waiting, failed} <= set(run_rows(b)), "both runs listed (live refresh)")

    Select(browser.find_element(By.ID, "filter-status")).select_by_value("running")
    browser.find_element(By.ID, "filter-workflow").send_keys("approval")
    browser.find_element(By.ID, "apply-filters").click()
    until(browser, lambda b: "status=running" in b.current_url and waiting in run_rows(b), "the filtered listing")
    assert failed not in run_rows(browser)

    click(browser, "#runs a.run-link", "the run's link", text=waiting)
    until(browser, lambda b: ("hook", "approval") in lanes(b), "the hook's lane in the timeline")
    assert ("step", "prepare") in lanes(browser) and status_of_run(browser) == "running"
    token = f"{waiting}:approval"
    assert token in browser.find_element(By.CSS_SELECTOR, "table.hooks").text

    # Typing marks the form as being edited: the live refresh leaves the run's region alone until it is sent.
    payload = type_into(browser, "form.resume textarea", '{"ok": true, "by": ', "the payload's field")  # not JSON
    browser.find_element(By.CSS_SELECTOR, "button.resume-hook").click()
    result = browser.find_element(By.CSS_SELECTOR, "form.resume [data-result]")
    until(browser, lambda b: result.text.startswith("not JSON"), "the page refusing a payload that is not JSON")
    payload.clear()
    payload.send_keys('{"ok": "perhaps", "by": "ana"}')  # JSON, but not an Approval: the orchestrator refuses it
    browser.find_element(By.CSS_SELECTOR, "button.resume-hook").click()
    until(browser, lambda b: "not delivered" in result.text, "the schema's refusal")
    payload.clear()
    payload.send_keys('{"ok": true, "by": "ana"}')
    browser.find_element(By.CSS_SELECTOR, "button.resume-hook").click()

    until(browser, lambda b: status_of_run(b) == "completed", "the run completed (live refresh)")
    assert lanes(browser) == [("step", "prepare"), ("hook", "approval"), ("step", "ship")]
    assert "approved by ana" in browser.find_element(By.CSS_SELECTOR, "pre.result").text


def test_cancel_a_run(ui: UiApp, loop: LoopThread, browser: WebDriver) -> None:
    run_id = loop.run(ui.client.start("stuck", "s-ui"))
    browser.get(f"{ui.url}/runs/{run_id}")
    until(browser, lambda b: ("sleep", "sleep") in lanes(b), "the run asleep")
    type_into(browser, "#cancel-reason", "changed my mind", "the cancel form")
    browser.find_element(By.ID, "cancel-run").click()
    until(browser, lambda b: status_of_run(b) == "cancelled", "the run cancelled")
    facts = browser.find_element(By.CSS_SELECTOR, "table.facts").text
    assert "changed my mind" in facts
    assert [s.get_attribute("data-state") for s in css(browser, ".lane-sleep .seg")] == ["closed"]


def test_open_a_dead_letter_and_follow_it_to_its_run(ui: UiApp, loop: LoopThread, browser: WebDriver) -> None:
    run_id = loop.run(ui.raw.start("no_such_workflow", 1))
    browser.get(f"{ui.url}/dlq?filter=run={run_id}")

    def letter(b: WebDriver) -> WebElement | None:
        links = css(b, "a.dlq-link")
        if not links:
            b.refresh()  # the dead letters page has no live refresh: reload until it is there
        return links[0] if links else None

    until(browser, letter, "the dead-lettered start listed").click()
    until(browser, lambda b: b.find_elements(By.ID, "dlq-reason"), "the dead letter's page")
    assert "no_such_workflow" in browser.find_element(By.ID, "dlq-reason").text
    assert '"workflow_name": "no_such_workflow"' in browser.find_element(By.CSS_SELECTOR, "pre.record").text
    browser.find_element(By.CSS_SELECTOR, "a.dlq-run").click()
    until(browser, lambda b: b.find_elements(By.ID, "no-history"), "the run's page")
    assert run_id in browser.find_element(By.ID, "run-id").text
    assert css(browser, "#run a.dlq-link"), "the run's page lists its dead letter"


def test_pause_and_resume_a_schedule(ui: UiApp, loop: LoopThread, browser: WebDriver) -> None:
    schedule_id = f"ui-{uuid.uuid4().hex[:6]}"
    loop.run(ui.client.schedules.create(schedule_id, "quick", ScheduleSpec(interval="1h"), "sched"))
    browser.get(ui.url + "/schedules")

    def status(b: WebDriver) -> str | None:
        found = css(b, f'.schedule-status[data-schedule="{schedule_id}"]')
        return found[0].text if found else None

    until(browser, lambda b: status(b) == "active", "the schedule listed, active")
    click(browser, f'button.schedule-pause[data-schedule="{schedule_id}"]', "the pause button")
    until(browser, lambda b: status(b) == "paused", "the schedule paused")
    click(browser, f'button.schedule-resume[data-schedule="{schedule_id}"]', "the resume button")
    until(browser, lambda b: status(b) == "active", "the schedule resumed")


def test_the_run_page_of_the_basic_example(ui: UiApp, loop: LoopThread, browser: WebDriver, tmp_path: Path) -> None:
    run_id = loop.run(ui.client.start("order", "o-1", 9.5))
    loop.run(ui.client.result(run_id, timeout=60))
    browser.get(f"{ui.url}/runs/{run_id}")
    until(browser, lambda b: status_of_run(b) == "completed", "the order run's page")
    assert lanes(browser) == [("step", "reserve"), ("sleep", "sleep"), ("step", "charge"), ("step", "notify")]
    reserve = [s.get_attribute("data-state") for s in css(browser, '.lane[data-title="reserve"] .seg')]
    assert reserve == ["failed", "retry", "ok"]
    shot = tmp_path / "ui-run.png"
    assert browser.save_screenshot(str(shot))
    if target := os.environ.get("KFLOW_UI_SCREENSHOT"):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_the_dashboard_shows_the_workflows_and_the_lag(ui: UiApp, browser: WebDriver) -> None:
    browser.get(ui.url + "/dashboard")

    def shown(b: WebDriver) -> bool:
        workflows = {e.text for e in css(b, "#dashboard b.workflow")}
        return {"approval", "order"} <= workflows and len(css(b, "#dashboard code.group")) == 4

    until(browser, shown, "the dashboard's figures (live refresh)")
    assert "prepare" in {e.text for e in css(browser, "#dashboard b.step")}
