"""Golden equivalence: our networks, loaded with the reference weights, reproduce the reference
outputs stored in tests/golden/*.safetensors (float32, CPU).

Relative error is max|ours - ref| / max|ref|; every value is printed (run with -s to see it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from stylegan2_ada import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

GOLDEN_DIR = Path(__file__).parents[1] / "golden"
GOLDEN_FILES = ["sg2ada_cond_gray32", "sg2ada_uncond_rgb64"]
# CUDA runs too where a GPU is present (with TF32 off: the check is about float32).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# channels_last too: it is gen train's CPU default where the CPU has AVX512.
CASES = [(f, d, cl) for d in DEVICES for f in GOLDEN_FILES for cl in (False, True)]
TOLERANCE = 1e-4


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    scale = ref.abs().max().item()
    assert scale > 0, "reference is all zeros; the comparison would be meaningless"
    return (ours - ref).abs().max().item() / scale


def configs_from_meta(meta: dict, channels_last: bool = False) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """Map the fixture's `config` metadata onto our typed configs."""
    assert meta["G_architecture"] == "skip" and meta["D_architecture"] == "resnet"
    common = dict(
        c_dim=meta["c_dim"],
        img_resolution=meta["img_resolution"],
        img_channels=meta["img_channels"],
        channel_base=meta["channel_base"],
        channel_max=meta["channel_max"],
        conv_clamp=meta["conv_clamp"],
        num_fp16_res=meta["num_fp16_res"],
        channels_last=channels_last,
    )
    g_cfg = GeneratorConfig(
        z_dim=meta["z_dim"],
        w_dim=meta["w_dim"],
        mapping_layers=meta["mapping_layers"],
        w_avg_beta=meta["w_avg_beta"],
        **common,
    )
    d_cfg = DiscriminatorConfig(
        mapping_layers=meta["D_mapping_layers"],
        mbstd_group_size=meta["mbstd_group_size"],
        mbstd_num_channels=meta["mbstd_num_channels"],
        **common,
    )
    return g_cfg, d_cfg


@pytest.fixture(scope="module", params=CASES,
                ids=[f"{f}-{d}{'-channels_last' if cl else ''}" for f, d, cl in CASES])
def golden_loaded(request):
    fname, device, channels_last = request.param
    path = GOLDEN_DIR / f"{fname}.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["config"])
    tensors = load_file(str(path), device=device)
    g_cfg, d_cfg = configs_from_meta(meta, channels_last)
    G = Generator.from_config(g_cfg).to(device).eval()
    D = Discriminator.from_config(d_cfg).to(device).eval()
    # strict=True: every reference key exists in our networks and nothing extra.
    G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")}, strict=True)
    D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")}, strict=True)
    io = {k[3:]: v for k, v in tensors.items() if k.startswith("io.")}
    assert G.num_ws == meta["num_ws"]
    return f"{fname}[{device}]", meta, G, D, io


@pytest.fixture
def golden(golden_loaded, no_tf32):
    return golden_loaded


def check(name: str, key: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    err = rel_err(ours, ref)
    print(f"golden {name} {key}: max rel err {err:.3e}")
    assert err <= TOLERANCE, f"{name} {key}: relative error {err:.3e} > {TOLERANCE}"


def test_mapping_ws(golden):
    name, meta, G, _, io = golden
    with torch.no_grad():
        check(name, "ws", G.mapping(io["z"], io["c"]), io["ws"])
        psi = meta["truncation_psi_for_ws_trunc"]
        check(name, "ws_trunc", G.mapping(io["z"], io["c"], truncation_psi=psi), io["ws_trunc"])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "nonfused"])
def test_synthesis_img(golden, fused):
    name, meta, G, _, io = golden
    with torch.no_grad():
        img = G.synthesis(io["ws"], noise_mode=meta["noise_mode"], fused_modconv=fused)
        img_trunc = G.synthesis(io["ws_trunc"], noise_mode=meta["noise_mode"], fused_modconv=fused)
    check(name, f"img ({'fused' if fused else 'non-fused'})", img, io["img"])
    check(name, f"img_trunc ({'fused' if fused else 'non-fused'})", img_trunc, io["img_trunc"])


def test_generator_end_to_end(golden):
    name, meta, G, _, io = golden
    with torch.no_grad():
        img = G(io["z"], io["c"], truncation_psi=0.7, noise_mode=meta["noise_mode"])
    check(name, "G(z, c, psi=0.7)", img, io["img_trunc"])


def test_discriminator_logits(golden):
    name, _, _, D, io = golden
    with torch.no_grad():
        check(name, "logits_real", D(io["real"], io["c"]), io["logits_real"])
        check(name, "logits_fake", D(io["img"], io["c"]), io["logits_fake"])


def test_r1_gradients(golden):
    """The reference's per-sample squared input gradient of D: checks D's backward too."""
    name, _, _, D, io = golden
    real = io["real"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, io["c"]).sum(), real)
    check(name, "r1_penalty", grad.square().sum(dim=[1, 2, 3]), io["r1_penalty"])


def test_path_length_gradients(golden):
    """Per-sample path lengths: checks the synthesis backward w.r.t. ws."""
    name, meta, G, _, io = golden
    ws = io["ws"].clone().requires_grad_(True)
    img = G.synthesis(ws, noise_mode=meta["noise_mode"])
    (grad,) = torch.autograd.grad((img * io["pl_noise"]).sum(), ws)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    check(name, "pl_lengths", lengths, io["pl_lengths"])


def test_golden_comparison_is_sensitive(golden):
    """Guard against a vacuous pass: a small change to one weight must break equality."""
    name, meta, G, _, io = golden
    last = G.synthesis.block_resolutions[-1]
    with torch.no_grad():
        getattr(G.synthesis, f"b{last}").torgb.bias.add_(0.01)
        try:
            img = G.synthesis(io["ws"], noise_mode=meta["noise_mode"])
        finally:
            getattr(G.synthesis, f"b{last}").torgb.bias.sub_(0.01)
    assert rel_err(img, io["img"]) > TOLERANCE
