"""Low-level ops of the StyleGAN2-ADA engine, in pure PyTorch.

Everything here is stated in docs/ENGINE.md, "Notation and building blocks".
The functions are dtype-agnostic (float32 / bfloat16 / float16), device-agnostic, and
avoid data-dependent Python control flow so that `torch.compile` traces the synthesis
forward without graph breaks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F

from .conv_autograd import conv2d, conv_transpose2d
from .separable import separable_taps, upsample_matrix

Padding = int | Sequence[int]

# Default gain of each supported activation (docs/ENGINE.md: sqrt(2) for lrelu, 1 for linear).
_ACT_GAIN = MappingProxyType({"linear": 1.0, "lrelu": math.sqrt(2.0)})
_LRELU_SLOPE = 0.2


def act_gain(act: str) -> float:
    """The default gain of activation `act` ("linear" or "lrelu")."""
    if act not in _ACT_GAIN:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACT_GAIN)}")
    return _ACT_GAIN[act]


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """The 2-D low-pass filter `outer(k, k) / sum(outer(k, k))` (docs/ENGINE.md), as float32."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(k, k)
    return f / f.sum()


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x * rsqrt(mean(x^2 over `dim`) + eps)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
    dim: int = 1,
    inplace: bool = False,
) -> torch.Tensor:
    """Add bias along `dim`, apply `act`, multiply by `gain`, clamp to [-clamp, clamp].

    `gain=None` means the activation's default gain. The order matters: the clamp bounds the
    *scaled* activation, which is what keeps float16 activations finite.

    `inplace=True` lets the bias add and the activation overwrite `x`: for callers whose `x`
    is a fresh intermediate that nothing else reads (a conv or matmul output; their backward
    keeps their inputs, not their output). It saves a new tensor per op, not a pass; the
    activation's backward then reads its output, whose sign is its input's, so the gradient
    is the same.
    """
    gain = act_gain(act) if gain is None else float(gain)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(
                f"bias_act: bias of shape {tuple(b.shape)} does not match "
                f"{x.shape[dim]} channels along dim {dim} of input {tuple(x.shape)}"
            )
        shape = [1] * x.ndim
        shape[dim] = -1
        b = b.to(x.dtype).reshape(shape)
        x = x.add_(b) if inplace else x + b
    if act == "lrelu":
        x = F.leaky_relu(x, _LRELU_SLOPE, inplace=inplace)
    if not is_unit_gain(gain):
        x = x * gain
    if clamp is not None and clamp >= 0 and reaches_clamp(x, clamp):
        # hardtanh is clamp with a one-kernel backward (clamp's takes four: two compares, an
        # and, a where); they differ only at exactly +-clamp, where hardtanh passes no gradient.
        x = F.hardtanh(x, -clamp, clamp)
    return x


def reaches_clamp(x: torch.Tensor, clamp: float) -> bool:
    """False only when every value lies strictly inside (-clamp, clamp), where hardtanh is the
    identity and passes every gradient unchanged: skipping it then changes no value and no
    gradient, and saves a pass forward and one backward. The check is two read-only reductions
    (no write, nothing saved for backward). On a GPU it would stall the queue for a host sync,
    and under torch.compile it would break the graph, so there the clamp always runs. A NaN
    makes both comparisons false, so the clamp runs (and passes the NaN, as it always did)."""
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return True
    x = x.detach()
    return not (float(x.amax()) < clamp and float(x.amin()) > -clamp)


def is_unit_gain(gain: float) -> bool:
    """True for gains that are 1 up to float64 rounding (sqrt(2) * sqrt(1/2) = 1 + 2e-16): a
    multiply by them is a pass over the tensor that changes no float32 or lower value."""
    return abs(gain - 1.0) < 1e-12


def in_memory_format(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """`x` laid out in `memory_format`. A one-channel [N, 1, H, W] tensor counts as both layouts
    to torch, which leaves its strides alone, and a conv fed it answers in NCHW, so every later
    layer converts back (measured: four [2N, 64, 32, 32] copies per D pass at 32²). Here it gets
    explicit channels_last strides (a copy of one channel, cheap)."""
    if memory_format == torch.channels_last and x.shape[1] == 1 and x.stride(1) != 1:
        return torch.empty_like(x, memory_format=memory_format).copy_(x)
    return x.contiguous(memory_format=memory_format)


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """Padding as (x0, x1, y0, y1); an int pads all four sides."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        px0, px1, py0, py1 = padding
        return px0, px1, py0, py1
    raise ValueError(f"padding must be an int, (px, py) or (x0, x1, y0, y1); got {padding!r}")


def _check_4d(x: torch.Tensor, where: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{where}: expected a 4-D [N, C, H, W] tensor, got shape {tuple(x.shape)}")


def _zero_stuff(x: torch.Tensor, up: int) -> torch.Tensor:
    """Insert `up - 1` zeros after every sample along H and W: [N, C, H, W] -> [N, C, up*H, up*W]."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    return x.reshape(n, c, h * up, w * up)


def _pad_or_crop(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Zero-pad by positive amounts, crop by negative ones (upfirdn step 2)."""
    pads = [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)]
    if any(pads):  # F.pad by nothing still copies the tensor (forward and backward)
        x = F.pad(x, pads)
    if min(px0, px1, py0, py1) >= 0:
        return x
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-py0, 0) : h - max(-py1, 0), max(-px0, 0) : w - max(-px1, 0)]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero-stuff), pad/crop, convolve each channel with `f * gain`, keep every `down`-th.

    `f` is a 2-D filter `[fh, fw]` or None (no filtering; `gain` still applies).
    """
    _check_4d(x, "upfirdn2d")
    if up < 1 or down < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1, got up={up}, down={down}")
    px0, px1, py0, py1 = _parse_padding(padding)
    if up > 1:
        x = _zero_stuff(x, up)
    # Zero padding that all four sides share is left to the conv (no padded copy is made).
    inner = max(min(px0, px1, py0, py1), 0) if f is not None else 0
    x = _pad_or_crop(x, px0 - inner, px1 - inner, py0 - inner, py1 - inner)
    if f is None:
        x = x * gain if gain != 1.0 else x
        return x[:, :, ::down, ::down] if down > 1 else x
    if f.ndim != 2:
        raise ValueError(f"upfirdn2d: filter must be 2-D [fh, fw], got shape {tuple(f.shape)}")
    c = x.shape[1]
    # A true convolution is correlation with the flipped kernel; the resampling filter is symmetric,
    # but flipping keeps this function exact for any filter. A strided depthwise conv equals
    # "filter, then keep every down-th sample starting at 0" without computing the dropped ones.
    k = (f.to(x.dtype) * gain).flip([0, 1])
    k = k[None, None].repeat(c, 1, 1, 1)
    return conv2d(x, k, stride=down, padding=inner, groups=c)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Spec upsample2d: H -> up*H (pad (2, 1, 2, 1) and gain up^2 for the 4-tap filter).

    On a CPU, a separable filter (the resampling filter is outer(k, k) / sum) makes this the
    linear map A_h x A_w^T per channel, two small matrix products (`separable.upsample_matrix`): the
    synthesis image path's one-channel depthwise convolution, forward and backward, ran ~15x
    slower than them (2.3 against 0.14 ms at [16, 1, 16, 16] -> 32²). The same numbers to float
    rounding, and differentiable to any order (path length differentiates through it)."""
    fw = f.shape[-1]
    p0 = (fw + up - 1) // 2
    p1 = (fw - up) // 2
    taps = separable_taps(f, x) if up == 2 else None
    if taps is not None:
        a_h = upsample_matrix(taps[0], p0, x.shape[2], x.dtype, x.device)
        a_w = upsample_matrix(taps[1], p0, x.shape[3], x.dtype, x.device)
        return torch.matmul(a_h, x).matmul(a_w.t())
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    """Spec downsample2d: H -> H/down (pad (1, 1, 1, 1) for the 4-tap filter)."""
    fw = f.shape[-1]
    p0 = (fw - down + 1) // 2
    p1 = (fw - down) // 2
    return upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))


def _transposed_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """[G*O, I, k, k] conv weight -> [G*I, O, k, k] layout expected by conv_transpose2d."""
    go, i, kh, kw = w.shape
    o = go // groups
    return w.reshape(groups, o, i, kh, kw).transpose(1, 2).reshape(groups * i, o, kh, kw)


def conv2d_up2(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor,
    padding: int,
    groups: int = 1,
    fast: bool = True,
) -> torch.Tensor:
    """k x k conv with up=2, H -> 2H, as a *true* convolution (docs/ENGINE.md, "Notation and building
    blocks").

    Slow (definition): zero-stuff, pad, filter with f*4, valid true convolution.
    Fast: a stride-2 transposed conv is exactly "zero-stuff then full true convolution",
    so it replaces steps 1 and 4; the filter then runs on the (smaller-padded) result.
    """
    kw = w.shape[-1]
    fw = f.shape[-1]
    px0 = padding + (fw + 1) // 2
    px1 = padding + (fw - 2) // 2
    if not fast:
        x = upfirdn2d(x, None, up=2)
        x = upfirdn2d(x, f, padding=(px0, px1, px0, px1), gain=4.0)
        return conv2d(x, w.flip([2, 3]), groups=groups)
    x = conv_transpose2d(x, _transposed_weight(w, groups), stride=2, groups=groups)
    # The transposed conv already spent kw-1 samples of padding on each side; on the right it
    # also lacks the trailing stuffed zero (output (H-1)*2 + kw, not 2H + kw - 1), hence +1.
    q0 = px0 - (kw - 1)
    q1 = px1 - (kw - 1) + 1
    return upfirdn2d(x, f, padding=(q0, q1, q0, q1), gain=4.0)


def conv2d_down2(
    x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, padding: int, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """k x k conv with down=2, H -> H/2 (docs/ENGINE.md, "Notation and building blocks"); plain
    correlation, plus `bias` per output channel if given (added inside the conv kernel)."""
    kw = w.shape[-1]
    fw = f.shape[-1]
    p0 = padding + (fw - 1) // 2
    p1 = padding + (fw - 2) // 2
    if kw == 1:
        # Filtering and decimating first makes the 1x1 conv run on 4x fewer pixels.
        x = upfirdn2d(x, f, down=2, padding=(p0, p1, p0, p1))
        return conv2d(x, w, bias)
    x = upfirdn2d(x, f, padding=(p0, p1, p0, p1))
    return conv2d(x, w, bias, stride=2)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    fast: bool = True,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Conv with optional up=2 (true convolution) or down=2 (correlation), else plain conv2d;
    then `bias` per output channel if given (inside the conv kernel where no filter follows it)."""
    _check_4d(x, "conv2d_resample")
    if up not in (1, 2) or down not in (1, 2) or (up > 1 and down > 1):
        raise ValueError(f"conv2d_resample supports up=2 or down=2 (not both); got up={up}, down={down}")
    if (up > 1 or down > 1) and f is None:
        raise ValueError("conv2d_resample: resampling needs the low-pass filter f")
    if up == 2:
        x = conv2d_up2(x, w, f, padding, groups=groups, fast=fast)
        return x if bias is None else x + bias.reshape(1, -1, 1, 1)
    if down == 2:
        if groups != 1:
            raise ValueError("conv2d_resample: grouped conv with down=2 is not supported")
        return conv2d_down2(x, w, f, padding, bias)
    return conv2d(x, w, bias, padding=padding, groups=groups)


def _prenormalize_fp16(weight: torch.Tensor, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale weight (per output channel) and styles (per sample) to max-abs ~1 for float16.

    Demodulation divides these scales out again, so the result is unchanged up to the 1e-8
    epsilon, but the intermediate `x * styles` and the modulated weights stay far from the
    float16 overflow limit.
    """
    i, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    w_max = weight.abs().amax(dim=[1, 2, 3], keepdim=True)
    weight = weight * (1.0 / math.sqrt(i * kh * kw) / w_max)
    styles = styles / styles.abs().amax(dim=1, keepdim=True)
    return weight, styles


def _modulated_1x1(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool,
    noise: torch.Tensor | None,
    out_gain: float,
) -> torch.Tensor:
    """A 1x1 modulated conv (toRGB) as one batched matmul over the pixels with the per-sample
    weights w[o, i] s[n, i] (times the demodulation d[n, o]) built first: an [N, O, I] tensor,
    tiny. Neither path below does better: the fused one runs a grouped conv over a reshaped
    copy, the unfused one writes x * s, a full [N, I, H, W] tensor, forward and again backward
    (measured at [16, 64, 32, 32] into one channel: forward+backward 8.5 ms there, 3.0 ms here).
    The pixels are read in the layout x has, so neither layout is copied."""
    n, i, h, w = x.shape
    o = weight.shape[0]
    wn = weight.reshape(1, o, i) * styles.reshape(n, 1, i)  # [N, O, I]
    if demodulate:
        wn = wn * (wn.square().sum(dim=2, keepdim=True) + 1e-8).rsqrt()
    if not is_unit_gain(out_gain):
        wn = wn * out_gain
    wn = wn.to(x.dtype)
    if x.stride(1) == 1 and i > 1:  # channels_last: [N, H*W, I] @ [N, I, O]
        y = torch.bmm(x.permute(0, 2, 3, 1).reshape(n, h * w, i), wn.transpose(1, 2))
        y = y.reshape(n, h, w, o).permute(0, 3, 1, 2)
    else:  # NCHW: [N, O, I] @ [N, I, H*W]
        y = torch.bmm(wn, x.reshape(n, i, h * w)).reshape(n, o, h, w)
    if noise is not None:
        y = y + (noise * out_gain).to(y.dtype)
    return y


class _ScaleAddNoise(torch.autograd.Function):
    """y = x * d + noise, d per sample and channel: torch.addcmul forward, and a backward without
    the two extra passes torch's takes (it multiplies each full-size factor by addcmul's `value`,
    here 1, before multiplying by the gradient). Its ops are torch ops, so it differentiates again
    (path length's double backward runs through it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, d: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, d)
        ctx.noise_shape = noise.shape
        return torch.addcmul(noise, x, d)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, d = ctx.saved_tensors
        need_x, need_d, need_noise = ctx.needs_input_grad
        gx = g * d if need_x else None
        gd = (g * x).sum_to_size(d.shape) if need_d else None
        gnoise = g.sum_to_size(ctx.noise_shape) if need_noise else None
        return gx, gd, gnoise


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool = True,
    out_gain: float = 1.0,
) -> torch.Tensor:
    """Per-sample modulated (and optionally demodulated) conv, plus optional additive noise,
    all times `out_gain` (folded into the per-sample coefficients, not a pass of its own).

    fused=True folds the styles into per-sample weights and runs one grouped conv (few kernel
    launches; good for inference). fused=False scales the activations by the styles before the
    shared-weight conv and by the demodulation coefficients after it, which is mathematically
    the same and has a cheaper backward (good for training).
    """
    _check_4d(x, "modulated_conv2d")
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    if styles.shape != (n, i):
        raise ValueError(
            f"modulated_conv2d: styles must be [N={n}, in_channels={i}], got {tuple(styles.shape)}"
        )
    if x.shape[1] != i:
        raise ValueError(f"modulated_conv2d: input has {x.shape[1]} channels, weight expects {i}")
    weight = weight.float()
    styles = styles.float()
    if demodulate and x.dtype == torch.float16:
        weight, styles = _prenormalize_fp16(weight, styles)
    if kh == 1 and kw == 1 and up == 1 and padding == 0:
        return _modulated_1x1(x, weight, styles, demodulate, noise, out_gain)
    # Demodulation coefficients are computed in float32 whatever the activation dtype.
    if not fused:
        # sum_{i,k} (w[o,i,k] s[n,i])^2 = sum_i s[n,i]^2 * sum_k w[o,i,k]^2: a small matmul
        # instead of materialising the [N, O, I, k, k] modulated weights the fused path needs.
        dcoefs = None
        if demodulate:
            dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        if not is_unit_gain(out_gain):
            dcoefs = torch.full([n, o], out_gain, device=x.device) if dcoefs is None else dcoefs * out_gain
        x = x * styles.to(x.dtype).reshape(n, i, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
        if noise is not None and dcoefs is not None:
            # One pass for "scale by the coefficients, add the noise" instead of two.
            d = dcoefs.to(x.dtype).reshape(n, o, 1, 1)
            return _ScaleAddNoise.apply(x, d, (noise * out_gain).to(x.dtype))
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, o, 1, 1)
    else:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, i, 1, 1)  # [N, O, I, k, k]
        if demodulate:
            w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        if not is_unit_gain(out_gain):
            w = w * out_gain
        h_in, w_in = x.shape[2], x.shape[3]
        x = x.reshape(1, n * i, h_in, w_in)
        w = w.reshape(n * o, i, kh, kw).to(x.dtype)
        x = conv2d_resample(x, w, resample_filter, up=up, padding=padding, groups=n)
        x = x.reshape(n, o, x.shape[2], x.shape[3])
    if noise is not None:
        x = x + (noise * out_gain).to(x.dtype)
    return x


def minibatch_std(x: torch.Tensor, group_size: int, num_channels: int = 1) -> torch.Tensor:
    """Append `num_channels` minibatch-stddev feature maps (docs/ENGINE.md, "Notation and building blocks").

    Sample i is grouped with samples i + k * (N / G); the std over each group is averaged over
    (C / F, H, W) per channel group F and tiled back to every sample of the group.
    """
    _check_4d(x, "minibatch_std")
    n, c, h, w = x.shape
    g = min(group_size, n)
    f = num_channels
    if n % g != 0:
        raise ValueError(
            f"minibatch_std: batch size {n} is not divisible by the mbstd group size {g}; "
            f"use a batch that is a multiple of {g} or set mbstd_group_size to a divisor of it"
        )
    if c % f != 0:
        raise ValueError(f"minibatch_std: {c} channels are not divisible by num_channels={f}")
    y = x.float().reshape(g, n // g, f, c // f, h, w)
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [N/G, F, C/F, H, W]
    y = y.mean(dim=[2, 3, 4]).reshape(n // g, f, 1, 1)
    y = y.repeat(g, 1, h, w).to(x.dtype)
    return torch.cat([x, y], dim=1)
