"""`scripts/bench/train.py --against REV`: the current tree's training step against another
commit's, in one interleaved run.

Another commit is checked out with `git worktree add --detach` into a temporary folder (removed
afterwards; the current checkout is never touched). Each tree gets one long-lived child process
(`step_child.py` with PYTHONPATH=TREE:TREE/vendor) that builds the trainer and warms it up once;
then the parent asks them in turn for the same number of cycles, alternating which goes first
each round, so that drift in the machine's load lands on both. The ratio is per round
(other sec/kimg / ours), and its median and range are what is reported: > 1 means the current
tree is faster. With enough rounds (6 at 95%) the median also gets a distribution-free confidence
interval (`median_interval`): on a box whose speed drifts, "x1.98" alone does not say whether
2 is inside the noise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent.parent


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached checkout of `rev` in a temporary folder, removed on exit."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                         capture_output=True, text=True)
    if sha.returncode != 0:
        raise SystemExit(f"--against: {rev!r} is not a commit of {ROOT}")
    folder = Path(tempfile.mkdtemp(prefix="bench-against-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(folder),
                    sha.stdout.strip()], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)


@dataclass
class Child:
    label: str
    tree: Path
    proc: subprocess.Popen
    info: dict

    @classmethod
    def start(cls, label: str, tree: Path, child_args: list[str]) -> Child:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(tree / "vendor")]))
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
        proc = subprocess.Popen([sys.executable, str(BENCH / "step_child.py"), *child_args], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        child = cls(label, tree, proc, {})
        child.info = child.read()
        if not child.info["gen_file"].startswith(str(tree)):
            raise SystemExit(f"--against: the {label} child imported gen from {child.info['gen_file']}, "
                             f"not from {tree} (an installed copy shadows PYTHONPATH)")
        return child

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"--against: the {self.label} child ({self.tree}) ended early, "
                             f"exit code {self.proc.wait()}")
        return json.loads(line)

    def time_cycles(self, cycles: int) -> float:
        """sec/kimg over `cycles` 16-step cycles."""
        self.proc.stdin.write(f"{cycles}\n")
        self.proc.stdin.flush()
        out = self.read()
        return out["seconds"] / out["images"] * 1000

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def interleave(ours: Child, other: Child, rounds: int, cycles: int, report) -> list[tuple[float, float]]:
    """(ours, other) sec/kimg per round; the first to run alternates."""
    pairs = []
    for r in range(rounds):
        order = (ours, other) if r % 2 == 0 else (other, ours)
        got = {c.label: c.time_cycles(cycles) for c in order}
        pairs.append((got[ours.label], got[other.label]))
        report(f"round {r + 1}/{rounds}: ours {got[ours.label]:.2f} sec/kimg, {other.label} "
               f"{got[other.label]:.2f}, ratio x{got[other.label] / got[ours.label]:.3f}")
    return pairs


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A confidence interval for the median that assumes nothing about the distribution: the
    order statistics x_(j) and x_(n+1-j) for the largest j with P(Bin(n, 1/2) < j) <= (1 - level)/2,
    so it covers the median with probability >= level when the rounds are independent draws.
    None when there are too few values for that level (fewer than 6 at 95%)."""
    xs, n = sorted(values), len(values)
    below, j = 0.0, 0
    while j < n:
        with_j = below + math.comb(n, j) / 2**n  # P(Bin(n, 1/2) <= j)
        if with_j > (1 - level) / 2:
            break
        below, j = with_j, j + 1
    return (xs[j - 1], xs[n - j]) if j else None


def summary(pairs: list[tuple[float, float]]) -> dict:
    ratios = [b / a for a, b in pairs]
    return {"ours_sec_per_kimg": statistics.median(a for a, _ in pairs),
            "other_sec_per_kimg": statistics.median(b for _, b in pairs),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ratio_interval_95": median_interval(ratios, 0.95), "ratio_mean": statistics.fmean(ratios)}


def run_against(rev: str, child_args: list[str], rounds: int, cycles: int, report=print,
                ours_extra: list[str] | None = None) -> dict:
    """Time the current tree (with `ours_extra` arguments on top) against `rev`; returns the
    medians and the ratio's range."""
    with worktree(rev) as tree:
        other = Child.start(rev, tree, child_args)
        ours = Child.start("ours", ROOT, child_args + (ours_extra or []))
        report(f"warm-up: ours {ours.info['warmup_s']:.0f} s, {rev} {other.info['warmup_s']:.0f} s; "
               f"{rounds} rounds of {cycles} cycle(s) x 16 steps x batch {ours.info['batch']}")
        try:
            pairs = interleave(ours, other, rounds, cycles, report)
        finally:
            ours.close()
            other.close()
    return summary(pairs)
