"""Languages: the catalog is complete, pages are Korean (English on request), the JSON API follows
Accept-Language with a stable `code`, and the client-compatible APIs stay English."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[2] / "demo" / "web" / "translations"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def test_the_korean_catalog_translates_every_marked_string(tmp_path):
    """Extract afresh: every msgid in the code and templates has a Korean msgstr, and the shipped .mo is current."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [Path(sys.executable).with_name("pybabel"), "extract", "-F", "demo/web/babel.cfg", "-k", "N_"]
        + ["--no-location", "-o", str(pot), "."],
        check=True,
        cwd=TRANSLATIONS.parents[2],
        capture_output=True,
    )
    wanted = {m.id for m in read_po(pot.open("rb")) if m.id}
    with (TRANSLATIONS / "ko" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po)
    translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    assert sorted(wanted - set(translated)) == []
    assert all(HANGUL.search(translated[message]) for message in wanted)
    compiled = TRANSLATIONS / "ko" / "LC_MESSAGES" / "messages.mo"
    assert compiled.stat().st_mtime >= (TRANSLATIONS / "ko" / "LC_MESSAGES" / "messages.po").stat().st_mtime - 1


def test_pages_are_korean_and_english_on_request(client):
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="ko">' in page and "텍스트로 이미지 만들기" in page and "본문으로 건너뛰기" in page
    english = client.get("/?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english and "Make an image from text" in english and "Skip to content" in english
    assert "Gallery" in client.get("/gallery").get_data(as_text=True)  # the choice is remembered
    assert "갤러리" in client.get("/gallery?lang=ko").get_data(as_text=True)


def test_error_pages_are_korean(client):
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "이 주소에는 아무것도 없습니다" in missing.get_data(as_text=True)
    wrong = client.put("/gallery")
    assert wrong.status_code == 405 and "허용되지 않는 요청입니다" in wrong.get_data(as_text=True)
    job = client.get("/jobs/nope")
    assert job.status_code == 404 and "이 브라우저에는 그런 작업이 없습니다" in job.get_data(as_text=True)


def test_the_json_api_follows_accept_language_and_gives_a_code(client):
    korean = client.get("/api/jobs/nope", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"})
    assert korean.status_code == 404 and korean.json["code"] == "not_found" and HANGUL.search(korean.json["error"])
    english = client.get("/api/jobs/nope", headers={"Accept-Language": "en-US"})
    assert english.json == {"error": "no such job for this session", "code": "not_found", "status": 404}
    assert client.get("/api/jobs/nope").json["error"] == "no such job for this session"  # no header: English
    search = client.get("/api/search", query_string={"q": ""}, headers={"Accept-Language": "ko"})
    assert search.status_code == 400 and search.json["error"] == "검색어가 비어 있습니다" and search.json["code"]
    wrong = client.delete("/api/jobs", headers={"Accept-Language": "ko"})
    assert (
        wrong.status_code == 405 and wrong.json["code"] == "method_not_allowed" and HANGUL.search(wrong.json["error"])
    )


def test_the_client_compatible_apis_stay_english(client):
    answer = client.post("/sdapi/v1/txt2img", data="nope", headers={"Accept-Language": "ko"})
    assert answer.status_code == 422 and not HANGUL.search(answer.get_data(as_text=True))
    missing = client.get("/v1/nothing", headers={"Accept-Language": "ko"})
    assert missing.status_code == 404 and not HANGUL.search(missing.get_data(as_text=True))


def test_a_full_queue_is_said_in_korean(make_app, held, prompt, wait_for):
    app = make_app(QUEUE_PER_CLIENT=1)
    client = app.test_client()
    with held():
        first = client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).json["id"]
        wait_for(client, first, until={"running"})  # taken by the worker, so the next one is the one waiting
        assert client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).status_code == 202
        refused = client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}, headers={"Accept-Language": "ko"})
        page = client.post("/", data={"prompt": prompt, "steps": "1"})
    assert refused.status_code == 429 and refused.json["code"] == "too_many_jobs"
    assert "이미 작업 1개가 대기 중입니다" in refused.json["error"]
    assert page.status_code == 429 and "이미 작업 1개가 대기 중입니다" in page.get_data(as_text=True)
