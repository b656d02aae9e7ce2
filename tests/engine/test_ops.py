"""Unit tests of stylegan2_ada.ops against hand-computed small cases and independent identities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from stylegan2_ada.ops import (
    bias_act,
    conv2d_resample,
    downsample2d,
    minibatch_std,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

F64 = torch.float64


def filt(dtype=F64) -> torch.Tensor:
    return setup_filter().to(dtype)


def test_setup_filter_is_normalised_outer_product():
    f = setup_filter()
    assert f.shape == (4, 4)
    assert torch.allclose(f.sum(), torch.tensor(1.0))
    assert torch.allclose(f[0], torch.tensor([1, 3, 3, 1]) / 64.0)


def test_upfirdn_zero_stuffing():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    y = upfirdn2d(x, None, up=2)
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(y[0, 0], expected)


def test_upfirdn_negative_padding_crops():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = upfirdn2d(x, None, padding=(-1, 0, 1, -2))  # (x0, x1, y0, y1)
    assert y.shape == (1, 1, 3, 3)
    assert torch.equal(y[0, 0, 0], torch.zeros(3))  # one zero row on top
    assert torch.equal(y[0, 0, 1:], x[0, 0, :2, 1:])


def test_upfirdn_is_true_convolution_not_correlation():
    # x = [0, 1, 0], pad 1 each side, filter [1, 2]: convolution -> [0, 1, 2, 0]
    # (correlation would give [0, 2, 1, 0]).
    x = torch.tensor([0.0, 1.0, 0.0]).reshape(1, 1, 1, 3)
    f = torch.tensor([[1.0, 2.0]])
    y = upfirdn2d(x, f, padding=(1, 1, 0, 0))
    assert torch.equal(y.flatten(), torch.tensor([0.0, 1.0, 2.0, 0.0]))


def test_upfirdn_down_keeps_every_second_sample_from_zero():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = upfirdn2d(x, torch.ones(1, 1), down=2)
    assert torch.equal(y[0, 0], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))


def test_upsample2d_constant_image_hand_values():
    # 1-D: interior taps sum to (1+3)/8 * 2 = 1; edges see one missing tap: 3/8 * 2 = 0.75.
    y = upsample2d(torch.ones(1, 1, 4, 4, dtype=F64), filt())
    row = torch.tensor([0.75, 1, 1, 1, 1, 1, 1, 0.75], dtype=F64)
    assert y.shape == (1, 1, 8, 8)
    assert torch.allclose(y[0, 0], torch.outer(row, row))


@pytest.mark.parametrize("shape", [(2, 1, 4, 4), (3, 3, 5, 8), (1, 2, 16, 16)])
def test_upsample2d_by_matrices_is_the_filtered_upsampling(shape):
    # A separable filter takes the matrix path on a CPU; it must be upfirdn2d's map to float64
    # rounding, first and second derivatives included. A filter that is not a product of two
    # 1-D filters keeps upfirdn2d (and still matches it).
    from stylegan2_ada.separable import separable_taps

    torch.manual_seed(8)
    x = torch.randn(shape, dtype=F64, requires_grad=True)
    skew = torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 3.0, 1.0], [2.0, 0.0, 1.0, 1.0],
                         [1.0, 1.0, 0.0, 2.0]])
    lopsided = torch.outer(torch.tensor([1.0, 2.0, 1.0, 3.0]), torch.tensor([2.0, 1.0, 1.0, 1.0])).double()
    for f, separable in ((filt(), True), (lopsided / lopsided.sum(), True), (skew.double() / 17, False)):
        assert (separable_taps(f, x) is not None) == separable
        want = upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4)
        torch.testing.assert_close(upsample2d(x, f), want, rtol=1e-12, atol=1e-12)
    small = torch.randn(1, 1, 3, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: upsample2d(t, filt()), (small,))


def test_downsample2d_constant_image_hand_values():
    # Pad 1 each side, taps [1,3,3,1]/8: edge outputs lose one tap of weight 1/8.
    y = downsample2d(torch.ones(1, 1, 8, 8, dtype=F64), filt())
    row = torch.tensor([0.875, 1, 1, 0.875], dtype=F64)
    assert y.shape == (1, 1, 4, 4)
    assert torch.allclose(y[0, 0], torch.outer(row, row))


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_up2_fast_path_equals_definition(groups):
    torch.manual_seed(0)
    x = torch.randn(1, 6, 5, 5, dtype=F64)
    w = torch.randn(8, 6 // groups, 3, 3, dtype=F64)
    fast = conv2d_resample(x, w, filt(), up=2, padding=1, groups=groups, fast=True)
    slow = conv2d_resample(x, w, filt(), up=2, padding=1, groups=groups, fast=False)
    assert fast.shape == (1, 8, 10, 10)
    assert torch.allclose(fast, slow, atol=1e-12)


def true_conv_up2_conv_first(x, w):
    """Independent order of the same LSI ops: zero-stuff, *full* true conv, then the filter.

    The definition pads by (3, 2) and filters first; the conv consumes 2 of that padding on
    each side, so the filter afterwards needs (1, 0).
    """
    z = upfirdn2d(x, None, up=2)
    h = F.conv2d(F.pad(z, [2, 2, 2, 2]), w.flip([2, 3]))
    return upfirdn2d(h, filt(x.dtype), padding=(1, 0, 1, 0), gain=4.0)


def test_conv_up2_is_true_convolution():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 4, dtype=F64)
    w = torch.randn(5, 3, 3, 3, dtype=F64)
    ours = conv2d_resample(x, w, filt(), up=2, padding=1)
    assert torch.allclose(ours, true_conv_up2_conv_first(x, w), atol=1e-12)
    # ...and not a correlation: the unflipped kernel gives different numbers.
    assert not torch.allclose(ours, true_conv_up2_conv_first(x, w.flip([2, 3])), atol=1e-3)


@pytest.mark.parametrize("k", [1, 3])
def test_conv_down2_equals_conv_then_filtered_decimation(k):
    # Conv first on the padded input (pad k//2 + 1), then the filter with stride 2 and no pad.
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, 8, dtype=F64)
    w = torch.randn(4, 3, k, k, dtype=F64)
    ours = conv2d_resample(x, w, filt(), down=2, padding=k // 2)
    p = k // 2 + 1
    ref = upfirdn2d(F.conv2d(F.pad(x, [p, p, p, p]), w), filt(), down=2)
    assert ours.shape == (2, 4, 4, 4)
    assert torch.allclose(ours, ref, atol=1e-12)


def test_conv_resample_rejects_bad_args():
    x = torch.randn(1, 2, 4, 4)
    w = torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match="up=2 or down=2"):
        conv2d_resample(x, w, setup_filter(), up=4)
    with pytest.raises(ValueError, match="filter"):
        conv2d_resample(x, w, None, up=2)


def test_bias_act_order_bias_act_gain_clamp():
    x = torch.tensor([-1.0, 0.5, 3.0]).reshape(1, 3, 1, 1)
    b = torch.tensor([0.5, -1.0, 0.0])
    y = bias_act(x, b, act="lrelu", clamp=2.0).flatten()
    s2 = math.sqrt(2.0)
    assert torch.allclose(y, torch.tensor([-0.1 * s2, -0.1 * s2, 2.0]))
    y_lin = bias_act(x, b, act="linear", gain=3.0).flatten()
    assert torch.allclose(y_lin, torch.tensor([-1.5, -1.5, 9.0]))


@pytest.mark.parametrize("peak", [0.5, 1.0 - 1e-6, 1.0, 1.5])
def test_bias_act_clamp_skipped_only_where_it_changes_nothing(peak, monkeypatch):
    # Below the clamp the hardtanh is skipped; values and gradients must equal those of the
    # clamp that always runs, also with a value exactly at the clamp (where hardtanh's
    # gradient is 0) and beyond it.
    import stylegan2_ada.ops as ops

    x = torch.linspace(-peak, peak, 24, dtype=F64).reshape(2, 3, 2, 2)

    def run():
        leaf = x.clone().requires_grad_(True)
        y = bias_act(leaf, None, act="linear", clamp=1.0)
        (grad,) = torch.autograd.grad((y * torch.arange(24.0, dtype=F64).reshape(y.shape)).sum(), leaf)
        return y.detach(), grad

    skipped = ops.reaches_clamp(x, 1.0) is False
    assert skipped == (peak < 1.0)
    y, grad = run()
    monkeypatch.setattr(ops, "reaches_clamp", lambda t, c: True)
    y_always, grad_always = run()
    assert torch.equal(y, y_always) and torch.equal(grad, grad_always)
    assert ops.reaches_clamp(torch.tensor([float("nan")]), 1.0)


@pytest.mark.parametrize("act", ["lrelu", "linear"])
def test_bias_act_inplace_gives_the_same_values_and_gradients(act):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(2, 3, 4, 4, generator=g, dtype=F64)
    bias = torch.randn(3, generator=g, dtype=F64)
    weight = torch.randn(2, 3, 4, 4, generator=g, dtype=F64)

    def run(inplace):
        x0, b = base.clone().requires_grad_(True), bias.clone().requires_grad_(True)
        x = x0 * 1.5  # a fresh intermediate, as a conv output is
        y = bias_act(x, b, act=act, gain=1.0, clamp=1.0, inplace=inplace)
        return (y.detach(), *torch.autograd.grad((y * weight).sum(), [x0, b]))

    for ours, ref in zip(run(True), run(False)):
        assert torch.equal(ours, ref)


def test_bias_act_errors():
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(torch.zeros(1, 2), act="swish")
    with pytest.raises(ValueError, match="bias"):
        bias_act(torch.zeros(1, 2), torch.zeros(3))


def test_normalize_2nd_moment():
    x = torch.tensor([[3.0, 4.0]])
    y = normalize_2nd_moment(x)
    assert torch.allclose(y.square().mean(), torch.tensor(1.0))
    assert torch.allclose(y, x / math.sqrt(12.5))


def naive_modconv(x, weight, styles, demodulate, up, noise=None):
    """Per-sample loop: modulate, demodulate, then an ordinary (up=2: true) convolution."""
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w * (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        if up == 2:
            outs.append(true_conv_up2_conv_first(x[n : n + 1], w))
        else:
            outs.append(F.conv2d(x[n : n + 1], w, padding=w.shape[-1] // 2))
    y = torch.cat(outs)
    return y + noise if noise is not None else y


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_fused_nonfused_and_naive_agree(up, demodulate):
    torch.manual_seed(3)
    x = torch.randn(3, 4, 6, 6, dtype=F64)
    weight = torch.randn(5, 4, 3, 3, dtype=F64)
    styles = torch.randn(3, 4, dtype=F64)
    noise = torch.randn(3, 1, 6 * up, 6 * up, dtype=F64)
    kw = dict(up=up, padding=1, resample_filter=filt(), demodulate=demodulate, noise=noise)
    fused = modulated_conv2d(x, weight, styles, fused=True, **kw).double()
    nonfused = modulated_conv2d(x, weight, styles, fused=False, **kw).double()
    ref = naive_modconv(x, weight, styles, demodulate, up, noise)
    # The op computes weights/demodulation in float32, hence the float32-level tolerance.
    assert torch.allclose(fused, nonfused, rtol=1e-5, atol=1e-5)
    assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_modulated_1x1_matmul_matches_the_per_sample_conv(layout, demodulate, out_channels):
    # toRGB's 1x1 modulated conv runs as one batched matmul over the pixels; values and every
    # gradient (x, weight, styles, noise) must equal the per-sample convolution's (times the
    # output gain, which scales the noise too), in both memory layouts, fused or not.
    torch.manual_seed(6)
    x = torch.randn(3, 4, 5, 6, dtype=F64).contiguous(memory_format=layout).requires_grad_(True)
    weight = torch.randn(out_channels, 4, 1, 1, dtype=F64, requires_grad=True)
    styles = torch.randn(3, 4, dtype=F64, requires_grad=True)
    noise = torch.randn(3, 1, 5, 6, dtype=F64, requires_grad=True)
    grad = torch.randn(3, out_channels, 5, 6, dtype=F64)
    inputs = [x, weight, styles, noise]
    ref = naive_modconv(x, weight, styles, demodulate, 1, noise) * 0.5
    ref_grads = torch.autograd.grad(ref, inputs, grad)
    for fused in (True, False):
        y = modulated_conv2d(x, weight, styles, noise=noise, demodulate=demodulate, fused=fused,
                             out_gain=0.5)
        assert y.shape == ref.shape
        if out_channels > 1:  # one channel is both layouts
            assert y.is_contiguous(memory_format=layout)
        # The op builds the modulated weights in float32, hence the float32-level tolerance.
        assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-5)
        for g, g_ref in zip(torch.autograd.grad(y, inputs, grad), ref_grads):
            assert torch.allclose(g.double(), g_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("noise_shape", [(3, 1, 5, 6), (5, 6)], ids=["per-sample", "const"])
def test_scale_add_noise_gradients_to_second_order(noise_shape):
    # The unfused modconv's epilogue x * d + noise has a backward of its own (no extra passes);
    # its first and second derivatives (path length differentiates it twice) are checked
    # numerically in float64, for per-sample and for constant noise.
    from stylegan2_ada.ops import _ScaleAddNoise

    torch.manual_seed(7)
    x = torch.randn(3, 4, 5, 6, dtype=F64).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    d = torch.randn(3, 4, 1, 1, dtype=F64, requires_grad=True)
    noise = torch.randn(noise_shape, dtype=F64, requires_grad=True)
    torch.testing.assert_close(_ScaleAddNoise.apply(x, d, noise), torch.addcmul(noise, x, d))
    assert torch.autograd.gradcheck(_ScaleAddNoise.apply, (x, d, noise))
    assert torch.autograd.gradgradcheck(_ScaleAddNoise.apply, (x, d, noise))


def test_demodulated_output_has_unit_scale_per_channel():
    # With demodulation, scaling all styles of a sample leaves the output unchanged.
    torch.manual_seed(4)
    x = torch.randn(2, 4, 5, 5)
    weight = torch.randn(3, 4, 3, 3)
    styles = torch.rand(2, 4) + 0.5
    a = modulated_conv2d(x, weight, styles, padding=1)
    b = modulated_conv2d(x, weight, styles * 7.0, padding=1)
    assert torch.allclose(a, b, atol=1e-5)


def test_modulated_conv_shape_errors():
    with pytest.raises(ValueError, match="styles must be"):
        modulated_conv2d(torch.randn(2, 4, 5, 5), torch.randn(3, 4, 3, 3), torch.randn(2, 5))


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_low_precision_close_to_fp32(dtype, tol, fused):
    torch.manual_seed(5)
    x = torch.randn(2, 8, 8, 8)
    weight = torch.randn(8, 8, 3, 3)
    # Large styles: without the float16 pre-normalisation x * styles would overflow (> 65504).
    styles = torch.randn(2, 8) * 1e5
    kw = dict(up=2, padding=1, resample_filter=setup_filter(), fused=fused)
    ref = modulated_conv2d(x, weight, styles, **kw)
    out = modulated_conv2d(x.to(dtype), weight, styles, **kw)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    err = (out.float() - ref).abs().max() / ref.abs().max()
    assert err < tol, f"{dtype} relative error {err:.2e}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_resampling_ops_keep_dtype(dtype):
    x = torch.randn(1, 2, 8, 8)
    f = setup_filter()
    for op in (upsample2d, downsample2d):
        ref = op(x, f)
        out = op(x.to(dtype), f)
        assert out.dtype == dtype
        assert torch.allclose(out.float(), ref, atol=3e-2)


def test_minibatch_std_hand_values():
    # N=4, G=2: samples (0, 2) and (1, 3) are grouped. Population std per channel, averaged.
    vals = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 4.0], [1.0, 3.0]])
    x = vals.reshape(4, 2, 1, 1)
    y = minibatch_std(x, group_size=2, num_channels=1)
    assert y.shape == (4, 3, 1, 1)
    assert torch.equal(y[:, :2], x)
    g0 = (math.sqrt(1 + 1e-8) + math.sqrt(4 + 1e-8)) / 2
    g1 = (math.sqrt(0 + 1e-8) + math.sqrt(1 + 1e-8)) / 2
    assert torch.allclose(y[:, 2].flatten(), torch.tensor([g0, g1, g0, g1]), atol=1e-7)


def test_minibatch_std_group_larger_than_batch_and_bad_batch():
    x = torch.randn(2, 4, 4, 4)
    assert minibatch_std(x, group_size=4, num_channels=2).shape == (2, 6, 4, 4)
    with pytest.raises(ValueError, match="divisible by the mbstd group size"):
        minibatch_std(torch.randn(6, 4, 4, 4), group_size=4)
