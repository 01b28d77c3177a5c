"""The seller page in headless Chromium (Debian's, driven by Playwright): real photos in, the steps
shown, the seller's check, the description streamed in, a screenshot in test-artifacts/. The server
has an access token, which the page takes from its link (/ipl/#token=...)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import QUERIES, ROOT, SAMPLE
from ipl_graph.face.serve import running

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
PHOTOS = [QUERIES / "Bravo-Apple-Juice_001.jpg", SAMPLE / "images" / "Bravo-Apple-Juice_Iconic.jpg"]
TOKEN = "ipl-page-token-51c2"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture(scope="module")
def server(sample_index, tmp_path_factory) -> Iterator[str]:
    with open(tmp_path_factory.mktemp("page") / "server.log", "w") as log, \
            running(sample_index, config=str(ROOT / "langgraph.json"), log=log, token=TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(90_000)
    page.goto(f"{server}/ipl/#token={TOKEN}")
    page.wait_for_selector("#step-check_safety")  # the page has its config: the token was taken
    assert "token" not in page.url  # and taken off the address bar
    yield page
    page.close()


def test_seller_lists_an_item_from_real_photos(page, server):
    page.set_input_files("#photos", [str(p) for p in PHOTOS])
    page.fill("#hint", "unopened")
    page.click("#start")

    page.wait_for_selector("#check:not(.hidden)")
    assert page.input_value("#category") == "Juice"
    assert page.locator("#attributes input").nth(1).input_value() == "Bravo"
    assert page.locator("#step-extract_attributes.done").count() == 1
    assert page.locator("#step-generate.done").count() == 0  # nothing is written before the seller's check

    page.click("#add-attribute")
    page.locator("#attributes .row").last.locator("input").nth(0).fill("Volume")
    page.locator("#attributes .row").last.locator("input").nth(1).fill("1 L")
    page.evaluate("""() => { const shown = onEvent; window.tokens = 0;
        onEvent = (event, data) => { if (event === 'messages') tokens++; shown(event, data); }; }""")
    page.click("#confirm-details")

    page.wait_for_selector("#step-score_quality.done")
    description = page.input_value("#description")
    assert re.fullmatch(r"Listing quality: \d+ / 100", page.inner_text("#quality-score"))
    assert page.locator("#quality-tips li").count() >= 1
    assert "1 L" in description and "unopened" in description
    assert page.evaluate("tokens") > 5  # the description streamed in, token by token
    assert page.input_value("#title")
    assert "seller" in page.inner_text("#final-attributes")
    assert page.locator("#error").is_hidden()

    page.fill("#title", "Bravo apple juice, 1 L, unopened")
    page.click("#save")
    page.wait_for_selector("#saved:text('saved')")
    state = page.evaluate("async () => (await (await api(`/threads/${threadId}/state`)).json()).values")
    assert state["title"] == "Bravo apple juice, 1 L, unopened"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "seller-page.png"), full_page=True)


def test_a_file_that_is_not_an_image_is_refused_on_the_page(page):
    page.set_input_files("#photos", [{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}])
    page.click("#start")
    page.wait_for_selector("#error:visible")
    assert "422: notes.jpg: not a readable image" in page.inner_text("#error")


def test_a_hint_over_the_limit_is_refused_on_the_page(page):
    assert page.get_attribute("#hint", "maxlength") == "2000"
    page.set_input_files("#photos", [str(PHOTOS[0])])
    page.evaluate("() => { document.getElementById('hint').value = 'x'.repeat(2500); }")  # pasted past maxlength
    page.click("#start")
    page.wait_for_selector("#error:visible")
    assert "2500 characters; keep it to 2000" in page.inner_text("#error")
    assert page.locator("#step-check_safety.done").count() == 0  # nothing was sent


def test_without_the_token_the_page_says_how_to_open_it(browser, server):
    page = browser.new_page()
    page.goto(f"{server}/ipl/")
    page.wait_for_selector("#error:visible")
    assert "401" in page.inner_text("#error") and "/ipl/#token=" in page.inner_text("#error")
    page.close()
