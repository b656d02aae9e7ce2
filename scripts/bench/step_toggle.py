"""Time one switch of the CPU training step in one process: 16-step cycles alternating off and on.

    python scripts/bench/step_toggle.py --toggle torgb-matmul --threads 1 --pairs 8
    python scripts/bench/step_toggle.py --toggle flush-denormal --threads 1
    python scripts/bench/step_toggle.py --toggle two-threads          # 1 thread (off) vs 2 (on)
    python scripts/bench/step_toggle.py --toggle penalty-convs --phase Greg   # one phase, not the step

This box's speed drifts by ±20% over minutes, so two processes a minute apart cannot resolve a
few percent; one process whose cycles alternate (off, on, then on, off, ...) can. The trainer
is `profile_train.py`'s (preset cpu-tiny, batch 16, the `bgc` pipe at fixed p, the lazy
regularisation mix), built once; each switch flips between two states of the same process:

  torgb-matmul    toRGB's 1x1 modulated conv: the unfused path (x * styles, then a 1x1 conv; off)
                  or one batched matmul with per-sample weights (`ops._modulated_1x1`; on)
  flush-denormal  `torch.set_flush_denormal` off / on
  two-threads     `torch.set_num_threads` 1 / 2
  scale-add-noise the unfused modconv's "x * d + noise": torch.addcmul's own backward (off) or
                  `ops._ScaleAddNoise`'s, without addcmul's extra passes (on)
  image-upsample  the synthesis image path's 2x upsampling: upfirdn2d's depthwise conv (off) or two
                  matrix products (`ops.upsample2d` with a separable filter; on)
  finite-sums     the gradients' finiteness check: torch's multi-tensor max-norm (off) or a
                  float64 sum per tensor (`trainer.all_finite` on a CPU; on)
  penalty-convs   R1's and path length's convs: torch's conv autograd (off) or the engine's, whose
                  double backward is first-order convs (`conv_autograd.penalty_graph`; on)

With `--phase NAME` a cycle is 16 calls of that one loss phase (`StyleGAN2Loss.accumulate_gradients`
on a fixed batch, its network's parameters trainable as in `run_phase`) instead of 16 steps.

Prints each pair and the median ratio off/on (above 1: "on" is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import stylegan2_ada.ops as ops
import torch
import torch.nn.functional as F
from profile_train import CONFIGS, build_trainer
from stylegan2_ada.loss import PHASES

import gen.train.trainer as trainer_module
from gen.train.log import TickStats

CYCLE = 16


def unfused_1x1(x, weight, styles, demodulate, noise, out_gain):
    """toRGB as the unfused path computed it (the layer has no demodulation, noise or gain)."""
    if demodulate or noise is not None or not ops.is_unit_gain(out_gain):
        raise ValueError("step_toggle: the unfused stand-in covers toRGB's call only")
    n, i = x.shape[:2]
    return F.conv2d(x * styles.to(x.dtype).reshape(n, i, 1, 1), weight.to(x.dtype))


def switches(trainer) -> dict:
    """name -> function(on: bool) that puts the process in that state."""
    matmul = ops._modulated_1x1

    def torgb(on: bool) -> None:
        ops._modulated_1x1 = matmul if on else unfused_1x1

    own_epilogue = ops._ScaleAddNoise

    class TorchAddcmul:
        apply = staticmethod(lambda x, d, noise: torch.addcmul(noise, x, d))

    def scale_add_noise(on: bool) -> None:
        ops._ScaleAddNoise = own_epilogue if on else TorchAddcmul

    separable_taps = ops.separable_taps
    finite = trainer_module.all_finite

    def image_upsample(on: bool) -> None:
        ops.separable_taps = separable_taps if on else (lambda f, x: None)

    def max_norm_check(tensors) -> bool:
        return bool(torch.stack(torch._foreach_norm(tensors, float("inf"))).isfinite().all())

    def finite_sums(on: bool) -> None:
        trainer_module.all_finite = finite if on else max_norm_check

    def penalty_convs(on: bool) -> None:
        trainer.loss.penalty_convs = on

    return {
        "torgb-matmul": torgb,
        "flush-denormal": lambda on: torch.set_flush_denormal(on),
        "two-threads": lambda on: torch.set_num_threads(2 if on else 1),
        "penalty-convs": penalty_convs,
        "scale-add-noise": scale_add_noise,
        "image-upsample": image_upsample,
        "finite-sums": finite_sums,
    }


TOGGLES = sorted(switches(None))


def step_runner(trainer):
    stats = TickStats()
    return lambda: trainer.train_step(stats)


def phase_runner(trainer, phase: str):
    """One call of `phase` on a fixed batch (the trainer's shapes), its network trainable."""
    nets, loss = trainer.nets, trainer.loss
    module = nets.G if phase.startswith("G") else nets.D
    gen = torch.Generator().manual_seed(0)
    n, res = trainer.cfg.batch, trainer.cfg.res
    real = torch.rand([n, nets.G.img_channels, res, res], generator=gen) * 2 - 1
    z = torch.randn([n, nets.G.z_dim], generator=gen)
    c = torch.zeros([n, nets.G.c_dim])

    def run() -> None:
        for p in module.parameters():
            p.requires_grad_(True)
        loss.accumulate_gradients(phase, real, c, z, c, gain=1.0)
        for p in module.parameters():
            p.requires_grad_(False)
            p.grad = None

    return run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toggle", required=True, choices=TOGGLES)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="32")
    ap.add_argument("--threads", type=int, default=1, help="threads (except for two-threads)")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--phase", choices=PHASES, default=None, help="time this loss phase alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    trainer = build_trainer(args.config, "fp32", 0.2)
    flip = switches(trainer)[args.toggle]
    work = phase_runner(trainer, args.phase) if args.phase else step_runner(trainer)

    def cycle(on: bool) -> float:
        flip(on)
        t0 = time.perf_counter()
        for _ in range(CYCLE):
            work()
        return (time.perf_counter() - t0) * 1000 / CYCLE

    cycle(False)  # warm-up of both states: allocator, oneDNN primitives
    cycle(True)
    ratios = []
    unit = f"{args.phase} call" if args.phase else "step"
    for k in range(args.pairs):
        ms = {on: cycle(on) for on in ((False, True) if k % 2 == 0 else (True, False))}
        ratios.append(ms[False] / ms[True])
        print(f"pair {k + 1}: off {ms[False]:.1f} ms per {unit}, on {ms[True]:.1f}, x{ratios[-1]:.3f}",
              flush=True)
    threads = "1 vs 2 threads" if args.toggle == "two-threads" else f"{args.threads} thread(s)"
    print(f"# step_toggle {args.toggle}: config {args.config}, {unit}, {threads}, "
          f"torch {torch.__version__}: on is x{statistics.median(ratios):.3f} "
          f"(pairs x{min(ratios):.3f}..x{max(ratios):.3f})")


if __name__ == "__main__":
    main()
