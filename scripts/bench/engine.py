"""Benchmark the StyleGAN2-ADA engine: G and D forward+backward, eager vs torch.compile.

Both modes run in the same process on the same weights and inputs, so the printed
compile/eager ratio is a like-for-like measurement on this machine.

    python scripts/bench/engine.py                     # res 64, channel_max 128, batch 16, CPU
    python scripts/bench/engine.py --device cuda --iters 20
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from stylegan2_ada import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig


@dataclass
class BenchConfig:
    res: int = 64
    channel_max: int = 128
    batch: int = 16
    z_dim: int = 512
    iters: int = 5
    device: str = "cpu"
    compile: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_args() -> BenchConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = BenchConfig()
    p.add_argument("--res", type=int, default=d.res)
    p.add_argument("--channel-max", type=int, default=d.channel_max)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--z-dim", type=int, default=d.z_dim)
    p.add_argument("--iters", type=int, default=d.iters, help="timed iterations per measurement")
    p.add_argument("--device", default=d.device)
    p.add_argument("--no-compile", action="store_true", help="eager only")
    a = p.parse_args()
    return BenchConfig(a.res, a.channel_max, a.batch, a.z_dim, a.iters, a.device, not a.no_compile)


def build(cfg: BenchConfig) -> tuple[Generator, Discriminator]:
    common = dict(img_resolution=cfg.res, img_channels=3, channel_max=cfg.channel_max)
    G = Generator.from_config(GeneratorConfig(z_dim=cfg.z_dim, w_dim=cfg.z_dim, mapping_layers=2, **common))
    D = Discriminator.from_config(DiscriminatorConfig(**common))
    # Training mode: the non-fused modulated conv path, random noise, as in the training loop.
    return G.to(cfg.device).train(), D.to(cfg.device).train()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_step(step: Callable[[], None], iters: int, device: str) -> tuple[float, float, float]:
    """(first-call seconds, median wall seconds, median process CPU seconds) of later calls.

    CPU time is printed beside wall time because on a shared machine the wall time of a
    CPU run mostly measures the other tenants; the CPU time stays close to the work done.
    """
    start = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - start
    walls, cpus = [], []
    for _ in range(iters):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        sync(device)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
    return first, statistics.median(walls), statistics.median(cpus)


def make_steps(G, D, cfg: BenchConfig) -> tuple[Callable[[], None], Callable[[], None]]:
    gen = torch.Generator(device="cpu").manual_seed(0)
    z = torch.randn(cfg.batch, cfg.z_dim, generator=gen).to(cfg.device)
    real = torch.randn(cfg.batch, 3, cfg.res, cfg.res, generator=gen).to(cfg.device)

    def g_step() -> None:
        G.zero_grad(set_to_none=True)
        G(z, None).square().mean().backward()

    def d_step() -> None:
        D.zero_grad(set_to_none=True)
        D(real, None).sum().backward()

    return g_step, d_step


def main() -> None:
    cfg = parse_args()
    print(f"bench_engine: {cfg.to_dict()}")
    print(f"torch {torch.__version__}, {platform.machine()}, threads {torch.get_num_threads()}")
    G, D = build(cfg)
    results = {}
    modes = ["eager", "compile"] if cfg.compile else ["eager"]
    for mode in modes:
        g_net, d_net = (G, D) if mode == "eager" else (torch.compile(G), torch.compile(D))
        g_step, d_step = make_steps(g_net, d_net, cfg)
        for name, step in [("G", g_step), ("D", d_step)]:
            first, wall, cpu = time_step(step, cfg.iters, cfg.device)
            results[(mode, name)] = (wall, cpu)
            print(
                f"{mode:8s} {name} fwd+bwd: median {wall * 1000:.1f} ms/iter wall, "
                f"{cpu * 1000:.1f} ms/iter process CPU (first call {first:.1f} s)"
            )
    if cfg.compile:
        for name in ["G", "D"]:
            (c_wall, c_cpu), (e_wall, e_cpu) = results[("compile", name)], results[("eager", name)]
            print(f"{name} compile/eager ratio: wall {c_wall / e_wall:.2f}, process CPU {c_cpu / e_cpu:.2f}")


if __name__ == "__main__":
    main()
