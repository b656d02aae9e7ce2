"""Time the ADA AugmentPipe: forward, forward+backward, and the R1-style double backward.

    python scripts/bench/augment.py --device cpu --batch 16 --res 64 --channels 3
    python scripts/bench/augment.py --against HEAD~1 --augpipe bgc   # this tree vs another commit

With --against REV the engine of that commit (git archive of vendor/stylegan2_ada) is imported
beside this tree's as `stylegan2_ada_rev`, and both pipes are timed interleaved in one run on
the same input; the ratio is rev time / ours (above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import torch
from stylegan2_ada.augment import AugmentPipe

ROOT = Path(__file__).resolve().parents[2]


def _timed(fn, device: torch.device, repeats: int) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats * 1000


def engine_at(rev: str, into: Path):
    """Import vendor/stylegan2_ada as it was at `rev` under the name stylegan2_ada_rev."""
    blob = subprocess.run(["git", "archive", rev, "vendor/stylegan2_ada"], cwd=ROOT, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    (into / "vendor" / "stylegan2_ada").rename(into / "stylegan2_ada_rev")
    sys.path.insert(0, str(into))
    return importlib.import_module("stylegan2_ada_rev")


def workloads(pipe, x: torch.Tensor) -> dict:
    def forward():
        with torch.no_grad():
            pipe(x)

    def backward():
        xg = x.clone().requires_grad_(True)
        pipe(xg).square().sum().backward()

    def double_backward():
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(pipe(xg).square().sum(), xg, create_graph=True)
        grad.square().sum().backward()

    return {"forward": forward, "fwd+bwd": backward, "double bwd": double_backward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--augpipe", default="bgc",
                        help="this tree's pipeline (the other commit's is its default)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds with --against; best round kept")
    parser.add_argument("--against", metavar="REV",
                        help="also time the pipe of this git revision, interleaved")
    args = parser.parse_args()
    device = torch.device(args.device)
    x = torch.rand(args.batch, args.channels, args.res, args.res, device=device) * 2 - 1
    pipes = {"ours": AugmentPipe(args.channels, args.augpipe).to(device)}
    with tempfile.TemporaryDirectory() as tmp:
        if args.against:
            pipes[args.against] = engine_at(args.against, Path(tmp)).AugmentPipe(args.channels).to(device)
        for pipe in pipes.values():
            pipe.p = args.p
        jobs = {name: workloads(pipe, x) for name, pipe in pipes.items()}
        for fns in jobs.values():  # warm-up (allocator, kernel caches, GPU clocks)
            for fn in fns.values():
                fn()
                fn()
        best: dict = {}
        for _ in range(args.rounds if args.against else 1):
            for name, fns in jobs.items():
                for work, fn in fns.items():
                    torch.manual_seed(0)
                    ms = _timed(fn, device, args.repeats)
                    best[name, work] = min(best.get((name, work), ms), ms)
    setting = (f"batch {args.batch}, {args.channels}x{args.res}^2, p={args.p}, {device}, "
               f"{torch.get_num_threads()} threads")
    for work in jobs["ours"]:
        line = f"{work:11s} ours ({args.augpipe}) {best['ours', work]:8.2f} ms"
        if args.against:
            theirs = best[args.against, work]
            line += f"   {args.against} {theirs:8.2f} ms   ratio {theirs / best['ours', work]:.2f}x"
        print(f"{line}  ({setting})")


if __name__ == "__main__":
    main()
