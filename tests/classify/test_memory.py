"""`classify.core.memory.keep_freed_memory`: freed blocks stay in the process, so reallocating them
costs no page faults. Run in a child process: the setting is process-wide and not undone."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, resource, sys
import torch
from classify.core.memory import keep_freed_memory

def faults_of_a_fresh_tensor(mib):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(mib << 18)  # mib MiB of float32, every page touched
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del t
    return after - before

out = {}
# glibc's adaptive threshold tops out at 32 MiB: a 64 MiB block is mapped afresh every time.
out["default"] = [faults_of_a_fresh_tensor(64) for _ in range(4)]
out["accepted"] = keep_freed_memory()
# Now from the heap, which keeps it when it is freed. The heap grows for the first few (an
# aligned block does not fit exactly where the last one was), then every one reuses it.
out["kept"] = [faults_of_a_fresh_tensor(64) for _ in range(32)]
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_reallocating_a_freed_block_costs_no_page_faults():
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={"PYTHONPATH": f"{ROOT}:{ROOT / 'vendor'}", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["accepted"] is True
    pages = (64 << 20) // 4096
    assert min(out["default"]) > pages // 2  # a fault per page, every time
    assert max(out["kept"][-4:]) < pages // 50, out["kept"]  # the steady state: (almost) none


def test_without_glibc_nothing_changes(monkeypatch):
    import ctypes.util

    from classify.core import memory

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert memory.keep_freed_memory() is False
