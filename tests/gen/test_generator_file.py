"""The generator hand-off file: export -> load gives the same images; bad files give one-line errors."""

import json

import pytest
import torch
from stylegan2_ada import Generator, GeneratorConfig

from classify.core.errors import UserError
from gen.core.generator_file import (
    export_generator,
    load_generator,
    read_generator_metadata,
    resolve_generator_path,
)


def _tiny_g() -> Generator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=8, w_dim=8, c_dim=0, img_resolution=8, img_channels=1, channel_base=64,
                          channel_max=8, mapping_layers=2)
    return Generator.from_config(cfg)


def test_roundtrip_reproduces_images(tmp_path):
    G = _tiny_g()
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # a moved buffer must survive the trip too
    info = {"classes": ["bad"], "res": 8, "channels": 1, "real_counts": {"bad": 12}}
    path = tmp_path / "network-snapshot-000004.G_ema.safetensors"
    export_generator(G, info, path)
    G2, info2 = load_generator(path)
    assert info2["real_counts"] == {"bad": 12} and info2["generator_path"] == str(path)
    z = torch.randn(3, 8)
    c = torch.zeros(3, 0)
    with torch.no_grad():
        a = G(z, c, truncation_psi=0.7, noise_mode="const")
        b = G2(z, c, truncation_psi=0.7, noise_mode="const")
    G.eval()  # the loaded copy is in eval mode (fused modulated conv); compare like with like
    with torch.no_grad():
        a = G(z, c, truncation_psi=0.7, noise_mode="const")
    assert torch.equal(a, b)
    config, _ = read_generator_metadata(path)
    assert config == G.config.to_dict()


def test_run_folder_resolution(tmp_path):
    G = _tiny_g()
    for kimg in (4, 8):
        export_generator(G, {}, tmp_path / f"network-snapshot-{kimg:06d}.G_ema.safetensors")
    assert resolve_generator_path(tmp_path, "latest").name.startswith("network-snapshot-000008")
    assert resolve_generator_path(tmp_path, 4).name.startswith("network-snapshot-000004")
    (tmp_path / "best.json").write_text(json.dumps({"snapshot": "network-snapshot-000004.pt"}))
    assert resolve_generator_path(tmp_path, "best").name.startswith("network-snapshot-000004")
    with pytest.raises(UserError, match="available: 000004, 000008"):
        resolve_generator_path(tmp_path, 12)
    # as train prints kimg
    assert resolve_generator_path(tmp_path, "8.192").name.startswith("network-snapshot-000008")
    # the training snapshot a user may pass instead: its export beside it is used
    (tmp_path / "network-snapshot-000008.pt").write_bytes(b"resume state")
    assert resolve_generator_path(tmp_path / "network-snapshot-000008.pt").name == (
        "network-snapshot-000008.G_ema.safetensors")
    (tmp_path / "network-snapshot-000012.pt").write_bytes(b"resume state")
    with pytest.raises(UserError, match="is a training snapshot and its generator export .* is missing"):
        resolve_generator_path(tmp_path / "network-snapshot-000012.pt")
    only_pt = tmp_path / "only_pt"
    only_pt.mkdir()
    (only_pt / "network-snapshot-000000.pt").write_bytes(b"resume state")
    with pytest.raises(UserError,
                       match=r"it holds training snapshots .\.pt. but none of their generator exports"):
        resolve_generator_path(only_pt)


def test_bad_files_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a readable"):
        load_generator(junk)
    with pytest.raises(UserError, match="does not exist"):
        load_generator(tmp_path / "missing")
    with pytest.raises(UserError, match="no network-snapshot"):
        load_generator(tmp_path)
