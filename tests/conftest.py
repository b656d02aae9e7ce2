"""Shared fixtures: tiny image folders and prepared data folders built in tmp_path.

`bad` images carry a bright square on a noisy grey background and `good` ones do not, so
a classifier can learn the difference in a few steps. Every image has its own noise, so
there are no accidental md5 duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classify.data.prepare import PrepareConfig, prepare_dataset


def write_class_images(
    folder: Path, n: int, *, defect: bool, rgb: bool, size: tuple[int, int] = (40, 32), seed: int = 0
) -> list[Path]:
    """Write `n` PNGs of size (W, H); `defect=True` adds a bright 10x10 square."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(n):
        gray = rng.integers(60, 140, size=(h, w)).astype(np.uint8)
        if defect:
            top, left = rng.integers(0, h - 10), rng.integers(0, w - 10)
            gray[top : top + 10, left : left + 10] = 250
        if rgb:
            pixels = np.stack([gray, (gray * 0.8).astype(np.uint8), (gray * 0.6).astype(np.uint8)], axis=-1)
            img = Image.fromarray(pixels, mode="RGB")
        else:
            img = Image.fromarray(gray, mode="L")
        path = folder / f"img{i:03d}.png"
        img.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def make_image_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: make_image_folder(counts={'good': 24, 'bad': 8}, rgb=False, name='images')."""

    def make(counts: dict[str, int] | None = None, rgb: bool = False, name: str = "images",
             size: tuple[int, int] = (40, 32)) -> Path:
        root = tmp_path / name
        for k, (label, n) in enumerate(sorted((counts or {"good": 24, "bad": 8}).items())):
            write_class_images(root / label, n, defect=(label == "bad"), rgb=rgb, size=size, seed=k + 1)
        return root

    return make


@pytest.fixture
def tiny_image_folder(make_image_folder) -> Path:
    """Two grayscale classes: 'good' x24, 'bad' x8 (40x32 PNG, the bad ones with a bright square)."""
    return make_image_folder()


@pytest.fixture
def tiny_rgb_image_folder(make_image_folder) -> Path:
    """Like tiny_image_folder but RGB."""
    return make_image_folder(rgb=True, name="images_rgb")


@pytest.fixture
def tiny_prepared(tiny_image_folder: Path, tmp_path: Path) -> Path:
    """`classify prepare folder:<tiny_image_folder> --out tmp_path/data` (library call); returns the folder.

    Defaults (val 0.15, test 0.20, seed 0) give train/val/test: good 15/4/5, bad 5/1/2
    (asserted in tests/classify/test_data_dataset.py). Paths in its manifest are absolute.
    """
    out = tmp_path / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{tiny_image_folder}", out_dir=str(out)))
    return out


@pytest.fixture
def tiny_prepared_rgb(tiny_rgb_image_folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data_rgb"
    prepare_dataset(PrepareConfig(source=f"folder:{tiny_rgb_image_folder}", out_dir=str(out)))
    return out


@pytest.fixture
def one_torch_thread():
    """Run a test with one intra-op thread: on the 2 shared CI cores, threads only fight each
    other on tiny convolutions (GAN training tests are several times faster this way)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def no_tf32():
    """True float32 on CUDA for reference comparisons: TF32 convolutions/matmuls (on by default)
    would cost ~1e-3 relative error against golden numbers."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
