"""ADA augment pipeline: identity at p=0, each step's effect, gradients, ADA p rule."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from stylegan2_ada.augment import AUGPIPES, AugmentPipe, ada_update, augpipe_groups
from stylegan2_ada.augment.draws import AugmentStrengths
from stylegan2_ada.augment.warp import bilinear_zeros, lowpass, warp

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def only(step: str, channels: int = 3, p: float = 1.0, **strengths) -> AugmentPipe:
    """A pipe with every group off except `step`."""
    pipe = AugmentPipe(channels, {step: 1}, AugmentStrengths(**strengths))
    pipe.p = p
    return pipe


def without(groups, channels: int = 3, p: float = 1.0) -> AugmentPipe:
    """The bgc pipe with `groups` off."""
    pipe = AugmentPipe(channels, {name: 1 for name in GEOMETRIC + COLOUR if name not in groups})
    pipe.p = p
    return pipe


def g_inv(pipe: AugmentPipe, n: int, size: int) -> torch.Tensor:
    return pipe.draw(n, size, size).g_inv


def smooth(n: int, c: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Random images with little high-frequency content, which the filter pair keeps to ~1e-2."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(n, c, 4, 4, generator=g) * 2 - 1, size=size,
                                           mode="bicubic", align_corners=True)


def images(n: int, c: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_p_zero_is_exact_identity(channels):
    pipe = AugmentPipe(channels)
    x = images(6, channels)
    torch.manual_seed(1)
    assert torch.equal(pipe(x), x)


def test_p_is_a_settable_buffer_in_the_state_dict():
    pipe = AugmentPipe(3)
    pipe.p = 0.25
    assert isinstance(pipe.p, torch.Tensor) and pipe.p.item() == pytest.approx(0.25)
    other = AugmentPipe(3)
    other.load_state_dict(pipe.state_dict())
    assert other.p.item() == pytest.approx(0.25)
    other.p = torch.tensor(0.5)
    assert other.p.item() == 0.5


def test_rejects_unsupported_channel_counts_and_shapes():
    with pytest.raises(ValueError, match="num_channels"):
        AugmentPipe(2)
    with pytest.raises(ValueError, match="expected images"):
        AugmentPipe(3)(torch.zeros(2, 1, 8, 8))


def test_xflip_at_p1_flips_about_half_through_the_warp():
    """At p = 1 each image is flipped with chance 1/2; a flip goes through the filter pair like
    every geometric group, so it is close to `torch.flip` on smooth images, not a copy."""
    x = smooth(32, 3)
    torch.manual_seed(0)
    pipe = only("xflip")
    d = pipe.draw(32, 16, 16)
    flipped = d.params["xflip"][:, 0].bool()
    assert 5 < int(flipped.sum()) < 27
    from stylegan2_ada.augment import apply_draw

    out = apply_draw(x, d)
    expected = torch.where(flipped[:, None, None, None], x.flip(3), x)
    assert (out - expected).abs().max() < 0.1
    assert not torch.equal(out[flipped], x.flip(3)[flipped])


@pytest.mark.parametrize("q, turns", [(0.3, 1), (0.6, 2), (0.9, 3)])
def test_rotate90_quantile_turns_like_rot90(q, turns):
    x = smooth(2, 1)
    out = only("rotate90", channels=1)(x, quantile=q)
    assert (out - torch.rot90(x, turns, (2, 3))).abs().max() < 0.1


def test_integer_translation_shifts_content_by_whole_pixels():
    size = 16  # xint_max 0.125 -> shifts of at most 2 pixels; quantile 0.9 -> +2 (content moves right/down)
    x = smooth(2, 1, size)
    out = only("xint", channels=1)(x, quantile=0.9)
    assert (out[..., 4:-2, 4:-2] - x[..., 2:-4, 2:-4]).abs().max() < 1e-4


def test_identity_warp_returns_the_image_and_keeps_its_std():
    """sym6 is an orthogonal wavelet: up- and down-filtering with nothing between is exact.
    (The [1, 3, 3, 1] filter used before lost ~2.6 % of the std of every warped image.)"""
    for size, channels in ((8, 1), (32, 3), (64, 1)):
        x = images(4, channels, size)
        y = lowpass(x)
        assert (y - x).abs().max() / x.abs().max() < 1e-5
        assert torch.allclose(y.std(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)), rtol=1e-5)


def test_geometric_resampling_keeps_smooth_images_in_range():
    # sym6 has negative taps, so sharp edges ring a little; smooth content stays in range.
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(16, 3, 4, 4, generator=g) * 2 - 1, size=16,
                                             mode="bilinear", align_corners=True)
    pipe = without(COLOUR)
    torch.manual_seed(0)
    out = pipe(smooth)
    assert out.min() >= smooth.min() - 0.05 and out.max() <= smooth.max() + 0.05
    assert not torch.allclose(out, smooth, atol=1e-2)


def test_geometric_matrix_statistics():
    n, size = 4000, 32
    torch.manual_seed(0)
    m = g_inv(only("scale"), n, size)
    assert torch.log2(m[:, 0, 0]).std().item() == pytest.approx(0.2, rel=0.1)
    assert torch.equal(m[:, 0, 0], m[:, 1, 1])
    m = g_inv(only("aniso"), n, size)
    assert torch.allclose(m[:, 0, 0] * m[:, 1, 1], torch.ones(n))
    m = g_inv(only("xfrac"), n, size)
    assert (m[:, :2, 2] / size).std().item() == pytest.approx(0.125, rel=0.1)
    m = g_inv(only("rotate", p=0.5), n, size)
    rotated = (m[:, 0, 1].abs() > 0).float().mean().item()
    assert rotated == pytest.approx(0.5, abs=0.04)  # two draws at 1 - sqrt(1 - p) each


def test_per_sample_probability():
    torch.manual_seed(0)
    m = g_inv(only("xfrac", p=0.3), 4000, 8)
    moved = (m[:, :2, 2].abs().sum(1) > 0).float().mean().item()
    assert moved == pytest.approx(0.3, abs=0.03)


def test_brightness_shifts_the_mean_by_a_constant_per_image():
    x = images(2000, 1, 2)
    torch.manual_seed(0)
    delta = only("brightness", channels=1)(x) - x
    per_image = delta.mean(dim=(1, 2, 3))
    assert torch.allclose(delta, per_image[:, None, None, None].expand_as(delta), atol=1e-6)
    assert per_image.std().item() == pytest.approx(0.2, rel=0.1)


def test_contrast_scales_the_std_about_zero():
    x = images(2000, 3, 2)
    torch.manual_seed(0)
    out = only("contrast")(x)
    ratio = out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert torch.allclose(out, x * ratio[:, None, None, None], atol=1e-5)
    assert torch.log2(ratio).std().item() == pytest.approx(0.5, rel=0.1)


def _luma_and_chroma(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x[:, :3].mean(1, keepdim=True)
    return mean, x[:, :3] - mean


def test_lumaflip_negates_luma_and_keeps_chroma():
    x = images(16, 3)
    torch.manual_seed(0)
    out = only("lumaflip")(x)
    (l_in, c_in), (l_out, c_out) = _luma_and_chroma(x), _luma_and_chroma(out)
    assert torch.allclose(c_out, c_in, atol=1e-5)
    flipped = [not torch.equal(out[i], x[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i, f in enumerate(flipped):
        assert torch.allclose(l_out[i], -l_in[i] if f else l_in[i], atol=1e-5)


@pytest.mark.parametrize("step", ["hue", "saturation"])
def test_hue_and_saturation_keep_luma(step):
    x = images(16, 3)
    torch.manual_seed(0)
    out = only(step)(x)
    (l_in, c_in), (l_out, c_out) = _luma_and_chroma(x), _luma_and_chroma(out)
    assert torch.allclose(l_out, l_in, atol=1e-5)
    assert not torch.allclose(c_out, c_in, atol=1e-3)
    if step == "hue":  # a rotation about the luma axis keeps the chroma length
        assert torch.allclose(c_out.norm(dim=1), c_in.norm(dim=1), atol=1e-5)


def test_grey_luma_flip_negates_about_half():
    x = images(32, 1)
    torch.manual_seed(0)
    out = only("lumaflip", channels=1)(x)
    negated = [i for i in range(32) if torch.allclose(out[i], -x[i], atol=1e-6)]
    kept = [i for i in range(32) if torch.allclose(out[i], x[i], atol=1e-6)]
    assert 5 < len(negated) < 27 and len(negated) + len(kept) == 32


@pytest.mark.parametrize("step", ["hue", "saturation"])
def test_hue_and_saturation_leave_grey_images_alone(step):
    x = images(8, 1)
    torch.manual_seed(0)
    assert torch.allclose(only(step, channels=1)(x), x, atol=1e-6)


def test_alpha_channel_is_not_colour_transformed():
    x = images(8, 4)
    pipe = without(GEOMETRIC, channels=4)
    torch.manual_seed(0)
    out = pipe(x)
    assert torch.equal(out[:, 3], x[:, 3]) and not torch.allclose(out[:, :3], x[:, :3])


def test_gradients_flow_to_the_input_twice():
    # R1 differentiates the gradient of D(aug(x)) w.r.t. x, so aug must be twice differentiable.
    pipe = AugmentPipe(3)
    pipe.p = 0.8
    x = images(8, 3).requires_grad_(True)
    weight = torch.randn(1, 3, 8, 8, requires_grad=True)
    torch.manual_seed(0)
    score = (pipe(x) * weight).square().sum()
    (grad,) = torch.autograd.grad(score, x, create_graph=True)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    grad.square().sum().backward()
    assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_output_range_is_sane_at_high_p():
    pipe = AugmentPipe(3)
    pipe.p = 1.0
    torch.manual_seed(0)
    out = pipe(images(64, 3))
    assert torch.isfinite(out).all()
    # Brightness 0.2, contrast 2^N(0, 0.5) and saturation 2^N(0, 1) can stretch, but not wildly.
    assert out.abs().quantile(0.99) < 8


def test_ada_update_rises_falls_and_floors():
    step = 64 * 4 / (500 * 1000)
    assert ada_update(0.1, 0.8, 0.6, 64 * 4) == pytest.approx(0.1 + step)
    assert ada_update(0.1, 0.2, 0.6, 64 * 4) == pytest.approx(0.1 - step)
    assert ada_update(0.1, 0.6, 0.6, 64 * 4) == pytest.approx(0.1)
    assert ada_update(step / 2, 0.0, 0.6, 64 * 4) == 0.0
    assert ada_update(0.0, 0.7, 0.6, 100, ada_kimg=100) == pytest.approx(0.001)
    out = ada_update(torch.tensor(0.0), torch.tensor(-1.0), 0.6, 64)
    assert isinstance(out, torch.Tensor) and out.item() == 0.0
    assert ada_update(torch.tensor(0.5), 1.0, 0.6, 500).item() == pytest.approx(0.501)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_twice_differentiable_and_matches_cpu():
    pipe = AugmentPipe(3).cuda()
    pipe.p = 0.5
    x = images(4, 3).cuda().requires_grad_(True)
    out = pipe(x)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    grad.sum().backward()
    assert out.device.type == "cuda" and math.isfinite(x.grad.sum().item())
    torch.manual_seed(0)
    geom = AugmentPipe(3)
    geom.p = 1.0
    m = g_inv(geom, 4, 8)
    on_cpu = warp(images(4, 3), m)
    on_gpu = warp(images(4, 3).cuda(), m.cuda()).cpu()
    assert torch.allclose(on_cpu, on_gpu, atol=1e-5)


def test_bilinear_zeros_reads_pixel_coordinates_with_zeros_outside():
    # Against the definition, sample by sample in float64: pixel (x, y) is the centre of column
    # x and row y, the four neighbours are weighted by the fractional parts, and a neighbour
    # outside the image reads zero; also well outside the image.
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    coords = torch.rand(2, 6, 4, 2, generator=g, dtype=torch.float64) * 14 - 4  # beyond the edges
    coords[0, 0, 0] = torch.tensor([2.0, 3.0], dtype=torch.float64)  # exactly on a pixel

    def pixel(n, yi, xi):
        inside = 0 <= yi < 5 and 0 <= xi < 7
        return img[n, :, yi, xi] if inside else torch.zeros(3, dtype=torch.float64)

    ref = torch.zeros(2, 3, 6, 4, dtype=torch.float64)
    for n in range(2):
        for i in range(6):
            for j in range(4):
                x, y = coords[n, i, j].tolist()
                x0, y0 = math.floor(x), math.floor(y)
                fx, fy = x - x0, y - y0
                ref[n, :, i, j] = ((1 - fy) * ((1 - fx) * pixel(n, y0, x0) + fx * pixel(n, y0, x0 + 1))
                                   + fy * ((1 - fx) * pixel(n, y0 + 1, x0) + fx * pixel(n, y0 + 1, x0 + 1)))
    assert torch.allclose(bilinear_zeros(img, coords), ref, atol=1e-10)
    assert torch.allclose(ref[0, :, 0, 0], img[0, :, 3, 2])


def test_bilinear_zeros_differentiates_to_the_second_order():
    # Its backward is the adjoint pair (grid_sample, then the sampler's input gradient, then
    # grid_sample again): finite differences check the first and the second derivative, with
    # samples on, near and beyond the edges.
    g = torch.Generator().manual_seed(1)
    img = torch.randn(2, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(2, 3, 6, 2, generator=g, dtype=torch.float64) * 8 - 2
    coords[0, 0, 0] = torch.tensor([0.0, 0.0], dtype=torch.float64)  # exactly on a pixel
    assert torch.autograd.gradcheck(lambda x: bilinear_zeros(x, coords), (img,))
    assert torch.autograd.gradgradcheck(lambda x: bilinear_zeros(x, coords), (img,))


def test_a_warp_under_inference_mode_leaves_the_kept_matrices_usable_for_training():
    # The filter matrices are kept per size: the first warp at a size may run under
    # inference_mode (a metric, a sample grid), and the next one under autograd.
    size = 11  # a size no other test warps at, so this test builds the matrices
    x = torch.randn(2, 1, size, size)
    eye = torch.eye(3).expand(2, 3, 3).contiguous()
    with torch.inference_mode():
        warp(x, eye)
    x.requires_grad_(True)
    warp(x, eye).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_resampling_is_aligned_and_keeps_constants():
    # Up- and down-filters reproduce linear functions, so a ramp survives the identity
    # warp away from the mirrored borders; a half-pixel misalignment would shift it.
    ramp = torch.arange(16.0).expand(1, 1, 16, 16)
    for img in (ramp, ramp.transpose(2, 3)):
        assert torch.allclose(lowpass(img)[..., 2:-2, 2:-2], img[..., 2:-2, 2:-2], atol=1e-5)
    flat = torch.full((2, 3, 8, 8), 0.7)
    assert torch.allclose(lowpass(flat), flat, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    p=st.floats(0, 2),
    r_t=st.floats(-1, 1),
    n_images=st.integers(1, 4096),
)
def test_ada_update_moves_by_one_step_towards_the_target_and_never_below_zero(p, r_t, n_images):
    step = n_images / 500_000
    new = ada_update(p, r_t, 0.6, n_images)
    assert new >= 0
    if r_t > 0.6:
        assert new == pytest.approx(p + step)
    elif r_t < 0.6:
        assert new == pytest.approx(max(p - step, 0.0))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), value=st.floats(-1, 1))
@example(seed=2936, value=1.0)  # reaches the zeros at a corner: 1.2e-4 there
def test_any_rigid_warp_keeps_a_constant_image_constant(seed, value):
    # Bilinear weights and both filters sum to one, and reflecting a constant is constant. The
    # padding covers the reads of a rigid motion away from the border; a strong zoom-out may read
    # the zeros beyond it, as the method does, so scale and anisotropy are left out here. A
    # rotation plus a translation can still bring the filters' tails to those zeros at the outer
    # two pixels (seed 2936: 1.2e-4 at a corner; worst of 3,000 seeds 5.7e-3 there, 8.3e-7 inside).
    torch.manual_seed(seed)
    pipe = AugmentPipe(1, {"xflip": 1, "rotate90": 1, "xint": 1, "rotate": 1, "xfrac": 1})
    pipe.p = 1.0
    flat = torch.full((3, 1, 16, 16), value)
    out = pipe(flat)
    assert torch.allclose(out[..., 2:-2, 2:-2], flat[..., 2:-2, 2:-2], atol=1e-5)
    assert torch.allclose(out, flat, atol=1e-2)


@pytest.mark.parametrize("name", sorted(AUGPIPES))
@pytest.mark.parametrize("size", [4, 8, 32])
def test_every_named_pipeline_runs_and_differentiates_twice(name, size):
    """Every entry of the registry, on tiny and small images (the band filter's 21-pixel
    reflection folds again on images smaller than that)."""
    pipe = AugmentPipe(1, name)
    pipe.p = 1.0
    x = images(4, 1, size).requires_grad_(True)
    torch.manual_seed(0)
    out = pipe(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_unknown_pipeline_or_group_is_refused_with_the_names():
    with pytest.raises(ValueError, match="bgcfnc"):
        augpipe_groups("nonsense")
    with pytest.raises(ValueError, match="unknown augmentation group"):
        AugmentPipe(3, {"warp": 1})
    with pytest.raises(ValueError, match="quantile"):
        AugmentPipe(3)(images(1, 3), quantile=1.5)


def test_quantile_mode_is_deterministic_and_ignores_p():
    pipe = AugmentPipe(3, "bgcfnc")  # p stays 0
    x = images(2, 3, 16)
    torch.manual_seed(0)
    a = pipe(x, quantile=0.3)
    torch.manual_seed(1)
    b = pipe(x, quantile=0.3)
    # Everything is fixed by q except the noise draw itself.
    assert not torch.equal(a, x)
    d = pipe.draw(2, 16, 16, quantile=0.3)
    assert torch.equal(d.g_inv[0], d.g_inv[1]) and d.params["noise"][0].item() > 0
    assert (a - b).abs().max() < 0.2


def test_cutout_zeroes_a_half_size_square():
    x = torch.ones(1, 3, 8, 8)
    out = only("cutout", channels=3)(x, quantile=0.5)
    assert out[0, 0].sum().item() == 64 - 16 and torch.equal(out[0, 0], out[0, 2])
    assert x.sum() == 3 * 64  # the input is not modified in place
