"""Issue 6: the approval page driven by a real headless Chromium (selenium + system chromedriver).

Skipped, naming what is missing, where selenium, chromium or chromedriver is not installed
(`.ci/run` installs Debian's `chromium` and `chromium-driver` when it runs as root).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Server

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def _first(paths: tuple[str, ...], name: str) -> str | None:
    found = [p for p in paths if shutil.which(p)]
    return found[0] if found else shutil.which(name)


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium, or a skip that says what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    binary = _first(CHROMIUM, "chromium")
    driver_path = _first(DRIVER, "chromedriver")
    if binary is None or driver_path is None:
        missing = " and ".join(n for n, p in (("chromium", binary), ("chromedriver", driver_path))
                               if p is None)
        pytest.skip(f"{missing} not found: apt-get install chromium chromium-driver")
    profile = tempfile.mkdtemp(prefix="wfrun-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _message(browser: Any) -> str:
    """The result page's message, waiting for the page the last click loads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    found = WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "message")))
    text: str = found.text
    return text


def test_a_person_approves_in_a_browser_and_the_run_completes(
    server: Server, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    doc = server.start("approval")
    browser.get(doc["suspended"][0]["resume_url"])
    assert browser.title.startswith("Approval requested: approve")
    assert doc["run_id"] in browser.find_element(By.TAG_NAME, "main").text
    assert server.load(doc["run_id"]).status == "suspended"  # opening the page resumed nothing
    assert not browser.find_elements(By.ID, "f-approved")  # the Approve button says it
    browser.find_element(By.ID, "f-reviewer").send_keys("Ann <manager>")
    Select(browser.find_element(By.ID, "f-level")).select_by_visible_text("high")
    browser.find_element(By.ID, "f-amount").send_keys("42")
    browser.find_element(By.ID, "action-approved").click()
    assert "resumed with action approved" in _message(browser)
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed"
    submitted = {"approved": True, "reviewer": "Ann <manager>", "level": "high", "amount": 42}
    assert run.steps["approve"].resume_data == submitted
    assert run.output == {"decision": "approved", "data": submitted}
    assert run.steps["pay"].output == {"paid": True, "by": submitted}
    browser.back()
    browser.refresh()  # the link is used now: the page says so instead of offering the form
    assert "already resumed" in _message(browser)


def test_a_person_rejects_in_a_browser(
    server: Server, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    doc = server.start("approval")
    browser.get(doc["suspended"][0]["resume_url"])
    browser.find_element(By.ID, "action-rejected").click()
    assert "resumed with action rejected" in _message(browser)
    run = server.wait_until_settled(doc["run_id"])
    assert run.steps["approve"].action == "rejected"
    assert run.steps["approve"].resume_data == {"approved": False}  # the Reject button
    assert run.steps["reject"].status == "completed" and run.steps["pay"].status == "skipped"


def test_enter_in_a_text_field_approves_nothing(server: Server, browser: Any) -> None:
    # HTML's implicit submission clicked the first submit button, Approve, when a person
    # pressed Enter in the reviewer's box: only a click on an action may decide
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    doc = server.start("approval")
    url = doc["suspended"][0]["resume_url"]
    browser.get(url)
    browser.find_element(By.ID, "f-reviewer").send_keys("Ann" + Keys.ENTER)
    browser.find_element(By.ID, "f-amount").send_keys("42" + Keys.ENTER)
    threading.Event().wait(0.5)
    assert not browser.find_elements(By.ID, "message")
    assert browser.current_url == url
    assert server.load(doc["run_id"]).status == "suspended"
    browser.find_element(By.ID, "action-rejected").click()  # a click still decides
    assert "resumed with action rejected" in _message(browser)
    run = server.wait_until_settled(doc["run_id"])
    assert run.steps["approve"].resume_data == {"approved": False, "reviewer": "Ann",
                                                "amount": 42}


def _at_width(browser: Any, width: int, height: int, mobile: bool) -> None:
    """Make the page's viewport `width` x `height` CSS pixels, as a phone or a desktop."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1,
        "mobile": mobile})


def test_the_expense_approval_page_reads_well_on_a_phone_and_a_desktop(
    server: Server, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    from .test_approval_page import use_expense_approval

    use_expense_approval(server)
    doc = server.start("expense-approval", '{"user": "ann", "amount": 42}')
    long = server.start("expense-approval",
                        '{"user": "ann", "amount": 42, "note": "' + "x" * 300 + '"}')
    for width, height, mobile in ((375, 812, True), (1280, 900, False)):
        _at_width(browser, width, height, mobile)
        for started in (doc, long):
            browser.get(started["suspended"][0]["resume_url"])
            size = browser.execute_script(
                "return [window.innerWidth, document.documentElement.scrollWidth]")
            # the viewport meta tag makes a phone lay the page out at its own width...
            assert size[0] == width, f"{width}: innerWidth {size[0]}"
            # ...and nothing (a long value included) makes it scroll sideways
            assert size[1] <= size[0], f"{width}: scrollWidth {size[1]} > innerWidth {size[0]}"
            fields = browser.find_element(By.ID, "run-input")
            assert fields.is_displayed()
            assert "user\nann" in fields.text or "user ann" in fields.text.replace("\n", " ")
            assert "amount" in fields.text and "42" in fields.text.split()
            assert "Submit an expense" in browser.find_element(By.ID, "description").text
            for ident, label in (("action-approved", "Approve"), ("action-rejected", "Reject")):
                button = browser.find_element(By.ID, ident)
                assert button.is_displayed() and button.text == label
                right = browser.execute_script(
                    "return arguments[0].getBoundingClientRect().right", button)
                assert right <= width, f"{width}: the {label} button is cut off"
            assert not browser.find_elements(By.ID, "f-approved")  # the button says it
    assert server.load(doc["run_id"]).status == "suspended"  # looking approved nothing
