"""Run the whole suite from one TOML file: plain CLI steps, each skipped once done.

    gen pipeline --config scripts/demo-cpu.toml --out runs/demo     (or python -m gen.pipeline ...)

A step is a command line (list of strings) with `{placeholders}` filled from the
`[vars]` table plus `out`. After a step exits 0 a marker `OUT/.steps/<name>.done` is
written; a rerun skips marked steps. A step killed half-way is simply run again: every
command is itself resumable (prepare is idempotent, `gen train --resume`, `gen sample`
skips written seeds, `classify ablate` skips finished cells). At the end `OUT/index.html`
links every report (see `gen.pipeline.site`).

Every attempt's wall time is recorded (`OUT/.steps/<name>.attempts.json`, also for an
attempt that was interrupted or failed), and a step's time is the sum over its attempts:
an interrupted-then-resumed step cost the time of both runs.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_text

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@dataclass
class Step:
    name: str
    argv: list[str]
    resume_if: str | None = None  # glob: when it matches, `resume_args` are appended
    resume_args: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        unknown = set(d) - {"name", "argv", "resume_if", "resume_args"}
        if unknown:
            raise UserError(f"pipeline step {d.get('name', '?')}: unknown keys {sorted(unknown)}")
        return cls(d["name"], list(d["argv"]), d.get("resume_if"), list(d.get("resume_args", [])))


@dataclass
class PipelineConfig:
    vars: dict[str, str]
    steps: list[Step]

    @classmethod
    def load(cls, path: str | os.PathLike) -> PipelineConfig:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"pipeline config {path} not found; see scripts/demo-cpu.toml for the format")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path} is not valid TOML: {exc}") from None
        steps = [Step.from_dict(s) for s in raw.get("step", [])]
        if not steps:
            raise UserError(f"{path} defines no [[step]] entries")
        return cls({k: str(v) for k, v in raw.get("vars", {}).items()}, steps)


def _fill(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except KeyError as exc:
        raise UserError(f"pipeline placeholder {exc} is not defined in [vars]") from None


def _resolve_exe(argv: list[str]) -> list[str]:
    # Console scripts live next to the running interpreter (the venv); prefer those so the
    # pipeline works without an activated environment.
    local = Path(sys.executable).with_name(argv[0])
    if local.exists():
        return [str(local), *argv[1:]]
    if shutil.which(argv[0]) is None:
        raise UserError(f"command {argv[0]!r} not found; run scripts/demo.sh, which installs ganbalance into .venv")
    return argv


def read_attempts(marks: Path, name: str) -> list[dict[str, Any]]:
    """Every recorded attempt of step `name`: [{"seconds": s, "outcome": "done" | "interrupted" | "failed (exit N)"}]."""
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


def _run_attempt(argv: list[str], marks: Path, name: str) -> tuple[int, list[dict[str, Any]]]:
    """Run one attempt of a step; its wall time is recorded however it ends (also when Ctrl-C
    reaches this process). Returns (exit code, every attempt recorded so far)."""
    t0, outcome = time.time(), "interrupted"
    try:
        rc = subprocess.call(_resolve_exe(argv))
        outcome = "interrupted" if rc in INTERRUPTED else "done" if rc == 0 else f"failed (exit {rc})"
    finally:
        attempts = _record_attempt(marks, name, time.time() - t0, outcome)
    return rc, attempts


INTERRUPTED = (130, 143, -2, -15)  # SIGINT/SIGTERM: the step saved what it had


def _read_mark(mark: Path) -> tuple[float, list[str] | None]:
    """(wall seconds, the command that ran); markers of older versions hold only the seconds."""
    text = mark.read_text().strip()
    try:
        d = json.loads(text or "0")
    except json.JSONDecodeError:
        return 0.0, None
    if isinstance(d, dict):
        return float(d.get("seconds", 0)), d.get("argv")
    return float(d), None


def run_pipeline(config: PipelineConfig, out: Path) -> dict[str, float]:
    """Run every step not yet done; return each step's wall seconds, summed over all its attempts."""
    values = dict(config.vars, out=str(out))
    marks = out / ".steps"
    marks.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for i, step in enumerate(config.steps, 1):
        mark = marks / f"{step.name}.done"
        head = f"[pipeline] step {i}/{len(config.steps)} {step.name}"
        argv = [_fill(a, values) for a in step.argv]
        if mark.exists():
            seconds, done_argv = _read_mark(mark)
            changed = "" if done_argv in (None, argv) else (
                f" — its command changed since ({' '.join(done_argv)}); delete {mark} and the step's output to redo it")
            print(f"{head}: done earlier, skipped{changed}", flush=True)
            timings[step.name] = seconds  # the wall time of the run that did it
            continue
        if step.resume_if and glob.glob(_fill(step.resume_if, values)):
            argv += [_fill(a, values) for a in step.resume_args]
        print(f"{head}: {' '.join(argv)}", flush=True)
        rc, attempts = _run_attempt(argv, marks, step.name)
        if rc in INTERRUPTED:
            raise UserError(f"step {step.name} was interrupted; rerun the same command to continue — finished "
                            "steps are kept")
        if rc != 0:
            raise UserError(f"step {step.name} failed with exit code {rc}; fix the cause and rerun — finished steps are kept")
        total = timings[step.name] = sum(a["seconds"] for a in attempts)
        atomic_write_text(mark, json.dumps({"seconds": round(total, 1), "argv": argv, "attempts": len(attempts)}) + "\n")
        print(f"{head}: finished in {total:.0f}s" + (f" over {len(attempts)} attempts" if len(attempts) > 1 else ""),
              flush=True)
    print(f"[pipeline] step wall time in total: {sum(timings.values()):.0f}s (every attempt of every step, "
          "also those of earlier runs)", flush=True)
    return timings
