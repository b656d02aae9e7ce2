"""Hostile but small reference `.pkl` files: shared references, cycles, NaN weights, old protocols.

Each hostile file is a few kilobytes whose object graph explodes when walked as a tree. The
loads run in a child process with a memory cap and a timeout, so that a regression fails
the test instead of swapping this machine; the child reports how long the refusal took.
"""

from __future__ import annotations

import json
import pickle
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from engine_helpers import FakePersistent, module_state, reference_names, split, write_reference_pkl
from helpers import one_line_error
from stylegan2_ada.errors import CheckpointError
from stylegan2_ada.pkl.importer import load_reference_pkl, record_state_dict, to_plain
from stylegan2_ada.pkl.unpickle import GraphTooLarge, check_graph

GOLDEN = Path(__file__).parents[1] / "golden"
COND = GOLDEN / "sg2ada_cond_gray32.safetensors"
TESTS = Path(__file__).parent

CHILD = """
import json, sys, time
from stylegan2_ada.pkl.importer import load_reference_pkl
t0 = time.monotonic()
try:
    load_reference_pkl(sys.argv[1])
    out = {"error": None}
except Exception as exc:
    out = {"error": type(exc).__name__, "message": str(exc)}
out["seconds"] = time.monotonic() - t0
print(json.dumps(out))
"""


def _limit_memory() -> None:
    cap = 6 * 2**30  # torch alone maps ~3 GiB of address space; a tree walk of 2^40 nodes needs far more
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _load_in_child(pkl: Path) -> dict:
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(pkl)], capture_output=True, text=True,
                              timeout=60, preexec_fn=_limit_memory, cwd=TESTS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {pkl.name} ran for more than 60 s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _laughs(levels: int, as_dict: bool = False):
    """A value whose tree has 2**levels leaves but only `levels` distinct containers."""
    node: object = "lol"
    for _ in range(levels):
        node = {"a": node, "b": node} if as_dict else [node, node]
    return node


def _refused_quickly(pkl: Path, *needles: str) -> str:
    out = _load_in_child(pkl)
    assert out["error"] == "CheckpointError", out
    assert "\n" not in out["message"] and str(pkl) in out["message"]
    for needle in needles:
        assert needle in out["message"], out["message"]
    assert out["seconds"] < 3.0, out
    return out["message"]


@pytest.mark.parametrize("where, as_dict", [("training_set_kwargs", False), ("training_set_kwargs", True),
                                            ("augment_kwargs", False), ("augment_kwargs", True)])
def test_billion_laughs_of_shared_values_is_refused_in_seconds(tmp_path, where, as_dict):
    pkl = tmp_path / "laughs.pkl"
    write_reference_pkl(COND, pkl, tmp_path / "marker", **{where: {"path": _laughs(40, as_dict)}})
    assert pkl.stat().st_size < 5_000_000
    _refused_quickly(pkl, "object graph exceeds")


def _shared_record_dag(levels: int, marker: Path) -> FakePersistent:
    """Sub-module records where each level's two children are the same record (2**levels paths)."""
    node = FakePersistent("Leaf", module_state({"weight": torch.zeros(2)}, {}, {}), marker)
    for i in range(levels):
        node = FakePersistent(f"Layer{i}", module_state({}, {}, {"a": node, "b": node}), marker)
    return node


def test_dag_of_shared_submodule_records_is_refused_in_seconds(tmp_path):
    pkl = tmp_path / "dag.pkl"
    with reference_names():
        pkl.write_bytes(pickle.dumps({"G_ema": _shared_record_dag(32, tmp_path / "m")}, protocol=3))
    _refused_quickly(pkl, "object graph exceeds")


def test_a_submodule_record_shared_by_two_parents_is_refused(tmp_path):
    # Small enough for the graph budget: the state-dict walk itself must notice the sharing.
    pkl = tmp_path / "dag.pkl"
    with reference_names():
        pkl.write_bytes(pickle.dumps({"G_ema": _shared_record_dag(3, tmp_path / "m")}, protocol=3))
    from stylegan2_ada.pkl.unpickle import safe_load_pkl

    rec = safe_load_pkl(pkl)["G_ema"]
    with pytest.raises(CheckpointError, match=r"submodule a(\.a)*\.b is the same record as a(\.a)*; "
                                              r".*never shares its layers"):
        record_state_dict(rec, pkl)


def test_a_value_that_contains_itself_is_refused(tmp_path):
    loop: list = ["x"]
    loop.append(loop)
    pkl = tmp_path / "loop.pkl"
    write_reference_pkl(COND, pkl, tmp_path / "marker", training_set_kwargs={"path": loop})
    with pytest.raises(CheckpointError, match="refers to itself"):
        load_reference_pkl(pkl)


def test_settings_that_expand_past_the_plain_budget_are_refused(tmp_path):
    # 2**14 leaves: inside the file budget, far beyond what any dataset kwargs hold.
    pkl = tmp_path / "wide.pkl"
    write_reference_pkl(COND, pkl, tmp_path / "marker", training_set_kwargs={"path": _laughs(14)})
    with pytest.raises(CheckpointError, match="expands to more than 10000 entries") as exc:
        load_reference_pkl(pkl)
    assert str(exc.value).startswith(f"{pkl}: ")


def test_shared_small_values_still_import(tmp_path):
    # Pickle shares equal objects the writer shared (the reference passes one resample_filter list
    # to many layers); a few shared references are normal and keep their values.
    shared = [1, 3, 3, 1]
    pkl = tmp_path / "ref.pkl"
    state = write_reference_pkl(COND, pkl, tmp_path / "marker",
                                training_set_kwargs={"a": shared, "b": shared, "c": {"d": shared}})
    ckpt = load_reference_pkl(pkl)
    assert ckpt.extras["training_set_kwargs"] == {"a": shared, "b": shared, "c": {"d": shared}}
    assert all(torch.equal(ckpt.G_ema_state[k], v) for k, v in split(state, "G.").items())


def test_check_graph_counts_shared_references_and_depth():
    assert check_graph(_laughs(3)) == (1 + 2 + 4) + 8  # 7 lists + 8 leaf references
    with pytest.raises(GraphTooLarge, match="exceeds 100 nodes"):
        check_graph(_laughs(10), max_nodes=100)
    deep: list = []
    for _ in range(50):
        deep = [deep]
    with pytest.raises(GraphTooLarge, match="deeper than 20 levels"):
        check_graph(deep, max_depth=20)


def test_to_plain_converts_a_shared_value_once_within_budget():
    shared = {"x": [1, 2]}
    assert to_plain({"a": shared, "b": shared}) == {"a": {"x": [1, 2]}, "b": {"x": [1, 2]}}
    with pytest.raises(CheckpointError, match="more than 50 entries"):
        to_plain(_laughs(8), budget=50)


# ---- non-finite weights ------------------------------------------------------------------------

def test_nan_generator_is_refused_on_import(tmp_path):
    from gen.cli import main as gen_main

    pkl = tmp_path / "network-snapshot-000010.pkl"
    write_reference_pkl(COND, pkl, tmp_path / "marker", g_ema_scale=float("nan"))
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):
        load_reference_pkl(pkl)
    out = tmp_path / "g.safetensors"
    result = CliRunner().invoke(gen_main, ["import-pkl", str(pkl), str(out), "--classes", "a,b,c"])
    assert result.exit_code == 1
    one_line_error(result, "NaN")
    assert not out.exists()


# ---- old pickle protocols ------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_python2_era_protocols_import_the_same(tmp_path, protocol):
    # Protocols 0-2 name `__builtin__.set`, `_codecs.encode` (bytes) and, for 0-1,
    # `copy_reg._reconstructor` (EasyDict); all map onto the allow-list.
    pkl = tmp_path / "ref.pkl"
    state = write_reference_pkl(COND, pkl, tmp_path / "marker", protocol=protocol)
    assert b"__builtin__" in pkl.read_bytes()
    ckpt = load_reference_pkl(pkl)
    assert all(torch.equal(ckpt.D_state[k], v) for k, v in split(state, "D.").items())
    assert all(torch.equal(ckpt.G_ema_state[k], v) for k, v in split(state, "G.").items())
    assert ckpt.extras["training_set_kwargs"]["max_size"] == 120 and ckpt.augment_p == pytest.approx(0.25)


def test_python2_names_still_refuse_what_is_not_allowed(tmp_path):
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(b"c__builtin__\neval\n(S'1+1'\ntR.")
    with pytest.raises(CheckpointError, match=r"__builtin__\.eval"):
        load_reference_pkl(pkl)


def test_malformed_module_fields_are_one_line(tmp_path):
    # `_modules` as a list where a dict belongs: an AttributeError deep in the config mapping before.
    from engine_helpers import golden, record_tree, reference_kwargs

    state, cfg = golden(COND)
    g_kwargs, _ = reference_kwargs(cfg)
    rec = record_tree(split(state, "G."), "Generator", tmp_path / "m", g_kwargs)
    rec.meta["state"]["_modules"] = [("mapping", None)]
    pkl = tmp_path / "bad.pkl"
    with reference_names():
        pkl.write_bytes(pickle.dumps({"G_ema": rec}, protocol=3))
    with pytest.raises(CheckpointError, match="malformed setting") as exc:
        load_reference_pkl(pkl)
    assert "\n" not in str(exc.value)
