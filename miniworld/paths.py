"""Where the shipped embedded weights live."""

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
CLIP_DIR = WEIGHTS / "clip"
CLIP_SMALL_DIR = WEIGHTS / "clip-small"  # the SDXL-layout base's first text tower (its `text_encoder`)
BASE_DIR = WEIGHTS / "sd-base"
REFINER_DIR = WEIGHTS / "sdxl-refiner"
SDXL_BASE_DIR = WEIGHTS / "sdxl-base"
EVALUATOR_DIR = WEIGHTS / "evaluator"
KOREAN_ENCODER_DIR = WEIGHTS / "ko-clip"
