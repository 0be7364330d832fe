"""Every shipped embedded model loads offline with `from_pretrained` as the class the real pipeline uses."""

import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPModel,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)

from ko_clip import KoreanPromptEncoder
from miniworld.components import AttributeClassifier
from miniworld.paths import (
    BASE_DIR,
    CLIP_DIR,
    CLIP_SMALL_DIR,
    EVALUATOR_DIR,
    KOREAN_ENCODER_DIR,
    REFINER_DIR,
    SDXL_BASE_DIR,
    WEIGHTS,
)


def test_clip_loads_as_every_tower_class():
    assert isinstance(CLIPModel.from_pretrained(CLIP_DIR), CLIPModel)
    text = CLIPTextModelWithProjection.from_pretrained(CLIP_DIR)
    vision = CLIPVisionModelWithProjection.from_pretrained(CLIP_DIR)
    tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR)
    ids = tokenizer(
        ["a large red circle on the left on a white background"],
        padding="max_length",
        max_length=77,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        text_embeds = text(ids).text_embeds
        image_embeds = vision(pixel_values=torch.zeros(1, 3, 64, 64)).image_embeds
    assert text_embeds.shape == image_embeds.shape == (1, 128)
    assert isinstance(CLIPTextModel.from_pretrained(CLIP_DIR), CLIPTextModel)


def test_base_is_a_stable_diffusion_pipeline_directory():
    pipe = StableDiffusionPipeline.from_pretrained(BASE_DIR)
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(pipe.components)
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.vae, AutoencoderKL)
    assert (
        pipe.unet.config.use_linear_projection
        and pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    )
    assert (BASE_DIR / "model_index.json").exists() and (
        BASE_DIR / "unet" / "diffusion_pytorch_model.safetensors"
    ).exists()


def test_refiner_is_an_sdxl_img2img_pipeline_directory():
    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(REFINER_DIR)
    assert pipe.text_encoder is None and isinstance(pipe.text_encoder_2, CLIPTextModelWithProjection)
    assert pipe.unet.config.addition_embed_type == "text_time" and pipe.config.requires_aesthetics_score
    assert (
        pipe.unet.config.projection_class_embeddings_input_dim
        == 5 * pipe.unet.config.addition_time_embed_dim + pipe.text_encoder_2.config.projection_dim
    )


def test_sdxl_base_is_an_sdxl_pipeline_over_two_text_towers():
    pipe = StableDiffusionXLPipeline.from_pretrained(SDXL_BASE_DIR)
    assert isinstance(pipe.text_encoder, CLIPTextModel) and isinstance(pipe.text_encoder_2, CLIPTextModelWithProjection)
    assert pipe.unet.config.addition_embed_type == "text_time" and not pipe.config.force_zeros_for_empty_prompt
    assert pipe.unet.config.cross_attention_dim == (
        pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    )
    small = CLIPModel.from_pretrained(CLIP_SMALL_DIR).state_dict()
    assert all(torch.equal(small[f"text_model.{k}"], t) for k, t in pipe.text_encoder.state_dict().items())


def test_pipeline_text_encoders_are_the_clip_text_tower():
    clip = CLIPModel.from_pretrained(CLIP_DIR).state_dict()
    base = StableDiffusionPipeline.from_pretrained(BASE_DIR).text_encoder.state_dict()
    assert len(base) > 50 and all(torch.equal(clip[f"text_model.{k}"], tensor) for k, tensor in base.items())


def test_evaluator_and_korean_encoder_load():
    assert isinstance(AttributeClassifier.from_pretrained(EVALUATOR_DIR), AttributeClassifier)
    encoder = KoreanPromptEncoder.from_pretrained(KOREAN_ENCODER_DIR)
    assert set(encoder.targets) == {
        "miniworld-clip:last",
        "miniworld-clip:penultimate",
        "miniworld-clip-small:penultimate",
    }


def test_all_shipped_weights_are_safetensors_and_small():
    """Seven small models (two CLIPs, three pipelines, the evaluator, the Korean encoder) stay under 64 MiB."""
    files = [p for p in WEIGHTS.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    assert sum(p.stat().st_size for p in files) < 64 * 2**20
