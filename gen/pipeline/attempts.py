"""Running a pipeline step's command and recording every attempt's wall time.

An attempt's time is written to `OUT/.steps/<name>.attempts.json` however it ends (done, failed,
or interrupted by Ctrl-C), so a step that was stopped and resumed is charged for both runs.
Steps of one `group` run side by side: each gets its share of the cores (`GANBALANCE_THREADS`,
unless the environment already sets it) and writes its output to `OUT/.steps/<name>.log`, so two
progress streams do not interleave on the terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from classify.core.clitools import usable_cores
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_text

INTERRUPTED = (130, 143, -2, -15)  # SIGINT/SIGTERM: the step saved what it had


def _resolve_exe(argv: list[str]) -> list[str]:
    # Console scripts live next to the running interpreter (the venv); prefer those so the
    # pipeline works without an activated environment.
    local = Path(sys.executable).with_name(argv[0])
    if local.exists():
        return [str(local), *argv[1:]]
    if shutil.which(argv[0]) is None:
        raise UserError(f"command {argv[0]!r} not found; "
                        "run scripts/demo.sh, which installs ganbalance into .venv")
    return argv


def read_attempts(marks: Path, name: str) -> list[dict[str, Any]]:
    """Every recorded attempt of step `name`:
    [{"seconds": s, "outcome": "done" | "interrupted" | "failed (exit N)"}]."""
    path = marks / f"{name}.attempts.json"
    try:
        attempts = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [a for a in attempts if isinstance(a, dict) and isinstance(a.get("seconds"), (int, float))] \
        if isinstance(attempts, list) else []


def _record_attempt(marks: Path, name: str, seconds: float, outcome: str) -> list[dict[str, Any]]:
    attempts = read_attempts(marks, name) + [{"seconds": round(seconds, 1), "outcome": outcome}]
    atomic_write_text(marks / f"{name}.attempts.json", json.dumps(attempts) + "\n")
    return attempts


def run_attempt(argv: list[str], marks: Path, name: str) -> tuple[int, list[dict[str, Any]]]:
    """Run one attempt of a step; its wall time is recorded however it ends (also when Ctrl-C
    reaches this process). Returns (exit code, every attempt recorded so far)."""
    t0, outcome = time.time(), "interrupted"
    try:
        rc = subprocess.call(_resolve_exe(argv))
        outcome = "interrupted" if rc in INTERRUPTED else "done" if rc == 0 else f"failed (exit {rc})"
    finally:
        attempts = _record_attempt(marks, name, time.time() - t0, outcome)
    return rc, attempts


def run_side_by_side(commands: dict[str, list[str]],
                     marks: Path) -> dict[str, tuple[int, list[dict[str, Any]]]]:
    """Run every (step name -> command line) at once and wait for all; each attempt is recorded
    like `run_attempt`'s, also when Ctrl-C stops them (the children get the signal too, save, exit)."""
    env = dict(os.environ)
    env.setdefault("GANBALANCE_THREADS", str(max(1, usable_cores() // len(commands))))
    print(f"[pipeline] side by side with {env['GANBALANCE_THREADS']} thread(s) each: "
          + ", ".join(f"{name} (log: {marks / (name + '.log')})" for name in commands), flush=True)
    t0, running = time.time(), {}
    for name, argv in commands.items():
        with open(marks / f"{name}.log", "ab") as log:
            running[name] = subprocess.Popen(_resolve_exe(argv), stdout=log, stderr=subprocess.STDOUT,
                                             env=env)
    ended: dict[str, tuple[int, float]] = {}  # name -> (exit code, seconds), as each one ends
    try:
        _wait_all(running, ended, t0)
    except KeyboardInterrupt:  # the children got the signal too: let them save and exit
        _wait_all(running, ended, t0)
        raise
    finally:
        results = {}
        for name, (rc, seconds) in ended.items():
            outcome = "interrupted" if rc in INTERRUPTED else "done" if rc == 0 else f"failed (exit {rc})"
            results[name] = (rc, _record_attempt(marks, name, seconds, outcome))
    return results


def _wait_all(running: dict[str, subprocess.Popen], ended: dict[str, tuple[int, float]], t0: float) -> None:
    """Poll until every process has exited, noting each one's exit code and its own wall time (a
    step that ends first is not charged for the others)."""
    while len(ended) < len(running):
        for name, proc in running.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = (proc.returncode, time.time() - t0)
        if len(ended) < len(running):
            time.sleep(0.2)
