"""GAN recipes (minority, conditional, transfer), --budget, DiffAugment, and transfer from any
checkpoint: adopted architecture, ADA p, http(s) sources (a local server, never the network)."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
import torch
from gen_helpers import make_prepared, state_of, tiny_cfg, tiny_overrides
from stylegan2_ada.augment.diffaug import DiffAugment

from classify.core.errors import UserError
from gen.train.recipes import resolve_config, run_recipe
from gen.train.snapshot import list_snapshots
from gen.train.trainer import train_gan

QUIET = dict(log=lambda m: None)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("recipes"))


def _info(run: Path) -> dict:
    from gen.core.generator_file import read_generator_metadata

    return read_generator_metadata(sorted(run.glob("*.G_ema.safetensors"))[-1])[1]


def _train_md5(data_dir: Path) -> dict[str, set[str]]:
    from classify.data.dataset import open_prepared

    data = open_prepared(data_dir)
    out: dict[str, set[str]] = {c: set() for c in data.classes}
    for label, row in zip(data.select(split="train").labels.tolist(), data.select(split="train").rows):
        out[data.classes[label]].add(row["md5"])
    return out


def test_conditional_recipe_learns_every_class_and_records_what_it_saw(data_dir, tmp_path):
    out = tmp_path / "cond"
    run_recipe(tiny_cfg(data_dir, out, recipe="conditional", kimg=0.008), **QUIET)
    info = _info(out)
    assert info["classes"] == ["bad", "good"] and info["target_classes"] == ["bad"] and (
        info["recipe"] == "conditional")
    assert state_of(out)["G"]["mapping.embed.weight"].shape[1] == 2  # one-hot over both classes
    # only train-split images, per class, and every one of them
    assert {c: set(v) for c, v in info["seen_md5"].items()} == _train_md5(data_dir)


def test_transfer_recipe_pretrains_on_everything_then_finetunes_with_freezed(data_dir, tmp_path):
    out = tmp_path / "transfer"
    cfg = tiny_cfg(data_dir, out, recipe="transfer", kimg=0.016)
    result = run_recipe(cfg, **QUIET)
    assert result["status"] == "done"
    pre = out / "pretrain"
    assert (pre / "stage_done.json").is_file() and (pre / "final.pt").is_file()
    pre_info = _info(pre)
    assert pre_info["classes"] == ["bad+good"] and set(pre_info["seen_md5"]) == {"bad", "good"}  # pooled
    info = _info(out)
    assert info["classes"] == ["bad"] and set(info["seen_md5"]) == {"bad"}
    report = json.loads((out / "transfer.json").read_text())
    assert report["source"].endswith("final.pt") and report["frozen_d_blocks"] == 2 and (
        report["copied"]["G"] > 0)
    # the fine-tune started from the pre-trained weights: frozen D blocks are untouched
    a, b = state_of(pre)["D"], state_of(out)["D"]
    top = max(int(k.split(".")[0][1:]) for k in a if k[:1] == "b" and k.split(".")[0][1:].isdigit())
    assert torch.equal(a[f"b{top}.conv0.weight"], b[f"b{top}.conv0.weight"])
    # rerunning the recipe skips the finished pretrain and continues the fine-tune
    msgs: list[str] = []
    run_recipe(tiny_cfg(data_dir, out, recipe="transfer", kimg=0.024, resume=str(out)), log=msgs.append)
    assert any("stage pretrain done earlier" in m for m in msgs) and any("resumed from" in m for m in msgs)


def test_recipes_never_train_on_val_or_test(data_dir, tmp_path):
    from classify.data.dataset import open_prepared

    held = {row["md5"] for row in open_prepared(data_dir).select(split=["val", "test"]).rows}
    for recipe in ("minority", "conditional"):
        out = tmp_path / recipe
        run_recipe(tiny_cfg(data_dir, out, recipe=recipe, kimg=0.004), **QUIET)
        seen = set().union(*map(set, _info(out)["seen_md5"].values()))
        assert seen and not seen & held


def test_budget_stops_with_a_snapshot_and_resumes_to_a_larger_budget(data_dir, tmp_path):
    out = tmp_path / "budget"
    first = train_gan(tiny_cfg(data_dir, out, kimg=1000, budget="2s", tick_kimg=0.008), **QUIET)
    assert first["status"] == "done" and 0 < first["kimg"] < 1000 and list_snapshots(out)
    spent = state_of(out)["counters"]["elapsed_s"]
    assert spent >= 2.0  # stopped by the budget, at the first step past it
    msgs: list[str] = []
    train_gan(tiny_cfg(data_dir, out, kimg=1000, budget="2s", tick_kimg=0.008, resume=str(out)),
              log=msgs.append)
    assert any("nothing to train" in m for m in msgs)
    more = round(spent + 2, 1)  # relative to what the first session used: the box may be busy
    second = train_gan(tiny_cfg(data_dir, out, kimg=1000, budget=f"{more}s", tick_kimg=0.008,
                                resume=str(out)), **QUIET)
    # the larger budget (as passed, rounded to 0.1 s) is spent before the second session stops
    assert second["kimg"] > first["kimg"] and state_of(out)["counters"]["elapsed_s"] >= more


@pytest.mark.parametrize("text, seconds", [("90m", 5400.0), ("2h", 7200.0), ("45s", 45.0), ("30", 30.0)])
def test_budget_parses_durations(text, seconds):
    from gen.train.config import parse_duration

    assert parse_duration(text, "--budget") == seconds


@pytest.mark.parametrize("bad", ["ninety", "-5m", "0", "5x"])
def test_bad_budget_is_one_clear_error(data_dir, tmp_path, bad):
    with pytest.raises(UserError, match="--budget"):
        tiny_cfg(data_dir, tmp_path / "r", budget=bad)


def test_diffaug_trains_and_is_twice_differentiable(data_dir, tmp_path):
    torch.manual_seed(0)
    x = torch.rand(6, 1, 16, 16, requires_grad=True)
    out = DiffAugment()(x)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    grad.sum().backward()  # R1 differentiates through the augmentation twice
    assert x.grad is not None and torch.isfinite(x.grad).all()
    result = train_gan(tiny_cfg(data_dir, tmp_path / "d", aug="diffaug", kimg=0.008), **QUIET)
    assert result["status"] == "done" and _info(tmp_path / "d")["aug"] == "diffaug"


def test_diffaug_policies_do_what_they_say():
    torch.manual_seed(0)
    ones = torch.ones(64, 1, 16, 16)
    hole = (DiffAugment(policies=("cutout",))(ones) == 0).float().mean(dim=(1, 2, 3))
    # half-size square, clipped at edges
    assert (hole > 0).all() and (hole <= 0.25).all() and (hole == 0.25).any()
    shifted = DiffAugment(policies=("translation",))(ones)
    assert ((shifted == 0) | (shifted == 1)).all() and (shifted == 0).any()
    grey = torch.rand(8, 1, 8, 8)
    torch.manual_seed(1)
    coloured = DiffAugment(policies=("color",))(grey)
    # brightness shifts and contrast scales each image as a whole: per-image affine in the input
    for a, b in zip(grey, coloured):
        fit = torch.linalg.lstsq(torch.stack([a.flatten(), torch.ones(64)], 1), b.flatten()[:, None]).solution
        assert torch.allclose(a.flatten() * fit[0] + fit[1], b.flatten(), atol=1e-5)


def _source_run(data_dir: Path, out: Path, **kw) -> Path:
    train_gan(tiny_cfg(data_dir, out, kimg=0.008, **kw), **QUIET)
    return list_snapshots(out)[-1]


def test_resume_from_adopts_the_architecture_and_ada_p(data_dir, tmp_path):
    src = _source_run(data_dir, tmp_path / "src", z_dim=24, w_dim=40, map_layers=2, aug="fixed", p=0.3)
    overrides = tiny_overrides(data_dir, tmp_path / "dst", kimg=0.004, resume_from=str(src))
    for key in ("z_dim", "w_dim", "map_layers", "res", "channel_base", "channel_max"):
        overrides.pop(key)  # no architecture flags at all
    cfg = resolve_config(overrides)
    assert (cfg.z_dim, cfg.w_dim, cfg.map_layers, cfg.res, cfg.channels, cfg.p) == (
        24, 40, 2, 16, 1, pytest.approx(0.3))
    train_gan(cfg, **QUIET)
    with pytest.raises(UserError, match="--z-dim 32 contradicts the checkpoint's z_dim 24"):
        resolve_config(tiny_overrides(data_dir, tmp_path / "x", resume_from=str(src), z_dim=32))
    explicit_p = resolve_config(dict(overrides, p=0.05))
    assert explicit_p.p == pytest.approx(0.05)


def test_resume_from_a_reference_pkl_with_other_dims_needs_no_flags(data_dir, tmp_path):
    """The conditional grey 32x32 golden network (z/w 64, 64 channels) as a reference .pkl:
    a new one-class run takes it with no architecture flag (label layers re-initialised)."""
    from engine_helpers import write_reference_pkl

    pkl = tmp_path / "ref.pkl"
    write_reference_pkl(Path(__file__).parents[1] / "golden" / "sg2ada_cond_gray32.safetensors", pkl,
                        tmp_path / "m")
    overrides = {k: v for k, v in tiny_overrides(data_dir, tmp_path / "dst", kimg=0.004).items()
                 if k not in ("z_dim", "w_dim", "map_layers", "res", "channel_base", "channel_max")}
    cfg = resolve_config(dict(overrides, resume_from=str(pkl)))
    assert (cfg.z_dim, cfg.w_dim, cfg.map_layers, cfg.res, cfg.channel_max) == (64, 64, 2, 32, 64)
    msgs: list[str] = []
    assert train_gan(cfg, log=msgs.append)["status"] == "done"
    assert any("label layers re-initialised" in m for m in msgs)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (the standard handler has none), and can stop
    half-way once to simulate a dropped connection."""

    cut_after: int | None = None

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):  # noqa: N802 - the http.server API
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if type(self).cut_after is not None:
            chunk, type(self).cut_after = chunk[: type(self).cut_after], None
        self.wfile.write(chunk)


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_RangeHandler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def test_resume_from_a_url_downloads_once_resumably_and_uses_the_cache_offline(
        data_dir, tmp_path, file_server, monkeypatch):
    from gen.core.download import cached_path, fetch

    root, base, handler = file_server
    monkeypatch.setenv("GANBALANCE_CACHE", str(tmp_path / "cache"))
    src = _source_run(data_dir, tmp_path / "src")
    (root / "net.pt").write_bytes(src.read_bytes())
    url = f"{base}/net.pt"
    handler.cut_after = 1000  # the first attempt drops after 1000 bytes: the size check says so
    with pytest.raises(UserError, match="cut short"):
        fetch(url, progress=False)
    assert cached_path(url).with_name(cached_path(url).name + ".part").stat().st_size == 1000
    cfg = resolve_config(dict(tiny_overrides(data_dir, tmp_path / "dst", kimg=0.004), resume_from=url))
    assert Path(cfg.resume_from) == cached_path(url) and cached_path(url).read_bytes() == src.read_bytes()
    (root / "net.pt").unlink()  # the server no longer has it: the cached copy serves
    assert fetch(url, progress=False) == cached_path(url)
    train_gan(cfg, **QUIET)


def test_offline_url_is_one_line_that_says_how_to_pass_a_file(tmp_path, monkeypatch):
    import socket

    from gen.core.download import fetch

    monkeypatch.setenv("GANBALANCE_CACHE", str(tmp_path / "cache"))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=r"cannot download .*pass the local copy: --resume-from PATH") as exc:
        fetch(f"http://127.0.0.1:{port}/net.pkl", progress=False, timeout=5)
    assert "\n" not in str(exc.value)


def test_claim_cores_follows_the_environment(monkeypatch):
    from classify.core.clitools import claim_cores, usable_cores

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("GANBALANCE_THREADS", "1")
        assert claim_cores() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("GANBALANCE_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun processes share the machine
        assert claim_cores() == max(1, usable_cores() // 2)
        monkeypatch.setenv("GANBALANCE_THREADS", "many")
        with pytest.raises(UserError, match="whole number"):
            claim_cores()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("device, native, expected", [
    ("cpu", True, "bf16"), ("cpu", False, "fp32"), ("cpu", None, "fp32"), ("cuda", True, "fp32"),
    ("cuda:1", None, "fp32"),
])
def test_default_precision_is_bf16_only_where_it_measured_faster(device, native, expected, monkeypatch):
    import classify.core.clitools as clitools
    from gen.train.recipes import default_precision, resolve_config

    monkeypatch.setattr(clitools, "cpu_native_bf16", lambda: native)
    assert default_precision(device) == expected
    # an explicit --precision always wins
    assert resolve_config({"preset": "cpu-tiny", "device": device, "precision": "fp16"}).precision == "fp16"


@pytest.mark.parametrize("device, avx512, expected", [
    ("cpu", True, True), ("cpu", False, False), ("cpu", None, False), ("cuda", True, False),
])
def test_default_channels_last_only_on_cpus_where_it_measured_faster(device, avx512, expected, monkeypatch):
    import classify.core.clitools as clitools
    from gen.train.recipes import default_channels_last, resolve_config

    monkeypatch.setattr(clitools, "cpu_avx512", lambda: avx512)
    assert default_channels_last(device) is expected
    assert resolve_config({"preset": "cpu-tiny", "device": device}).channels_last is expected
    # an explicit --channels-last / --no-channels-last always wins, and is what the run records
    for flag in (True, False):
        flags = {"preset": "cpu-tiny", "device": device, "channels_last": flag}
        assert resolve_config(flags).channels_last is flag


@pytest.mark.parametrize("device, expected", [("cpu", True), ("cuda", False), ("cuda:1", False)])
def test_keep_freed_memory_is_the_cpu_default_and_a_flag_overrides_it(device, expected):
    from gen.train.recipes import resolve_config

    assert resolve_config({"preset": "cpu-tiny", "device": device}).keep_freed_memory is expected
    for flag in (True, False):
        cfg = resolve_config({"preset": "cpu-tiny", "device": device, "keep_freed_memory": flag})
        assert cfg.keep_freed_memory is flag
        assert cfg.to_dict()["keep_freed_memory"] is flag  # recorded in the run's config
