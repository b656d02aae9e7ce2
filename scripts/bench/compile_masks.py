"""Why `torch.compile` loses in the training step on some CPUs: inductor's boolean stores.

    python scripts/bench/compile_masks.py --threads 1
    python scripts/bench/compile_masks.py --threads 1 --shape 32,64,32,32

Times, in one run on one tensor (channels_last, float32), eager against compiled:
  * `x > 0`, a kernel whose only output is a bool tensor: compiled with inductor's default
    vector code and again with scalar code (`cpp.simdlen = 1`);
  * the same with a float output (`where(x > 0, 1, 0.2)`), the control;
  * leaky ReLU, gain and clamp forward+backward, the layer epilogue the step compiles, whose
    forward saves two bool masks for its backward.
The ratios are eager time / compiled time (above 1: compiled is faster). Nothing here is
asserted: the numbers belong in docs/BENCHMARKS.md with the machine that gave them.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F


def timed(fn, repeats: int) -> float:
    """Median wall milliseconds of `fn()` after three warm-up calls (the first one compiles)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1000


def compiled(fn, simdlen: int | None):
    """`torch.compile(fn)` whose kernels are generated under `cpp.simdlen = simdlen` (None:
    inductor's choice); the first call compiles, so it runs inside the patch. Dynamo's cache
    is cleared first, or a second compile of `fn` would reuse the first one's code."""
    torch._dynamo.reset()
    compiled_fn = torch.compile(fn)
    patch = {} if simdlen is None else {"cpp.simdlen": simdlen}

    def first_then_plain(*args):
        with inductor_config.patch(patch):
            return compiled_fn(*args)
    return first_then_plain


def greater(x):
    return x > 0


def greater_as_float(x):
    return torch.where(x > 0, 1.0, 0.2)


def epilogue(x):
    return torch.clamp(F.leaky_relu(x, 0.2) * 2 ** 0.5, -256.0, 256.0)


def forward_backward(fn, x):
    def run():
        y = fn(x)
        y.backward(torch.ones_like(y))
    return run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--shape", default="32,64,32,32", help="N,C,H,W of the tensor")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = [int(v) for v in args.shape.split(",")]
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    xg = x.clone().requires_grad_(True)
    rows = []
    for name, fn in (("x > 0 (bool out)", greater), ("where(x > 0, 1, 0.2) (float out)", greater_as_float)):
        eager = timed(lambda fn=fn: fn(x), args.repeats)
        vector = timed(lambda f=compiled(fn, None): f(x), args.repeats)
        scalar = timed(lambda f=compiled(fn, 1): f(x), args.repeats)
        rows.append((name, eager, vector, scalar))
    eager = timed(forward_backward(epilogue, xg), args.repeats)
    vector = timed(forward_backward(compiled(epilogue, None), xg), args.repeats)
    scalar = timed(forward_backward(compiled(epilogue, 1), xg), args.repeats)
    rows.append(("lrelu*gain+clamp fwd+bwd (saves 2 bool masks)", eager, vector, scalar))
    print(f"# compile_masks: {shape} channels_last float32, {platform.processor() or 'CPU'}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| kernel | eager ms | compiled (vector) ms | compiled (scalar) ms | eager/vector | eager/scalar |")
    print("|---|---|---|---|---|---|")
    for name, e, v, s in rows:
        print(f"| {name} | {e:.2f} | {v:.2f} | {s:.2f} | x{e / v:.2f} | x{e / s:.2f} |")


if __name__ == "__main__":
    main()
