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
an interrupted-then-resumed step cost the time of both runs (`gen.pipeline.attempts`).

Consecutive steps with the same `group = "..."` run side by side, each with its share of the
cores; two 45-minute GAN trainings then take 45 minutes of wall time, not 90.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classify.core.errors import UserError
from classify.core.fileio import atomic_write_text
from gen.pipeline.attempts import INTERRUPTED, run_attempt, run_side_by_side

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
    # Consecutive steps with the same group run side by side (each with its share of the cores).
    group: str | None = None

    @classmethod
    def from_dict(cls, d: Any, index: int) -> Step:
        if not isinstance(d, dict):
            raise UserError(f"pipeline step {index}: each [[step]] must be a table with name and argv, "
                            f"got {d!r}")
        name = d.get("name")
        if not isinstance(name, str) or not _STEP_NAME.match(name):
            raise UserError(f"pipeline step {index}: name {name!r} must be letters, digits, '_', '-' or '.' "
                            "(it names a marker file under OUT/.steps)")
        unknown = set(d) - {"name", "argv", "resume_if", "resume_args", "group"}
        if unknown:
            raise UserError(f"pipeline step {name}: unknown keys {sorted(unknown)}")
        argv = _strings(d.get("argv"), f"pipeline step {name}: argv")
        if not argv:
            raise UserError(f"pipeline step {name}: argv is empty; give the command to run")
        resume_if = d.get("resume_if")
        if resume_if is not None and not isinstance(resume_if, str):
            raise UserError(f"pipeline step {name}: resume_if must be a string (a glob), got {resume_if!r}")
        group = d.get("group")
        if group is not None and not (isinstance(group, str) and group):
            raise UserError(f"pipeline step {name}: group must be a non-empty string, got {group!r}")
        return cls(name, argv, resume_if,
                   _strings(d.get("resume_args", []), f"pipeline step {name}: resume_args"), group)


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


def batches(steps: list[Step]) -> list[list[Step]]:
    """The steps in run order: each consecutive run of steps sharing a `group` is one batch that
    runs side by side; every other step is a batch of its own."""
    out: list[list[Step]] = []
    for step in steps:
        if out and step.group is not None and out[-1][-1].group == step.group:
            out[-1].append(step)
        else:
            out.append([step])
    return out


def run_pipeline(config: PipelineConfig, out: Path) -> dict[str, float]:
    """Run every step not yet done; return each step's wall seconds, summed over all its attempts."""
    values = dict(config.vars, out=str(out))
    marks = out / ".steps"
    marks.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    number = {step.name: i for i, step in enumerate(config.steps, 1)}
    for batch in batches(config.steps):
        todo: dict[str, list[str]] = {}
        for step in batch:
            head = f"[pipeline] step {number[step.name]}/{len(config.steps)} {step.name}"
            argv = _command(step, values, marks, head, timings)
            if argv is not None:
                todo[step.name] = argv
        if len(todo) == 1:
            ((name, argv),) = todo.items()
            results = {name: run_attempt(argv, marks, name)}
        else:
            results = run_side_by_side(todo, marks) if todo else {}
        for name, (rc, attempts) in results.items():  # finished steps are marked before any error
            if rc == 0:
                timings[name] = _mark_done(marks, name, todo[name], attempts,
                                           f"[pipeline] step {number[name]}/{len(config.steps)} {name}")
        for name, (rc, _) in results.items():
            _raise_if_failed(name, rc)
    print(f"[pipeline] step wall time in total: {sum(timings.values()):.0f}s (every attempt of every step, "
          "also those of earlier runs)", flush=True)
    return timings


def _command(step: Step, values: dict[str, str], marks: Path, head: str,
             timings: dict[str, float]) -> list[str] | None:
    """The step's command line to run now, or None when it is marked done (its time then goes
    into `timings`)."""
    mark = marks / f"{step.name}.done"
    argv = [_fill(a, values, step.name) for a in step.argv]
    if mark.exists():
        seconds, done_argv = _read_mark(mark)
        changed = "" if done_argv in (None, argv) else (
            f" — its command changed since ({' '.join(done_argv)}); delete {mark} and the step's output "
            "to redo it")
        print(f"{head}: done earlier, skipped{changed}", flush=True)
        timings[step.name] = seconds  # the wall time of the run that did it
        return None
    if step.resume_if and glob.glob(_fill(step.resume_if, values, step.name)):
        argv += [_fill(a, values, step.name) for a in step.resume_args]
    print(f"{head}: {' '.join(argv)}", flush=True)
    return argv


def _mark_done(marks: Path, name: str, argv: list[str], attempts: list[dict[str, Any]], head: str) -> float:
    total = sum(a["seconds"] for a in attempts)
    atomic_write_text(marks / f"{name}.done", json.dumps({"seconds": round(total, 1), "argv": argv,
                                                          "attempts": len(attempts)}) + "\n")
    print(f"{head}: finished in {total:.0f}s"
          + (f" over {len(attempts)} attempts" if len(attempts) > 1 else ""), flush=True)
    return total


def _raise_if_failed(name: str, rc: int) -> None:
    if rc in INTERRUPTED:
        raise UserError(f"step {name} was interrupted; rerun the same command to continue — "
                        "finished steps are kept")
    if rc != 0:
        raise UserError(f"step {name} failed with exit code {rc}; fix the cause and rerun — "
                        "finished steps are kept")
