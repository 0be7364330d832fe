"""Every SD family through the one generator, on tiny random pipelines built by the same code as the full-size
check (`benchmarks.random_pipelines`): which heads stand for which towers, what each pipeline is handed, and what
comes out."""

import pytest
import torch

from benchmarks.random_pipelines import (
    REFINER,
    build_pipelines,
    build_student,
    english_tokenizer,
    generator_config,
    student_targets,
    tiny,
)
from demo.generation.families import detect_family
from demo.generation.pipeline import ImageGenerator
from demo.generation.request import GenerationError, Request
from ko_clip import Target

PROMPT = "바닷가에서 뛰노는 강아지"
BIGG = "openclip-vit-bigg-14:penultimate"
SIZES = {"sd15": 32, "sd2": 48, "sdxl": 64}  # each family's own size (512, 768, 1024) / 16 in the tiny layouts
HEADS = {
    "sd15": {"base": ["clip-vit-l-14:last"]},
    "sd2": {"base": ["openclip-vit-h-14:last"], "refiner": ["openclip-vit-bigg-14:penultimate"]},
    "sdxl": {
        "base": ["clip-vit-l-14:penultimate", "openclip-vit-bigg-14:penultimate"],
        "refiner": ["openclip-vit-bigg-14:penultimate"],
    },
}


def every_head(family):
    return sorted({head for heads in HEADS[family].values() for head in heads})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Tiny sd15, sd2, sdxl and refiner pipelines; students with every head, with SD 1.5's alone, and with the
    role-named heads ('base', 'refiner') that encoders had before heads were named after towers."""
    root = tmp_path_factory.mktemp("families")
    arch = tiny(english_tokenizer())
    build_pipelines(["sd15", "sd2", "sdxl", REFINER], arch, root)
    build_student(arch, student_targets(arch), root / "ko-clip", torch.float32, "cpu")
    build_student(arch, student_targets(arch, ["sd15"]), root / "ko-clip-sd15", torch.float32, "cpu")
    legacy = [Target("base", 1024), Target("refiner", 32, pooled_size=20)]  # SD2's H/14 and the refiner's bigG
    build_student(arch, legacy, root / "ko-clip-legacy", torch.float32, "cpu")
    return root


def config(root, family, refiner=None, **settings):
    refiner = family != "sd15" if refiner is None else refiner
    return generator_config(root, family, refiner, steps=4, refiner_strength=0.5, **settings)


class Recording:
    """Stands in for a pipeline: keeps the keyword arguments of every call, then makes the real one."""

    def __init__(self, pipeline):
        self.pipeline, self.calls = pipeline, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.pipeline(**kwargs)


def test_the_family_is_read_from_the_pipeline_layout(root):
    assert {name: detect_family(str(root / name)).name for name in ("sd15", "sd2", "sdxl", REFINER)} == {
        "sd15": "sd15",
        "sd2": "sd2",
        "sdxl": "sdxl",
        REFINER: REFINER,
    }


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_each_pipeline_gets_its_towers_heads_side_by_side_and_images_come_at_its_size(root, family):
    generator = ImageGenerator(config(root, family))
    assert generator.heads == HEADS[family]
    assert {role: [read.head for read in reads] for role, reads in generator.reads.items()} == HEADS[family]
    generator.base, generator.refiner = Recording(generator.base), generator.refiner and Recording(generator.refiner)
    result = generator(Request(PROMPT, negative_prompt="", seed=0))
    assert [image.size for image in result.images] == [(SIZES[family], SIZES[family])]

    embeds = generator.encoder.encode_all([PROMPT, ""], every_head(family))
    for role, pipeline in (("base", generator.base), ("refiner", generator.refiner)):
        if pipeline is None:
            continue
        [handed] = pipeline.calls
        heads = HEADS[family][role]
        expected = torch.cat([embeds[head].prompt_embeds for head in heads], dim=-1)
        torch.testing.assert_close(handed["prompt_embeds"], expected[:1])
        torch.testing.assert_close(handed["negative_prompt_embeds"], expected[1:])
        assert handed["prompt_embeds"].shape[-1] == pipeline.pipeline.unet.config.cross_attention_dim
        pooled = handed.get("pooled_prompt_embeds")
        if role == "refiner" or family == "sdxl":  # the SDXL UNets also take bigG's pooled embedding
            torch.testing.assert_close(pooled, embeds[BIGG].pooled_prompt_embeds[:1])
        else:
            assert pooled is None


def test_sdxl_concatenates_clip_l_then_bigg(root):
    generator = ImageGenerator(config(root, "sdxl", refiner=False))
    text, _ = generator.encode_prompts([PROMPT], [""], ["base"])
    tokens = text["base"]["prompt_embeds"]
    assert tokens.shape == (1, 77, 768 + 32) and text["base"]["pooled_prompt_embeds"].shape == (1, 20)
    clip_l = generator.encoder.encode([PROMPT], "clip-vit-l-14:penultimate").prompt_embeds
    torch.testing.assert_close(tokens[..., :768], clip_l)


def test_role_named_heads_still_stand_for_one_tower_pipelines(root):
    generator = ImageGenerator(config(root, "sd2", korean_encoder="ko-clip-legacy"))
    assert generator.heads == {"base": ["base"], "refiner": ["refiner"]}
    result = generator(Request(PROMPT, seed=0))
    assert result.images[0].size == (48, 48) and not result.notes


@pytest.mark.parametrize("encoder", ["ko-clip-sd15", "ko-clip-legacy"])  # a role name cannot stand for two towers
def test_a_missing_base_head_is_a_clear_error(root, encoder):
    with pytest.raises(GenerationError, match=r"no head for the sdxl base's text towers \(clip-vit-l-14:penultimate"):
        ImageGenerator(config(root, "sdxl", korean_encoder=encoder))


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_the_english_towers_drive_every_family(root, family):
    generator = ImageGenerator(config(root, family), prompt_encoder="english")
    assert sorted(generator.encoder.targets) == every_head(family)
    result = generator(Request("a puppy on the beach", seed=0))
    assert result.images[0].size == (SIZES[family], SIZES[family])


def test_sdxl_with_its_refiner_runs_in_bfloat16_on_a_cpu(root):
    generator = ImageGenerator(config(root, "sdxl", dtype="bfloat16", device="cpu"))
    modules = [generator.base.unet, generator.base.vae, generator.refiner.unet, generator.encoder.model]
    assert {p.dtype for m in modules for p in m.parameters()} == {torch.bfloat16}
    result = generator(Request(PROMPT, seed=0, refiner=True))
    assert result.images[0].size == (64, 64)
