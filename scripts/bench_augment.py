"""Time the ADA AugmentPipe: forward, forward+backward, and the R1-style double backward.

    python scripts/bench_augment.py --device cpu --batch 16 --res 64 --channels 3
"""

from __future__ import annotations

import argparse
import time

import torch
from stylegan2_ada.augment import AugmentPipe


def _timed(fn, device: torch.device, repeats: int) -> float:
    for _ in range(3):  # warm-up (allocator, kernel caches, GPU clocks)
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    device = torch.device(args.device)
    pipe = AugmentPipe(args.channels).to(device)
    pipe.p = args.p
    x = torch.rand(args.batch, args.channels, args.res, args.res, device=device) * 2 - 1

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

    for name, fn in (("forward", forward), ("fwd+bwd", backward), ("double bwd", double_backward)):
        ms = _timed(fn, device, args.repeats)
        print(f"{name:11s} {ms:8.2f} ms  (batch {args.batch}, {args.channels}x{args.res}^2, p={args.p}, {device})")


if __name__ == "__main__":
    main()
