"""PNG files with their generation parameters, and checks on images people upload."""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path

from PIL import Image, PngImagePlugin

from demo.generation.errors import UserError

ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF"}
CONVERTIBLE_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"}
MIN_SIDE = 16
MAX_PIXELS = 4096 * 4096


class ImageError(UserError):
    """An image that cannot be used, with a message meant for the person who sent it."""


def png_bytes(image: Image.Image, parameters: dict) -> bytes:
    """PNG with the parameters as a JSON `parameters` text chunk and the prompt in a `prompt` chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", json.dumps(parameters, ensure_ascii=False))
    info.add_itxt("prompt", str(parameters.get("prompt", "")))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(image: Image.Image, path: str | Path, parameters: dict) -> Path:
    """Write atomically: a reader never sees half a file, a crash never leaves one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(png_bytes(image, parameters))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_parameters(source: str | Path | Image.Image) -> dict:
    image = source if isinstance(source, Image.Image) else Image.open(source)
    text = getattr(image, "text", {}) or {}
    if "parameters" not in text:
        raise ImageError("this PNG carries no generation parameters")
    return json.loads(text["parameters"])


def open_upload(data: bytes) -> Image.Image:
    """Decode an uploaded image safely: sniff the real format, refuse decompression bombs, convert to RGB."""
    if not data:
        raise ImageError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # lazy: reads the header only
        kind, (width, height), mode = image.format, image.size, image.mode
        if kind not in ACCEPTED_FORMATS:
            raise ImageError(f"unsupported image type {kind}; use PNG, JPEG, WebP, BMP or GIF")
        if width * height > MAX_PIXELS:
            raise ImageError(f"the image is too large ({width}×{height}); at most {MAX_PIXELS:,} pixels")
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError("the image is too large to decode safely") from error
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageError):
            raise
        raise ImageError("the file is not a readable image") from error
    return to_rgb(image, mode)


def to_rgb(image: Image.Image, mode: str | None = None) -> Image.Image:
    """RGB for any ordinary mode (transparency composited on white); a clear error for others (16-bit, float)."""
    mode = mode or image.mode
    if min(image.size) < MIN_SIDE:
        raise ImageError(f"the image is too small ({image.width}×{image.height}); at least {MIN_SIDE} pixels a side")
    if mode not in CONVERTIBLE_MODES:
        raise ImageError(f"unsupported image mode {mode}; use an 8-bit RGB, greyscale or palette image")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def fit(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to `size`×`size`."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
