"""Tiny generator and judge files for the `gen sample` tests (built in tmp_path, seconds)."""

from __future__ import annotations

from pathlib import Path

import torch
from stylegan2_ada import Generator, GeneratorConfig

from classify.model.checkpoint import save_checkpoint
from classify.model.models import build_model
from gen.core.generator_file import export_generator


def prepared_bad_good(root: Path) -> Path:
    """A prepared folder of grey 40x32 images, bad x8 (with a bright square) and good x24,
    decoded from `root/img`; returns `root/data`."""
    from conftest import write_class_images

    from classify.data.prepare import PrepareConfig, prepare_dataset

    for k, (label, n) in enumerate([("bad", 8), ("good", 24)]):
        write_class_images(root / "img" / label, n, defect=label == "bad", rgb=False, seed=k + 1)
    data = root / "data"
    prepare_dataset(PrepareConfig(source=f"folder:{root / 'img'}", out=str(data)))
    return data


def tiny_generator(run_dir: Path, data_dir: Path, classes: list[str], channels: int = 1, res: int = 16,
                   kimg: int = 0) -> Path:
    """An untrained res-16 generator exported as a run folder snapshot; returns the run folder."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=16, w_dim=16, c_dim=len(classes) if len(classes) > 1 else 0, img_resolution=res,
                          img_channels=channels, channel_base=256, channel_max=16, mapping_layers=2)
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
