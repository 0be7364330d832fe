"""The pages with Flask's test client: what a person sees after each action, and every bad input."""

from __future__ import annotations

import io
import re
from urllib.parse import quote

from demo.web.extensions import get_services


def text(response) -> str:
    return response.get_data(as_text=True)


def test_every_page_is_korean(client):
    for path in ("/", "/img2img", "/search", "/gallery"):
        page = text(client.get(path))
        assert '<html lang="ko">' in page and "한국어 이미지 생성기" in page and "NanumGothic" not in page
    assert "Nanum" in text(client.get("/static/style.css"))  # the Korean font stack
    assert "프롬프트" in text(client.get("/")) and "끌어다 놓거나" in text(client.get("/img2img"))


def test_txt2img_form_to_job_page_to_result(client, prompt, wait_for):
    answer = client.post("/", data={"prompt": prompt, "steps": "6", "seed": "4", "refiner": "0"})
    assert answer.status_code == 303
    job_id = answer.headers["Location"].rsplit("/", 1)[-1]
    page = text(client.get(f"/jobs/{job_id}"))
    assert prompt in page and ("<progress" in page or "내려받기" in page)
    job = wait_for(client, job_id)
    page = text(client.get(f"/jobs/{job_id}"))
    assert "<progress" not in page and job["images"][0] in page and "download" in page
    assert "시드</dt><dd>4" in page.replace("\n", "").replace(" ", "") or ">4<" in page
    assert prompt in text(client.get("/"))  # "my jobs" lists it, so a reload finds it


def test_result_page_shows_similar_prompts_from_the_gallery(client, prompt, wait_for):
    earlier = wait_for(
        client, client.post("/api/txt2img", json={"prompt": "흰 배경 왼쪽의 작은 빨간 원", "steps": 2}).json["id"]
    )
    job_id = client.post("/", data={"prompt": prompt, "steps": "2"}).headers["Location"].rsplit("/", 1)[-1]
    wait_for(client, job_id)
    page = text(client.get(f"/jobs/{job_id}"))
    similar = page.split("비슷한 프롬프트", 1)[1]
    assert earlier["images"][0] in similar and "흰 배경 왼쪽의 작은 빨간 원" in similar


def test_form_errors_keep_the_input_and_say_why(client, prompt):
    answer = client.post("/", data={"prompt": prompt, "steps": "0"})
    page = text(answer)
    assert answer.status_code == 400 and "단계 수 값은 1에서 100 사이여야 합니다" in page and prompt in page
    answer = client.post("/", data={"prompt": ""})
    assert answer.status_code == 400 and "프롬프트가 비어 있습니다" in text(answer)


def test_img2img_page_upload_and_errors(client, prompt, png, wait_for):
    data = {"prompt": "검은 배경 가운데 노란 세모", "steps": "8", "image": (io.BytesIO(png()), "red.png")}
    answer = client.post("/img2img", data=data, content_type="multipart/form-data")
    assert answer.status_code == 303
    assert wait_for(client, answer.headers["Location"].rsplit("/", 1)[-1])["status"] == "done"
    missing = client.post("/img2img", data={"prompt": prompt}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "이미지 파일을 골라" in text(missing)
    junk = client.post(
        "/img2img",
        data={"prompt": prompt, "image": (io.BytesIO(b"GIF89a junk"), "x.gif")},
        content_type="multipart/form-data",
    )
    assert junk.status_code == 400 and "읽을 수 있는 이미지 파일이 아닙니다" in text(junk)


def test_cancel_from_the_job_page(client, held, prompt, wait_for):
    with held():
        job_id = client.post("/", data={"prompt": prompt, "steps": "2"}).headers["Location"].rsplit("/", 1)[-1]
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 303
    wait_for(client, job_id)
    assert "작업이 취소되었습니다" in text(client.get(f"/jobs/{job_id}"))


def test_someone_elses_job_page_is_not_found(app, prompt):
    job_id = app.test_client().post("/", data={"prompt": prompt, "steps": "1"}).headers["Location"].rsplit("/", 1)[-1]
    stranger = app.test_client()
    assert stranger.get(f"/jobs/{job_id}").status_code == 404
    assert stranger.post(f"/jobs/{job_id}/cancel").status_code == 404


def test_search_page_by_text_and_by_image(client, prompt, wait_for):
    job = wait_for(client, client.post("/api/txt2img", json={"prompt": prompt, "steps": 3}).json["id"])
    page = text(client.get("/search", query_string={"q": "빨간 동그라미"}))
    assert job["images"][0] in page and prompt in page and "유사도" in page and "이 프롬프트 쓰기" in page
    by_image = client.post(
        "/search",
        data={"image": (io.BytesIO(client.get(job["images"][0]).data), "q.png")},
        content_type="multipart/form-data",
    )
    assert by_image.status_code == 200 and job["images"][0] in text(by_image)
    bad = client.get("/search", query_string={"q": "원", "k": "-1"})
    assert bad.status_code == 400 and "k는 1에서 100 사이의 정수" in text(bad)  # in Korean, at the search field


def test_reusing_a_prompt_fills_the_form(client):
    assert "노란 별</textarea>" in text(client.get("/", query_string={"prompt": "노란 별"}))


def test_a_prompt_with_html_shows_as_text(client, wait_for):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> 빨간 원'
    job = wait_for(client, client.post("/api/txt2img", json={"prompt": evil, "steps": 1}).json["id"])
    for page in (
        text(client.get(f"/jobs/{job['id']}")),
        text(client.get("/gallery")),
        text(client.get("/search?q=빨간 원")),
    ):
        assert "<script>alert" not in page and "onerror=alert(1)>" not in page
        assert "&lt;script&gt;" in page


def test_gallery_pages(make_app, wait_for):
    client = make_app(PAGE_SIZE=2).test_client()
    for colour in ("빨간", "파란", "노란"):
        wait_for(client, client.post("/api/txt2img", json={"prompt": f"{colour} 별", "steps": 1}).json["id"])
    first = text(client.get("/gallery"))
    assert "노란 별" in first and "파란 별" in first and "빨간 별" not in first
    older = re.search(r'href="(/gallery\?before=\d+)"', first).group(1)
    assert "빨간 별" in text(client.get(older))
    assert client.get("/gallery?before=x").status_code == 400


def test_images_are_served_only_from_the_gallery(app, client):
    for path in (
        "/images/../secret_key",
        "/images/%2e%2e/secret_key",
        "/images/..%2fsecret_key",
        "/images//etc/passwd",
        "/images/nothing.png",
    ):
        answer = client.get(path, follow_redirects=True)  # werkzeug first merges "//" with a redirect
        assert answer.status_code == 404 and app.config["SECRET_KEY"] not in text(answer), path


def test_forms_need_a_csrf_token(make_app, prompt):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    refused = client.post("/", data={"prompt": prompt})
    assert refused.status_code == 400 and "페이지를 새로 고친 뒤" in text(refused)
    token = re.search(r'name="csrf_token" value="([^"]+)"', text(client.get("/"))).group(1)
    assert client.post("/", data={"prompt": prompt, "steps": "1", "csrf_token": token}).status_code == 303
    assert client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).status_code == 202  # the API takes JSON


def test_not_found_page_and_no_debug_by_default(app, client):
    answer = client.get("/no/such/page")
    assert answer.status_code == 404 and '<html lang="ko">' in text(answer) and "찾을 수 없습니다" in text(answer)
    assert not app.debug


def test_secret_key_survives_a_restart(tmp_path, make_app):
    keys = [make_app(DATA_DIR=str(tmp_path)).config["SECRET_KEY"] for _ in range(2)]
    assert keys[0] == keys[1] and len(keys[0]) == 64


def test_settings_come_from_the_environment(monkeypatch, make_app):
    monkeypatch.setenv("KOIMG_QUEUE_SIZE", "3")
    monkeypatch.setenv("KOIMG_MAX_CONTENT_LENGTH", "12345")
    app = make_app()
    assert app.config["QUEUE_SIZE"] == 3 and get_services(app).jobs.max_queued == 3
    assert app.config["MAX_CONTENT_LENGTH"] == 12345


def test_each_image_has_a_page_and_a_download_named_from_its_prompt(client, prompt, wait_for):
    job = wait_for(client, client.post("/api/txt2img", json={"prompt": prompt, "steps": 2, "seed": 7}).json["id"])
    record_id = client.get("/api/gallery").json[0]["id"]
    page = text(client.get(f"/gallery/{record_id}"))
    assert job["images"][0] in page and prompt in page and "pixelated" in page
    for shown in (
        "시드",
        ">7<",
        "단계 수",
        ">2<",
        "가이던스",
        "이 프롬프트 쓰기",
        "이 이미지로 이미지→이미지",
        "내려받기",
    ):
        assert shown in page, shown
    assert f'href="/gallery/{record_id}"' in text(client.get("/gallery"))  # the gallery links to it
    assert f"/gallery/{record_id}" in text(client.get(f"/jobs/{job['id']}"))  # and so does the job page
    download = client.get(f"/gallery/{record_id}/download")
    disposition = download.headers["Content-Disposition"]
    assert download.status_code == 200 and download.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert disposition.startswith("attachment;") and 'filename="image-seed7.png"' in disposition
    assert "filename*=UTF-8''" + quote(f"{prompt}-seed7.png") in disposition
    assert client.get("/gallery/999999").status_code == 404
    assert client.get("/gallery/99999999999999999999999").status_code == 404  # beyond SQLite's integers: no 500


def test_image_to_image_from_a_gallery_image_and_its_input_on_the_job_page(client, prompt, wait_for):
    wait_for(client, client.post("/api/txt2img", json={"prompt": prompt, "steps": 2}).json["id"])
    record_id = client.get("/api/gallery").json[0]["id"]
    form = text(client.get(f"/img2img?source={record_id}"))
    assert f'name="source" value="{record_id}"' in form and "갤러리에서" in form
    answer = client.post("/img2img", data={"prompt": "노란 별", "steps": "4", "source": str(record_id)})
    assert answer.status_code == 303
    job_id = answer.headers["Location"].rsplit("/", 1)[-1]
    wait_for(client, job_id)
    page = text(client.get(f"/jobs/{job_id}"))
    assert f"/jobs/{job_id}/input.png" in page and "이 이미지에서 시작했습니다" in page
    image = client.get(f"/jobs/{job_id}/input.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert app_client_of(client).get(f"/jobs/{job_id}/input.png").status_code == 404  # another browser: not found


def app_client_of(client):
    return client.application.test_client()


def test_the_form_says_what_the_model_knows_and_offers_examples(client):
    page = text(client.get("/"))
    assert "64×64" in page and "도형: 원, 사각형, 삼각형, 별, 마름모" in page and "배경: 흰, 검은, 회색" in page
    assert 'data-example="검은 배경 가운데 노란 별"' in page
    english = text(client.get("/?lang=en"))
    assert "shapes: circle, square, triangle, star, diamond" in english


def test_favicon_and_skip_link(client):
    assert client.get("/favicon.ico").status_code == 301
    assert client.get("/static/favicon.svg").status_code == 200
    assert 'href="#main"' in text(client.get("/search")) and 'id="main"' in text(client.get("/search"))
