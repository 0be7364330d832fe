"""In a real browser (Debian's headless Chromium, driven by Playwright) against the app served on loopback.

Each test opens its own browser context (its own cookies, so its own jobs) and makes whatever images it needs, so
the tests hold in any order or alone. Every page a test visits is checked for console errors, failed requests and
broken images. Screenshots go to test-output/browser/.
"""

from __future__ import annotations

import base64
import io
import json
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
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BROKEN_IMAGES = "() => [...document.images].filter((i) => i.offsetParent && !(i.complete && i.naturalWidth)).length"


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


class Watched:
    """A page whose console errors and failed requests are collected, to assert none at the end."""

    def __init__(self, page: Page) -> None:
        self.page, self.problems = page, []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"script: {e}"))
        # a load cut short by the test going on to the next page (net::ERR_ABORTED) is no fault of the page
        page.on("requestfailed", lambda r: "ABORTED" not in r.failure and self.problems.append(f"failed: {r.url}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"))

    def clean(self, allowed: tuple[str, ...] = ()) -> None:
        """No console error, failed request or broken image so far (`allowed`: expected error statuses)."""
        assert self.page.evaluate(BROKEN_IMAGES) == 0
        assert [p for p in self.problems if not any(a in p for a in allowed)] == []


@pytest.fixture
def open_page(browser, live_app):
    """`open_page(viewport=DESKTOP, **context)`: a fresh browser context (a new visitor) and its watched page."""
    contexts = []

    def make(viewport=DESKTOP, **options) -> Watched:
        context = browser.new_context(base_url=live_app[1], viewport=viewport, locale="ko-KR", **options)
        contexts.append(context)
        return Watched(context.new_page())

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page) -> Watched:
    return open_page()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def make_image(page: Page, prompt: str, steps: int = 2, seed: int = 1) -> dict:
    """A finished job of this browser, made through the JSON API with the page's cookies."""
    job = page.request.post("/api/txt2img", data={"prompt": prompt, "steps": steps, "seed": seed}).json()
    page.goto(f"/jobs/{job['id']}")  # the job page reloads itself with the result when the job ends
    expect(page.locator(".outputs img")).to_be_visible(timeout=GENERATION_MS)
    return page.request.get(f"/api/jobs/{job['id']}").json()


def png_file(tmp_path: Path, name: str, colour=(250, 210, 0), size: int = 96) -> Path:
    path = tmp_path / name
    Image.new("RGB", (size, size), colour).save(path)
    return path


def test_type_a_korean_prompt_watch_progress_and_see_the_image(page, held, prompt, scorer):
    p = page.page
    p.goto("/")
    p.get_by_label("프롬프트", exact=True).fill(prompt)
    p.locator("input[name=steps]").fill("30")
    p.locator("input[name=seed]").fill("1")
    shot(p, "1-txt2img-form")
    with held():  # hold the job a moment so the progress bar is seen from its start
        p.get_by_role("button", name="생성하기").click()
        p.wait_for_url("**/jobs/*")
        bar = p.get_by_role("progressbar", name="진행 상황")
        expect(bar).to_be_visible()
        expect(p.locator("[aria-live=polite]").filter(has=p.locator("[data-step-text]"))).to_contain_text("단계")
    image = p.locator(".outputs img")
    expect(image).to_be_visible(timeout=GENERATION_MS)
    expect(p.get_by_text("완료")).to_be_visible()
    expect(p.get_by_role("link", name="내려받기 (PNG)")).to_be_visible()
    shot(p, "2-job-done")
    png = p.request.get(image.get_attribute("src")).body()
    assert scorer.read([Image.open(io.BytesIO(png)).convert("RGB")])[0]["color"] == "red"
    page.clean()


def test_the_time_left_is_estimated_from_the_measured_step_rate(page, held, prompt):
    """The API's answers are replayed step by step, so the estimate is checked without racing the generator."""
    p = page.page
    states = iter([(0, "running"), (10, "running"), (20, "running")])
    last = {"step": 0}

    def answer(route):
        step, status = next(states, (last["step"], "running"))
        last["step"] = step
        body = {"status": status, "step": step, "total_steps": 40, "queue_position": 0}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    with held():
        job = p.request.post("/api/txt2img", data={"prompt": prompt, "steps": 3}).json()
        p.route(f"**/api/jobs/{job['id']}", answer)
        p.goto(f"/jobs/{job['id']}")
        expect(p.locator("[data-eta]")).to_contain_text("초 남음")
        expect(p.locator("[data-step-text]")).to_have_text("40단계 중 20단계")
        assert int(p.locator("[data-eta]").get_attribute("data-seconds")) >= 1
    page.clean()


def test_search_in_korean_finds_the_image_and_opens_its_page(page):
    p = page.page
    prompt = "회색 배경 오른쪽에 있는 작은 초록 별"  # no other test makes it
    made = make_image(p, prompt)
    p.goto("/search")
    p.get_by_label("검색어").fill("잿빛 배경 우측의 조그만 녹색 별")
    p.get_by_role("button", name="검색", exact=True).click()
    first = p.locator(".results li").first
    expect(first.locator("img")).to_have_attribute("src", made["images"][0])
    shot(p, "3-search")
    page.clean()
    first.locator("img").click()
    p.wait_for_url("**/gallery/*")
    expect(p.get_by_role("heading", level=1)).to_have_text(prompt)
    expect(p.locator(".parameters")).to_contain_text("시드")
    rendering = p.locator(".record-image img").evaluate("(i) => getComputedStyle(i).imageRendering")
    assert rendering == "pixelated" and p.locator(".record-image img").bounding_box()["width"] >= 256
    shot(p, "4-image-page")
    page.clean()
    with p.expect_download() as download:
        p.get_by_role("link", name="내려받기 (PNG)").click()
    assert download.value.suggested_filename == f"{prompt}-seed1.png"
    p.get_by_role("link", name="이 프롬프트 쓰기").first.click()
    expect(p.get_by_label("프롬프트", exact=True)).to_have_value(prompt)


def test_image_to_image_from_an_upload_shows_its_input_on_the_job_page(page, tmp_path):
    p = page.page
    p.goto("/img2img")
    expect(p.locator(".dropzone img")).to_be_hidden()  # no broken preview before a file is chosen
    with p.expect_file_chooser() as chooser:
        p.get_by_role("button", name="이미지 고르기", exact=True).click()
    chooser.value.set_files(png_file(tmp_path, "source.png"))
    expect(p.locator(".dropzone .preview")).to_be_visible()
    p.get_by_label("프롬프트", exact=True).fill("검은 배경 가운데 있는 노란 삼각형")
    p.locator("input[name=steps]").fill("20")
    shot(p, "5-img2img-form")
    page.clean()
    p.get_by_role("button", name="변환하기").click()
    expect(p.locator(".outputs img")).to_be_visible(timeout=GENERATION_MS)
    expect(p.locator(".parameters")).to_contain_text("변화 강도")
    expect(p.get_by_role("img", name="이 작업이 시작한 이미지")).to_be_visible()
    shot(p, "6-img2img-done")
    page.clean()


def test_a_bad_file_is_refused_in_the_browser_and_the_good_one_kept(page, tmp_path):
    p = page.page
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    p.goto("/img2img")
    upload = p.locator("input[type=file]")
    upload.set_input_files(bad)
    error = p.locator("[data-error-for=image]")
    expect(error).to_contain_text("읽을 수 있는 이미지 파일이 아닙니다")
    upload.set_input_files(png_file(tmp_path, "good.png"))
    expect(error).to_be_hidden()
    upload.set_input_files(tmp_path / "not-an-image.png")
    expect(error).to_contain_text("앞서 고른 이미지는 그대로 있습니다")
    assert p.evaluate("document.querySelector('input[type=file]').files[0].name") == "good.png"
    expect(upload).to_have_attribute("aria-invalid", "true")
    shot(p, "7-bad-upload")
    page.clean()


def test_drop_an_image_on_the_drop_zone(page):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(buffer, format="PNG")
    p = page.page
    p.goto("/img2img")
    transfer = p.evaluate_handle(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            return transfer;
        }""",
        base64.b64encode(buffer.getvalue()).decode(),
    )
    p.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": transfer})
    expect(p.locator(".dropzone .preview")).to_be_visible()
    assert p.evaluate("document.querySelector('input[type=file]').files[0].name") == "dropped.png"
    page.clean()


def test_errors_show_at_their_field_with_focus(page, open_page, prompt):
    p = page.page
    p.goto("/")
    p.get_by_label("프롬프트", exact=True).fill(prompt)
    p.locator("input[name=steps]").fill("0")
    p.get_by_role("button", name="생성하기").click()
    steps = p.locator("input[name=steps]")
    expect(steps).to_have_attribute("aria-invalid", "true")
    expect(steps).to_be_focused()
    expect(p.locator("[data-error-for=steps]")).to_have_text("1에서 100 사이의 수를 넣어 주세요.")
    assert p.url.endswith("/")  # nothing was sent
    # Without scripts the server's answer puts the error at the field as well.
    plain = open_page(java_script_enabled=False).page
    plain.goto("/")
    plain.get_by_label("프롬프트", exact=True).fill(prompt)
    plain.locator("input[name=steps]").fill("0")
    plain.get_by_role("button", name="생성하기").click()
    expect(plain.locator("input[name=steps]")).to_have_attribute("aria-invalid", "true")
    expect(plain.locator("#steps-error")).not_to_be_empty()
    expect(plain.get_by_label("프롬프트", exact=True)).to_have_value(prompt)
    page.clean()


def test_a_long_paste_is_cut_with_a_message_and_counted(page):
    p = page.page
    p.goto("/")
    field = p.get_by_label("프롬프트", exact=True)
    expect(p.locator("[data-counter-for=prompt]")).to_have_text("0/300")
    field.fill("별" * 2000)
    expect(p.locator("[data-counter-for=prompt]")).to_have_text("300/300")
    expect(p.locator("[data-cut-for=prompt]")).to_have_text("2000자 중 앞의 300자만 남기고 잘랐습니다.")
    assert len(field.input_value()) == 300
    page.clean()


def test_ctrl_enter_submits_and_example_chips_fill_the_prompt(page):
    p = page.page
    p.goto("/")
    expect(p.locator("[data-world]")).to_contain_text("64×64")
    p.get_by_role("link", name="검은 배경 가운데 노란 별").click()
    field = p.get_by_label("프롬프트", exact=True)
    expect(field).to_have_value("검은 배경 가운데 노란 별")
    expect(field).to_be_focused()
    p.locator("input[name=steps]").fill("2")
    field.press("Control+Enter")
    p.wait_for_url("**/jobs/*")
    expect(p.locator(".prompt").first).to_have_text("검은 배경 가운데 노란 별")
    page.clean()


def test_skip_link_focus_rings_and_a_phone_sized_nav(open_page):
    watched = open_page(viewport=PHONE)
    p = watched.page
    p.goto("/search")
    p.keyboard.press("Tab")
    skip = p.get_by_role("link", name="본문으로 건너뛰기")
    expect(skip).to_be_focused()
    assert skip.bounding_box()["y"] >= 0  # shown when focused
    assert p.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    skip.press("Enter")
    expect(p.locator("main")).to_be_focused()
    assert p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for link in p.locator("header nav a").all():  # each label on one line
        box, line = (
            link.bounding_box(),
            p.evaluate("(a) => parseFloat(getComputedStyle(a).lineHeight)", link.element_handle()),
        )
        assert box["height"] < 1.5 * line, link.text_content()
    shot(p, "8-phone-search")
    watched.clean()


def test_no_console_error_or_broken_image_on_any_page(page, prompt):
    p = page.page
    job = make_image(p, prompt)
    record = p.request.get("/api/gallery").json()[0]["id"]
    for path in (
        "/",
        "/img2img",
        "/search",
        "/search?q=노란 별",
        "/gallery",
        f"/gallery/{record}",
        f"/jobs/{job['id']}",
    ):
        p.goto(path)
        page.clean()
    p.goto("/no/such/page")
    expect(p.get_by_role("alert")).to_contain_text("이 주소에는 아무것도 없습니다")
    page.clean(allowed=("404: ", "404 (NOT FOUND)"))
    p.goto(job["images"][0])  # the image alone: the browser's viewer, not blocked by the policy
    page.clean(allowed=("404: ", "404 (NOT FOUND)"))


def test_search_by_image_with_a_korean_file_button(page, tmp_path):
    p = page.page
    make_image(p, "흰 배경 위쪽에 있는 작은 파란 사각형")
    p.goto("/search")
    p.get_by_role("button", name="이미지로 검색", exact=True).click()  # nothing chosen: said at the field, in Korean
    expect(p.locator("[data-error-for=image]")).to_have_text("이 칸을 채워 주세요.")
    with p.expect_file_chooser() as chooser:
        p.get_by_role("button", name="이미지 고르기", exact=True).click()
    chooser.value.set_files(png_file(tmp_path, "blue.png", colour=(30, 80, 225)))
    expect(p.locator("[data-file-name]")).to_have_text("blue.png")
    expect(p.locator("[data-error-for=image]")).to_be_hidden()
    p.get_by_role("button", name="이미지로 검색", exact=True).click()
    expect(p.locator(".summary")).to_contain_text("이미지와 비슷한 프롬프트")
    shot(p, "9-search-by-image")
    page.clean()


def test_english_on_request(page):
    p = page.page
    p.goto("/?lang=en")
    expect(p.get_by_role("heading", level=1)).to_have_text("Make an image from text")
    p.get_by_role("link", name="Gallery").click()
    expect(p.get_by_role("heading", level=1)).to_have_text("Gallery")
    p.get_by_role("link", name="한국어").click()
    expect(p.get_by_role("heading", level=1)).to_have_text("갤러리")
    page.clean()
