"""Benchmark `gen sample`: images/s of generation alone and of generation + every filter.

At res 64 and 128, batch 1 vs batched, ratios printed in one run. Untrained networks (speed
does not depend on the weights): a generator of the chosen preset's width, a resnet18 judge
at the sample resolution, and random "reals" for realism/memorisation/duplicates/fid_select.
No files are written; PNG encoding is not included.

    python scripts/bench/sample.py [--device cpu] [--n 64] [--batch 32] [--preset cpu-tiny|auto]
                                   [--repeat 3] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from stylegan2_ada import Generator, GeneratorConfig

from classify.model.inference import match_input, predict_probs
from classify.model.models import build_model
from gen.sample.filters import FilterConfig, FilterInputs, RealSet, run_filters
from gen.sample.sampling import batches, generate

WIDTHS = {"cpu-tiny": dict(channel_base=4096, channel_max=64, z_dim=128, w_dim=128, mapping_layers=2),
          "auto": dict(channel_base=16384, channel_max=512, z_dim=512, w_dim=512, mapping_layers=2)}
ALL_FILTERS = ["judge", "realism", "memorisation", "duplicates", "fid_select"]


class _Judge:
    """The parts of classify's Classifier the filters use, on an untrained resnet18."""

    def __init__(self, res: int, device: str):
        self.model = build_model("resnet18", num_classes=2, in_chans=1).to(device).eval()
        self.res, self.device, self.norm = res, device, {"mean": [0.5], "std": [0.25]}

    def run(self, x: torch.Tensor, batch: int, features: bool) -> torch.Tensor:
        return predict_probs(self.model, match_input(x, self.res, 1), self.norm, self.device, batch=batch,
                             features=features)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def gen_only(G, n: int, batch: int, device: str, clock=time.perf_counter) -> tuple[float, torch.Tensor]:
    seeds = list(range(n))
    _sync(device)
    t = clock()
    out = torch.cat([generate(G, chunk, [0] * len(chunk), 1.0, device) for chunk in batches(seeds, batch)])
    _sync(device)
    return n / (clock() - t), out


def gen_filtered(G, judge: _Judge, reals: RealSet, n: int, batch: int, device: str,
                 clock=time.perf_counter) -> tuple[float, dict]:
    t0 = clock()
    _, imgs = gen_only(G, n, batch, device, clock)
    t1 = clock()
    conf = judge.run(imgs, batch, features=False)[:, 0].double().numpy()
    feats = judge.run(imgs, batch, features=True).double()
    t2 = clock()
    inp = FilterInputs(feats, imgs, np.zeros(n, int), {0: reals}, conf)
    run_filters(inp, FilterConfig(filters=ALL_FILTERS, min_confidence=0.0, min_realism=0.0))
    t3 = clock()
    return n / (t3 - t0), {"generate_s": t1 - t0, "judge_s": t2 - t1, "filters_s": t3 - t2}


def bench_res(res: int, args) -> dict:
    torch.manual_seed(0)
    G = Generator.from_config(GeneratorConfig(img_resolution=res, img_channels=1, **WIDTHS[args.preset]))
    G = G.to(args.device).eval().requires_grad_(False)
    judge = _Judge(res, args.device)
    real_imgs = torch.randint(0, 256, (args.reals, 1, res, res), dtype=torch.uint8)
    reals = RealSet(judge.run(real_imgs, 64, features=True).double(), real_imgs)
    gen_only(G, 2, 2, args.device)  # warm-up: first-call allocations, cuDNN autotune
    row = {"res": res}
    for b in (1, args.batch):
        n = args.n1 if b == 1 else args.n
        # Best of --repeat: on a shared machine the fastest run is the one least disturbed.
        clock = CLOCKS[args.clock]
        row[f"gen_b{b}"] = max(gen_only(G, n, b, args.device, clock)[0] for _ in range(args.repeat))
        runs = [gen_filtered(G, judge, reals, n, b, args.device, clock) for _ in range(args.repeat)]
        row[f"all_b{b}"], row[f"split_b{b}"] = max(runs, key=lambda r: r[0])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=64, help="images per batched measurement")
    ap.add_argument("--n1", type=int, default=16, help="images per batch-1 measurement")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reals", type=int, default=256)
    ap.add_argument("--preset", choices=list(WIDTHS), default="cpu-tiny")
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--repeat", type=int, default=3, help="keep the best of this many runs per figure")
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall",
                    help="wall: images per second; cpu: images per process-CPU second "
                         "(steadier on a shared CPU)")
    args = ap.parse_args()
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"preset={args.preset} {WIDTHS[args.preset]} batch={args.batch} n={args.n} n1={args.n1} "
          f"reals={args.reals} repeat={args.repeat} clock={args.clock}")
    print(f"{'res':>4} {'gen b1':>9} {'gen bB':>9} {'xB/b1':>6} {'all b1':>9} {'all bB':>9} {'xB/b1':>6} "
          f"{'all/gen':>7}  (images per {args.clock} second; all = generation + judge + all filters)")
    for res in args.res:
        r = bench_res(res, args)
        b = args.batch
        print(f"{res:>4} {r['gen_b1']:>9.2f} {r[f'gen_b{b}']:>9.2f} {r[f'gen_b{b}'] / r['gen_b1']:>6.2f} "
              f"{r['all_b1']:>9.2f} {r[f'all_b{b}']:>9.2f} {r[f'all_b{b}'] / r['all_b1']:>6.2f} "
              f"{r[f'all_b{b}'] / r[f'gen_b{b}']:>7.2f}")
        split = r[f"split_b{b}"]
        print("     batched time split: " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))


if __name__ == "__main__":
    main()
