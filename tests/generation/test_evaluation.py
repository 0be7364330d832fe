"""demo.generation.evaluation, the quality numbers measured on the product, and its documented entry point
`python -m miniworld.evaluate`."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline

from demo.generation.evaluation import evaluate
from demo.generation.request import GenerationError, Request
from miniworld.evaluate import main
from miniworld.paths import BASE_DIR, REFINER_DIR
from miniworld.prompts import read_prompts
from miniworld.world import Scene, english_caption

REPO = Path(__file__).resolve().parents[2]

ROWS = [
    {
        "prompt": "a large green star on the left on a gray background",
        "color": "green",
        "shape": "star",
        "size": "large",
        "position": "left",
        "background": "gray",
    },
    {
        "prompt": "a small yellow diamond at the top on a black background",
        "color": "yellow",
        "shape": "diamond",
        "size": "small",
        "position": "top",
        "background": "black",
    },
]


def test_english_teacher_reads_prompts_as_the_pipelines_do(teacher_generator):
    prompts = ["a large red circle on the left on a white background", ""]
    base = StableDiffusionPipeline.from_pretrained(BASE_DIR)
    expected, _ = base.encode_prompt(prompts, "cpu", 1, do_classifier_free_guidance=False)
    assert torch.equal(teacher_generator.encoder.encode(prompts, "miniworld-clip:last").prompt_embeds, expected)
    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(REFINER_DIR)
    tokens, _, pooled, _ = refiner.encode_prompt(prompts, device="cpu", do_classifier_free_guidance=False)
    embeds = teacher_generator.encoder.encode_all(prompts)["miniworld-clip:penultimate"]
    assert torch.equal(embeds.prompt_embeds, tokens) and torch.equal(embeds.pooled_prompt_embeds, pooled)


@pytest.mark.slow
def test_english_through_the_generator_is_the_pipeline_reading_its_own_prompt(teacher_generator):
    prompt = "a large blue square in the center on a black background"
    ours = teacher_generator(Request(prompt, seed=4, steps=6, refiner=False)).images[0]
    base = StableDiffusionPipeline.from_pretrained(BASE_DIR)
    base.set_progress_bar_config(disable=True)
    theirs = base(
        prompt,
        negative_prompt="",
        num_inference_steps=6,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(4),
    ).images[0]
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.slow
def test_generation_smoke_reads_the_prompted_colour(teacher_generator, scorer):
    prompts = [
        "a large red circle in the center on a white background",
        "a large blue square in the center on a black background",
    ]
    for refiner in (False, True):
        images = teacher_generator.generate_batch(
            [Request(p, seed=0, steps=20, refiner=refiner) for p in prompts]
        ).images
        assert [r["color"] for r in scorer.read(images)] == ["red", "blue"]


@pytest.mark.slow
def test_a_batch_is_the_same_images_as_one_request_at_a_time(generator):
    requests = [
        Request("흰 배경 왼쪽에 있는 큰 빨간 원", seed=3, steps=5, num_images=2),
        Request("검은 배경 위쪽의 작은 파란 별", seed=9, steps=5),
    ]
    batch = generator.generate_batch(requests)
    alone = [image for r in requests for image in generator(r).images]
    assert batch.seeds == [3, 4, 9] and [p["prompt"] for p in batch.parameters] == [
        r.prompt for r in requests for _ in range(r.num_images)
    ]
    # the same images up to rounding: a larger batch only sums the same products in another order
    assert all(np.abs(np.asarray(a, dtype=int) - np.asarray(b)).max() <= 2 for a, b in zip(batch.images, alone))
    with pytest.raises(GenerationError, match="must share steps"):
        generator.generate_batch([Request("원", steps=5), Request("원", steps=6)])


@pytest.mark.slow
def test_cli_json_report_is_the_generator_path_with_the_documented_keys(tmp_path, capsys, teacher_generator, scorer):
    pd.DataFrame(ROWS).to_csv(tmp_path / "p.csv", index=False)
    assert main([str(tmp_path / "p.csv"), "--json", "--seeds", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"all_correct", "per_attribute", "clip_score", "n"}
    assert report["n"] == 4 and set(report["per_attribute"]) == {"color", "shape", "size", "position", "background"}
    assert 0 <= report["all_correct"] <= 1 and report["clip_score"] > 0
    prompts, scenes = read_prompts(tmp_path / "p.csv")
    assert report == evaluate(teacher_generator, prompts, scenes, seeds=2, scorer=scorer).as_dict()


@pytest.mark.slow
def test_cli_refiner_default_follows_the_config(tmp_path, capsys):
    pd.DataFrame(ROWS[:1]).to_csv(tmp_path / "p.csv", index=False)
    runs = {}
    for flags in ([], ["--no-refiner"], ["--refiner"]):
        assert main([str(tmp_path / "p.csv"), "--json", "--steps", "6", "--encoder", "korean", *flags]) == 0
        runs[" ".join(flags)] = json.loads(capsys.readouterr().out)
    assert runs[""] == runs["--no-refiner"] != runs["--refiner"]  # embedded: refiner_default false


@pytest.mark.slow
def test_probe_scores_each_category_in_korean_and_english(tmp_path, capsys):
    scenes = [Scene("red", "circle", "large", "left", "white"), Scene("blue", "square", "large", "center", "black")]
    probe = tmp_path / "probe"
    probe.mkdir()
    pd.DataFrame(
        [
            {"prompt": "흰 배경 왼쪽에 있는 큰 빨간 원", **scenes[0].as_dict()},
            {"prompt": "검은 배경 가운데에 있는 큰 파란 네모", **scenes[1].as_dict()},
        ]
    ).to_csv(probe / "plain.csv", index=False)
    pd.DataFrame(
        [{"prompt": "왼쪽에 큰 빨간 원, 배경은 흰색", "english": english_caption(scenes[0]), **scenes[0].as_dict()}]
    ).to_csv(probe / "reordered.csv", index=False)
    assert main(["--probe", str(probe), "--json", "--steps", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["categories"]) == {"plain", "reordered"}
    for category, n in (("plain", 2), ("reordered", 1)):
        c = result["categories"][category]
        assert c["korean"]["n"] == c["english"]["n"] == n and set(c["korean"]["per_attribute"]) == set(
            scenes[0].as_dict()
        )
        assert c["ratio"] == pytest.approx(c["korean"]["all_correct"] / max(c["english"]["all_correct"], 1e-9))
    assert result["all"]["korean"]["n"] == 3
    plain, reordered = result["categories"]["plain"]["korean"], result["categories"]["reordered"]["korean"]
    assert result["all"]["korean"]["all_correct"] == pytest.approx(
        (2 * plain["all_correct"] + reordered["all_correct"]) / 3
    )
    assert main(["--probe", str(probe)]) == 0 and "reordered" in capsys.readouterr().out

    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(result))
    assert main(["--probe", str(probe), "--json", "--steps", "10", "--english-from", str(earlier)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == result  # the English half reused, the Korean half regenerated identically
    with pytest.raises(SystemExit) as exit_:
        main(["--probe", str(probe), "--steps", "8", "--english-from", str(earlier)])
    assert exit_.value.code == 2 and "other settings" in capsys.readouterr().err
    (probe / "extra.csv").write_text((probe / "reordered.csv").read_text())
    with pytest.raises(SystemExit) as exit_:
        main(["--probe", str(probe), "--steps", "10", "--english-from", str(earlier)])
    assert exit_.value.code == 2 and "do not cover extra.csv" in capsys.readouterr().err


def test_cli_reports_a_bad_file_without_a_traceback(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("prompt\nx\n")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "bad.csv")])
    assert exit_.value.code == 2 and "missing column" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--probe", str(tmp_path / "nothing-here")])
    assert exit_.value.code == 2 and "no *.csv category files" in capsys.readouterr().err


@pytest.mark.slow
def test_ko_clip_evaluate_generates_through_the_same_generator(tmp_path, capsys, generator, teacher_generator, scorer):
    from ko_clip.__main__ import main as ko_clip_main
    from miniworld.paths import KOREAN_ENCODER_DIR

    scene = Scene("red", "circle", "large", "left", "white")
    (tmp_path / "pairs.csv").write_text("ko,en\n빨간 원,a red circle\n파란 네모,a blue square\n")
    prompts = tmp_path / "prompts.csv"
    pd.DataFrame(
        [{"prompt": "흰 배경 왼쪽에 있는 큰 빨간 원", "en": english_caption(scene), **scene.as_dict()}]
    ).to_csv(prompts, index=False)
    argv = ["evaluate", "--model", str(KOREAN_ENCODER_DIR), "--pairs", str(tmp_path / "pairs.csv")]
    assert ko_clip_main([*argv, "--prompts", str(prompts), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[str(prompts)]
    assert result["korean"] == evaluate(generator, ["흰 배경 왼쪽에 있는 큰 빨간 원"], [scene], scorer=scorer).as_dict()
    assert result["english"] == evaluate(teacher_generator, [english_caption(scene)], [scene], scorer=scorer).as_dict()
    assert set(result) == {"embeddings", "korean", "english", "ratio"}


@pytest.mark.slow
def test_python_m_miniworld_evaluate_runs_the_product_evaluation():
    """Scripts outside the repository call the entry point by its module name."""
    done = subprocess.run(
        [sys.executable, "-m", "miniworld.evaluate", "--help"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and "--probe DIR" in done.stdout and "--english-from" in done.stdout
