"""Pillow decoding (modes, 16-bit, EXIF, rejections) and the crop/pad/stretch fits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from classify.data.images import ImageRejected, decode_image, fit_square, to_channels


def _stripes() -> np.ndarray:
    """64 wide x 32 tall, columns 0-15 and 48-63 black, 16-47 white: [32, 64, 1]."""
    img = np.zeros((32, 64, 1), dtype=np.uint8)
    img[:, 16:48] = 255
    return img


def test_fit_crop_keeps_the_centre():
    out = fit_square(_stripes(), 32, "crop")
    assert out.shape == (32, 32, 1)
    assert out.min() == 255  # the centre 32 columns are all white; the black sides are cut


def test_fit_pad_keeps_everything_with_borders():
    out = fit_square(_stripes(), 32, "pad")[..., 0]
    assert out.shape == (32, 32)
    assert out[:8].max() == 0 and out[24:].max() == 0  # 64x32 -> 32x16, 8 rows of black above and below
    band = out[8:24]
    assert band[:, :6].max() < 20 and band[:, 26:].max() < 20  # the black side stripes survive
    assert band[:, 10:22].min() > 235


def test_fit_stretch_squeezes_width():
    out = fit_square(_stripes(), 32, "stretch")[..., 0]
    assert out.shape == (32, 32)
    assert out[:, :6].max() < 20 and out[:, 26:].max() < 20
    assert out[:, 10:22].min() > 235  # every row has the pattern: no border


def test_fit_rgb_and_upscale():
    rgb = np.zeros((10, 20, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    out = fit_square(rgb, 32, "crop")
    assert out.shape == (32, 32, 3)
    assert abs(int(out[..., 0].mean()) - 200) <= 1 and out[..., 1].max() == 0
    with pytest.raises(ValueError):
        fit_square(rgb, 8, "zoom")


def test_to_channels():
    gray = np.full((4, 5), 7, dtype=np.uint8)
    assert to_channels(gray, 3).shape == (4, 5, 3)
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    one = to_channels(rgb, 1)
    assert one.shape == (4, 5, 1) and 140 < one.mean() < 160  # luma of pure green ~150


def _save(tmp_path, name, img: Image.Image, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def test_modes_and_notes(tmp_path):
    rgba = decode_image(_save(tmp_path, "a.png", Image.new("RGBA", (6, 4), (10, 20, 30, 0))))
    assert rgba.channels == 3 and rgba.mode == "RGBA" and "alpha" in rgba.note
    assert rgba.pixels[0, 0].tolist() == [10, 20, 30]
    wide = np.full((4, 6), 65535, dtype=np.uint16)
    wide[0, 0] = 257 * 100
    sixteen = decode_image(_save(tmp_path, "w.png", Image.fromarray(wide)))
    assert sixteen.channels == 1 and "16-bit" in sixteen.note
    assert sixteen.pixels.max() == 255 and sixteen.pixels[0, 0] == 100
    cmyk = decode_image(_save(tmp_path, "c.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0))))
    assert cmyk.channels == 3 and "CMYK" in cmyk.note
    # cyan-free magenta+yellow = red
    assert cmyk.pixels[..., 0].mean() > 200 and cmyk.pixels[..., 1].mean() < 60
    gray_palette = Image.new("L", (5, 5), 77).convert("P")
    p = decode_image(_save(tmp_path, "p.png", gray_palette))
    assert p.channels == 1 and p.pixels[0, 0] == 77 and "palette" in p.note
    plain = decode_image(_save(tmp_path, "l.png", Image.new("L", (5, 3), 9)))
    assert (plain.width, plain.height, plain.note) == (5, 3, "")


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((4, 8), dtype=np.uint8)
    arr[0, 7] = 255  # top-right marker in an 8 wide x 4 tall image
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.png"
    img.save(path, exif=exif.tobytes())
    out = decode_image(path)
    assert (out.width, out.height) == (4, 8) and "EXIF" in out.note
    assert out.pixels[7, 3] == 255  # top-right moves to bottom-right after a 90 degree CW turn


def test_rejections(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image\n")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageRejected, match="0 bytes"):
        decode_image(tmp_path / "zero.png")
    with pytest.raises(ImageRejected, match="not an image"):
        decode_image(tmp_path / "text.png")
    with pytest.raises(ImageRejected, match="truncated"):
        decode_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageRejected, match="cannot read"):
        decode_image(tmp_path / "absent.png")


def _valid_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(24 * 16, dtype=np.uint8).reshape(16, 24)).save(buf, fmt)
    return buf.getvalue()


@settings(max_examples=120, deadline=None, database=None)
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "WEBP"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6),
)
def test_damaged_files_never_crash(tmp_path_factory, fmt, cut, flips):
    """A damaged file either decodes to a valid uint8 array or is rejected with a reason."""
    data = bytearray(_valid_bytes(fmt))
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: int(cut * len(data))]) if cut < 0.98 else bytes(data)
    path = tmp_path_factory.mktemp("fuzz") / f"f.{fmt.lower()}"
    path.write_bytes(data)
    try:
        out = decode_image(path)
    except ImageRejected as exc:
        assert str(exc)
    else:
        assert out.pixels.dtype == np.uint8 and out.pixels.ndim in (2, 3) and out.width > 0
