"""Why `torch.compile` loses in the training step on some CPUs: inductor's boolean stores.

    python scripts/bench/compile_masks.py --threads 1
    python scripts/bench/compile_masks.py --threads 1 --shape 32,64,32,32

Times, in one run on one tensor (channels_last, float32), eager against compiled:
  * `x > 0`, a kernel whose only output is a bool tensor: compiled with inductor's default
    vector code and again with scalar code (`cpp.simdlen = 1`);
  * the same with a float output (`where(x > 0, 1, 0.2)`), the control;
  * leaky ReLU, gain and clamp forward+backward, the layer epilogue the step compiles, whose
    forward saves two bool masks for its backward;
  * three 3x3 conv layers forward+backward: the engine's eager path (bias inside the conv,
    leaky ReLU in place, the clamp skipped where nothing reaches it) against the compiled
    epilogue with bool masks, and against a compiled epilogue that saves its float output
    instead, its backward an op inductor cannot see into (so no bool is stored).
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


@torch.library.custom_op("ganbalance_bench::epilogue_backward", mutates_args=())
def epilogue_backward(grad: torch.Tensor, out: torch.Tensor, gain: float, clamp: float) -> torch.Tensor:
    """The epilogue's input gradient from its output alone (the sign of the output is the
    input's; the clamp passed a gradient where |out| < clamp)."""
    inner = torch.ops.aten.leaky_relu_backward(grad, out, 0.2, True)
    return torch.ops.aten.hardtanh_backward(inner, out, -clamp, clamp) * gain


@epilogue_backward.register_fake
def _(grad, out, gain, clamp):
    return torch.empty_like(grad)


class EpilogueSavingOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gain: float, clamp: float):
        out = torch.clamp(F.leaky_relu(x, 0.2) * gain, -clamp, clamp)
        ctx.save_for_backward(out)
        ctx.gain, ctx.clamp = gain, clamp
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return epilogue_backward(grad, out, ctx.gain, ctx.clamp), None, None


def conv_stack(epilogue_fn, weight, bias):
    """Three 3x3 conv layers, each followed by `epilogue_fn` (gain folded into the weights)."""
    def run(x):
        for _ in range(3):
            x = epilogue_fn(F.conv2d(x, weight, bias, padding=1))
        return x
    return run


def eager_epilogue(x):  # the engine's eager layer end at this scale: the clamp is not reached
    return F.leaky_relu(x, 0.2, inplace=True)


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
    for name, fn in (("x > 0, bool out (A: vector code, B: scalar)", greater),
                     ("where(x > 0, 1, 0.2), float out (A: vector, B: scalar)", greater_as_float)):
        eager = timed(lambda fn=fn: fn(x), args.repeats)
        vector = timed(lambda f=compiled(fn, None): f(x), args.repeats)
        scalar = timed(lambda f=compiled(fn, 1): f(x), args.repeats)
        rows.append((name, eager, vector, scalar))
    eager = timed(forward_backward(epilogue, xg), args.repeats)
    vector = timed(forward_backward(compiled(epilogue, None), xg), args.repeats)
    scalar = timed(forward_backward(compiled(epilogue, 1), xg), args.repeats)
    rows.append(("lrelu*gain+clamp fwd+bwd, 2 bool masks (A: vector, B: scalar)", eager, vector, scalar))
    channels = shape[1]
    weight = (torch.randn(channels, channels, 3, 3) / (3 * channels ** 0.5)).contiguous(
        memory_format=torch.channels_last).requires_grad_(True)
    bias = torch.zeros(channels, requires_grad=True)
    eager = timed(forward_backward(conv_stack(eager_epilogue, weight, bias), xg), args.repeats)
    masks = timed(forward_backward(compiled(conv_stack(epilogue, weight, bias), None), xg), args.repeats)
    saving = conv_stack(lambda v: EpilogueSavingOutput.apply(v, 2 ** 0.5, 256.0), weight, bias)
    floats = timed(forward_backward(compiled(saving, None), xg), args.repeats)
    rows.append(("3 conv layers fwd+bwd (A: bool masks saved, B: float output saved)", eager, masks, floats))
    print(f"# compile_masks: {shape} channels_last float32, {platform.processor() or 'CPU'}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    # A and B: inductor's vector and scalar code, except where the row names them.
    print("| kernel | eager ms | compiled A ms | compiled B ms | eager/A | eager/B |")
    print("|---|---|---|---|---|---|")
    for name, e, v, s in rows:
        print(f"| {name} | {e:.2f} | {v:.2f} | {s:.2f} | x{e / v:.2f} | x{e / s:.2f} |")


if __name__ == "__main__":
    main()
