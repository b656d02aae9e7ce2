"""Shared helpers for the gen train tests: a tiny prepared dataset and a tiny config.

The config is far smaller than any preset (res 16, 16 channels, 32-d latents) so that a
training step takes ~0.1 s on one CPU core; everything else is the real code path.
"""

from __future__ import annotations

from pathlib import Path

import torch

from classify.data.prepare import PrepareConfig, prepare_dataset
from gen.train.config import GanTrainConfig
from gen.train.recipes import resolve_config


def make_prepared(root: Path, counts: dict[str, int] | None = None) -> Path:
    """A prepared data folder with grayscale classes (default good x24, bad x24)."""
    from conftest import write_class_images

    images = root / "images"
    for k, (label, n) in enumerate(sorted((counts or {"good": 24, "bad": 24}).items())):
        write_class_images(images / label, n, defect=(label == "bad"), rgb=False, seed=k + 1)
    out = root / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{images}", out=str(out)))
    return out


def tiny_overrides(data_dir: Path, out_dir: Path, **kw) -> dict:
    base = dict(
        preset="cpu-tiny", data_dir=str(data_dir), classes=["bad"], out_dir=str(out_dir), res=16, batch=4,
        channel_base=256, channel_max=16, z_dim=32, w_dim=32, map_layers=1, kimg=0.04, tick_kimg=0.02, snap=1,
        device="cpu", gamma=1.0, precision="fp32",  # pinned: the default follows the CPU (bf16 where native)
    )
    base.update(kw)
    return base


def tiny_cfg(data_dir: Path, out_dir: Path, **kw) -> GanTrainConfig:
    return resolve_config(tiny_overrides(data_dir, out_dir, **kw))


def state_of(run_dir: Path) -> dict:
    from gen.train.snapshot import list_snapshots

    return torch.load(list_snapshots(run_dir)[-1], weights_only=True)


def ddp_worker(rank: int, world: int, port: int, overrides: dict) -> None:
    """torch.multiprocessing.spawn target: what torchrun would set up, then a normal train()."""
    import faulthandler
    import os

    faulthandler.enable(all_threads=True)  # a native abort in a worker prints its Python stack
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gen.train.trainer import train_gan

    train_gan(resolve_config(dict(overrides, gpus=world)), log=lambda m: None)
    # train() must leave the process group for real: a gloo thread still alive here can
    # abort the process while the interpreter shuts down (see gen.train.distributed).
    left = [name for name in thread_names() if "gloo" in name]
    assert not left, f"rank {rank}: process group threads still running after train(): {left}"


def disk_full_for(monkeypatch, name_part: str) -> None:
    """Make os.fsync raise ENOSPC for files whose path contains `name_part` (a full disk
    striking exactly there); every other file syncs normally. `monkeypatch.undo()` ends it."""
    import errno
    import os

    real_fsync = os.fsync

    def fsync(fd):
        if name_part in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def use_constant_noise() -> None:
    """Make the synthesis network use its stored noise maps in training too.

    Per-layer noise is the one input a DDP rank draws from its own RNG stream; with it
    fixed, DDP and a single process see identical fakes, so they can be compared exactly.
    """
    from stylegan2_ada.synthesis import SynthesisNetwork

    if getattr(SynthesisNetwork.forward, "constant_noise", False):
        return
    original = SynthesisNetwork.forward

    def forward(self, ws, noise_mode="random", **kw):
        return original(self, ws, noise_mode="const", **kw)

    forward.constant_noise = True
    SynthesisNetwork.forward = forward


def ddp_worker_constant_noise(rank: int, world: int, port: int, overrides: dict) -> None:
    """ddp_worker with `use_constant_noise` applied in the spawned process."""
    use_constant_noise()
    ddp_worker(rank, world, port, overrides)


def thread_names() -> list[str]:
    """Names of this process's native threads (Linux /proc; empty elsewhere)."""
    import os

    task = Path("/proc/self/task")
    if not task.is_dir():
        return []
    names = []
    for tid in os.listdir(task):
        try:
            names.append((task / tid / "comm").read_text().strip())
        except OSError:  # the thread ended while we looked
            pass
    return names
