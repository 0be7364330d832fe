"""In a real browser (Debian's headless Chromium, driven by Playwright) against the app served on loopback.

A person types a Korean prompt, watches the progress bar fill, sees the image, finds it again by a Korean
search, and turns an uploaded image into a new one. Each page is saved as a screenshot under test-output/browser/.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright
from werkzeug.serving import make_server

from demo.web.extensions import get_services

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it with fonts-nanum
pytestmark = pytest.mark.browser
# Every wait below ends on something the page shows; the limits only turn a hang into a failure, and are generous
# because a shared CPU may run the pipeline slowly.
GENERATION_MS = 300_000
expect.set_options(timeout=60_000)

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"


@pytest.fixture(scope="module")
def live_app(tmp_path_factory, serve):
    """The app, CSRF on as in real use, served by a real HTTP server in a thread."""
    app = serve(tmp_path_factory.mktemp("browser-data"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.port}"
    server.shutdown()
    get_services(app).jobs.close()
    get_services(app).search.close()


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, live_app):
    """One browser session for the module: the jobs it makes stay its own."""
    context = browser.new_context(base_url=live_app[1], viewport={"width": 1100, "height": 900}, locale="ko-KR")
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def test_type_a_korean_prompt_watch_progress_and_see_the_image(page, held, prompt, scorer):
    page.goto("/")
    page.get_by_label("프롬프트", exact=True).fill(prompt)
    page.locator("input[name=steps]").fill("30")
    page.locator("input[name=seed]").fill("1")
    shot(page, "1-txt2img-form")
    with held():  # hold the job a moment so the progress bar is seen from its start
        page.get_by_role("button", name="생성하기").click()
        page.wait_for_url("**/jobs/*")
        expect(page.locator("progress")).to_be_visible()
    finished = "() => { const p = document.querySelector('progress'); return !p || p.value >= 1; }"
    page.wait_for_function(finished, timeout=GENERATION_MS)
    shot(page, "2-job-progress")
    image = page.locator(".outputs img")
    expect(image).to_be_visible(timeout=GENERATION_MS)
    expect(page.get_by_text("완료")).to_be_visible()
    expect(page.get_by_role("link", name="내려받기 (PNG)")).to_be_visible()
    shot(page, "3-job-done")
    png = page.request.get(image.get_attribute("src")).body()
    assert scorer.read([Image.open(io.BytesIO(png)).convert("RGB")])[0]["color"] == "red"


def test_search_in_korean_finds_the_image(page, prompt):
    made = page.locator(".outputs img").get_attribute("src")
    page.goto("/search")
    page.get_by_label("검색어").fill("왼쪽에 있는 커다란 빨간색 동그라미")
    page.get_by_role("button", name="검색", exact=True).click()
    first = page.locator(".results li").first
    expect(first.locator("img")).to_have_attribute("src", made)
    expect(first).to_contain_text(prompt)
    shot(page, "4-search")
    first.get_by_role("link", name="이 프롬프트 쓰기").click()
    expect(page.get_by_label("프롬프트", exact=True)).to_have_value(prompt)


def test_upload_an_image_for_image_to_image(page, tmp_path):
    source = tmp_path / "source.png"
    Image.new("RGB", (96, 96), (250, 210, 0)).save(source)
    page.goto("/img2img")
    page.locator("input[type=file]").set_input_files(source)
    expect(page.locator(".dropzone .preview")).to_be_visible()
    page.get_by_label("프롬프트", exact=True).fill("검은 배경 가운데 있는 노란 삼각형")
    page.locator("input[name=steps]").fill("20")
    shot(page, "5-img2img-form")
    page.get_by_role("button", name="변환하기").click()
    expect(page.locator(".outputs img")).to_be_visible(timeout=GENERATION_MS)
    expect(page.locator(".parameters")).to_contain_text("변화 강도")
    shot(page, "6-img2img-done")


def test_drop_an_image_on_the_drop_zone(page):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(buffer, format="PNG")
    page.goto("/img2img")
    transfer = page.evaluate_handle(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            return transfer;
        }""",
        base64.b64encode(buffer.getvalue()).decode(),
    )
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": transfer})
    expect(page.locator(".dropzone .preview")).to_be_visible()
    assert page.evaluate("document.querySelector('input[type=file]').files[0].name") == "dropped.png"


def test_gallery_lists_what_this_browser_made(page, prompt):
    page.goto("/gallery")
    expect(page.locator(".results li")).to_have_count(2)
    expect(page.locator(".results")).to_contain_text(prompt)
    shot(page, "7-gallery")


def test_a_bad_upload_shows_the_reason_on_the_page(page, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    page.goto("/img2img")
    page.locator("input[type=file]").set_input_files(bad)
    page.get_by_label("프롬프트", exact=True).fill("노란 별")
    page.get_by_role("button", name="변환하기").click()
    expect(page.get_by_role("alert")).to_contain_text("not a readable image")
    shot(page, "8-bad-upload")
