"""A grid of seeds straight from a generator (`gen grid`), without writing a sample set."""

from __future__ import annotations

from pathlib import Path

import torch

from classify.errors import UserError
from gen.grids import save_grid
from gen.sampling import batches, generate, parse_seeds


def write_seed_grid(generator: str, out: str, seeds_text: str, trunc: float = 1.0, class_name: str | None = None,
                    snapshot: str = "best", nrow: int = 8, device: str = "cpu", batch: int = 32) -> Path:
    """Seeds along each row; for a conditional generator without `class_name`, one row block per class."""
    from gen.generator_file import load_generator

    G, info = load_generator(generator, which=snapshot, device=device)
    classes = list(info.get("classes") or ["sample"])
    seeds = parse_seeds(seeds_text, None)
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
