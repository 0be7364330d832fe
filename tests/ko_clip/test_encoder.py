"""ko_clip.encoder: KoreanPromptEncoder's pipeline-shaped outputs, saving and loading, re-spacing, and the shipped
encoder on prompts as people write them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from ko_clip import KoreanPromptEncoder, KoreanStudent, KoreanStudentConfig, Target
from ko_clip.student import scratch_student, train_wordpiece
from miniworld.paths import KOREAN_ENCODER_DIR

PROBES = Path(__file__).resolve().parents[2] / "ko_clip" / "probes"

SD2_LIKE = Target("base", hidden_size=1024)
REFINER_LIKE = Target("refiner", hidden_size=1280, pooled_size=1280)
TINY_BACKBONE = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def tiny_encoder(head: str = "cross_attention") -> KoreanPromptEncoder:
    tokenizer = train_wordpiece(["빨간 원이 왼쪽에 있다", "파란 네모가 가운데에 있다", "a red circle"], vocab_size=200)
    model = scratch_student(
        tokenizer, [SD2_LIKE, REFINER_LIKE], TINY_BACKBONE, trunk=head, trunk_layers=1, trunk_heads=2
    )
    return KoreanPromptEncoder(model, tokenizer)


def test_heads_give_pipeline_shapes_for_sd2_and_refiner_targets():
    for head in ("cross_attention", "positional"):
        encoder = tiny_encoder(head)
        base = encoder.encode(["빨간 원", "아주 긴 문장 " * 10], "base")
        refiner = encoder.encode(["빨간 원", "파란 네모"], "refiner")
        assert base.prompt_embeds.shape == (2, 77, 1024) and base.pooled_prompt_embeds is None
        assert refiner.prompt_embeds.shape == (2, 77, 1280) and refiner.pooled_prompt_embeds.shape == (2, 1280)


def test_korean_and_english_lengths_differ_but_output_length_does_not():
    encoder = tiny_encoder()
    short, long = (
        encoder.encode(["원"], "base"),
        encoder.encode(["왼쪽에 있는 아주 커다란 빨간색 동그라미 " * 3], "base"),
    )
    assert short.prompt_embeds.shape == long.prompt_embeds.shape == (1, 77, 1024)


def test_empty_prompt_gets_the_teachers_unconditional_embedding():
    encoder = tiny_encoder()
    head = encoder.model.heads["refiner"]
    head.null_tokens.fill_(0.5)
    head.null_pooled.fill_(-1.0)
    out = encoder.encode(["", "빨간 원"], "refiner")
    assert torch.equal(out.prompt_embeds[0], head.null_tokens) and torch.equal(
        out.pooled_prompt_embeds[0], head.null_pooled
    )
    assert not torch.equal(out.prompt_embeds[1], head.null_tokens)


def test_save_and_load_round_trip_gives_identical_embeddings(tmp_path):
    encoder = tiny_encoder()
    encoder.model.heads["base"].null_tokens.normal_()
    encoder.save_pretrained(tmp_path)
    reloaded = KoreanPromptEncoder.from_pretrained(tmp_path)
    assert isinstance(reloaded.model, KoreanStudent) and isinstance(reloaded.model.config, KoreanStudentConfig)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    for target in ("base", "refiner"):
        a, b = (
            encoder.encode(["빨간 원이 왼쪽에 있다", ""], target),
            reloaded.encode(["빨간 원이 왼쪽에 있다", ""], target),
        )
        assert torch.equal(a.prompt_embeds, b.prompt_embeds)
        if target == "refiner":
            assert torch.equal(a.pooled_prompt_embeds, b.pooled_prompt_embeds)
    assert AutoTokenizer.from_pretrained(tmp_path)("빨간 원").input_ids == encoder.tokenizer("빨간 원").input_ids


def test_unknown_target_is_a_clear_error():
    with pytest.raises(KeyError, match="no head 'sdxl'; it has base, refiner"):
        tiny_encoder().encode(["원"], "sdxl")


# One prompt per way of writing, from the shipped probe files.
AS_PEOPLE_WRITE = {  # category file → row (also the seed)
    "loanwords": 0,  # 라지 블루 다이아몬드, 아래쪽, 검은 배경
    "no_spacing": 0,  # 좌측쪽에노란색네모가크게있고배경은회색인그림
    "mixed_script": 0,  # large orange star, black 배경 위쪽
    "typos": 0,  # 마롬모 하나를 그리는데 색은 노란색, 크기는 커, 자리는 아래쪾, 바탕은 흰색
    "synonyms": 0,  # 회색빛 배경 맨 아래에 커다랗고 넓은 새파란 세모난 것
    "long_requests": 0,
    "new_patterns": 0,
}


@pytest.mark.slow
def test_shipped_encoder_reads_korean_as_people_write_it_through_the_product(generator, scorer):
    from demo.generation.evaluation import generate
    from miniworld.prompts import read_prompts

    prompts, scenes = [], []
    for category, row in AS_PEOPLE_WRITE.items():
        file_prompts, file_scenes = read_prompts(PROBES / f"{category}.csv")
        prompts.append(file_prompts[row])
        scenes.append(file_scenes[row])
    images = generate(generator, prompts, seeds=list(AS_PEOPLE_WRITE.values()))
    report = scorer.score(images, scenes)
    assert report.all_correct == 1.0, report.per_attribute


@pytest.mark.slow
def test_kiwi_normalisation_respaces_prompts_before_the_encoder(tmp_path):
    shutil.copytree(KOREAN_ENCODER_DIR, tmp_path / "kiwi")
    config = json.loads((tmp_path / "kiwi" / "config.json").read_text())
    (tmp_path / "kiwi" / "config.json").write_text(json.dumps(config | {"normalize": "kiwi"}))
    plain = KoreanPromptEncoder.from_pretrained(KOREAN_ENCODER_DIR)
    respacing = KoreanPromptEncoder.from_pretrained(tmp_path / "kiwi")
    assert plain.space is None
    unspaced = "검은바탕오른쪽에작은파란별"
    spaced = respacing.space(unspaced)
    assert spaced == "검은 바탕 오른쪽에 작은 파란 별"
    head = "miniworld-clip:last"
    assert torch.equal(respacing.encode(unspaced, head).prompt_embeds, plain.encode(spaced, head).prompt_embeds)
