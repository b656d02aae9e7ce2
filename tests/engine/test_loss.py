"""StyleGAN2-ADA losses: hand-computed values, analytic R1 / path length, golden files, phases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from stylegan2_ada import AugmentPipe, Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from stylegan2_ada.loss import (
    StyleGAN2Loss,
    d_logistic_loss,
    g_nonsaturating_loss,
    lazy_regularization,
    path_length,
    path_length_loss,
    pl_penalty,
    r1_penalty,
    style_mix,
)

GOLDEN = Path(__file__).parents[1] / "golden"


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_losses_match_hand_computed_softplus():
    real = torch.tensor([[2.0], [-1.0]])
    fake = torch.tensor([[0.5], [-3.0]])
    assert g_nonsaturating_loss(fake).item() == pytest.approx((softplus(-0.5) + softplus(3.0)) / 2)
    expected = (softplus(0.5) + softplus(-3.0)) / 2 + (softplus(-2.0) + softplus(1.0)) / 2
    assert d_logistic_loss(real, fake).item() == pytest.approx(expected)


def test_lazy_regularization_numbers():
    lr, betas = lazy_regularization(0.0025, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.0025 * 16 / 17)
    assert betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    lr, betas = lazy_regularization(0.002, (0.5, 0.99), 4)
    assert lr == pytest.approx(0.0016) and betas == pytest.approx((0.5**0.8, 0.99**0.8))
    assert lazy_regularization(0.002, (0.0, 0.99), None) == (0.002, (0.0, 0.99))


class LinearD(torch.nn.Module):
    """D(x) = <w, x> + b, so the input gradient is w for every sample."""

    def __init__(self, shape=(1, 4, 4)):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(*shape))
        self.b = torch.nn.Parameter(torch.zeros([]))

    def forward(self, img, c=None):
        return (img * self.w).sum(dim=(1, 2, 3))[:, None] + self.b


class LinearG(torch.nn.Module):
    """ws = broadcast(z A); img = sum_l ws[:, l] B[l], so the Jacobian is B and known."""

    def __init__(self, z_dim=3, w_dim=3, num_ws=2, shape=(1, 2, 2)):
        super().__init__()
        self.num_ws, self.shape = num_ws, shape
        self.A = torch.nn.Parameter(torch.randn(z_dim, w_dim))
        self.B = torch.nn.Parameter(torch.randn(num_ws, w_dim, math.prod(shape)))

    def mapping(self, z, c, update_emas=False):
        return (z @ self.A)[:, None, :].expand(-1, self.num_ws, -1)

    def synthesis(self, ws, noise_mode="random"):
        return torch.einsum("nlw,lwp->np", ws, self.B).reshape(-1, *self.shape)


class Times(torch.nn.Module):
    """A stand-in augmentation with a known Jacobian: x -> k x."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


def test_r1_of_a_linear_d_is_its_squared_weight_norm():
    torch.manual_seed(0)
    D = LinearD()
    real = torch.randn(3, 1, 4, 4, requires_grad=True)
    penalty = r1_penalty(real, D(real))
    assert torch.allclose(penalty, D.w.square().sum().expand(3), rtol=1e-6)
    penalty.sum().backward()  # create_graph: the penalty trains D
    assert torch.allclose(D.w.grad, 2 * 3 * D.w.detach(), rtol=1e-6)


def test_runner_r1_is_taken_before_augmentation_and_scaled_by_gain():
    torch.manual_seed(0)
    D, G = LinearD(), LinearG(shape=(1, 4, 4))
    loss = StyleGAN2Loss(G, D, augment_pipe=Times(3.0), r1_gamma=10)
    real = torch.randn(4, 1, 4, 4)
    z = torch.randn(4, 3)
    c = torch.zeros(4, 0)
    stats = loss.accumulate_gradients("Dreg", real, c, z, c, gain=16)
    w = D.w.detach()
    # d(3x . w)/dx = 3w, so the penalty is 9 |w|^2, and loss = 16 * 10/2 * 9 |w|^2.
    assert stats["r1_penalty"] == pytest.approx(9 * w.square().sum().item(), rel=1e-5)
    assert torch.allclose(D.w.grad, 16 * 5 * 9 * 2 * w, rtol=1e-5)
    assert G.A.grad is None and G.B.grad is None
    assert stats["real_count"] == 4  # the R1 phase's real logits feed ADA's r_t too


def test_path_length_of_a_linear_generator_is_analytic():
    torch.manual_seed(0)
    G = LinearG()
    z = torch.randn(4, 3)
    ws = G.mapping(z, None)
    img = G.synthesis(ws)
    noise = torch.randn_like(img) / 2
    lengths = path_length(img, ws, noise)
    proj = torch.einsum("lwp,np->nlw", G.B.detach(), noise.flatten(1))
    expected = proj.square().sum(2).mean(1).sqrt()
    assert torch.allclose(lengths, expected, rtol=1e-5)


def test_pl_penalty_is_zero_when_the_jacobian_has_the_ema_length():
    torch.manual_seed(0)
    G = LinearG()
    ws = G.mapping(torch.randn(1, 3), None)
    img = G.synthesis(ws)
    noise = torch.randn_like(img)
    lengths = path_length(img, ws, noise)
    penalty = pl_penalty(lengths, lengths.detach())
    assert penalty.item() == 0.0
    penalty.sum().backward()
    assert G.B.grad.abs().max().item() == 0.0
    # Off the EMA length, the same generator is pushed.
    G.B.grad = None
    lengths = path_length(G.synthesis(ws), ws, noise)
    pl_penalty(lengths, lengths.detach() + 1).sum().backward()
    assert G.B.grad.abs().max().item() > 0


def test_runner_pl_tracks_the_ema_and_is_zero_at_it():
    torch.manual_seed(0)
    G, D = LinearG(), LinearD(shape=(1, 2, 2))
    c = torch.zeros(4, 0)
    # Batch 1 after shrinking and decay 1: pl_mean becomes this very length -> zero penalty.
    loss = StyleGAN2Loss(G, D, style_mixing_prob=0.0, pl_batch_shrink=4, pl_decay=1.0)
    stats = loss.accumulate_gradients("Greg", torch.zeros(4, 1, 2, 2), c, torch.randn(4, 3), c, gain=4)
    assert stats["pl_penalty"] == 0.0 and stats["pl_mean"] == pytest.approx(stats["pl_length"])
    assert G.B.grad.abs().max().item() == 0.0
    # Decay 0.01 from a saved state: the EMA moves 1% of the way, the penalty pushes G.
    loss = StyleGAN2Loss(G, D, style_mixing_prob=0.0, pl_batch_shrink=2, pl_decay=0.01)
    loss.load_state_dict({"pl_mean": torch.tensor(5.0)})
    stats = loss.accumulate_gradients("Greg", torch.zeros(4, 1, 2, 2), c, torch.randn(4, 3), c, gain=4)
    assert stats["pl_mean"] == pytest.approx(5.0 + 0.01 * (stats["pl_length"] - 5.0), rel=1e-6)
    assert loss.state_dict()["pl_mean"].item() == pytest.approx(stats["pl_mean"])
    assert stats["pl_penalty"] > 0 and G.B.grad.abs().max().item() > 0
    assert D.w.grad is None


def test_load_state_dict_rejects_foreign_keys():
    loss = StyleGAN2Loss(LinearG(), LinearD())
    with pytest.raises(ValueError, match="pl_mean"):
        loss.load_state_dict({"pl_mean": torch.tensor(1.0), "other": torch.tensor(0.0)})
    with pytest.raises(ValueError, match="unknown phase"):
        loss.accumulate_gradients("Gall", None, None, None, None, 1)


def test_style_mix_switches_to_second_ws_from_a_cutoff():
    torch.manual_seed(0)
    G = LinearG(num_ws=6)
    z = torch.randn(200, 3)
    ws = G.mapping(z, None)
    out = style_mix(G.mapping, z, None, ws, prob=0.9)
    same = (out == ws).all(dim=2)  # [N, num_ws]
    assert same[:, 0].all()  # cutoff >= 1: the first w is always kept
    # Per sample, kept layers form a prefix: once switched, it stays switched.
    assert (same[:, 1:] <= same[:, :-1]).all()
    mixed = ~same.all(dim=1)
    assert 0.8 < mixed.float().mean().item() < 0.97
    assert torch.equal(style_mix(G.mapping, z, None, ws, prob=0.0), ws)


def _golden(name: str):
    path = GOLDEN / name
    with safe_open(str(path), "pt") as fh:
        cfg = json.loads(fh.metadata()["config"])
    tensors = load_file(str(path))
    common = dict(
        c_dim=cfg["c_dim"], img_resolution=cfg["img_resolution"], img_channels=cfg["img_channels"],
        channel_base=cfg["channel_base"], channel_max=cfg["channel_max"],
        conv_clamp=cfg["conv_clamp"], num_fp16_res=cfg["num_fp16_res"],
    )
    G = Generator.from_config(
        GeneratorConfig(
            z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], mapping_layers=cfg["mapping_layers"], **common
        )
    )
    D = Discriminator.from_config(
        DiscriminatorConfig(
            mapping_layers=cfg["D_mapping_layers"], mbstd_group_size=cfg["mbstd_group_size"],
            mbstd_num_channels=cfg["mbstd_num_channels"], **common,
        )
    )
    G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")}, strict=True)
    D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")}, strict=True)
    return G.eval(), D.eval(), {k[3:]: v for k, v in tensors.items() if k.startswith("io.")}


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


# The network fixtures (sg2ada_augment is the augmentation fixture: tests/engine/test_augment_golden.py).
GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("sg2ada_*.safetensors") if p.stem != "sg2ada_augment")


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_r1_penalty(name):
    _, D, io = _golden(name)
    real = io["real"].clone().requires_grad_(True)
    penalty = r1_penalty(real, D(real, io["c"]))
    assert _rel_err(penalty.detach(), io["r1_penalty"]) <= 1e-4


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_pl_lengths(name):
    G, _, io = _golden(name)
    ws = io["ws"].clone().requires_grad_(True)
    img = G.synthesis(ws, noise_mode="const")
    lengths = path_length(img, ws, io["pl_noise"])
    assert _rel_err(lengths.detach(), io["pl_lengths"]) <= 1e-4


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_pl_loss_and_its_gradient(name):
    """The reference's path-length loss and d loss / d ws with pl_mean preset, pl_weight 2 and
    constant noise: the running mean stays in the graph (a detached one misses the gradient
    by up to ~0.4 % on these fixtures)."""
    G, _, io = _golden(name)
    ws = io["ws"].clone().requires_grad_(True)
    lengths = path_length(G.synthesis(ws, noise_mode="const"), ws, io["pl_noise"])
    loss, _, new_mean = path_length_loss(lengths, io["pl_mean_init"].reshape([]), decay=0.01, weight=2.0)
    (grad,) = torch.autograd.grad(loss, ws)
    assert _rel_err(loss.detach().reshape(1), io["pl_loss"]) <= 1e-4
    assert _rel_err(grad, io["pl_grad_ws"]) <= 1e-4
    assert not new_mean.requires_grad and new_mean.item() == pytest.approx(
        0.99 * io["pl_mean_init"].item() + 0.01 * lengths.mean().item(), rel=1e-6)


def test_w_avg_moves_in_every_training_phase_and_never_in_eval():
    torch.manual_seed(0)
    G, D = _tiny_networks(0, 1)
    loss = StyleGAN2Loss(G, D, r1_gamma=1.0, style_mixing_prob=0.0)
    real, c = torch.rand(4, 1, 8, 8) * 2 - 1, torch.zeros(4, 0)
    for phase in ("Gmain", "Greg", "Dmain"):
        before = G.mapping.w_avg.clone()
        loss.accumulate_gradients(phase, real, c, torch.randn(4, 8), c, gain=1.0)
        assert not torch.equal(G.mapping.w_avg, before), f"{phase} did not move w_avg"
    G.eval()
    before = G.mapping.w_avg.clone()
    loss.accumulate_gradients("Gmain", real, c, torch.randn(4, 8), c, gain=1.0)
    assert torch.equal(G.mapping.w_avg, before)


def _tiny_networks(c_dim: int, channels: int):
    common = dict(c_dim=c_dim, img_resolution=8, img_channels=channels, channel_base=64, channel_max=8)
    G = Generator.from_config(GeneratorConfig(z_dim=8, w_dim=8, mapping_layers=2, **common))
    D = Discriminator.from_config(DiscriminatorConfig(mapping_layers=2, mbstd_group_size=2, **common))
    return G.train(), D.train()


def _grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters() if p.grad is not None]


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize(
    "c_dim, channels, device",
    [(2, 3, "cpu"), (0, 1, "cpu"), pytest.param(2, 3, "cuda", marks=CUDA)],
)
def test_every_phase_runs_with_real_networks_and_augmentation(c_dim, channels, device):
    torch.manual_seed(0)
    G, D = (net.to(device) for net in _tiny_networks(c_dim, channels))
    pipe = AugmentPipe(channels).to(device)
    pipe.p = 0.5
    loss = StyleGAN2Loss(G, D, augment_pipe=pipe, r1_gamma=1.0)
    n = 4
    c = F.one_hot(torch.arange(n) % 2, 2).float() if c_dim else torch.zeros(n, 0)
    c = c.to(device)
    real = torch.rand(n, channels, 8, 8, device=device) * 2 - 1
    for phase, trained, other in [
        ("Gmain", G, D), ("Greg", G, D), ("Gboth", G, D), ("Dmain", D, G), ("Dreg", D, G), ("Dboth", D, G),
    ]:
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        stats = loss.accumulate_gradients(phase, real, c, torch.randn(n, 8, device=device), c, gain=2.0)
        grads = _grads(trained)
        assert grads and all(torch.isfinite(g).all() for g in grads), phase
        assert sum(g.abs().sum().item() for g in grads) > 0, phase
        assert not _grads(other), f"{phase} left gradients on the other network"
        assert all(math.isfinite(v) for v in stats.values()), (phase, stats)
        if phase.startswith("D"):  # every phase that shows D reals feeds ADA's r_t
            assert stats["real_count"] == n and abs(stats["real_sign_sum"]) <= n
        if phase in ("Greg", "Gboth"):
            assert stats["pl_length"] > 0
        if phase in ("Dreg", "Dboth"):
            assert stats["r1_penalty"] > 0
    assert torch.isfinite(loss.state_dict()["pl_mean"]) and loss.pl_mean.device.type == device


def test_join_by_groups_keeps_every_mbstd_group_pure_and_splits_back():
    from stylegan2_ada.loss import join_by_groups, split_by_groups
    from stylegan2_ada.ops import minibatch_std

    a, b = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4) * 5 + 2
    joint = join_by_groups(a, b, 4)
    got_a, got_b = split_by_groups(joint, 4)
    assert torch.equal(got_a, a) and torch.equal(got_b, b)
    # The minibatch-stddev feature of the joint batch is each batch's own, sample by sample.
    std_a, std_b = split_by_groups(minibatch_std(joint, 4)[:, -1:], 4)
    torch.testing.assert_close(std_a, minibatch_std(a, 4)[:, -1:])
    torch.testing.assert_close(std_b, minibatch_std(b, 4)[:, -1:])
    with pytest.raises(ValueError, match="groups of 4"):
        join_by_groups(a[:6], b[:6], 4)


@pytest.mark.parametrize("c_dim, n, joint_expected", [(2, 8, True), (0, 4, True), (0, 2, False)])
def test_joint_d_main_gives_the_separate_calls_numbers(c_dim, n, joint_expected):
    """Fakes and reals in one D call: same draws, same loss, same gradients as two calls."""
    results = []
    for joint in (True, False):
        torch.manual_seed(0)
        common = dict(c_dim=c_dim, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
        G = Generator.from_config(GeneratorConfig(z_dim=8, w_dim=8, mapping_layers=2, **common)).train()
        D = Discriminator.from_config(DiscriminatorConfig(mapping_layers=2, mbstd_group_size=4, **common))
        pipe = AugmentPipe(1)
        pipe.p = 0.5
        loss = StyleGAN2Loss(G, D.train(), augment_pipe=pipe, joint_d_main=joint)
        joined = loss._joint_group_size(torch.zeros(n), torch.zeros(n)) is not None
        assert joined == (joint and joint_expected)
        c = F.one_hot(torch.arange(n) % 2, 2).float() if c_dim else torch.zeros(n, 0)
        real = torch.rand(n, 1, 8, 8) * 2 - 1
        torch.manual_seed(1)
        stats = loss.accumulate_gradients("Dmain", real, c, torch.randn(n, 8), c, gain=2.0)
        grads = [p.grad.clone() for p in D.parameters() if p.grad is not None]
        results.append((stats, grads, G.mapping.w_avg))
    (stats_j, grads_j, w_avg_j), (stats_s, grads_s, w_avg_s) = results
    assert stats_j.keys() == stats_s.keys()
    for key in stats_s:
        assert stats_j[key] == pytest.approx(stats_s[key], rel=1e-5, abs=1e-6), key
    assert len(grads_j) == len(grads_s) > 0
    for gj, gs in zip(grads_j, grads_s, strict=True):
        torch.testing.assert_close(gj, gs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(w_avg_j, w_avg_s)
