"""gen train under bad input and bad luck: one-line errors, kill -9, SIGTERM, full disk, NaN."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from gen_helpers import disk_full_for, make_prepared, state_of, tiny_cfg
from helpers import one_line_error

from classify.core.errors import UserError
from gen.commands.train import train_command
from gen.train import trainer as train_mod
from gen.train.snapshot import list_snapshots
from gen.train.trainer import train_gan

TESTS_DIR = Path(__file__).parent
REPO = TESTS_DIR.parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("genfaults"))


def _cli(*args: str):
    return CliRunner().invoke(train_command, list(args), catch_exceptions=False)


@pytest.mark.parametrize("flags, needles", [
    (["--class", "nosuch"], ["unknown class nosuch", "available: bad, good"]),
    (["--class", "bad", "--batch", "64"], ["fewer than --batch 64", "use --batch"]),
    (["--class", "bad", "--res", "24"], ["--res 24 is not a power of two"]),
    # The engine's own rule, at --dry-run: before, 2048 passed here, decoded every image at
    # 2048x2048 and then died with a traceback from the engine.
    (["--class", "bad", "--res", "2048"], ["--res 2048 is not a power of two between 4 and 1024"]),
    (["--class", "bad", "--aug", "ada", "--p", "2"], ["--p 2.0 must be in [0, 1]"]),
])
def test_bad_input_is_one_clear_line(data_dir, tmp_path, flags, needles):
    out = tmp_path / "run"
    one_line_error(_cli("--data", str(data_dir), "--out", str(out), "--dry-run", *flags), *needles,
                   after_output=True)


def test_missing_data_folder(tmp_path):
    one_line_error(_cli("--data", str(tmp_path / "nope"), "--class", "bad", "--out", str(tmp_path / "r"),
                        "--dry-run"),
                   after_output=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_gpu(data_dir, tmp_path):
    one_line_error(_cli("--data", str(data_dir), "--class", "bad", "--out", str(tmp_path),
                        "--device", "cuda"),
                   "no CUDA GPU", "--device cpu", after_output=True)


def test_gpu_preset_on_cpu_gets_a_note(data_dir, tmp_path):
    r = CliRunner().invoke(train_command, ["--data", str(data_dir), "--class", "bad",
                                           "--out", str(tmp_path / "r"),
                                           "--device", "cpu", "--batch", "4", "--dry-run"])
    assert r.exit_code == 0 and "note: preset auto on the CPU builds 512-channel networks" in r.output
    r = CliRunner().invoke(train_command, ["--data", str(data_dir), "--class", "bad",
                                           "--out", str(tmp_path / "r"), "--device", "cpu",
                                           "--preset", "cpu-tiny", "--batch", "4", "--dry-run"])
    assert r.exit_code == 0 and "note:" not in r.output


def test_bf16_asked_for_on_a_cpu_without_native_bf16_gets_a_note(data_dir, tmp_path, monkeypatch):
    from classify.core import clitools

    args = ["--data", str(data_dir), "--class", "bad", "--out", str(tmp_path / "r"), "--device", "cpu",
            "--preset", "cpu-tiny", "--batch", "4", "--precision", "bf16", "--dry-run"]
    monkeypatch.setattr(clitools, "cpu_native_bf16", lambda: False)
    r = CliRunner().invoke(train_command, args)
    assert r.exit_code == 0 and "note: --precision bf16 on a CPU without AVX512-BF16/AMX" in r.output
    monkeypatch.setattr(clitools, "cpu_native_bf16", lambda: True)
    assert "note:" not in CliRunner().invoke(train_command, args).output


def test_dry_run_prints_config_and_data(data_dir, tmp_path):
    r = _cli("--data", str(data_dir), "--class", "bad", "--class", "good", "--out", str(tmp_path / "r"),
             "--preset", "cpu-tiny", "--kimg", "3", "--batch", "8", "--dry-run")
    assert r.exit_code == 0, r.output
    assert '"kimg": 3.0' in r.output and '"channel_max": 64' in r.output
    assert "conditional (2 classes)" in r.output and not (tmp_path / "r").exists()


def test_dry_run_shows_the_augmentation_pipeline_and_refuses_unknown_names(data_dir, tmp_path):
    args = ["--data", str(data_dir), "--class", "bad", "--out", str(tmp_path / "r"), "--preset", "cpu-tiny",
            "--batch", "8", "--dry-run"]
    r = _cli(*args)
    assert r.exit_code == 0 and '"augpipe": "bgc"' in r.output
    r = _cli(*args, "--augpipe", "bgcfnc")
    assert r.exit_code == 0, r.output
    assert '"augpipe": "bgcfnc"' in r.output and "bgcfnc = xflip, rotate90" in r.output and (
        "cutout" in r.output)
    bad = _cli(*args, "--augpipe", "nonsense")
    assert bad.exit_code == 2
    error = [line for line in bad.output.splitlines() if "nonsense" in line]
    assert len(error) == 1 and "bgcfnc" in error[0] and "blit" in error[0]
    with pytest.raises(UserError, match="--augpipe 'nope' is not one of"):
        tiny_cfg(data_dir, tmp_path / "x", augpipe="nope").validate()


def test_batch_that_mbstd_groups_cannot_split_is_refused_up_front(data_dir, tmp_path):
    # cpu-tiny groups 4 images for minibatch-std; 6 per process would fail at the first D call
    one_line_error(_cli("--data", str(data_dir), "--class", "bad", "--out", str(tmp_path / "r"),
                        "--preset", "cpu-tiny", "--batch", "6", "--dry-run"),
                   "--mbstd-group 4", "per-process batch 6", after_output=True)
    ok = _cli("--data", str(data_dir), "--class", "bad", "--out", str(tmp_path / "r"), "--preset", "cpu-tiny",
              "--batch", "6", "--mbstd-group", "3", "--dry-run")
    assert ok.exit_code == 0, ok.output


def test_cifar_preset_turns_off_path_length_and_style_mixing():
    from gen.train.presets import preset_fields

    cifar = preset_fields("cifar", 32)
    assert cifar["pl_weight"] == 0.0 and cifar["style_mixing"] == 0.0 and cifar["mbstd_group"] == 32
    assert "pl_weight" not in preset_fields("paper256", 256)  # the others keep the defaults


def test_cli_resume_with_other_config_is_refused(data_dir, tmp_path):
    out = tmp_path / "run"
    train_gan(tiny_cfg(data_dir, out, kimg=0.02), log=lambda m: None)
    one_line_error(_cli("--resume", str(out), "--gamma", "7"), "gamma: 1.0 -> 7.0", after_output=True)


def _spawn_training(data_dir: Path, out: Path) -> subprocess.Popen:
    """A long tiny run in a child process, snapshotting after every step."""
    code = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]); torch.set_num_threads(1)\n"
        "from gen_helpers import tiny_cfg\nfrom gen.train.trainer import train_gan\n"
        "print(train_gan(tiny_cfg(sys.argv[2], sys.argv[3], kimg=5.0, tick_kimg=0.004, snap=1), "
        "log=print), flush=True)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.Popen([sys.executable, "-c", code, str(TESTS_DIR), str(data_dir), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for_snapshot(proc: subprocess.Popen, out: Path, timeout: float = 90) -> None:
    t0 = time.time()
    while not list_snapshots(out):
        if proc.poll() is not None:
            pytest.fail(f"training exited early:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail("no snapshot within the timeout")
        time.sleep(0.05)


def test_kill_9_leaves_a_resumable_snapshot(data_dir, tmp_path):
    """SIGKILL while snapshots are rewritten every step: the file on disk is always whole."""
    out = tmp_path / "run"
    proc = _spawn_training(data_dir, out)
    _wait_for_snapshot(proc, out)
    time.sleep(random.Random(os.getpid()).uniform(0.2, 1.5))  # somewhere in the write/step cycle
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    snap = state_of(out)
    done = snap["counters"]["cur_nimg"]
    assert done >= 4 and snap["format_version"] == 1
    (out / ".network-snapshot-000000.pt.k9.tmp").write_bytes(b"torn")  # what a kill mid-write leaves
    (out / ".notes.txt.tmp").write_bytes(b"not ours")
    result = train_gan(tiny_cfg(data_dir, out, kimg=(done + 8) / 1000, tick_kimg=0.004, snap=1,
                                resume="latest"),
                       log=lambda m: None)
    assert result["status"] == "done" and state_of(out)["counters"]["cur_nimg"] == done + 8
    assert sorted(p.name for p in out.glob(".*.tmp")) == [".notes.txt.tmp"]


def test_sigterm_snapshots_and_exits_cleanly(data_dir, tmp_path):
    out = tmp_path / "run"
    proc = _spawn_training(data_dir, out)
    _wait_for_snapshot(proc, out)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "stopped by SIGTERM" in output and "'status': 'stopped'" in output
    snap = state_of(out)
    assert 0 < snap["counters"]["cur_nimg"] < 5000


def test_full_disk_keeps_the_old_snapshot(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_gan(tiny_cfg(data_dir, out, kimg=0.02), log=lambda m: None)
    old = (out / "network-snapshot-000000.pt").read_bytes()
    disk_full_for(monkeypatch, ".network-snapshot-")
    with pytest.raises(UserError,
                       match="disk full while writing .*network-snapshot-000000.pt; the previous file"):
        train_gan(tiny_cfg(data_dir, out, kimg=0.04, resume=str(out)), log=lambda m: None)
    monkeypatch.undo()
    assert (out / "network-snapshot-000000.pt").read_bytes() == old
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert state_of(out)["counters"]["cur_nimg"] == 20


def test_nan_loss_stops_and_keeps_last_good_snapshot(data_dir, tmp_path, monkeypatch):
    real_build_loss = train_mod.build_loss

    def poisoned(*args, **kw):
        loss = real_build_loss(*args, **kw)
        inner, calls = loss.accumulate_gradients, []

        def accumulate(**kw2):
            stats = inner(**kw2)
            calls.append(kw2["phase"])
            if calls.count("Gmain") > 8 and kw2["phase"] == "Gmain":
                stats["loss_G"] = float("nan")
            return stats

        loss.accumulate_gradients = accumulate
        return loss

    monkeypatch.setattr(train_mod, "build_loss", poisoned)
    out = tmp_path / "run"
    with pytest.raises(UserError, match=r"non-finite loss_G in phase Gmain.*last good snapshot is kept "
                                        r"\(network-snapshot-000000.pt\)"):
        train_gan(tiny_cfg(data_dir, out, kimg=0.08, tick_kimg=0.02), log=lambda m: None)
    snap = state_of(out)
    assert snap["counters"]["cur_nimg"] == 24  # the tick after step 6; step 9 failed
    assert all(torch.isfinite(v).all() for v in snap["G"].values() if v.is_floating_point())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_all_finite_finds_one_bad_value_in_any_tensor(bad):
    tensors = [torch.randn(4, 3), torch.zeros(()), torch.randn(7)]
    assert train_mod.all_finite(tensors) and train_mod.all_finite([])
    tensors[2][5] = bad
    assert not train_mod.all_finite(tensors)
    tensors[2][5] = 3e38  # large but finite
    assert train_mod.all_finite(tensors)
    tensors[2][:] = 3e38  # finite, though its float32 sum would overflow
    assert train_mod.all_finite(tensors)
    tensors[2][0], tensors[2][1] = float("inf"), -float("inf")  # a sum of NaN
    assert not train_mod.all_finite(tensors)


def test_cli_trains_then_resumes_with_more_kimg(data_dir, tmp_path):
    out = tmp_path / "run"
    tiny = ["--preset", "cpu-tiny", "--res", "16", "--channel-base", "256", "--channel-max", "16",
            "--map", "1", "--batch", "4", "--tick-kimg", "0.004", "--device", "cpu"]
    r = _cli("--data", str(data_dir), "--class", "bad", "--out", str(out), "--kimg", "0.008", *tiny)
    assert r.exit_code == 0 and "done: kimg 0.008" in r.output, r.output
    r = _cli("--resume", str(out), "--kimg", "0.016")
    assert r.exit_code == 0 and "resumed from" in r.output and "done: kimg 0.016" in r.output, r.output
    assert state_of(out)["config"]["kimg"] == 0.016 and state_of(out)["config"]["channel_max"] == 16
    # a fresh run into that folder would interleave with it: refused, nothing touched
    before = (out / "metrics.jsonl").read_text()
    one_line_error(_cli("--data", str(data_dir), "--class", "bad", "--out", str(out), "--kimg", "0.008",
                        *tiny),
                   "already holds a training run", f"--resume {out}", after_output=True)
    # resuming a finished run: nothing to train, no repeated metrics row
    r = _cli("--resume", str(out), "--kimg", "0.008")
    assert r.exit_code == 0 and "nothing to train" in r.output, r.output
    assert (out / "metrics.jsonl").read_text() == before
    one_line_error(_cli("--resume", "latest"), "--resume latest needs --out RUN_DIR", after_output=True)
    one_line_error(_cli("--resume", str(out), "--out", str(tmp_path / "fork")), f"continues the run in {out}",
                   "--resume-from", after_output=True)
    assert not (tmp_path / "fork").exists()


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_cli_exit_code_says_a_stopped_run_is_unfinished(data_dir, tmp_path, monkeypatch, signal_name, code):
    """`gen train ... && gen sample ...` must not go on with a GAN a signal stopped halfway."""
    import gen.train.recipes

    stopped = {"status": "stopped", "stop_signal": signal_name, "kimg": 0.004, "snapshot": "s.pt"}
    monkeypatch.setattr(gen.train.recipes, "train_gan", lambda cfg, log, resume=None: stopped)
    r = CliRunner().invoke(train_command, ["--data", str(data_dir), "--class", "bad",
                                           "--out", str(tmp_path / "r"), "--preset", "cpu-tiny",
                                           "--device", "cpu"])
    assert r.exit_code == code and "stopped: kimg 0.004" in r.output


def test_corrupt_snapshot_names_the_way_forward(tmp_path):
    from gen.train.snapshot import load_snapshot

    for name in ("network-snapshot-000000.pt", "network-snapshot-000004.pt", "network-snapshot-000008.pt"):
        (tmp_path / name).write_bytes(b"torn")
    with pytest.raises(UserError, match=r"resume from an older one \(--resume .*network-snapshot-000004.pt; "
                                         r"also: network-snapshot-000000.pt\)"):
        load_snapshot(tmp_path / "network-snapshot-000008.pt")
    with pytest.raises(UserError, match="no older snapshot is left: move this file away"):
        load_snapshot(tmp_path / "network-snapshot-000000.pt")


def test_cli_stores_absolute_paths(data_dir, tmp_path, monkeypatch):
    """A relative --data must still resolve when `gen sample` runs from another directory."""
    monkeypatch.chdir(data_dir.parent)
    r = CliRunner().invoke(train_command, ["--data", data_dir.name, "--class", "bad",
                                           "--out", str(tmp_path / "r"), "--preset", "cpu-tiny",
                                           "--batch", "4", "--device", "cpu", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert f'"data_dir": "{data_dir.resolve()}"' in r.output


def test_no_progress_bar_in_a_log_file_but_one_line_per_tick(tmp_path, capsys, monkeypatch):
    from gen.train.log import RunLog

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    log = RunLog(tmp_path, total_nimg=1000, start_nimg=0, enabled=True, resume_nimg=None)
    assert log.bar is None  # stderr is not a terminal under pytest, as in `gen train ... > log`
    log.tick({"kimg": 0.5, "nimg": 500, "sec_per_kimg": 10.0, "ada_p": 0.0})
    log.close()
    out = capsys.readouterr()
    assert "kimg 0.50 sec_per_kimg=10 ada_p=0" in out.out and "\r" not in out.out + out.err


def test_cli_resume_reads_its_snapshot_once(data_dir, tmp_path, monkeypatch):
    """Found once, loaded once, compared once: the trainer continues from the state the CLI read."""
    import gen.train.snapshot as snapshot_mod

    out = tmp_path / "run"
    tiny = ["--preset", "cpu-tiny", "--res", "16", "--channel-base", "256", "--channel-max", "16",
            "--map", "1", "--batch", "4", "--tick-kimg", "0.004", "--device", "cpu"]
    assert _cli("--data", str(data_dir), "--class", "bad", "--out", str(out), "--kimg", "0.008",
                *tiny).exit_code == 0
    loads, found = [], []
    real_load, real_find = snapshot_mod.load_snapshot, snapshot_mod.find_resume_snapshot
    monkeypatch.setattr(snapshot_mod, "load_snapshot",
                        lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    monkeypatch.setattr(snapshot_mod, "find_resume_snapshot", lambda *a: found.append(a) or real_find(*a))
    r = _cli("--resume", str(out), "--kimg", "0.012")
    assert r.exit_code == 0 and "resumed from" in r.output, r.output
    assert len(found) == 1 and len(loads) == 1, (found, loads)


def test_metrics_judge_of_other_classes_is_refused_before_training(data_dir, tmp_path):
    """The judge's features pick best.json; one of other classes would pick it wrong."""
    from gen_helpers import make_prepared

    from classify.train.trainer import ClassifierTrainConfig, train_classifier

    other = make_prepared(tmp_path / "other", counts={"cat": 12, "dog": 12})
    judge = train_classifier(ClassifierTrainConfig(data_dir=str(other), out_dir=str(tmp_path / "judge"),
                                                   res=16, batch=4, epochs=1, progress=False))["checkpoint"]
    with pytest.raises(UserError, match=r"trained on classes \['cat', 'dog'\], not \['bad'\]"):
        train_gan(tiny_cfg(data_dir, tmp_path / "gan", metrics=["fd"], judge=judge), log=lambda m: None)
    assert not list_snapshots(tmp_path / "gan")
