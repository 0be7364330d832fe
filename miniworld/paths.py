"""Where the shipped embedded weights live."""

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
CLIP_DIR = WEIGHTS / "clip"
BASE_DIR = WEIGHTS / "sd-base"
REFINER_DIR = WEIGHTS / "sdxl-refiner"
EVALUATOR_DIR = WEIGHTS / "evaluator"
KOREAN_ENCODER_DIR = WEIGHTS / "ko-clip"
