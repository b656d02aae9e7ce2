"""A grid of seeds straight from a generator (`gen grid`), without writing a sample set."""

from __future__ import annotations

from pathlib import Path

import torch

from classify.core.errors import UserError
from gen.core.generator_file import load_generator
from gen.core.grids import save_grid
from gen.sample.sampling import batches, generate, parse_seeds

# A grid is for looking at: past this many tiles it is unreadable, and a typo such as 0-100000
# would render a multi-gigapixel PNG that runs the machine out of memory. Many images: gen sample.
MAX_GRID_IMAGES = 1024


def write_seed_grid(generator: str, out: str, seeds_text: str, trunc: float = 1.0,
                    class_name: str | None = None, snapshot: str = "best", nrow: int = 8,
                    device: str = "cpu", batch: int = 32) -> Path:
    """Seeds along each row; for a conditional generator without `class_name`, one row block per class."""
    seeds = parse_seeds(seeds_text, None)
    if nrow < 1:
        raise UserError(f"--nrow must be at least 1, got {nrow}")
    G, info = load_generator(generator, which=snapshot, device=device)
    classes = list(info.get("classes") or ["sample"])
    n_images = len(seeds) * (1 if class_name is not None else len(classes))
    if n_images > MAX_GRID_IMAGES:
        raise UserError(f"--seeds {seeds_text} makes a grid of {n_images} images "
                        f"(at most {MAX_GRID_IMAGES}); use `gen sample` to write many images")
    if class_name is not None and class_name not in classes:
        raise UserError(f"unknown --class {class_name!r}; this generator makes: {', '.join(classes)}")
    wanted = [class_name] if class_name is not None else classes
    images = []
    for name in wanted:
        idx = classes.index(name)
        for chunk in batches(seeds, batch):
            images.append(generate(G, chunk, [idx] * len(chunk), trunc, device))
    path = Path(out)
    if len(wanted) > 1:  # one row per class, named at its left
        save_grid(torch.cat(images), path, len(seeds), labels=wanted)
    else:
        save_grid(torch.cat(images), path, nrow)
    return path
