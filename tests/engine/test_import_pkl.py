"""Safe import of reference StyleGAN2-ADA `.pkl` snapshots (vendor/stylegan2_ada.pkl.importer.py)."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from engine_helpers import FakePersistent, module_state, reference_names, split, write_reference_pkl
from helpers import one_line_error
from stylegan2_ada.errors import CheckpointError
from stylegan2_ada.pkl.importer import load_reference_pkl, networks_from_checkpoint
from stylegan2_ada.pkl.unpickle import safe_load_pkl

GOLDEN = Path(__file__).parents[1] / "golden"
COND = GOLDEN / "sg2ada_cond_gray32.safetensors"
RGB = GOLDEN / "sg2ada_uncond_rgb64.safetensors"


class ShellCommand:
    """Loading this with plain pickle would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Subprocess:
    """Loading this with plain pickle would start a process."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return subprocess.Popen, (["touch", str(self.marker)],)


class PythonExec:
    """Loading this with plain pickle would exec Python source."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ---- (a) code in the file is never run ----------------------------------------------------------

@pytest.mark.parametrize("payload, global_name", [(ShellCommand, f"{os.system.__module__}.system"),
                                                  (Subprocess, "subprocess.Popen"),
                                                  (PythonExec, "builtins.exec")])
def test_code_executing_pickle_is_refused_and_runs_nothing(tmp_path, payload, global_name):
    marker = tmp_path / "marker"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": payload(marker)}, protocol=3))
    with pytest.raises(CheckpointError) as exc:
        load_reference_pkl(pkl)
    msg = _one_line(exc)
    assert global_name in msg and str(pkl) in msg
    assert not marker.exists()


def test_plain_pickle_would_have_run_the_payload(tmp_path):
    # Control for the test above: the payload is live, so "marker absent" means something.
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(PythonExec(marker)))
    assert marker.read_text() == "ran"


def test_payload_hidden_inside_a_valid_snapshot_is_refused(tmp_path):
    marker = tmp_path / "marker"
    with reference_names():
        record = FakePersistent("AugmentPipe", module_state({}, {}, {}, {"hook": PythonExec(marker)}), marker)
        blob = pickle.dumps({"G_ema": record}, protocol=3)
    pkl = tmp_path / "nested.pkl"
    pkl.write_bytes(blob)
    with pytest.raises(CheckpointError, match="builtins.exec"):
        load_reference_pkl(pkl)
    assert not marker.exists()


class EvilStorageBlob:
    """A tensor-storage blob whose inner torch pickle would run code."""

    def __init__(self, marker: Path):
        self.blob = pickle.dumps(PythonExec(marker), protocol=2)

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.blob,)


def test_payload_inside_a_tensor_blob_is_refused(tmp_path):
    marker = tmp_path / "marker"
    pkl = tmp_path / "blob.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": EvilStorageBlob(marker)}, protocol=3))
    with pytest.raises(CheckpointError) as exc:
        safe_load_pkl(pkl)
    assert str(pkl) in _one_line(exc)
    assert not marker.exists()


def test_embedded_module_source_is_never_executed(tmp_path):
    marker = tmp_path / "marker"
    write_reference_pkl(COND, tmp_path / "ref.pkl", marker)
    ckpt = load_reference_pkl(tmp_path / "ref.pkl")
    assert ckpt.G_ema_state and not marker.exists()


# ---- (b) the structure of a reference snapshot imports exactly ----------------------------------

@pytest.mark.parametrize("golden_path", [COND, RGB])
def test_state_dicts_and_extras_round_trip(tmp_path, golden_path):
    state = write_reference_pkl(golden_path, tmp_path / "ref.pkl", tmp_path / "marker")
    ckpt = load_reference_pkl(tmp_path / "ref.pkl")
    g, d = split(state, "G."), split(state, "D.")
    assert set(ckpt.G_ema_state) == set(g) and set(ckpt.D_state) == set(d)
    for key, tensor in g.items():
        assert torch.equal(ckpt.G_ema_state[key], tensor), key
        assert torch.equal(ckpt.G_state[key], tensor * 1.5), key  # G and G_ema are told apart
    for key, tensor in d.items():
        assert torch.equal(ckpt.D_state[key], tensor), key
    assert ckpt.augment_p == pytest.approx(0.25)
    assert ckpt.augment_kwargs == {"xflip": 1, "rotate90": 1, "xint": 1, "scale": 1}
    tsk = ckpt.extras["training_set_kwargs"]
    assert tsk["max_size"] == 120 and type(tsk["max_size"]) is int  # numpy scalar -> plain int
    assert type(tsk) is dict


@pytest.mark.parametrize("protocol", [4, 5])
def test_other_pickle_protocols_import_the_same(tmp_path, protocol):
    # Python 3.8+ pickles default to protocol 4 (STACK_GLOBAL, EMPTY_SET); the reference era used 3.
    state = write_reference_pkl(COND, tmp_path / "ref.pkl", tmp_path / "marker", protocol=protocol)
    ckpt = load_reference_pkl(tmp_path / "ref.pkl")
    assert all(torch.equal(ckpt.D_state[k], v) for k, v in split(state, "D.").items())
    assert ckpt.G_config.mapping_layers == 2 and ckpt.augment_p == pytest.approx(0.25)


def test_old_numpy_module_name_is_accepted(tmp_path):
    # Files written under numpy 1.x name `numpy.core.multiarray.scalar`; protocol 3 stores it as text.
    write_reference_pkl(COND, tmp_path / "ref.pkl", tmp_path / "marker")
    blob = (tmp_path / "ref.pkl").read_bytes()
    assert b"numpy._core.multiarray" in blob
    (tmp_path / "old.pkl").write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert load_reference_pkl(tmp_path / "old.pkl").extras["training_set_kwargs"]["max_size"] == 120


@pytest.mark.parametrize("which, arch, word", [("G", "resnet", "generator"), ("D", "skip", "discriminator")])
def test_unsupported_architecture_is_refused(tmp_path, which, arch, word):
    kwargs = {"g_arch": arch} if which == "G" else {"d_arch": arch}
    write_reference_pkl(COND, tmp_path / "ref.pkl", tmp_path / "marker", **kwargs)
    with pytest.raises(CheckpointError) as exc:
        load_reference_pkl(tmp_path / "ref.pkl")
    msg = _one_line(exc)
    assert word in msg and repr(arch) in msg and "architecture" in msg


def test_snapshot_without_g_ema_names_what_it_holds(tmp_path):
    pkl = tmp_path / "x.pkl"
    pkl.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=3))
    with pytest.raises(CheckpointError, match=r"no G_ema network \(it holds: weights\)"):
        load_reference_pkl(pkl)


# ---- (c) damaged files ------------------------------------------------------------------------

def test_truncated_file_is_a_one_line_error(tmp_path):
    write_reference_pkl(COND, tmp_path / "ref.pkl", tmp_path / "marker")
    blob = (tmp_path / "ref.pkl").read_bytes()
    for cut in (len(blob) // 2, len(blob) - 1, 10):
        bad = tmp_path / f"cut{cut}.pkl"
        bad.write_bytes(blob[:cut])
        with pytest.raises(CheckpointError) as exc:
            load_reference_pkl(bad)
        msg = _one_line(exc)
        assert str(bad) in msg and "truncated or corrupt" in msg


@pytest.mark.parametrize("content", [b"", b"not a pickle at all\n", bytes(range(256)) * 4])
def test_garbage_file_is_a_one_line_error(tmp_path, content):
    bad = tmp_path / "garbage.pkl"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError) as exc:
        load_reference_pkl(bad)
    assert str(bad) in _one_line(exc)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot open"):
        load_reference_pkl(tmp_path / "nope.pkl")


# ---- (b) the imported networks reproduce the golden outputs -------------------------------------

def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("golden_path", [COND, RGB])
def test_imported_networks_reproduce_golden_outputs(tmp_path, golden_path):
    state = write_reference_pkl(golden_path, tmp_path / "ref.pkl", tmp_path / "marker")
    ckpt = load_reference_pkl(tmp_path / "ref.pkl")
    nets = networks_from_checkpoint(ckpt)
    assert set(nets) == {"G", "D", "G_ema"}
    G_ema, D = nets["G_ema"].eval(), nets["D"].eval()
    z, c, real = state["io.z"], state["io.c"], state["io.real"]
    with torch.no_grad():
        ws = G_ema.mapping(z, c, truncation_psi=1.0)
        ws_trunc = G_ema.mapping(z, c, truncation_psi=0.7)
        img = G_ema.synthesis(ws, noise_mode="const")
        logits_real = D(real, c)
        logits_fake = D(state["io.img"], c)
    for name, got in [("ws", ws), ("ws_trunc", ws_trunc), ("img", img), ("logits_real", logits_real),
                      ("logits_fake", logits_fake)]:
        assert _rel_err(got, state[f"io.{name}"]) <= 1e-4, name


def test_config_mapping_matches_the_golden_settings(tmp_path):
    state = write_reference_pkl(COND, tmp_path / "ref.pkl", tmp_path / "marker")
    ckpt = load_reference_pkl(tmp_path / "ref.pkl")
    g, d = ckpt.G_config, ckpt.D_config
    assert (g.z_dim, g.w_dim, g.c_dim, g.img_resolution, g.img_channels) == (64, 64, 3, 32, 1)
    assert (g.mapping_layers, g.channel_base, g.channel_max, g.conv_clamp) == (2, 4096, 64, 256)
    assert (d.mapping_layers, d.mbstd_group_size, d.mbstd_num_channels, d.cmap_dim) == (8, 4, 1, None)
    assert ckpt.G_state["mapping.w_avg"].shape == state["G.mapping.w_avg"].shape


def test_weights_that_contradict_the_settings_are_refused(tmp_path):
    # The record claims channel_max=32 while its stored weights are 64 wide.
    write_reference_pkl(COND, tmp_path / "ref.pkl", tmp_path / "marker", synthesis_kwargs={"channel_max": 32})
    ckpt = load_reference_pkl(tmp_path / "ref.pkl")
    with pytest.raises(CheckpointError) as exc:
        networks_from_checkpoint(ckpt, include=("G_ema",))
    assert "has shape" in _one_line(exc) and "config implies" in str(exc.value)


def test_mapping_depth_that_contradicts_the_weights_is_refused(tmp_path):
    write_reference_pkl(COND, tmp_path / "ref.pkl", tmp_path / "marker", mapping_kwargs={"num_layers": 3})
    with pytest.raises(CheckpointError, match="num_layers=3 but its mapping has 2 layers"):
        load_reference_pkl(tmp_path / "ref.pkl")


# ---- gen import-pkl ----------------------------------------------------------------------------

def test_cli_exports_g_ema_that_loads_back(tmp_path):
    from gen.cli import main as gen_main
    from gen.core.generator_file import load_generator

    state = write_reference_pkl(COND, tmp_path / "network-snapshot-000120.pkl", tmp_path / "marker")
    out = tmp_path / "g.safetensors"
    result = CliRunner().invoke(gen_main, ["import-pkl", str(tmp_path / "network-snapshot-000120.pkl"),
                                           str(out), "--classes", "crack,scratch,dent"])
    assert result.exit_code == 0, result.output
    G, info = load_generator(out)
    assert info["classes"] == ["crack", "scratch", "dent"] and info["kimg"] == 120
    assert info["real_counts"] is None and info["augment_p"] == pytest.approx(0.25)
    with torch.no_grad():
        img = G.synthesis(G.mapping(state["io.z"], state["io.c"]), noise_mode="const")
    assert _rel_err(img, state["io.img"]) <= 1e-4


def test_cli_bad_file_is_one_line_error(tmp_path):
    from gen.cli import main as gen_main

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x03}q\x00")  # a pickle cut off after its first opcodes
    result = CliRunner().invoke(gen_main, ["import-pkl", str(bad), str(tmp_path / "g.safetensors")])
    assert result.exit_code == 1
    one_line_error(result, str(bad))
    assert not (tmp_path / "g.safetensors").exists()


class TensorView:
    """A tensor rebuild call with a chosen view onto a small storage."""

    def __init__(self, numel: int, offset: int, size: tuple, stride: tuple):
        self.args = (torch.zeros(numel).untyped_storage(), offset, size, stride)

    def __reduce__(self):
        import collections
        import warnings

        storage, offset, size, stride = self.args
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            typed = torch.TypedStorage(wrap_storage=storage, dtype=torch.float32, _internal=True)
        return torch._utils._rebuild_tensor_v2, (typed, offset, size, stride, False,
                                                 collections.OrderedDict())


@pytest.mark.parametrize("view", [(4, 3, (2,), (1,)),          # reads past the end of the storage
                                  (1, 0, (10**12,), (0,)),     # stride-0 view that would explode on copy
                                  (4, 0, (2, 3), (1,))])       # size/stride length mismatch
def test_tensor_views_outside_their_storage_are_refused(tmp_path, view):
    pkl = tmp_path / "view.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": TensorView(*view)}, protocol=3))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        safe_load_pkl(pkl)


def test_in_bounds_view_is_rebuilt_exactly(tmp_path):
    pkl = tmp_path / "view.pkl"
    view = TensorView(6, 1, (2, 2), (2, 1))
    view.args[0].copy_(torch.arange(6, dtype=torch.float32).untyped_storage())
    pkl.write_bytes(pickle.dumps([view], protocol=3))
    assert torch.equal(safe_load_pkl(pkl)[0], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


class RepointedTensor:
    """A valid tensor followed by a BUILD whose Tensor.__setstate__ re-points it (unchecked set_)."""

    def __reduce__(self):
        import collections

        small = TensorView(1, 0, (1,), (1,)).__reduce__()[1][0]
        return (torch._utils._rebuild_tensor_v2, (small, 0, (1,), (1,), False, collections.OrderedDict()),
                (TensorView(2, 0, (1,), (1,)).__reduce__()[1][0], 1, (64,), (1,)))


def test_tensor_repointed_by_build_is_refused(tmp_path):
    # Without the post-load check this yields 64 floats, 62 of them uninitialised memory.
    pkl = tmp_path / "repoint.pkl"
    pkl.write_bytes(pickle.dumps([RepointedTensor()], protocol=3))
    with pytest.raises(CheckpointError, match="re-pointed"):
        safe_load_pkl(pkl)
