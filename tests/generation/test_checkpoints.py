"""What people download: single-file fine-tunes and LoRAs, loaded through the product's generator.

The files are written by `miniworld.exports` from the embedded pipelines, in the layouts real downloads have
(original Stable Diffusion keys; diffusers/peft LoRA keys), so the loading path is the one a real file takes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from safetensors import safe_open

from demo.generation.config import Lora, load_config
from demo.generation.pipeline import ImageGenerator
from demo.generation.request import GenerationError, Request
from miniworld.exports import build_lora, export_single_file, unet_to_ldm, vae_to_ldm
from miniworld.paths import BASE_DIR, REFINER_DIR

PROMPT = "흰 배경 왼쪽에 있는 큰 빨간 원"
REQUEST = Request(PROMPT, seed=1, steps=5, refiner=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("downloads")
    return {
        "single": export_single_file(BASE_DIR, out / "miniworld-finetune.safetensors"),
        "lora": build_lora(BASE_DIR, out / "style.safetensors"),
        "lora_te": build_lora(BASE_DIR, out / "style-with-te.safetensors", seed=1, text_encoder=True),
    }


def image(generator: ImageGenerator) -> np.ndarray:
    return np.asarray(generator(REQUEST).images[0])


@pytest.mark.parametrize("directory", [BASE_DIR, REFINER_DIR], ids=["sd2-layout", "sdxl-refiner-layout"])
def test_export_is_the_exact_inverse_of_diffusers_single_file_conversion(directory):
    pipe = DiffusionPipeline.from_pretrained(directory)
    unet, vae = pipe.unet.state_dict(), pipe.vae.state_dict()
    unet_back = convert_ldm_unet_checkpoint(unet_to_ldm(pipe.unet), dict(pipe.unet.config))
    vae_back = convert_ldm_vae_checkpoint(vae_to_ldm(pipe.vae), dict(pipe.vae.config))
    assert unet_back.keys() == unet.keys() and vae_back.keys() == vae.keys()
    assert all(torch.equal(unet_back[k], unet[k]) for k in unet)
    assert all(torch.equal(vae_back[k], vae[k]) for k in vae)


@pytest.mark.slow
def test_single_file_base_loads_offline_and_draws_the_same_image(generator, files):
    with safe_open(files["single"], "pt") as f:
        assert all(k.startswith(("model.diffusion_model.", "first_stage_model.")) for k in f.keys())
    config = replace(generator.config, base=str(files["single"]), base_config=str(BASE_DIR))
    single = ImageGenerator(config)
    assert single.family.name == "sd2" and type(single.base) is type(generator.base)
    assert np.array_equal(image(single), image(generator))


@pytest.mark.slow
def test_single_file_base_without_its_layout_is_a_clear_error(files):
    config = replace(load_config("embedded"), base=str(files["single"]))
    with pytest.raises(GenerationError, match="needs `base_config`"):
        ImageGenerator(config)


@pytest.mark.slow
def test_lora_changes_the_image_by_its_weight_and_says_nothing_when_unet_only(generator, files):
    base = replace(generator.config, refiner=None)
    plain = image(generator)
    strong = ImageGenerator(replace(base, loras=[Lora(str(files["lora"]), 1.0)]))
    result = strong(REQUEST)
    assert result.notes == [] and not np.array_equal(np.asarray(result.images[0]), plain)
    off = ImageGenerator(replace(base, loras=[Lora(str(files["lora"]), 0.0)]))
    assert np.array_equal(image(off), plain)  # weight 0: the adapter is loaded but adds nothing


@pytest.mark.slow
def test_lora_with_a_text_encoder_part_is_applied_to_the_unet_and_says_so(generator, files):
    with safe_open(files["lora_te"], "pt") as f:
        assert {k.split(".")[0] for k in f.keys()} == {"unet", "text_encoder"}
    config = replace(generator.config, refiner=None, loras=[Lora(str(files["lora_te"]), 0.8)])
    result = ImageGenerator(config)(REQUEST)
    assert (
        len(result.notes) == 1
        and "style-with-te.safetensors also trained the English text encoder" in (result.notes[0])
    )
    assert not np.array_equal(np.asarray(result.images[0]), image(generator))


@pytest.mark.slow
def test_a_lora_that_is_not_one_is_a_clear_error(generator, tmp_path):
    bogus = tmp_path / "not-a-lora.safetensors"
    bogus.write_bytes(b"not safetensors at all")
    with pytest.raises(GenerationError, match="cannot read the LoRA"):
        ImageGenerator(replace(generator.config, refiner=None, loras=[Lora(str(bogus))]))


def test_config_reads_loras_as_paths_or_path_and_weight(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: x\nbase: b.safetensors\nbase_config: miniworld/weights/sd-base\nkorean_encoder: k\n"
        "loras: [a.safetensors, {path: b.safetensors, weight: 0.5}]\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.loras == [Lora("a.safetensors", 1.0), Lora("b.safetensors", 0.5)]
    path.write_text("name: x\nbase: b\nkorean_encoder: k\nloras: [{path: a, strength: 2}]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="strength"):
        load_config(path)
