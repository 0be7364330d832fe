import io

import pytest
from PIL import Image

from demo.generation.images import ImageError, fit, open_upload, png_bytes, read_parameters, write_png


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_uploads_in_ordinary_formats_and_modes_become_rgb():
    for fmt, mode in [("PNG", "RGBA"), ("JPEG", "L"), ("GIF", "P"), ("WEBP", "RGB"), ("BMP", "RGB")]:
        image = open_upload(encoded(Image.new(mode, (40, 30)), fmt))
        assert image.mode == "RGB" and image.size == (40, 30)


def test_transparency_is_composited_on_white():
    image = open_upload(encoded(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), "PNG"))
    assert image.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"<html>not an image</html>", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a readable image"),
        (encoded(Image.new("RGB", (64, 64)), "TIFF"), "unsupported image type TIFF"),
        (encoded(Image.new("I;16", (64, 64)), "PNG"), "unsupported image mode"),
        (encoded(Image.new("RGB", (4, 64)), "PNG"), "too small"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageError, match=message):
        open_upload(data)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encoded(Image.new("1", (5000, 5000)), "PNG")  # tiny file, 25 M pixels
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match="too large"):
        open_upload(bomb)


def test_fit_crops_to_a_centred_square():
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 100))
    fitted = fit(image, 64)
    assert fitted.size == (64, 64) and fitted.getpixel((32, 32)) == (0, 0, 255)


def test_png_parameters_round_trip_and_writes_are_atomic(tmp_path):
    parameters = {"prompt": "빨간 원 <b>", "seed": 3, "models": {"base": "x"}}
    path = write_png(Image.new("RGB", (8, 8)), tmp_path / "a" / "img.png", parameters)
    assert read_parameters(path) == parameters
    assert [p.name for p in path.parent.iterdir()] == ["img.png"]
    assert png_bytes(Image.new("RGB", (8, 8)), parameters).startswith(b"\x89PNG")
    with pytest.raises(ImageError, match="no generation parameters"):
        read_parameters(Image.open(io.BytesIO(encoded(Image.new("RGB", (8, 8)), "PNG"))))
