"""Benchmark: training images/s through our data path vs a naive ImageFolder + PIL pipeline.

Both sides train the same registry model with the same batch size, optimizer and loss on
the same images: the train split of a prepared folder, exported as PNGs in ImageFolder
layout for the naive side. Ours gathers batches from the decoded uint8 tensor cache; the
naive side decodes and resizes every image with PIL in a DataLoader on every step.

    python scripts/bench/classifier.py --data data/elpv --res 64 128 --steps 20

--cpu-bf16 adds our trainer with bf16 autocast on the CPU, timed against our fp32;
--cpu-channels-last times ours in channels_last against contiguous (fp32, and bf16 with --cpu-bf16; the
trainer itself uses channels_last on the CPU with bf16 only).

On a GPU: --device cuda --model resnet50 --res 224 --workers 8 (bf16 autocast and
channels_last on both sides).

Without --data it prepares a synthetic two-class folder (300x300 grayscale PNGs) first.
The cache build time is reported separately: it is paid once per (data, res), not per epoch.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torchvision.datasets import ImageFolder

from classify.data.dataset import open_prepared
from classify.data.prepare import PrepareConfig, prepare_dataset
from classify.model.models import build_model
from classify.train.data import load_classifier_train_data
from classify.train.loop import build_step, train_step
from classify.train.strategies import build_strategy
from classify.train.trainer import ClassifierTrainConfig


def synthetic_prepared(root: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        label = "bad" if i % 4 == 0 else "good"
        img = rng.integers(40, 200, size=(size, size), dtype=np.uint8)
        (root / "src" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(root / "src" / label / f"{i:05d}.png")
    prepare_dataset(PrepareConfig(source=f"folder:{root / 'src'}", out_dir=str(root / "data")))
    return root / "data"


def export_image_folder(part, classes: list[str], out: Path) -> Path:
    """Copy the split's source PNGs into out/<class>/ (what a naive user would point at)."""
    for path, label in zip(part.paths, part.labels.tolist()):
        dest = out / classes[label]
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / path.name)
    return out


def bench_ours(data_dir: Path, res: int, batch: int, steps: int, warmup: int, model: str, device: str,
               cpu_bf16: bool = False, channels_last: bool | None = None) -> dict:
    """Our trainer's step; `channels_last` None = the trainer's choice (CUDA, or CPU bf16),
    True/False forces it on or off."""
    cfg = ClassifierTrainConfig(data_dir=str(data_dir), out_dir="unused", model_name=model, res=res,
                                batch=batch, device=device, epochs=1, progress=False, cpu_bf16=cpu_bf16,
                                channels_last=channels_last is not False)
    strategy = build_strategy("baseline")
    t0 = time.perf_counter()
    data = load_classifier_train_data(cfg, None)  # decodes into the cache on first use
    cache_s = time.perf_counter() - t0
    st, net = build_step(cfg, strategy, data, torch.device(device))
    if channels_last and not st.channels_last:  # the trainer keeps CPU fp32 contiguous; timed here anyway
        net.to(memory_format=torch.channels_last)
        st.channels_last = True
    gen = torch.Generator().manual_seed(0)
    n = data.y_train.numel()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        idx = torch.randint(n, (batch,), generator=gen)
        train_step(cfg, strategy, st, data.x_train[idx], data.y_train[idx])
    _sync(device)
    return {"images_per_s": steps * batch / (time.perf_counter() - start), "cache_build_s": cache_s,
            "in_chans": data.in_chans}


def bench_naive(folder: Path, res: int, batch: int, steps: int, warmup: int, model: str, device: str,
                in_chans: int, workers: int) -> dict:
    tf = [T.Grayscale(1)] if in_chans == 1 else []
    tf += [T.Resize(res), T.CenterCrop(res), T.ToTensor(), T.Normalize([0.5] * in_chans, [0.5] * in_chans)]
    ds = ImageFolder(str(folder), transform=T.Compose(tf))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    net = build_model(model, num_classes=len(ds.classes), in_chans=in_chans).to(device).train()
    cuda = device.startswith("cuda")
    if cuda:  # same bf16 autocast + channels_last as our trainer uses on CUDA
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    done, start = 0, time.perf_counter()
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                _sync(device)
                start = time.perf_counter()
            x = x.to(device, non_blocking=True)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = F.cross_entropy(net(x).float(), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done >= warmup + steps:
                break
    _sync(device)
    return {"images_per_s": steps * batch / (time.perf_counter() - start)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="prepared data folder (default: synthetic)")
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the naive pipeline")
    ap.add_argument("--synthetic-n", type=int, default=600)
    ap.add_argument("--cpu-bf16", action="store_true",
                    help="also time ours with bf16 autocast on the CPU (classify train --cpu-bf16) "
                         "against ours fp32")
    ap.add_argument("--cpu-channels-last", action="store_true",
                    help="also time ours in channels_last memory format on the CPU "
                         "(fp32, and bf16 with --cpu-bf16)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data_dir = args.data or synthetic_prepared(tmp_path, args.synthetic_n, 300)
        prepared = open_prepared(data_dir)
        folder = export_image_folder(prepared.select(split="train"), prepared.classes,
                                     tmp_path / "imagefolder")
        print(f"machine: {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} torch threads, "
              f"torch {torch.__version__}, device {args.device}; data {data_dir}; model {args.model}, "
              f"batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up")
        for res in args.res:
            ours = bench_ours(data_dir, res, args.batch, args.steps, args.warmup, args.model, args.device)
            naive = bench_naive(folder, res, args.batch, args.steps, args.warmup, args.model, args.device,
                                ours["in_chans"], args.workers)
            print(f"res {res}: ours {ours['images_per_s']:.1f} img/s "
                  f"(cache build {ours['cache_build_s']:.1f} s, once) | "
                  f"naive ImageFolder+PIL ({args.workers} workers) {naive['images_per_s']:.1f} img/s | "
                  f"ratio {ours['images_per_s'] / naive['images_per_s']:.2f}x")
            if args.cpu_bf16 and args.device == "cpu":
                bf16 = bench_ours(data_dir, res, args.batch, args.steps, args.warmup, args.model, "cpu", True)
                print(f"res {res}: ours --cpu-bf16 {bf16['images_per_s']:.1f} img/s | ours fp32 "
                      f"{ours['images_per_s']:.1f} img/s | "
                      f"ratio {bf16['images_per_s'] / ours['images_per_s']:.2f}x")
            if args.cpu_channels_last and args.device == "cpu":
                for bf in ([False, True] if args.cpu_bf16 else [False]):
                    on = bench_ours(data_dir, res, args.batch, args.steps, args.warmup, args.model,
                                    "cpu", bf, True)
                    off = bench_ours(data_dir, res, args.batch, args.steps, args.warmup, args.model,
                                     "cpu", bf, False)
                    name = "bf16" if bf else "fp32"
                    print(f"res {res}: ours {name} channels_last {on['images_per_s']:.1f} img/s | contiguous "
                          f"{off['images_per_s']:.1f} img/s | "
                          f"ratio {on['images_per_s'] / off['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
