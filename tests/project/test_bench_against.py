"""`scripts/bench/train.py --against REV`: both trees really run, interleaved, from their own code.

Tiny networks (channel_max 8) so that a 16-step cycle takes about a second; the point is the
plumbing (git worktree, one child per tree, the import really coming from each tree, the ratio
report, the worktree removed afterwards), not the speed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_against_head_times_both_trees_and_cleans_up():
    before = _git("worktree", "list")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench" / "train.py"), "--against", "HEAD", "--config",
           "32", "--rounds", "2", "--cycles", "1", "--warmup-cycles", "0", "--threads", "1",
           "--set", "channel_base=256", "--set", "channel_max=8", "--set", "batch=4"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rounds = re.findall(r"round (\d)/2: ours ([\d.]+) sec/kimg, HEAD ([\d.]+), ratio x([\d.]+)", out.stdout)
    assert [r[0] for r in rounds] == ["1", "2"], out.stdout
    for _, ours, other, ratio in rounds:
        assert float(ours) > 0 and float(other) > 0
        assert float(ratio) == pytest.approx(float(other) / float(ours), rel=0.01)
    assert re.search(r"ours is x[\d.]+ as fast \(rounds x[\d.]+\.\.x[\d.]+; mean x[\d.]+; "
                     r"too few rounds for a 95% interval of the median\)", out.stdout), out.stdout
    assert _git("worktree", "list") == before  # the temporary checkout is gone


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_against_an_unknown_revision_is_one_clear_line():
    cmd = [sys.executable, str(ROOT / "scripts" / "bench" / "train.py"), "--against", "no-such-rev-42"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == f"--against: 'no-such-rev-42' is not a commit of {ROOT}"


def test_median_interval_is_the_binomial_order_statistics():
    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    try:
        from against import median_interval
    finally:
        sys.path.remove(str(ROOT / "scripts" / "bench"))
    values = [float(v) for v in range(15, 0, -1)]  # order must not matter
    # Bin(15, 1/2): P(X <= 3) = 0.0176 <= 0.025 < P(X <= 4) = 0.0592, so x_(4) .. x_(12).
    assert median_interval(values, 0.95) == (4.0, 12.0)
    assert median_interval(values[:6], 0.95) == (10.0, 15.0)  # 1/64 <= 0.025: the extremes
    assert median_interval(values[:5], 0.95) is None  # 1/32 > 0.025: no interval at 95%
    assert median_interval(values, 0.5) == (6.0, 10.0)  # P(X <= 5) = 0.151 <= 0.25 < P(X <= 6)
