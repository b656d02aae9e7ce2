"""Profile `gen train`'s step on the CPU: time per phase and the operators that take it.

    python scripts/bench/profile_train.py --config 32     # 32², channel base 4096, max 64, z/w 64
    python scripts/bench/profile_train.py --config 64     # 64², channel base 4096, max 128, z/w 512
    PYTHONPATH=OTHER:OTHER/vendor python scripts/bench/profile_train.py ...   # another checkout

Builds the trainer exactly as `gen train` does (preset cpu-tiny with the config's widths, batch
16, the `bgc` pipe at a fixed p = 0.2 so that augmentation costs what it costs mid-run), warms it
up for a cycle, then records whole 16-step cycles (Gmain every step, Greg every 4, Dmain every
step, Dreg every 16: the lazy-regularisation mix) with torch.profiler. The trainer's own
functions are wrapped from outside with `record_function` labels, so the same script profiles
any commit whose trainer has the same function names (`run_phase`, `update_ema`, the pipe's
`forward`): nothing is added to the training code for it.

Prints per label the wall share of a step (phases, augmentation inside them, EMA, the rest =
bookkeeping: batch assembly, draws, ADA, counters), and the top operators by self CPU time.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import platform
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import gen.train.trainer as trainer_module
from gen.train.data import GanTrainData
from gen.train.log import TickStats

CYCLE = 16
CONFIGS = {  # the two configurations of docs/BENCHMARKS.md's training-step profile
    "32": dict(res=32, channel_base=4096, channel_max=64, z_dim=64, w_dim=64),
    "64": dict(res=64, channel_base=4096, channel_max=128, z_dim=512, w_dim=512),
}


def resolve(overrides: dict):
    """`resolve_config` wherever this checkout keeps it (it moved between commits)."""
    for name in ("gen.train.recipes", "gen.train.presets"):
        module = importlib.import_module(name)
        if hasattr(module, "resolve_config"):
            return module.resolve_config(overrides)
    raise ImportError("resolve_config not found in gen.train.recipes or gen.train.presets")


def fake_data(res: int, n: int = 256) -> GanTrainData:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, [n, 1, res, res], dtype=torch.uint8, generator=gen)
    return GanTrainData(images, torch.zeros(n, dtype=torch.long), ["c0"], {"c0": n}, "bench", 1)


def labelled(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with record_function(name):
            return fn(*args, **kwargs)
    return wrapper


def build_trainer(config: str, precision: str, p: float, extra: dict | None = None):
    overrides = dict(preset="cpu-tiny", data_dir="-", classes=["c0"], out_dir=tempfile.mkdtemp(),
                     device="cpu", precision=precision, seed=0, batch=16, augpipe="bgc")
    overrides.update(CONFIGS[config], **(extra or {}))  # --set may override the config's own fields
    cfg = resolve(overrides)
    trainer = trainer_module.Trainer(cfg, log=lambda m: None, data=fake_data(cfg.res))
    pipe = trainer.nets.augment_pipe
    pipe.p.fill_(p)
    pipe.forward = labelled("augment", pipe.forward)
    return trainer


def phase_label(fn):
    @functools.wraps(fn)
    def wrapper(phase, *args, **kwargs):
        with record_function(f"phase {phase.name}"):
            return fn(phase, *args, **kwargs)
    return wrapper


def table(prof, step_ms: float, steps: int) -> list[str]:
    """Per label: total ms per step and share of the step (phases hold the augmentation)."""
    events = {e.key: e for e in prof.key_averages()}
    lines = ["| part | ms per step | share of the step |", "|---|---|---|"]
    named = 0.0
    for key in sorted(k for k in events if k.startswith("phase ")) + ["augment", "ema"]:
        if key not in events:
            continue
        ms = events[key].cpu_time_total / 1000 / steps
        if key != "augment":
            named += ms
        lines.append(f"| {key}{' (inside the phases)' if key == 'augment' else ''} | {ms:.2f} | "
                     f"{ms / step_ms:.1%} |")
    rest = step_ms - named
    lines.append(f"| the rest (batch, draws, ADA, counters, profiler) | {rest:.2f} | {rest / step_ms:.1%} |")
    return lines


def top_ops(prof, steps: int, n: int) -> list[str]:
    ops = [e for e in prof.key_averages() if not e.key.startswith(("phase ", "augment", "ema"))]
    ops.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    lines = ["| operator | self ms per step | share | calls per step |", "|---|---|---|---|"]
    for e in ops[:n]:
        lines.append(f"| `{e.key}` | {e.self_cpu_time_total / 1000 / steps:.2f} | "
                     f"{e.self_cpu_time_total / total:.1%} | {e.count / steps:.0f} |")
    return lines


def parse_assignments(assignments: list[str]) -> dict:
    """FIELD=VALUE strings as config overrides; true/false and numbers become bool/int/float."""
    out: dict = {}
    for text in assignments:
        key, _, value = text.partition("=")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
            continue
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="32")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--p", type=float, default=0.2, help="ADA's p, fixed")
    ap.add_argument("--cycles", type=int, default=1, help="profiled 16-step cycles")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--top", type=int, default=25, help="operators listed")
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="FIELD=VALUE",
                    help="a GanTrainConfig field for this profile (e.g. channels_last=true); repeatable")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer_module.run_phase = phase_label(trainer_module.run_phase)
    trainer_module.update_ema = labelled("ema", trainer_module.update_ema)
    trainer = build_trainer(args.config, args.precision, args.p, parse_assignments(args.assignments))
    stats = TickStats()
    for _ in range(CYCLE):  # warm-up: allocator, oneDNN primitive caches
        trainer.train_step(stats)
    steps = args.cycles * CYCLE
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(stats)
    plain_ms = (time.perf_counter() - t0) * 1000 / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(stats)
        step_ms = (time.perf_counter() - t0) * 1000 / steps
    print(f"# profile_train: config {args.config} ({CONFIGS[args.config]}), {args.precision}, p {args.p}, "
          f"set {parse_assignments(args.assignments)}, "
          f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"step {plain_ms:.1f} ms without the profiler "
          f"({plain_ms * 1000 / 16 / 1000:.1f} s/kimg at batch 16), {step_ms:.1f} ms under it\n")
    print("\n".join(table(prof, step_ms, steps)) + "\n")
    print("\n".join(top_ops(prof, steps, args.top)))


if __name__ == "__main__":
    main()
