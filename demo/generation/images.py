"""PNG files with their generation parameters, and checks on images people upload."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from PIL import Image, PngImagePlugin

from demo.generation.errors import N_, UserError
from durable import write_bytes_atomically

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
    """Write atomically and durably: a reader never sees half a file, a crash never leaves one. Owner-only, as
    the prompt it carries may be someone else's."""
    return write_bytes_atomically(path, png_bytes(image, parameters), private=True)


def read_parameters(source: str | Path | Image.Image) -> dict:
    image = source if isinstance(source, Image.Image) else Image.open(source)
    text = getattr(image, "text", {}) or {}
    if "parameters" not in text:
        raise ImageError("this PNG carries no generation parameters")
    return json.loads(text["parameters"])


BYTES_PER_PIXEL = 28  # measured peak of decoding, converting and cropping one RGBA upload: 448 MB for 4096²


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_freed_images_to_the_system(threshold: int = 4 << 20) -> None:
    """Have glibc give buffers of `threshold` bytes and more back to the system when they are freed. By default it
    raises its mmap threshold after the first large free (up to 32 MiB), so Pillow's 16 MiB image blocks then land
    in per-thread arenas that keep them: 16 server threads that had each decoded one 4096² upload, one at a time,
    still held 1.2 GB after. A fixed threshold makes the decode budget a bound on resident memory. No-op off glibc."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(M_MMAP_THRESHOLD, threshold)
    except (OSError, AttributeError, TypeError):
        pass


class DecodeBusy(UserError):
    """The server is decoding as many uploads as its memory budget allows: try again shortly (503)."""

    default_code = "decode_busy"


class DecodeBudget:
    """One memory budget for decoding uploads, shared by every request of a server (search, image→image, A1111's
    `init_images`): a decode reserves its estimated peak (`BYTES_PER_PIXEL` per pixel, from the header) before it
    starts and frees it once the image is cut down to the size it is used at. A decode that does not fit waits up
    to `wait` seconds for others to finish, then is refused with `DecodeBusy`. So 16 hostile 4096² files at once
    cost `limit` bytes, not 16 × 400 MB; an image larger than the whole budget decodes alone."""

    def __init__(self, limit: int, wait: float = 10.0) -> None:
        self.limit, self.wait = limit, wait
        self.in_use = self.peak = self.waiting = 0  # bytes reserved now and at most; decodes waiting for room
        self._room = threading.Condition()

    @contextmanager
    def reserve(self, cost: int) -> Iterator[None]:
        cost = min(cost, self.limit)
        with self._room:
            self.waiting += 1
            self._room.notify_all()  # for whoever watches `waiting` (tests)
            try:
                fits = self._room.wait_for(lambda: self.in_use + cost <= self.limit, self.wait)
            finally:
                self.waiting -= 1
            if not fits:
                raise DecodeBusy(N_("the server is busy decoding other images; try again in a few seconds"))
            self.in_use += cost
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._room:
                self.in_use -= cost
                self._room.notify_all()


@contextmanager
def _decoding() -> Iterator[None]:
    """Pillow's errors on a hostile or broken file, as the reason the sender gets."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(N_("the image is too large to decode safely"), code="image_bomb") from error
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, UserError):
            raise
        raise ImageError(N_("the file is not a readable image"), code="image_unreadable") from error


def open_upload(
    data: bytes, *, budget: DecodeBudget | None = None, side: int | None = None, stretch: bool = False
) -> Image.Image:
    """Decode an uploaded image safely: sniff the real format, refuse decompression bombs, convert to RGB. With
    `side`, the result is a `side`×`side` square (centre crop, or stretched) made before the full-size copies are
    let go; with `budget`, the decode waits for its share of the server's decoding memory."""
    if not data:
        raise ImageError(N_("the uploaded file is empty"), code="image_empty")
    with _decoding():
        image = Image.open(io.BytesIO(data))  # lazy: reads the header only
        kind, (width, height), mode = image.format, image.size, image.mode
        if kind not in ACCEPTED_FORMATS:
            raise ImageError(
                N_("unsupported image type %(kind)s; use PNG, JPEG, WebP, BMP or GIF"),
                code="image_type",
                params={"kind": kind},
            )
        if width * height > MAX_PIXELS:
            raise ImageError(
                N_("the image is too large (%(width)d×%(height)d); at most %(limit)s pixels"),
                code="image_too_large",
                params={"width": width, "height": height, "limit": f"{MAX_PIXELS:,}"},
            )
    with budget.reserve(width * height * BYTES_PER_PIXEL) if budget else nullcontext():
        with _decoding():
            image.load()
        rgb = to_rgb(image, mode)
        if side:
            rgb = rgb.resize((side, side), Image.Resampling.LANCZOS) if stretch else fit(rgb, side)
        return rgb


def to_rgb(image: Image.Image, mode: str | None = None) -> Image.Image:
    """RGB for any ordinary mode (transparency composited on white); a clear error for others (16-bit, float)."""
    mode = mode or image.mode
    if min(image.size) < MIN_SIDE:
        raise ImageError(
            N_("the image is too small (%(width)d×%(height)d); at least %(limit)d pixels a side"),
            code="image_too_small",
            params={"width": image.width, "height": image.height, "limit": MIN_SIDE},
        )
    if mode not in CONVERTIBLE_MODES:
        raise ImageError(
            N_("unsupported image mode %(mode)s; use an 8-bit RGB, greyscale or palette image"),
            code="image_mode",
            params={"mode": mode},
        )
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
