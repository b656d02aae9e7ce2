"""Seeded, batched generation: seed s always gives the same latent, hence the same image.

The latent of seed s comes from its own CPU `torch.Generator`, not from a shared stream, so
it does not depend on the batch it lands in, on the device, or on which seeds ran before —
that is what makes `gen sample` resumable seed by seed. Synthesis noise is "const" (the
generator's stored noise buffers) for the same reason. Batched convolutions may round the
last float bit differently from batch-of-one ones, so across batch sizes a pixel can move by
one uint8 step; with the same batch layout the output is bit-identical.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator

import numpy as np
import torch

from classify.core.errors import UserError
from gen.core.grids import to_uint8

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Seeds name per-seed CPU generators and file names; 2^32 - 1 is the reference scripts' range too.
MAX_SEED = 2**32 - 1


def parse_seeds(text: str | None, n: int | None, start: int = 0) -> list[int]:
    """`A-B` (inclusive), `A,B,C`, or mixtures like `0-9,20`; without text, `n` seeds from `start`."""
    if not text:
        if n is None or n < 1:
            raise UserError("give --n N (number of samples, at least 1) or --seeds A-B")
        if start + n - 1 > MAX_SEED:
            raise UserError(f"--n {n} from seed {start} runs past seed {MAX_SEED} (2^32 - 1); lower --n")
        return list(range(start, start + n))
    seeds: list[int] = []
    for a, b in _ranges(text):
        seeds.extend(range(a, b + 1))
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r} lists a seed twice; each seed gives one image")
    if n is not None and n != len(seeds):
        raise UserError(f"--n {n} disagrees with --seeds {text!r} ({len(seeds)} seeds); give one of them")
    return seeds


def _ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise UserError(f"cannot read --seeds {text!r}; use A-B, A,B,C or 0-9,20 (non-negative integers)")
        a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if max(a, b) > MAX_SEED:
            raise UserError(f"--seeds {text!r}: seed {max(a, b)} is larger than {MAX_SEED} (2^32 - 1); "
                            "use smaller seeds")
        if b < a:
            raise UserError(f"--seeds range {a}-{b} runs backwards; write it as {b}-{a}")
        out.append((a, b))
    return out


def count_seeds(text: str | None, n: int | None) -> int:
    """How many seeds a request names, without building the list (a disk check comes first)."""
    return sum(b - a + 1 for a, b in _ranges(text)) if text else int(n or 0)


def latent(seed: int, z_dim: int) -> torch.Tensor:
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(int(seed)))


def class_vector(class_idx: list[int], c_dim: int) -> torch.Tensor:
    """One-hot labels [N, c_dim]; an empty [N, 0] tensor for unconditional generators."""
    c = torch.zeros(len(class_idx), c_dim)
    if c_dim:
        c[torch.arange(len(class_idx)), torch.as_tensor(class_idx)] = 1.0
    return c


def _autocast(device: str, precision: str):
    dtype = PRECISIONS.get(precision)
    if precision not in PRECISIONS:
        raise UserError(f"unknown --precision {precision!r}; use fp32, bf16 or fp16")
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


@torch.no_grad()
def generate(
    G: torch.nn.Module, seeds: list[int], class_idx: list[int], trunc: float = 1.0,
    device: str = "cpu", precision: str = "fp32", noise_mode: str = "const",
) -> torch.Tensor:
    """uint8 images [N, C, R, R] for the given seeds and class indices, as one batch.

    A non-finite `trunc`, or a generator that returns NaN/inf pixels (broken weights), is a
    UserError: converted to uint8 those pixels would be black images that pass every filter.
    """
    check_trunc(trunc)
    z = torch.stack([latent(s, G.z_dim) for s in seeds]).to(device)
    c = class_vector(class_idx, G.c_dim).to(device)
    with _autocast(device, precision):
        img = G(z, c, truncation_psi=trunc, noise_mode=noise_mode)
    img = img.float()
    finite = torch.isfinite(img).flatten(1).all(dim=1).cpu()
    if not bool(finite.all()):
        bad = [s for s, ok in zip(seeds, finite.tolist()) if not ok]
        hint = " or --precision fp32" if precision != "fp32" else ""
        raise UserError(f"the generator produced NaN/inf pixels for {len(bad)} of {len(seeds)} seeds "
                        f"(first: {bad[0]}); its weights are broken (a diverged run?) — use an earlier "
                        f"snapshot{hint}")
    return to_uint8(img).cpu()


def check_trunc(trunc: float) -> float:
    """--trunc must be a finite number (psi 1 = no truncation, 0 = the average face)."""
    if not isinstance(trunc, (int, float)) or not math.isfinite(trunc):
        raise UserError(f"--trunc {trunc} must be a finite number (1.0 = no truncation, e.g. 0.7)")
    return float(trunc)


def batches(items: list, size: int) -> Iterator[list]:
    if size < 1:
        raise UserError(f"--batch must be at least 1, got {size}")
    for i in range(0, len(items), size):
        yield items[i : i + size]


def turn_back(img: torch.Tensor, class_name: str, seed: int, orient: dict | None) -> torch.Tensor:
    """Undo `gen train --orient auto` at random in the reals' proportion: a sample of a class whose
    reals mixed layouts is turned back a quarter (clockwise) with the probability that a real image
    of the class was turned, decided by its seed alone (so a rerun makes the same file)."""
    entry = (orient or {}).get(class_name)
    if not entry or np.random.default_rng(seed).random() >= float(entry["turned_share"]):
        return img
    return torch.rot90(img, -1, dims=(-2, -1))
