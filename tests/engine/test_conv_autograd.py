"""The engine's own conv backward (stylegan2_ada.conv_autograd): the same values and gradients as
torch's conv autograd, first order and through a gradient penalty's double backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from stylegan2_ada import AugmentPipe, Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from stylegan2_ada import conv_autograd as ca
from stylegan2_ada.loss import StyleGAN2Loss

# (name, in channels, out channels, kernel, stride, padding, groups, transposed, bias): every conv
# shape the networks make — 3x3 (stride 1 and the discriminator's stride 2), the resampling filter
# as a depthwise conv (stride 1 and 2), the generator's stride-2 transposed conv, a 1x1 with bias.
CASES = [
    ("conv3x3", 4, 5, 3, 1, 1, 1, False, True),
    ("conv3x3-stride2", 4, 5, 3, 2, 0, 1, False, True),
    ("depthwise4x4", 4, 4, 4, 1, 1, 4, False, False),
    ("depthwise4x4-stride2", 4, 4, 4, 2, 1, 4, False, False),
    ("transposed3x3-stride2", 4, 5, 3, 2, 0, 1, True, False),
    ("conv1x1", 4, 5, 1, 1, 0, 1, False, True),
]


def _make(case, dtype=torch.float64, channels_last=False, seed=0):
    _, cin, cout, k, stride, padding, groups, transposed, bias = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, cin, 9, 9, generator=gen, dtype=dtype)
    shape = (cin, cout // groups, k, k) if transposed else (cout, cin // groups, k, k)
    w = torch.randn(shape, generator=gen, dtype=dtype)
    b = torch.randn(cout, generator=gen, dtype=dtype) if bias else None
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    return x, w, b


def _torch_conv(case, x, w, b):
    _, _, _, _, stride, padding, groups, transposed, _ = case
    if transposed:
        return F.conv_transpose2d(x, w, b, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)


def _own_conv(case, x, w, b):
    _, _, _, _, stride, padding, groups, transposed, _ = case
    spec = ca.ConvSpec((stride, stride), (padding, padding), (0, 0), groups, transposed)
    return ca._Conv.apply(x, w, b, spec)


def _leaves(x, w, b):
    return [t.detach().clone().requires_grad_(True) if t is not None else None for t in (x, w, b)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_first_order_values_and_gradients_match_torch(case, channels_last):
    x, w, b = _make(case, channels_last=channels_last)
    ref_in, own_in = _leaves(x, w, b), _leaves(x, w, b)
    y_ref = _torch_conv(case, *ref_in)
    y_own = _own_conv(case, *own_in)
    torch.testing.assert_close(y_own, y_ref, rtol=1e-12, atol=1e-12)
    gy = torch.randn_like(y_ref)
    y_ref.backward(gy)
    y_own.backward(gy)
    for ref, own in zip(ref_in, own_in, strict=True):
        if ref is not None:
            torch.testing.assert_close(own.grad, ref.grad, rtol=1e-10, atol=1e-10)


def _penalty_grads(conv, x, w, b):
    """An R1-like penalty: |d sum(softplus(conv(x)) * r) / dx|^2, differentiated w.r.t. w, b and x."""
    y = conv(x, w, b)
    r = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)
    (gx,) = torch.autograd.grad((F.softplus(y) * r).sum(), x, create_graph=True)
    gx.square().sum().backward()
    return [t.grad for t in (x, w, b) if t is not None]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_penalty_double_backward_matches_torch(case):
    """Inside a penalty's graph, the first backward skips the weight gradients (nobody asked for
    them) and its input gradient is a plain conv: the penalty's gradients are torch's own."""
    x, w, b = _make(case, channels_last=True)
    ref = _penalty_grads(lambda *a: _torch_conv(case, *a), *_leaves(x, w, b))
    own = _penalty_grads(lambda *a: _own_conv(case, *a), *_leaves(x, w, b))
    assert len(own) == len(ref)
    for got, want in zip(own, ref, strict=True):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_a_penalty_graph_refuses_weight_gradients_loudly():
    """The contract of penalty_graph(): a graph-building backward asks for input gradients only.
    Asking it for a weight's fails (no silent zero); outside the scope torch's autograd answers."""
    x, w, _ = _leaves(*_make(CASES[0]))
    with ca.penalty_graph():
        y = ca.conv2d(x, w, padding=1)
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        torch.autograd.grad(y.square().sum(), w, create_graph=True)
    (gw,) = torch.autograd.grad(ca.conv2d(x, w, padding=1).square().sum(), w, create_graph=True)
    (gw_ref,) = torch.autograd.grad(F.conv2d(x, w, padding=1).square().sum(), w, create_graph=True)
    torch.testing.assert_close(gw, gw_ref)
    assert gw.requires_grad  # and differentiable further


def test_plain_convs_keep_torch_autograd_outside_a_penalty():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    assert type(ca.conv2d(x, w, padding=1).grad_fn).__name__.startswith("Convolution")
    with ca.penalty_graph():
        assert "_Conv" in type(ca.conv2d(x, w, padding=1).grad_fn).__name__
    assert not ca._PENALTY_GRAPH.get()


def _networks(seed: int):
    torch.manual_seed(seed)
    common = dict(c_dim=0, img_resolution=16, img_channels=1, channel_base=128, channel_max=8)
    G = Generator.from_config(GeneratorConfig(z_dim=8, w_dim=8, mapping_layers=2, **common)).train()
    D = Discriminator.from_config(DiscriminatorConfig(mapping_layers=2, mbstd_group_size=2,
                                                      channels_last=True, **common)).train()
    return G, D


@pytest.mark.parametrize("phase", ["Greg", "Gboth", "Dreg", "Dboth", "Dmain"])
def test_loss_phases_give_torch_autograd_gradients(phase):
    """Path length and R1 train with the same gradients with the engine's conv backward as with
    torch's (the main phases never use it: the same numbers by construction, checked too)."""
    grads = []
    for own in (True, False):
        G, D = _networks(0)
        pipe = AugmentPipe(1)
        pipe.p = 0.5
        loss = StyleGAN2Loss(G, D, augment_pipe=pipe, r1_gamma=1.0, penalty_convs=own)
        loss.pl_mean = torch.tensor(0.3)
        trained = G if phase.startswith("G") else D
        for p in trained.parameters():
            p.requires_grad_(True)
        torch.manual_seed(1)
        real, c = torch.rand(4, 1, 16, 16) * 2 - 1, torch.zeros(4, 0)
        loss.accumulate_gradients(phase, real, c, torch.randn(4, 8), c, gain=2.0)
        grads.append({n: p.grad.clone() for n, p in trained.named_parameters() if p.grad is not None})
    own, ref = grads
    assert own.keys() == ref.keys() and len(ref) > 4
    for name in ref:
        scale = float(ref[name].abs().max())
        torch.testing.assert_close(own[name], ref[name], rtol=1e-4, atol=1e-5 * max(scale, 1e-3), msg=name)
