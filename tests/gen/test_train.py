"""gen train: a tiny run writes every file; resume continues exactly; ADA reacts to D."""

from __future__ import annotations

import json
import math

import pytest
import torch
from gen_helpers import make_prepared, state_of, tiny_cfg

from classify.core.errors import UserError
from gen.train import trainer as train_mod
from gen.train.snapshot import list_snapshots
from gen.train.trainer import train_gan

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("gentrain"))


def test_tiny_run_writes_every_file(data_dir, tmp_path):
    out = tmp_path / "run"
    result = train_gan(tiny_cfg(data_dir, out, kimg=0.06), log=lambda m: None)
    assert result["status"] == "done" and result["kimg"] == pytest.approx(0.06)
    for name in ("reals.png", "fakes_init.png", "fakes000000.png", "training_options.json", "metrics.jsonl",
                 "network-snapshot-000000.pt", "network-snapshot-000000.G_ema.safetensors"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*")), "no TensorBoard event file"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in rows] == list(range(len(rows))) and len(rows) >= 3
    assert rows[-1]["nimg"] == 60
    for r in rows:
        for key in ("loss_G", "loss_D", "sec_per_kimg", "ada_p", "cpu_maxrss_gb"):
            assert math.isfinite(r[key]), (key, r)
    assert any("r1_penalty" in r for r in rows) and any("pl_penalty" in r for r in rows)
    snap = torch.load(out / "network-snapshot-000000.pt", weights_only=True)
    assert snap["format_version"] == 1 and snap["config"]["classes"] == ["bad"]
    assert snap["counters"]["cur_nimg"] == 60 and set(snap["rng"]) >= {"torch", "numpy", "python"}
    from gen.core.generator_file import load_generator

    G, info = load_generator(out, which="latest")
    import csv

    rows_csv = list(csv.DictReader(open(data_dir / "manifest.csv")))
    n_train_bad = sum(r["label"] == "bad" and r["split"] == "train" for r in rows_csv)
    assert info["real_counts"] == {"bad": n_train_bad} and info["res"] == 16
    assert info["classes"] == ["bad"] and info["channels"] == 1 and info["manifest_hash"]
    img = G(torch.randn(2, 32), torch.zeros(2, 0), noise_mode="const")
    assert img.shape == (2, 1, 16, 16) and torch.isfinite(img).all()


def _flat(state: dict) -> dict:
    return {f"{net}.{k}": v for net in ("G", "D", "G_ema") for k, v in state[net].items()}


def test_resume_is_exact(data_dir, tmp_path):
    """2N steps straight == N steps, stop, resume, N steps (weights, optimizer, ADA p, counters)."""
    kw = dict(aug="ada", p=0.3, mirror=True, classes=["bad", "good"], tick_kimg=0.012, kimg=0.08)
    straight = tmp_path / "straight"
    train_gan(tiny_cfg(data_dir, straight, **kw), log=lambda m: None)
    split = tmp_path / "split"
    train_gan(tiny_cfg(data_dir, split, **dict(kw, kimg=0.04)), log=lambda m: None)
    assert state_of(split)["counters"]["cur_nimg"] == 40
    train_gan(tiny_cfg(data_dir, split, **dict(kw, resume=str(split))), log=lambda m: None)
    a, b = state_of(straight), state_of(split)
    assert a["counters"]["batch_idx"] == b["counters"]["batch_idx"] == 20  # R1 ran at steps 0 and 16
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    different = [k for k in fa if not torch.equal(fa[k], fb[k])]
    assert not different, f"weights differ after resume: {different[:5]}"
    assert a["ada"] == b["ada"] and a["ada"]["p"] != 0.3  # p moved, identically
    assert torch.equal(a["loss"]["pl_mean"], b["loss"]["pl_mean"])
    for opt in ("G_opt", "D_opt"):
        for k, st in a[opt]["state"].items():
            assert torch.equal(st["exp_avg_sq"], b[opt]["state"][k]["exp_avg_sq"])
    rows = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["nimg"] for r in rows] == sorted({r["nimg"] for r in rows}), (
        "metrics.jsonl repeats or reorders ticks")


def test_resume_with_changed_config_is_refused(data_dir, tmp_path):
    out = tmp_path / "run"
    train_gan(tiny_cfg(data_dir, out, kimg=0.02), log=lambda m: None)
    with pytest.raises(UserError, match="gamma"):
        train_gan(tiny_cfg(data_dir, out, kimg=0.04, gamma=5.0, resume=str(out)), log=lambda m: None)


def test_resume_on_changed_data_is_refused(data_dir, tmp_path):
    out = tmp_path / "run"
    train_gan(tiny_cfg(data_dir, out, kimg=0.004), log=lambda m: None)
    other = make_prepared(tmp_path / "other", counts={"bad": 30, "good": 10})
    with pytest.raises(UserError, match="training data changed since this snapshot"):
        train_gan(tiny_cfg(other, out, kimg=0.008, resume=str(out)), log=lambda m: None)


class ConstD(torch.nn.Module):
    """A discriminator that always answers `value` (sign says real/fake), differentiably."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, img, c):
        return img.flatten(1).sum(1, keepdim=True) * 0 + self.w * 0 + self.value


@pytest.mark.parametrize("value, expect_rise", [(5.0, True), (-5.0, False)])
def test_ada_p_follows_the_discriminator(data_dir, tmp_path, monkeypatch, value, expect_rise):
    real_build = train_mod.build_training_networks

    def build_with_const_d(*args, **kw):
        nets = real_build(*args, **kw)
        nets.D = ConstD(value)
        return nets

    monkeypatch.setattr(train_mod, "build_training_networks", build_with_const_d)
    out = tmp_path / "run"
    result = train_gan(tiny_cfg(data_dir, out, kimg=0.04, aug="ada", p=0.0, gamma=0.0), log=lambda m: None)
    # 10 steps of batch 4 -> 2 ADA updates (every 4 D steps) of 4 * 4 / 500k each.
    if expect_rise:
        assert result["ada_p"] == pytest.approx(2 * 16 / 500_000)
        assert state_of(out)["ada"]["last_rt"] == 1.0
    else:
        assert result["ada_p"] == 0.0
        assert state_of(out)["ada"]["last_rt"] == -1.0


def test_snapshots_are_pruned_to_keep(data_dir, tmp_path):
    from gen.train.snapshot import prune_snapshots

    out = tmp_path / "run"
    out.mkdir()
    for k in range(5):
        (out / f"network-snapshot-{k:06d}.pt").write_bytes(b"x")
        (out / f"network-snapshot-{k:06d}.G_ema.safetensors").write_bytes(b"x")
    prune_snapshots(out, keep=2, protect={"network-snapshot-000001.pt"})
    assert [p.name for p in list_snapshots(out)] == [f"network-snapshot-{k:06d}.pt" for k in (1, 3, 4)]
    assert not (out / "network-snapshot-000000.G_ema.safetensors").exists()


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_trains(data_dir, tmp_path, precision):
    out = tmp_path / precision
    train_gan(tiny_cfg(data_dir, out, kimg=0.02, precision=precision, num_fp16_res=2, channels_last=True),
          log=lambda m: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss_G"]) and math.isfinite(r["loss_D"]) for r in rows)
    assert ("loss_scale" in rows[-1]) == (precision == "fp16")
    assert state_of(out)["config"]["precision"] == precision


def test_transfer_to_more_classes_reinitialises_label_layers(data_dir, tmp_path):
    src = tmp_path / "src"
    train_gan(tiny_cfg(data_dir, src, kimg=0.02), log=lambda m: None)
    msgs: list[str] = []
    dst = tmp_path / "dst"
    snap_path = list_snapshots(src)[-1]
    train_gan(tiny_cfg(data_dir, dst, kimg=0.004, classes=["bad", "good"], resume_from=str(snap_path),
                       lr=1e-12, gamma=0.0, pl_weight=0.0), log=msgs.append)
    note = next(m for m in msgs if m.startswith("transfer:"))
    assert "G label layers re-initialised" in note and "D label layers re-initialised" in note
    a, b = state_of(src), state_of(dst)
    # lr ~ 0: everything not label-dependent is still the source's weights.
    for key in ("synthesis.b16.conv1.weight", "synthesis.b4.const"):
        assert torch.allclose(a["G"][key], b["G"][key], atol=1e-6)
    assert torch.allclose(a["D"]["b16.conv0.weight"], b["D"]["b16.conv0.weight"], atol=1e-6)
    assert a["G"]["mapping.fc0.weight"].shape != b["G"]["mapping.fc0.weight"].shape


def test_transfer_from_a_different_resolution_is_refused(data_dir, tmp_path):
    """The run adopts the source's architecture; an explicit flag that contradicts it names both."""
    src = tmp_path / "src"
    train_gan(tiny_cfg(data_dir, src, kimg=0.004), log=lambda m: None)
    with pytest.raises(UserError, match="--res 32 contradicts the checkpoint's img_resolution 16"):
        train_gan(tiny_cfg(data_dir, tmp_path / "dst", res=32, kimg=0.004,
                       resume_from=str(src / "network-snapshot-000000.G_ema.safetensors")),
                  log=lambda m: None)


def test_fixed_augmentation_keeps_p():
    from stylegan2_ada import AugmentPipe

    from gen.train.phases import AdaController

    pipe = AugmentPipe(num_channels=1)
    pipe.p.fill_(0.25)
    ctl = AdaController(pipe, target=0.6, interval=4, ada_kimg=500, adaptive=False)
    for step in range(1, 9):
        ctl.observe({"real_sign_sum": 4.0, "real_count": 4.0})
        ctl.maybe_update(step, 4, lambda t: t)
    assert ctl.p == 0.25
    ctl = AdaController(pipe, target=0.6, interval=4, ada_kimg=500, adaptive=True)
    for step in range(1, 9):
        ctl.observe({"real_sign_sum": 4.0, "real_count": 4.0})
        ctl.maybe_update(step, 4, lambda t: t)
    assert ctl.p == pytest.approx(0.25 + 2 * 16 / 500_000) and ctl.last_rt == 1.0


class MeanPoolFeatures(torch.nn.Module):
    """A stand-in feature extractor: 4x4 average-pooled pixels (what a judge would return)."""

    def forward(self, x):
        return (torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1),)


def test_metrics_track_the_best_snapshot(data_dir, tmp_path, monkeypatch):
    import gen.core.metrics as metrics_mod

    def fake_build(name, **kw):
        assert name == "judge" and kw["weights_path"] == "judge.pt"
        return metrics_mod.Extractor("judge", MeanPoolFeatures(), None, 64, "cpu")

    monkeypatch.setattr(metrics_mod, "build_extractor", fake_build)
    out = tmp_path / "run"
    train_gan(tiny_cfg(data_dir, out, kimg=0.04, metrics=["fd", "kd"], judge="judge.pt", metric_every=1,
                       snap=5),
              log=lambda m: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    measured = [r for r in rows if "fd_judge" in r]
    assert len(measured) == len(rows) >= 3 and all(r["fd_judge"] >= 0 and "kd_judge" in r for r in measured)
    best = json.loads((out / "best.json").read_text())
    assert best["metric"] == "fd_judge" and best["value"] == min(r["fd_judge"] for r in measured)
    assert (out / best["snapshot"]).is_file()
    history = state_of(out)["metric_history"]
    assert [h["fd_judge"] for h in history] == [r["fd_judge"] for r in measured]


def test_metrics_without_features_is_a_clear_error(data_dir, tmp_path):
    # refused when the config is built (so --dry-run says it), before any file is written
    with pytest.raises(UserError, match="needs features: --judge MODEL.pt .* or --inception-weights PATH"):
        tiny_cfg(data_dir, tmp_path / "r", metrics=["fid"])
    with pytest.raises(UserError, match="unknown --metrics foo; choose from fd, fid, kd, kid"):
        tiny_cfg(data_dir, tmp_path / "r", metrics=["foo"], judge="j.pt")
    assert not (tmp_path / "r").exists()


def test_transfer_from_a_reference_pkl(data_dir, tmp_path):
    """A reference-format .pkl (conditional, 3 classes) -> an unconditional run at its size."""
    from pathlib import Path

    from engine_helpers import write_reference_pkl

    pkl = tmp_path / "ref.pkl"
    marker = tmp_path / "executed.txt"
    golden = write_reference_pkl(Path(__file__).parents[1] / "golden" / "sg2ada_cond_gray32.safetensors", pkl,
                                 marker)
    msgs: list[str] = []
    out = tmp_path / "run"
    cfg = tiny_cfg(data_dir, out, res=32, z_dim=64, w_dim=64, map_layers=2, channel_base=4096, channel_max=64,
                   kimg=0.004, lr=1e-12, gamma=0.0, pl_weight=0.0, resume_from=str(pkl))
    train_gan(cfg, log=msgs.append)
    assert not marker.exists()
    note = next(m for m in msgs if m.startswith("transfer:"))
    assert "G label layers re-initialised" in note and "D label layers re-initialised" in note
    snap = state_of(out)
    key = "synthesis.b32.conv1.weight"
    # The builder's G is 1.5 x its G_ema; at nimg 0 the EMA ramp-up makes G_ema a copy of G.
    assert torch.allclose(snap["G"][key], 1.5 * golden["G." + key], atol=1e-5)
    assert torch.allclose(snap["G_ema"][key], snap["G"][key])
    assert torch.allclose(snap["D"]["b32.conv0.weight"], golden["D.b32.conv0.weight"], atol=1e-5)


def test_freeze_d_excludes_the_highest_resolution_blocks():
    from stylegan2_ada import Discriminator, DiscriminatorConfig

    from gen.train.phases import trainable_d_params

    D = Discriminator.from_config(DiscriminatorConfig(img_resolution=16, img_channels=1, channel_base=256,
                                                      channel_max=16))
    names = {id(p): n for n, p in D.named_parameters()}
    kept = {names[id(p)].split(".")[0] for p in trainable_d_params(D, freeze_d=1)}
    assert "b16" not in kept and {"b8", "b4"} <= kept
    kept2 = {names[id(p)].split(".")[0] for p in trainable_d_params(D, freeze_d=2)}
    assert kept2 == {"b4"} and len(trainable_d_params(D, 0)) == len(list(D.parameters()))


def test_best_snapshot_survives_a_newer_snapshot_of_the_same_kimg(data_dir, tmp_path, monkeypatch):
    """Snapshot names are kimg rounded down; a later, worse state must not replace the best."""
    import gen.train.metric_runner as tm

    scripted = iter([5.0, 3.0, 4.0, 6.0, 7.0])
    monkeypatch.setattr(tm.MetricRunner, "__init__", lambda self, cfg, data, device: None)
    monkeypatch.setattr(tm.MetricRunner, "evaluate", lambda self, G: {"fd_judge": next(scripted)})
    monkeypatch.setattr(tm.MetricRunner, "primary", lambda self, values: "fd_judge")
    out = tmp_path / "run"
    train_gan(tiny_cfg(data_dir, out, kimg=0.064, tick_kimg=0.02, metrics=["fd"], judge="j.pt"),
              log=lambda m: None)
    best = json.loads((out / "best.json").read_text())
    assert best == {"snapshot": "best-network-snapshot-000000.pt", "metric": "fd_judge", "value": 3.0,
                    "kimg": 0}
    kept = torch.load(out / best["snapshot"], weights_only=True)
    assert kept["counters"]["cur_nimg"] == 24 and kept["metric_history"][-1]["fd_judge"] == 3.0
    assert state_of(out)["counters"]["cur_nimg"] == 64  # the latest state is in the plain name
    from gen.core.generator_file import resolve_generator_path

    assert resolve_generator_path(out, "best").name == "best-network-snapshot-000000.G_ema.safetensors"


def test_adam_follows_the_engines_lazy_regularisation_rule():
    """Each network's Adam is tuned for its lazy regulariser: lr * c and betas ** c, c = k / (k + 1)."""
    from gen.train.config import GanTrainConfig
    from gen.train.phases import build_phases

    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    phases = build_phases(G, D, GanTrainConfig(lr=0.002, g_reg_interval=4, d_reg_interval=16))
    groups = {p.name: p.opt.param_groups[0] for p in phases}
    assert set(groups) == {"Gmain", "Greg", "Dmain", "Dreg"}
    assert groups["Gmain"]["lr"] == pytest.approx(0.002 * 4 / 5)
    assert groups["Gmain"]["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert groups["Dmain"]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert groups["Dmain"]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
