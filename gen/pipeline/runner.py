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
import re
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


# A step's name becomes a marker file name under OUT/.steps: letters, digits, '_', '-', '.' only.
_STEP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# `{name}` is the only substitution: no format specs, indexing or attribute access.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOP_LEVEL_KEYS = ("vars", "step")


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{what} must be a list of strings (quote numbers: \"5\"), got {value!r}")
    return list(value)


@dataclass
class Step:
    name: str
    argv: list[str]
    resume_if: str | None = None  # glob: when it matches, `resume_args` are appended
    resume_args: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any, index: int) -> Step:
        if not isinstance(d, dict):
            raise UserError(f"pipeline step {index}: each [[step]] must be a table with name and argv, "
                            f"got {d!r}")
        name = d.get("name")
        if not isinstance(name, str) or not _STEP_NAME.match(name):
            raise UserError(f"pipeline step {index}: name {name!r} must be letters, digits, '_', '-' or '.' "
                            "(it names a marker file under OUT/.steps)")
        unknown = set(d) - {"name", "argv", "resume_if", "resume_args"}
        if unknown:
            raise UserError(f"pipeline step {name}: unknown keys {sorted(unknown)}")
        argv = _strings(d.get("argv"), f"pipeline step {name}: argv")
        if not argv:
            raise UserError(f"pipeline step {name}: argv is empty; give the command to run")
        resume_if = d.get("resume_if")
        if resume_if is not None and not isinstance(resume_if, str):
            raise UserError(f"pipeline step {name}: resume_if must be a string (a glob), got {resume_if!r}")
        return cls(name, argv, resume_if,
                   _strings(d.get("resume_args", []), f"pipeline step {name}: resume_args"))


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
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text; save it as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path} is not valid TOML: {exc}") from None
        unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
        if unknown:
            raise UserError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; "
                            "a pipeline has [vars] and [[step]]")
        variables, steps = raw.get("vars", {}), raw.get("step", [])
        if not isinstance(variables, dict):
            raise UserError(f"{path}: vars must be a table ([vars] with name = \"value\" lines), "
                            f"got {variables!r}")
        if not isinstance(steps, list):
            raise UserError(f"{path}: step must be an array of tables ([[step]] blocks), got {steps!r}")
        steps = [Step.from_dict(s, i) for i, s in enumerate(steps, 1)]
        if not steps:
            raise UserError(f"{path} defines no [[step]] entries")
        seen: set[str] = set()
        for step in steps:
            if step.name in seen:
                raise UserError(f"{path}: two steps are named {step.name!r}; "
                                "the second would never run — rename one")
            seen.add(step.name)
        return cls({str(k): str(v) for k, v in variables.items()}, steps)

    def with_vars(self, assignments: list[str]) -> PipelineConfig:
        """A copy with `NAME=VALUE` assignments replacing [vars] values (`gen pipeline --set`).

        Only names the file declares may be set: a misspelt name would otherwise be a silent no-op
        and the study would run with the file's value."""
        values = dict(self.vars)
        for text in assignments:
            name, sep, value = text.partition("=")
            if not sep or not _NAME.match(name):
                raise UserError(f"--set {text!r}: give NAME=VALUE with NAME one of [vars]")
            if name not in values:
                raise UserError(f"--set {name}: not a [vars] name of this pipeline; "
                                f"it has {', '.join(sorted(values))}")
            values[name] = value
        return PipelineConfig(values, self.steps)


def _fill(template: str, values: dict[str, str], step: str = "?") -> str:
    """`{name}` -> values[name]; `{{`/`}}` -> a literal brace; anything else in braces is an error."""
    def one(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        key = m.group(1)
        if not _NAME.match(key):
            raise UserError(f"pipeline step {step}: placeholder {{{key}}} is not a plain {{name}} "
                            "(no format specs, indexes or attributes)")
        if key not in values:
            raise UserError(f"pipeline step {step}: placeholder {{{key}}} is not defined in [vars]")
        return values[key]

    return _PLACEHOLDER.sub(one, template)


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
        argv = [_fill(a, values, step.name) for a in step.argv]
        if mark.exists():
            seconds, done_argv = _read_mark(mark)
            changed = "" if done_argv in (None, argv) else (
                f" — its command changed since ({' '.join(done_argv)}); delete {mark} and the step's output "
                "to redo it")
            print(f"{head}: done earlier, skipped{changed}", flush=True)
            timings[step.name] = seconds  # the wall time of the run that did it
            continue
        if step.resume_if and glob.glob(_fill(step.resume_if, values, step.name)):
            argv += [_fill(a, values, step.name) for a in step.resume_args]
        print(f"{head}: {' '.join(argv)}", flush=True)
        rc, attempts = _run_attempt(argv, marks, step.name)
        if rc in INTERRUPTED:
            raise UserError(f"step {step.name} was interrupted; rerun the same command to continue — "
                            "finished steps are kept")
        if rc != 0:
            raise UserError(f"step {step.name} failed with exit code {rc}; fix the cause and rerun — "
                            "finished steps are kept")
        total = timings[step.name] = sum(a["seconds"] for a in attempts)
        atomic_write_text(mark, json.dumps({"seconds": round(total, 1), "argv": argv,
                                            "attempts": len(attempts)}) + "\n")
        print(f"{head}: finished in {total:.0f}s"
              + (f" over {len(attempts)} attempts" if len(attempts) > 1 else ""), flush=True)
    print(f"[pipeline] step wall time in total: {sum(timings.values()):.0f}s (every attempt of every step, "
          "also those of earlier runs)", flush=True)
    return timings
