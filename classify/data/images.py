"""Decode one image file with Pillow into a uint8 array, or say why it cannot be used.

Every prepared image becomes either 1 channel (L) or 3 channels (RGB), 8 bits each. The
conversions that change what the pixels mean (alpha dropped, 16 bits scaled to 8, CMYK
to RGB, palette expanded, EXIF rotation) are returned as a short note, so that
`report.md` can list them instead of applying them silently.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classify.core.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Pillow modes that hold more than 8 bits per sample in one channel.
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# A 16-bit file whose values all stay below 4096 holds at most 12-bit data (or is nearly black).
LOW_RANGE_16BIT = 4096
LOW_RANGE_NOTE = ", but its values stay below 4096 (12-bit data?), so it is nearly black"


class ImageRejected(Exception):
    """The file is not a usable image; `str(exc)` is the reason shown in the report."""


@dataclass
class DecodedImage:
    pixels: np.ndarray  # uint8, [H, W] for 1 channel or [H, W, 3]
    mode: str  # the file's own Pillow mode, before any conversion
    note: str  # "" when the pixels were used as stored

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else 3

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Pixels (width x height) a file may decode to. Small files can declare huge images (a 124 KB 16-bit
# PNG of 8000^2, a 20 KB palette PNG of 13000^2): refused from the header, before any pixel is
# decoded. 40 M is ~6300^2, far above what this suite trains on (<= 1024) and half of Pillow's own
# warning limit; `classify prepare --max-pixels` raises it.
MAX_PIXELS = 40_000_000


def decode_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Fully decode `path` (so truncation is caught here, not in a training epoch), refusing images
    of more than `max_pixels` pixels from their header alone."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageRejected(f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageRejected("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns about large images and damaged EXIF; neither makes the pixels
            # unusable, and thousands of warnings would bury the one-line summary.
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageRejected(f"{width}x{height} is {width * height / 1e6:.0f} M pixels, above the decode "
                                        f"budget of {max_pixels / 1e6:.0f} M (classify prepare --max-pixels)")
                img.load()
                return _to_8bit(img)
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected("not an image Pillow can read (wrong extension or corrupt header)") from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"image too large to decode safely ({exc})") from None
    except PermissionError:
        raise ImageRejected("permission denied when reading the file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt pixel data as OSError ("image file is truncated").
        raise ImageRejected(f"corrupt or truncated image data ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - hostile files reach odd decoder paths (struct.error, IndexError...)
        # One malformed file must cost one report line, not the whole prepare run.
        raise ImageRejected(f"decoder failed ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _to_8bit(img: Image.Image) -> DecodedImage:
    mode = img.mode
    notes: list[str] = []
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        img = ImageOps.exif_transpose(img)
        notes.append(f"EXIF orientation {orientation} applied")
    pixels, note = _convert_mode(img)
    if note:
        notes.append(note)
    return DecodedImage(pixels=np.ascontiguousarray(pixels), mode=mode, note="; ".join(notes))


def _convert_mode(img: Image.Image) -> tuple[np.ndarray, str]:
    mode = img.mode
    if mode in ("L", "RGB"):
        return np.asarray(img, dtype=np.uint8), ""
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8), ""
    if mode == "LA":
        return np.asarray(img.convert("L"), dtype=np.uint8), "LA: alpha dropped"
    if mode in _WIDE_GRAY_MODES:
        # No int64 copy (8 bytes a pixel): 16-bit samples stay 2 bytes, 32-bit ones are clipped first.
        wide = np.asarray(img)
        if wide.dtype.itemsize > 2 or wide.dtype.kind == "i":
            wide = np.clip(wide, 0, 65535).astype(np.uint16)
        # 16-bit samples span 0..65535; dividing by 257 maps 65535 exactly to 255. One fixed
        # scale for every file keeps intensities comparable across images; per-image stretching
        # would not. Cameras that store 10-12-bit data in 16-bit files then come out nearly
        # black, which the note (and prepare's warning) makes visible.
        scaled = np.clip(wide, 0, 65535) // 257
        note = f"{mode}: 16-bit scaled to 8-bit"
        if wide.size and int(wide.max()) < LOW_RANGE_16BIT:
            note += LOW_RANGE_NOTE
        return scaled.astype(np.uint8), note
    if mode == "F":
        raise ImageRejected("32-bit float image (mode F) has no defined 8-bit range; convert it to 8 or 16 bit")
    if mode in ("P", "PA"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0]), "palette (P) expanded to grayscale"
        return rgb, "palette (P) expanded to RGB"
    if mode == "RGBA":
        return np.asarray(img.convert("RGB"), dtype=np.uint8), "RGBA: alpha dropped, kept RGB"
    if mode == "CMYK":
        return np.asarray(img.convert("RGB"), dtype=np.uint8), "CMYK converted to RGB"
    try:
        return np.asarray(img.convert("RGB"), dtype=np.uint8), f"{mode} converted to RGB"
    except ValueError:
        raise ImageRejected(f"unsupported image mode {mode}; convert it to L or RGB") from None


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """[H, W] or [H, W, 3] uint8 -> [H, W, channels] uint8 (ITU-R 601 luma for RGB -> 1)."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    have = pixels.shape[2]
    if have == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=2)
    gray = Image.fromarray(pixels).convert("L")
    return np.asarray(gray, dtype=np.uint8)[..., None]


# What fit_square does; `auto` is a request that classify.data.aspect.resolve_fit turns into
# one of them from a prepared folder's aspect ratios (pad when they vary, else crop).
SQUARE_FITS = ("crop", "pad", "stretch")
FITS = (*SQUARE_FITS, "auto")


def check_fit(fit: str) -> str:
    """The one check of a fit name as requested (every command's --fit); `auto` included."""
    if fit not in FITS:
        raise UserError(f"--fit {fit!r} is not one of {', '.join(FITS)}")
    return fit


def fit_square(pixels: np.ndarray, res: int, fit: str) -> np.ndarray:
    """Resize [H, W, C] uint8 to [res, res, C].

    crop: scale the short side to `res`, centre-crop the long side (no borders, loses edges).
    pad: scale the long side to `res`, centre it on black (keeps everything, adds borders).
    stretch: resize each axis on its own (keeps everything, distorts the aspect ratio).
    """
    if fit not in SQUARE_FITS:  # `auto` must have been resolved (classify.data.aspect.resolve_fit)
        raise ValueError(f"fit must be one of {SQUARE_FITS}, got {fit!r}")
    h, w, c = pixels.shape
    img = Image.fromarray(pixels[..., 0] if c == 1 else pixels)
    if fit == "stretch":
        out = _resize(img, res, res)
    elif fit == "crop":
        scale = res / min(h, w)
        nw, nh = max(res, round(w * scale)), max(res, round(h * scale))
        left, top = (nw - res) // 2, (nh - res) // 2
        out = _resize(img, nw, nh).crop((left, top, left + res, top + res))
    else:
        scale = res / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new(img.mode, (res, res), 0)
        canvas.paste(_resize(img, nw, nh), ((res - nw) // 2, (res - nh) // 2))
        out = canvas
    arr = np.asarray(out, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _resize(img: Image.Image, w: int, h: int) -> Image.Image:
    if img.size == (w, h):
        return img
    # LANCZOS with Pillow's reducing_gap antialiases strong downscales (ELPV 300 -> 32).
    return img.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
