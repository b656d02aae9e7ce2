"""Write order of a snapshot: no file of a run may describe weights other than the kept snapshot's.

A kill between the `.pt` and its `.G_ema.safetensors` export must not leave an older export
beside a newer `.pt`; a full disk while snapshotting must not leave this tick's metrics row
or fakes grid ahead of the snapshot that is kept.
"""

from __future__ import annotations

import json

import pytest
import torch
from gen_helpers import disk_full_for, make_prepared, state_of, tiny_cfg
from stylegan2_ada import Generator, GeneratorConfig

from classify.core.errors import UserError
from gen.core.generator_file import load_generator
from gen.train import snapshot as snapshot_mod
from gen.train.snapshot import save_snapshot
from gen.train.trainer import train_gan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _generator(seed: int) -> Generator:
    torch.manual_seed(seed)
    return Generator.from_config(GeneratorConfig(z_dim=8, w_dim=8, c_dim=0, img_resolution=8, img_channels=1,
                                                 mapping_layers=1, channel_base=64, channel_max=8))


def test_kill_between_pt_and_export_leaves_no_stale_export(tmp_path, monkeypatch):
    save_snapshot(tmp_path, 0, {"step": 1}, _generator(1), {"classes": ["a"]})
    export = tmp_path / "network-snapshot-000000.G_ema.safetensors"
    assert export.is_file()

    def killed(*args, **kw):
        raise KeyboardInterrupt("killed between the .pt and its export")

    monkeypatch.setattr(snapshot_mod, "export_generator", killed)
    with pytest.raises(KeyboardInterrupt):
        save_snapshot(tmp_path, 0, {"step": 2}, _generator(2), {"classes": ["a"]})
    assert torch.load(tmp_path / "network-snapshot-000000.pt", weights_only=True)["step"] == 2
    assert not export.exists()  # the export of step 1 would have claimed to be step 2's generator


def test_full_disk_on_the_pt_keeps_the_old_pair(tmp_path, monkeypatch):
    G1 = _generator(1)
    save_snapshot(tmp_path, 0, {"step": 1}, G1, {"classes": ["a"]})
    disk_full_for(monkeypatch, ".network-snapshot-000000.pt.")
    with pytest.raises(UserError, match="disk full while writing"):
        save_snapshot(tmp_path, 0, {"step": 2}, _generator(2), {"classes": ["a"]})
    monkeypatch.undo()
    assert torch.load(tmp_path / "network-snapshot-000000.pt", weights_only=True)["step"] == 1
    G, _ = load_generator(tmp_path / "network-snapshot-000000.G_ema.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G1.state_dict().values()))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("snaporder"))


def test_full_disk_at_a_snapshot_writes_no_metrics_row_or_fakes_ahead_of_it(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_gan(tiny_cfg(data_dir, out, kimg=0.02), log=lambda m: None)
    kept_nimg = state_of(out)["counters"]["cur_nimg"]
    fakes_before = (out / "fakes000000.png").read_bytes()
    disk_full_for(monkeypatch, ".network-snapshot-")
    with pytest.raises(UserError, match="disk full while writing .*network-snapshot-000000.pt"):
        train_gan(tiny_cfg(data_dir, out, kimg=0.04, resume=str(out)), log=lambda m: None)
    monkeypatch.undo()
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    assert rows and max(r["nimg"] for r in rows) == kept_nimg
    assert (out / "fakes000000.png").read_bytes() == fakes_before  # not redrawn from the lost state
    assert state_of(out)["counters"]["cur_nimg"] == kept_nimg
