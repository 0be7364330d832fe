"""Small configurations of the exact classes the real pipeline uses, sized for training on two CPU cores."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from transformers import CLIPConfig, CLIPModel

from miniworld.tokenizer import MAX_LENGTH
from miniworld.world import ATTRIBUTES, IMAGE_SIZE

TEXT_DIM = 128
SMALL_TEXT_DIM = 96  # the second, smaller text tower: SDXL's CLIP ViT-L beside its OpenCLIP bigG
PROJECTION_DIM = 128
LATENT_CHANNELS = 4
REFINER_TIME_DIM = 16
REFINER_TIME_IDS = 5  # original size (2), crop top-left (2), aesthetic score (1): the SDXL refiner's layout
SDXL_TIME_IDS = 6  # original size (2), crop top-left (2), target size (2): the SDXL base's layout


def clip_model(
    vocab_size: int,
    bos_token_id: int,
    eos_token_id: int,
    pad_token_id: int,
    text_dim: int = TEXT_DIM,
    text_layers: int = 4,
) -> CLIPModel:
    """A small CLIP; `text_dim` and `text_layers` size its text tower (the default is the embedded teacher's)."""
    text = dict(
        vocab_size=vocab_size,
        hidden_size=text_dim,
        intermediate_size=4 * text_dim,
        num_hidden_layers=text_layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        projection_dim=PROJECTION_DIM,  # each tower's config carries it too, for the *WithProjection classes
    )
    vision = dict(
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=16,
        projection_dim=PROJECTION_DIM,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION_DIM))


def vae() -> AutoencoderKL:
    """64×64×3 ↔ 16×16×4 latents; fully convolutional (no mid-block attention) so it trains on crops."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        mid_block_add_attention=False,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
        force_upcast=False,  # stored as float16, run in float32 on CPU: no per-call upcasting (and its warning)
    )


def base_unet() -> UNet2DConditionModel:
    """The SD2 layout: cross-attention on the text encoder's token states, linear projections in attention.

    Attention only at the coarsest (4×4) level keeps a training step near half a second on two cores.
    """
    return UNet2DConditionModel(**_unet_layout((32, 64, 128), heads=4))


def refiner_unet() -> UNet2DConditionModel:
    """The SDXL refiner layout: 'text_time' added conditioning (pooled text + 5 time ids with the aesthetic score)."""
    return UNet2DConditionModel(
        **_unet_layout((32, 64, 96), heads=4),
        addition_embed_type="text_time",
        addition_time_embed_dim=REFINER_TIME_DIM,
        projection_class_embeddings_input_dim=REFINER_TIME_DIM * REFINER_TIME_IDS + PROJECTION_DIM,
    )


def sdxl_base_unet() -> UNet2DConditionModel:
    """The SDXL base layout: cross-attention on two text towers' states side by side (96 + 128), and 'text_time'
    added conditioning (the second tower's pooled embedding + 6 size and crop time ids)."""
    return UNet2DConditionModel(
        **_unet_layout((32, 64, 128), heads=4, cross_attention_dim=SMALL_TEXT_DIM + TEXT_DIM),
        addition_embed_type="text_time",
        addition_time_embed_dim=REFINER_TIME_DIM,
        projection_class_embeddings_input_dim=REFINER_TIME_DIM * SDXL_TIME_IDS + PROJECTION_DIM,
    )


def _unet_layout(channels: tuple[int, ...], heads: int, cross_attention_dim: int = TEXT_DIM) -> dict:
    levels = len(channels)
    return dict(
        sample_size=IMAGE_SIZE // 4,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D",) * (levels - 1) + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1),
        block_out_channels=channels,
        layers_per_block=1,
        attention_head_dim=heads,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=16,
        use_linear_projection=True,
    )


def noise_scheduler() -> DDPMScheduler:
    """The Stable Diffusion training schedule."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
    )


class AttributeClassifier(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' own pair of bases
    """Reads every scene attribute off a 64×64 image: one softmax head per attribute."""

    @register_to_config
    def __init__(self, attributes: dict[str, list[str]] | None = None, width: int = 16) -> None:
        super().__init__()
        attributes = attributes or {name: list(values) for name, values in ATTRIBUTES.items()}
        self.attributes = attributes

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        stem = nn.Sequential(nn.Conv2d(5, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.features = nn.Sequential(
            stem, block(width, 2 * width), block(2 * width, 2 * width), block(2 * width, 4 * width)
        )
        self.heads = nn.ModuleDict(
            {name: nn.Linear(4 * width * 4 * 4, len(values)) for name, values in attributes.items()}
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """`images` in [-1, 1], shape (B, 3, 64, 64); returns logits per attribute."""
        b, _, h, w = images.shape
        ys = torch.linspace(-1, 1, h, device=images.device).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=images.device).view(1, 1, 1, w).expand(b, 1, h, w)
        features = self.features(torch.cat([images, ys, xs], dim=1)).flatten(1)
        return {name: head(features) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict[str, str]]:
        logits = self(images)
        picks = {name: out.argmax(-1).tolist() for name, out in logits.items()}
        return [
            {name: self.attributes[name][picks[name][i]] for name in self.attributes} for i in range(images.shape[0])
        ]
