"""Tiny prepared datasets for the classification tests (built through the data layer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from classify.data.prepare import PrepareConfig, prepare_dataset


def write_square_images(folder: Path, n: int, defect: bool, seed: int, size: int = 32, noise: int = 20) -> None:
    """Grey noisy images; defects carry one bright 8x8 square somewhere (the obvious signal)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(110 - noise, 110 + noise, size=(size, size)).astype(np.uint8)
        if defect:
            top, left = rng.integers(0, size - 8, size=2)
            img[top:top + 8, left:left + 8] = 250
        Image.fromarray(img, mode="L").save(folder / f"{'bad' if defect else 'good'}{i:03d}.png")


def make_square_dataset(root: Path, n_good: int = 48, n_bad: int = 24, size: int = 32) -> Path:
    """Prepare a two-class (bad/good) grayscale set under root/data and return that folder."""
    images = root / "square_images"
    write_square_images(images / "good", n_good, defect=False, seed=1, size=size)
    write_square_images(images / "bad", n_bad, defect=True, seed=2, size=size)
    out = root / "square_data"
    prepare_dataset(PrepareConfig(source=f"folder:{images}", out=str(out)))
    return out


def make_samples_folder(root: Path, n_accepted: int = 12, n_rejected: int = 12, size: int = 32,
                        cls: str = "bad") -> Path:
    """A hand-made `gen sample` folder: accepted samples are white (255), rejected black (0),
    so a test can tell from pixels alone which kind reached the training set."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    lines = ["file,seed,class,trunc,snapshot,judge_confidence,accepted,rejected_by"]
    for i in range(n_accepted + n_rejected):
        accepted = i < n_accepted
        name = f"images/seed{i:04d}.png"
        Image.fromarray(np.full((size, size), 255 if accepted else 0, np.uint8), mode="L").save(root / name)
        lines.append(f"{name},{i},{cls},1.0,net.pkl,{0.9 if accepted else 0.1},{int(accepted)},"
                     f"{'' if accepted else 'judge_confidence'}")
    (root / "samples.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_class_samples_folder(root: Path, per_class: dict[str, int], size: int = 32) -> Path:
    """A hand-made `gen sample` folder with accepted samples of several classes; every sample of
    class k has the grey value 40 + 50 k, so a test can tell from pixels which class it came from."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["file,seed,class,trunc,snapshot,judge_confidence,accepted,rejected_by"]
    seed = 0
    for k, (cls, n) in enumerate(per_class.items()):
        (root / "images" / cls).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            name = f"images/{cls}/seed{seed:04d}.png"
            Image.fromarray(np.full((size, size), 40 + 50 * k, np.uint8), mode="L").save(root / name)
            lines.append(f"{name},{seed},{cls},1.0,net.pkl,0.9,1,")
            seed += 1
    (root / "samples.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
