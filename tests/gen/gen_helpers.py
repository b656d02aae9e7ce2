"""Helpers of the gen tests: a tiny prepared dataset and a tiny `gen train` config; tiny
generator and judge files for the `gen sample` tests (built in tmp_path, in seconds).
"""

from __future__ import annotations

from pathlib import Path

import torch
from stylegan2_ada import Generator, GeneratorConfig

from classify.data.prepare import PrepareConfig, prepare_dataset
from classify.model.checkpoint import save_checkpoint
from classify.model.models import build_model
from gen.core.generator_file import export_generator
from gen.train.config import GanTrainConfig
from gen.train.recipes import resolve_config


def make_prepared(root: Path, counts: dict[str, int] | None = None) -> Path:
    """A prepared data folder with grayscale classes (default good x24, bad x24)."""
    from conftest import write_class_images

    images = root / "images"
    for k, (label, n) in enumerate(sorted((counts or {"good": 24, "bad": 24}).items())):
        write_class_images(images / label, n, defect=(label == "bad"), rgb=False, seed=k + 1)
    out = root / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{images}", out_dir=str(out)))
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


def prepared_bad_good(root: Path) -> Path:
    """A prepared folder of grey 40x32 images, bad x8 (with a bright square) and good x24,
    decoded from `root/img`; returns `root/data`."""
    from conftest import write_class_images

    from classify.data.prepare import PrepareConfig, prepare_dataset

    for k, (label, n) in enumerate([("bad", 8), ("good", 24)]):
        write_class_images(root / "img" / label, n, defect=label == "bad", rgb=False, seed=k + 1)
    data = root / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{root / 'img'}", out_dir=str(data)))
    return data


def tiny_generator(run_dir: Path, data_dir: Path, classes: list[str], channels: int = 1, res: int = 16,
                   kimg: int = 0) -> Path:
    """An untrained res-16 generator exported as a run folder snapshot; returns the run folder."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=16, w_dim=16, c_dim=len(classes) if len(classes) > 1 else 0,
                          img_resolution=res, img_channels=channels, channel_base=256, channel_max=16,
                          mapping_layers=2)
    G = Generator.from_config(cfg)
    from classify.data.dataset import open_prepared

    info = {"classes": classes, "res": res, "channels": channels, "fit": "crop", "kimg": kimg,
            "data_dir": str(data_dir), "manifest_hash": str(open_prepared(data_dir).manifest_hash),
            "real_counts": {c: 5 for c in classes}}
    run_dir.mkdir(parents=True, exist_ok=True)
    export_generator(G, info, run_dir / f"network-snapshot-{kimg:06d}.G_ema.safetensors")
    return run_dir


def tiny_judge(path: Path, classes: list[str], in_chans: int = 1, res: int = 16) -> Path:
    """A judge checkpoint in `classify train`'s format, with untrained weights (scores are arbitrary)."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(classes), in_chans=in_chans)
    save_checkpoint(path, model=model, model_name="resnet18", config={}, classes=classes, positive=0,
                    in_chans=in_chans, res=res, fit="crop", threshold=0.5,
                    norm={"mean": [0.5] * in_chans, "std": [0.25] * in_chans}, epoch=0, val={})
    return path
