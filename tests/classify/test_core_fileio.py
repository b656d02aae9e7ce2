"""Atomic writes: the new content replaces the old, no temporary file is left, and the final
file gets the permissions a plain open() would give (mkstemp alone would leave 0600)."""

import os
import stat

import pytest

from classify.core.fileio import atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "report.md"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["report.md"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_uses_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


CHILD_FSIZE = r"""
import resource, sys
from pathlib import Path
import torch
from stylegan2_ada import Generator, GeneratorConfig
from classify.core.errors import UserError
from gen.train.snapshot import save_snapshot

run = Path(sys.argv[1])
G = Generator.from_config(GeneratorConfig(z_dim=8, w_dim=8, c_dim=0, img_resolution=8, img_channels=1,
                                          mapping_layers=1, channel_base=64, channel_max=8))
save_snapshot(run, 0, {"w": torch.zeros(10)}, G, {"classes": ["a"]})   # small: fits any limit
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    save_snapshot(run, 0, {"w": torch.zeros(1_000_000)}, G, {"classes": ["a"]})  # 4 MB
    print("no error")
except UserError as exc:
    print("UserError:", exc)
"""


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
def test_file_size_limit_is_a_one_line_error_that_keeps_the_old_snapshot(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.run([sys.executable, "-c", CHILD_FSIZE, str(run)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("UserError:"), proc.stdout
    assert "file too large" in line and "network-snapshot-000000.pt" in line
    assert "the previous file is intact" in line and "ulimit -f" in line
    import torch

    assert torch.load(run / "network-snapshot-000000.pt", weights_only=True)["w"].numel() == 10
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
