"""Tests of the StyleGAN2-ADA networks: configs, API, shapes, truncation, noise, precision,
channels_last, torch.compile-friendliness and speed of tiny models."""

from __future__ import annotations

import json

import pytest
import torch
from stylegan2_ada import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

TINY = dict(channel_base=256, channel_max=32)


def tiny_g(res=16, channels=3, c_dim=0, **kw) -> Generator:
    cfg = GeneratorConfig(
        z_dim=16, w_dim=16, c_dim=c_dim, img_resolution=res, img_channels=channels,
        mapping_layers=2, **TINY, **kw,
    )  # fmt: skip
    return Generator.from_config(cfg)


def tiny_d(res=16, channels=3, c_dim=0, **kw) -> Discriminator:
    cfg = DiscriminatorConfig(
        c_dim=c_dim, img_resolution=res, img_channels=channels, mapping_layers=2, **TINY, **kw
    )
    return Discriminator.from_config(cfg)


def onehot(n: int, c_dim: int) -> torch.Tensor:
    return torch.eye(c_dim)[torch.arange(n) % c_dim] if c_dim else torch.zeros(n, 0)


def randomise_constants(G: Generator) -> None:
    """Move noise strengths and biases off zero so noise and bias paths are exercised."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)


# --- configs ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
def test_config_round_trips_through_plain_json(cls):
    cfg = cls(c_dim=3, img_resolution=64, img_channels=1, conv_clamp=None, fp16_dtype="bfloat16")
    d = json.loads(json.dumps(cfg.to_dict()))
    assert cls.from_dict(d) == cfg
    assert cls.from_dict({}) == cls()  # missing keys take defaults


@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
def test_config_unknown_key_is_clear_error(cls):
    with pytest.raises(ValueError, match="unknown key.*'bogus'"):
        cls.from_dict({"bogus": 1})


@pytest.mark.parametrize("res", [48, 100, 2, 2048, 0, -8])
@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
def test_bad_resolution_is_value_error(cls, res):
    with pytest.raises(ValueError, match="power of two between 4 and 1024"):
        cls(img_resolution=res)


def test_other_config_validation():
    with pytest.raises(ValueError, match="fp16_dtype"):
        GeneratorConfig(fp16_dtype="float8")
    with pytest.raises(ValueError, match="img_channels"):
        DiscriminatorConfig(img_channels=0)
    with pytest.raises(ValueError, match="conv_clamp"):
        GeneratorConfig(conv_clamp=-1)
    with pytest.raises(ValueError, match="GeneratorConfig"):
        Generator({"z_dim": 8})  # a dict must go through from_config


def test_from_config_accepts_dict_and_exposes_config():
    cfg = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, mapping_layers=1, **TINY)
    G = Generator.from_config(cfg.to_dict())
    assert G.config == cfg
    D = Discriminator.from_config(DiscriminatorConfig(img_resolution=8, img_channels=1, **TINY).to_dict())
    assert D.config.img_resolution == 8


# --- shapes, conditioning, channels ------------------------------------------------------


@pytest.mark.parametrize("res", [4, 8, 32])
def test_num_ws_matches_spec(res):
    G = tiny_g(res=res)
    assert G.num_ws == 2 * (res.bit_length() - 1) - 2 == G.config.num_ws


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("c_dim", [0, 3])
def test_generator_and_discriminator_shapes(channels, c_dim):
    G, D = tiny_g(res=8, channels=channels, c_dim=c_dim), tiny_d(res=8, channels=channels, c_dim=c_dim)
    z, c = torch.randn(4, 16), onehot(4, c_dim)
    ws = G.mapping(z, c)
    assert ws.shape == (4, G.num_ws, 16)
    img = G.synthesis(ws)
    assert img.shape == (4, channels, 8, 8) and img.dtype == torch.float32
    logits = D(img, c)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    assert hasattr(D, "mapping") == (c_dim > 0)
    assert ("mapping.embed.weight" in G.state_dict()) == (c_dim > 0)


def test_conditioning_changes_outputs():
    G, D = tiny_g(res=8, c_dim=2), tiny_d(res=8, c_dim=2)
    z = torch.randn(2, 16)
    c0, c1 = torch.tensor([[1.0, 0.0]] * 2), torch.tensor([[0.0, 1.0]] * 2)
    assert not torch.allclose(G(z, c0, noise_mode="const"), G(z, c1, noise_mode="const"))
    img = torch.randn(2, 3, 8, 8)
    assert not torch.allclose(D(img, c0), D(img, c1))


def test_resolution_4_works():
    G, D = tiny_g(res=4), tiny_d(res=4)
    img = G(torch.randn(2, 16))
    assert img.shape == (2, 3, 4, 4)
    assert D(img).shape == (2, 1)


def test_shape_errors_are_helpful():
    G, D = tiny_g(res=8, c_dim=2), tiny_d(res=8, c_dim=2)
    with pytest.raises(ValueError, match=r"z must be \[N, 16\]"):
        G.mapping(torch.randn(2, 15), onehot(2, 2))
    with pytest.raises(ValueError, match="c must be a one-hot"):
        G.mapping(torch.randn(2, 16), None)
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(2, G.num_ws + 1, 16))
    with pytest.raises(ValueError, match=r"images must be \[N, 3, 8, 8\]"):
        D(torch.randn(2, 3, 16, 16), onehot(2, 2))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(torch.randn(2, G.num_ws, 16), noise_mode="loud")


# --- truncation, w_avg, noise -------------------------------------------------------------


def test_truncation_psi_and_cutoff():
    G = tiny_g(res=16)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    z = torch.randn(3, 16)
    ws = G.mapping(z, None)
    w0 = G.mapping(z, None, truncation_psi=0.0)
    assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
    half = G.mapping(z, None, truncation_psi=0.5)
    assert torch.allclose(half, G.mapping.w_avg + 0.5 * (ws - G.mapping.w_avg), atol=1e-6)
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], half[:, :2]) and torch.equal(cut[:, 2:], ws[:, 2:])


def test_update_emas_tracks_w_avg():
    G = tiny_g(res=8)
    z = torch.randn(5, 16)
    before = G.mapping.w_avg.clone()
    G.mapping(z, None)
    assert torch.equal(G.mapping.w_avg, before)  # no update unless asked
    w = G.mapping(z, None, update_emas=True)[:, 0]
    expected = before + (w.detach().mean(0) - before) * (1 - G.config.w_avg_beta)
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-7)


def test_noise_modes():
    G = tiny_g(res=8).eval()
    randomise_constants(G)
    ws = G.mapping(torch.randn(2, 16), None)
    const_a, const_b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    assert torch.equal(const_a, const_b)
    rand_a, rand_b = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
    assert not torch.allclose(rand_a, rand_b)
    none = G.synthesis(ws, noise_mode="none")
    assert not torch.allclose(none, const_a)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
    assert torch.allclose(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="none"))


def test_fused_and_nonfused_networks_agree():
    G = tiny_g(res=16)
    randomise_constants(G)
    ws = G.mapping(torch.randn(3, 16), None)
    fused = G.synthesis(ws, noise_mode="const", fused_modconv=True)
    nonfused = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert (fused - nonfused).abs().max() / fused.abs().max() < 1e-5


# --- precision and memory format -----------------------------------------------------------

# Stated tolerances (max abs error / max abs fp32 output) for reduced precision on the top
# resolutions of a tiny network; measured well below these on CPU (see docs/BENCHMARKS.md).
MIXED_TOL = {"float16": 1e-2, "bfloat16": 5e-2}


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fp16_dtype", ["float16", "bfloat16"])
def test_mixed_precision_close_to_fp32(fp16_dtype, device, no_tf32):
    torch.manual_seed(0)
    G32, D32 = tiny_g(res=16).to(device).eval(), tiny_d(res=16).to(device).eval()
    G16 = tiny_g(res=16, num_fp16_res=2, fp16_dtype=fp16_dtype).to(device).eval()
    D16 = tiny_d(res=16, num_fp16_res=2, fp16_dtype=fp16_dtype).to(device).eval()
    G16.load_state_dict(G32.state_dict())
    D16.load_state_dict(D32.state_dict())
    assert G16.synthesis.b16.use_fp16 and G16.synthesis.b8.use_fp16
    assert not G16.synthesis.b4.use_fp16 and D16.b16.use_fp16
    ws = G32.mapping(torch.randn(4, 16, device=device), None)
    with torch.no_grad():
        ref, out = G32.synthesis(ws, noise_mode="const"), G16.synthesis(ws, noise_mode="const")
        assert out.dtype == torch.float32  # the image path stays float32
        g_err = ((out - ref).abs().max() / ref.abs().max()).item()
        d_ref, d_out = D32(ref), D16(ref)
        d_err = ((d_out - d_ref).abs().max() / d_ref.abs().max()).item()
        forced = G16.synthesis(ws, noise_mode="const", force_fp32=True)
    print(f"{fp16_dtype} on {device}: G rel err {g_err:.2e}, D rel err {d_err:.2e}")
    assert 0 < g_err < MIXED_TOL[fp16_dtype] and d_err < MIXED_TOL[fp16_dtype]
    assert torch.allclose(forced, ref, atol=1e-6)


def test_channels_last_matches_contiguous():
    G, D = tiny_g(res=8).eval(), tiny_d(res=8).eval()
    Gc, Dc = tiny_g(res=8, channels_last=True).eval(), tiny_d(res=8, channels_last=True).eval()
    Gc.load_state_dict(G.state_dict())
    Dc.load_state_dict(D.state_dict())
    z = torch.randn(2, 16)
    assert torch.allclose(G(z, None, noise_mode="const"), Gc(z, None, noise_mode="const"), atol=1e-5)
    img = torch.randn(2, 3, 8, 8)
    assert torch.allclose(D(img), Dc(img), atol=1e-5)


# --- compile-friendliness and speed -----------------------------------------------------------


@pytest.mark.parametrize("training", [False, True], ids=["eval-fused", "train-nonfused"])
def test_synthesis_has_no_graph_breaks(training):
    G = tiny_g(res=8).train(training)
    ws = torch.randn(2, G.num_ws, 16)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(G.synthesis)(ws, noise_mode="random")
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_discriminator_has_no_graph_breaks():
    D = tiny_d(res=8, c_dim=2).train()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(D)(torch.randn(4, 3, 8, 8), onehot(4, 2))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_tiny_generator_and_discriminator_forward_backward():
    # Speed is measured in scripts/bench/engine.py, never asserted in a test (the CI box is shared).
    G = tiny_g(res=32, c_dim=2).train()
    D = tiny_d(res=32, c_dim=2).train()
    z, c = torch.randn(4, 16), onehot(4, 2)

    def g_step():
        G.zero_grad()
        G(z, c).square().mean().backward()

    def d_step():
        D.zero_grad()
        D(torch.randn(4, 3, 32, 32), c).sum().backward()

    g_step()
    d_step()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters())
