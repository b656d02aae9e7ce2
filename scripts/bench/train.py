"""Benchmark `gen train` steps: sec/kimg and img/s of G+D training with the lazy-reg schedule.

Runs the trainer's own `train_step` (all due phases, EMA, ADA) on random uint8 images, at
each resolution and in each mode: fp32 eager, torch.compile, and on a GPU bf16 (and
bf16 + compile). Timed over whole 16-step cycles so that every R1 (every 16 D steps) and
path-length (every 4 G steps) pass is counted at its real frequency. Prints ratios
against fp32 eager at the same resolution, and a Markdown table for docs/BENCHMARKS.md.

    python scripts/bench/train.py                       # CPU: cpu-tiny widths, res 32 and 64
    python scripts/bench/train.py --device cuda --preset auto --res 64,128,256
    python scripts/bench/train.py --recipes minority,conditional,transfer,diffaug --modes fp32,bf16

Recipes change what one step computes: `conditional` adds the label embedding and D's
projection (2 classes), `transfer` is its fine-tune stage (FreezeD: the first 2 D blocks
frozen; its pre-training stage costs what `minority` does), `diffaug` swaps ADA for
DiffAugment. Every row's ratio is against fp32 eager `minority` at the same resolution.

Against another commit (`against.py`: a `git worktree` of REV, one child process per tree,
interleaved rounds; issue 24's two configs from `profile_train.py`, `bgc` at p = 0.2, batch 16):

    python scripts/bench/train.py --against fbbe223 --config 32 --threads 1 --rounds 5
    python scripts/bench/train.py --against fbbe223 --config 64 --precision bf16 --set compile=true
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch
from against import run_against  # scripts/bench is not a package: found beside this file

from gen.train.data import GanTrainData
from gen.train.log import TickStats
from gen.train.recipes import resolve_config
from gen.train.trainer import Trainer

CYCLE = 16  # lcm of the lazy intervals (4, 16): one cycle has the average phase mix


RECIPES = {  # recipe -> (config overrides, number of classes)
    "minority": ({}, 1),
    "conditional": ({"recipe": "conditional"}, 2),
    "transfer": ({"recipe": "transfer", "freeze_d": 2}, 1),
    "diffaug": ({"aug": "diffaug"}, 1),
}


def fake_data(res: int, channels: int, n_classes: int = 1, n: int = 256) -> GanTrainData:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, [n, channels, res, res], dtype=torch.uint8, generator=gen)
    labels = torch.randint(n_classes, [n], generator=gen)
    names = [f"c{i}" for i in range(n_classes)]
    return GanTrainData(images, labels, names, {c: n // n_classes for c in names}, "bench", channels)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_one(res: int, mode: str, args, recipe: str = "minority") -> dict:
    extra, n_classes = RECIPES[recipe]
    overrides = dict(preset=args.preset, data_dir="-", classes=["c0"], out_dir=tempfile.mkdtemp(), res=res,
                     device=args.device, precision="bf16" if "bf16" in mode else "fp32",
                     compile="compile" in mode, seed=0, **extra)
    if args.batch:
        overrides["batch"] = args.batch
    cfg = resolve_config(overrides)
    trainer = Trainer(cfg, log=lambda m: None, data=fake_data(res, args.channels, n_classes))
    if args.p is not None and trainer.nets.augment_pipe is not None and cfg.aug != "diffaug":
        trainer.nets.augment_pipe.p.fill_(args.p)  # ADA's cost depends on p: it skips work at p = 0
    stats = TickStats()
    t0 = time.perf_counter()
    for _ in range(args.warmup_cycles * CYCLE):  # compile + cudnn autotune + allocator warm-up
        trainer.train_step(stats)
    sync(args.device)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.cycles * CYCLE):
        trainer.train_step(stats)
    sync(args.device)
    dt = time.perf_counter() - t0
    n_img = args.cycles * CYCLE * cfg.batch
    return {"res": res, "mode": mode, "recipe": recipe, "batch": cfg.batch,
            "sec_per_kimg": dt / n_img * 1000, "img_per_s": n_img / dt,
            "warmup_s": warm_s, "channel_max": cfg.channel_max}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default=None, help="default: auto on GPU, cpu-tiny on CPU")
    ap.add_argument("--res", default="32,64")
    ap.add_argument("--modes", default=None, help="comma list of fp32,compile,bf16,bf16+compile")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--cycles", type=int, default=2, help="timed 16-step cycles")
    ap.add_argument("--warmup-cycles", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--recipes", default="minority", help=f"comma list of {','.join(RECIPES)}")
    ap.add_argument("--p", type=float, default=None,
                    help="fix ADA's p (default: the preset's, 0 at the start)")
    ap.add_argument("--against", metavar="REV", default=None,
                    help="time the current tree against commit REV, interleaved (see against.py)")
    ap.add_argument("--config", choices=["32", "64"], default="32", help="with --against: the config")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="with --against")
    ap.add_argument("--rounds", type=int, default=5, help="with --against: interleaved rounds")
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE",
                    help="with --against: a GanTrainConfig field for both trees; repeatable")
    ap.add_argument("--ours-set", dest="ours_assignments", action="append", default=[],
                    metavar="FIELD=VALUE",
                    help="with --against: a field for the current tree only (e.g. --against HEAD "
                         "--ours-set channels_last=true times one option on against off)")
    args = ap.parse_args()
    if args.against:
        main_against(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device.startswith("cuda")
    args.preset = args.preset or ("auto" if gpu else "cpu-tiny")
    modes = args.modes.split(",") if args.modes else (["fp32", "compile", "bf16", "bf16+compile"] if gpu
                                                       else ["fp32", "compile"])
    where = (torch.cuda.get_device_name() if gpu
             else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads")
    print(f"# bench_train: {where}, torch {torch.__version__}, preset {args.preset}, "
          f"channels {args.channels}")
    rows = []
    for res in [int(r) for r in args.res.split(",")]:
        base = None
        for recipe in args.recipes.split(","):
            for mode in modes:
                r = bench_one(res, mode, args, recipe)
                base = base or r["sec_per_kimg"]  # the first row: fp32 eager minority
                r["speedup"] = base / r["sec_per_kimg"]
                rows.append(r)
                print(f"res {res:4d} {recipe:11s} {mode:13s} batch {r['batch']:3d}: "
                      f"{r['sec_per_kimg']:9.2f} sec/kimg "
                      f"{r['img_per_s']:8.1f} img/s  x{r['speedup']:.2f} vs fp32 eager minority  "
                      f"(warm-up {r['warmup_s']:.0f} s)", flush=True)
    print("\n| res | recipe | mode | batch | sec/kimg | img/s | vs fp32 eager minority |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['res']} | {r['recipe']} | {r['mode']} | {r['batch']} | {r['sec_per_kimg']:.2f} | "
              f"{r['img_per_s']:.1f} | x{r['speedup']:.2f} |")


def main_against(args) -> None:
    child_args = ["--config", args.config, "--precision", args.precision, "--p", str(args.p or 0.2),
                  "--threads", str(args.threads or 1), "--warmup-cycles", str(args.warmup_cycles)]
    for assignment in args.assignments:
        child_args += ["--set", assignment]
    print(f"# bench_train --against {args.against}: {platform.processor() or 'CPU'}, config {args.config}, "
          f"{args.precision}, p {args.p or 0.2}, {args.threads or 1} thread(s), set {args.assignments}, "
          f"ours also {args.ours_assignments}, "
          f"torch {torch.__version__}", flush=True)
    ours_extra = [a for assignment in args.ours_assignments for a in ("--set", assignment)]
    result = run_against(args.against, child_args, args.rounds, args.cycles,
                         report=lambda m: print(m, flush=True), ours_extra=ours_extra)
    interval = result["ratio_interval_95"]
    spread = (f"rounds x{result['ratio_min']:.3f}..x{result['ratio_max']:.3f}; "
              f"mean x{result['ratio_mean']:.3f}; ")
    spread += (f"95% interval of the median x{interval[0]:.3f}..x{interval[1]:.3f}" if interval
               else "too few rounds for a 95% interval of the median")
    print(f"ours {result['ours_sec_per_kimg']:.2f} sec/kimg, {args.against} "
          f"{result['other_sec_per_kimg']:.2f} (medians): ours is x{result['ratio_median']:.3f} as fast "
          f"({spread})")


if __name__ == "__main__":
    main()
