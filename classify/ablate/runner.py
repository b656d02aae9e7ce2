"""The ablation runner: plan the grid, skip finished cells, run the rest (optionally in parallel).

Layout of an ablation folder (ABLATE_DIR):
  study.json           the AblationConfig that made it (result-relevant keys must not change)
  cells/<id>.json      one finished cell: config, test metrics, wall time, versions (atomic)
  failed/<id>.json     the last error of a cell that raised; it is retried on the next run
  runs/<id>/           the trainer's output folder for that cell (model.pt)
A cell counts as finished only when its JSON parses and holds metrics, so a kill at any
moment loses at most the cells that were running.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from classify.ablate.cell import CELL_FORMAT_VERSION, CellTask, train_and_evaluate, versions
from classify.ablate.config import AblationConfig, default_setting, option_name
from classify.ablate.design import Cell, Shard, build_grid, fmt_number, uses_synthetic
from classify.ablate.sample_check import (
    DataFacts,
    SampleCheck,
    check_enough_samples,
    check_sample_set,
    inspect_prepared,
    minority_name,
)
from classify.core.clitools import usable_cores
from classify.core.errors import UserError
from classify.core.fileio import atomic_write_json
from classify.core.runlock import claim
from classify.model.models import model_spec
from classify.train.data import kept_minority_count, synthetic_count
from classify.train.strategies import build_strategy

__all__ = ["AblationConfig", "Plan", "RunSummary", "plan_ablation", "run_ablation", "format_plan",
           "load_cells"]

CellFn = Callable[[CellTask], dict[str, Any]]
Progress = Callable[[str], None]


@dataclass
class Plan:
    config: AblationConfig
    grid: list[Cell]
    shard: Shard
    mine: list[Cell]
    done: list[str]
    todo: list[CellTask]
    minority: str
    facts: DataFacts
    checks: dict[str, SampleCheck] = field(default_factory=dict)  # by fmt_number(fraction)


@dataclass
class RunSummary:
    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]  # id -> one-line error
    wall_time_s: float


def _validate_names(cfg: AblationConfig) -> None:
    # The registries own the valid names and raise UserError listing them.
    seen: dict[frozenset, str] = {}
    for name in cfg.strategies:
        build_strategy(name)
        parts = frozenset(p.strip() for p in name.split("+"))
        if parts in seen:  # the same training under two names would be two arms in every table
            raise UserError(f"strategies {seen[parts]!r} and {name!r} are the same combination; list it once")
        seen[parts] = name
    for name in cfg.models:
        model_spec(name, cfg.train["res"])


def plan_ablation(
    cfg: AblationConfig, shard: Shard | None = None, *, jobs: int = 1,
    inspect: Callable[[str], DataFacts] = inspect_prepared,
) -> Plan:
    """Everything that can be checked before training: names, grid size, sample sets, resume."""
    shard = shard or Shard(0, 1)
    _validate_names(cfg)
    grid = build_grid(cfg.strategies, cfg.models, cfg.seeds, cfg.synthetic_axes(), cfg.minority_fractions)
    if len(grid) > cfg.max_cells:
        raise UserError(f"the grid has {len(grid)} cells, more than --max-cells {cfg.max_cells}; "
                        "drop strategies/seeds/ratios or raise --max-cells")
    facts = inspect(cfg.data_dir)
    minority = minority_name(facts, cfg.minority_class, cfg.data_dir)
    checks = _check_samples(cfg, grid, facts, minority)
    check_study(cfg, facts.manifest_hash, write=False)
    out = Path(cfg.out_dir)
    mine = shard.select(grid)
    done = [c.id for c in mine if is_finished(out, c.id)]
    threads = max(1, usable_cores() // jobs) if jobs > 1 else 0  # parallel cells split the cores
    finished = set(done)
    # The report's feature map embeds images with one cell's model (classify.ablate.feature_map picks
    # baseline, highest fraction, lowest seed): that cell keeps its model.pt in any case.
    feature_cell = min(grid, key=lambda c: (c.strategy != "baseline", -c.minority_fraction, c.seed)).id
    todo = [_task(cfg, c, minority, checks.get(fmt_number(c.minority_fraction)), threads,
                  keep=cfg.keep_checkpoints or c.id == feature_cell)
            for c in mine if c.id not in finished]
    return Plan(cfg, grid, shard, mine, done, todo, minority, facts, checks)


def _check_samples(cfg: AblationConfig, grid: list[Cell], facts: DataFacts,
                   minority: str) -> dict[str, SampleCheck]:
    checks: dict[str, SampleCheck] = {}
    n_minority = facts.train_counts.get(minority, 0)
    for fraction in sorted({c.minority_fraction for c in grid if uses_synthetic(c.strategy)}):
        samples = cfg.samples_for(fraction)
        if samples is None:
            gan = sorted({c.strategy for c in grid if uses_synthetic(c.strategy)})
            raise UserError(f"strategies {', '.join(gan)} need a sample set for minority fraction "
                            f"{fmt_number(fraction)}; "
                            "pass --samples SAMPLES_DIR (or --samples FRACTION=DIR)")
        allowed = kept_minority_count(n_minority, fraction)
        checks[fmt_number(fraction)] = check_sample_set(
            samples, minority=minority, res=cfg.train["res"], allowed=allowed, facts=facts,
            allow_leak=cfg.allow_generator_leak)
        need = {part: max([synthetic_count(c.synthetic_ratio, allowed) for c in grid
                           if c.minority_fraction == fraction and part in c.strategy.split("+")
                           and c.synthetic_ratio is not None], default=0)
                for part in ("gan", "gan_filtered")}
        exclude = cfg.train.get("synthetic_exclude")
        check_enough_samples(samples, minority, need["gan"], need["gan_filtered"], exclude)
        _check_other_classes(samples, [c for c in grid if c.minority_fraction == fraction], facts, minority,
                             exclude)
    return checks


def _check_other_classes(samples: str, cells: list[Cell], facts: DataFacts, minority: str,
                         exclude: str | None = None) -> None:
    """Cells that synthesise every class need samples of the other classes too: ratio x their train images."""
    every = [c for c in cells if uses_synthetic(c.strategy) and c.synthetic_classes == "all"]
    for name, n_train in facts.train_counts.items():
        if name == minority or not every:
            continue
        need = {part: max([synthetic_count(c.synthetic_ratio, n_train) for c in every
                           if part in c.strategy.split("+")], default=0) for part in ("gan", "gan_filtered")}
        check_enough_samples(samples, name, need["gan"], need["gan_filtered"], exclude)


def _task(cfg: AblationConfig, cell: Cell, minority: str, check: SampleCheck | None, threads: int,
          keep: bool) -> CellTask:
    work_dir = str(Path(cfg.out_dir) / "runs" / cell.id)
    train = cfg.cell_train_config(
        out_dir=work_dir, model_name=cell.model, strategy=cell.strategy, seed=cell.seed,
        minority_class=minority,
        synthetic_dir=check.samples_dir if (check and uses_synthetic(cell.strategy)) else None,
        synthetic_ratio=cell.synthetic_ratio if cell.synthetic_ratio is not None else 1.0,
        synthetic_classes=cell.synthetic_classes, synthetic_weight=cell.synthetic_weight,
        synthetic_schedule=cell.synthetic_schedule,
        minority_fraction=cell.minority_fraction,
        # A cell's epoch bar helps on a terminal; in a log file (or from parallel jobs) its
        # carriage returns run into the [k/n] lines, which already report progress.
        progress=threads == 0 and sys.stderr.isatty(),
    )
    sample_check = check.to_dict() if (check and uses_synthetic(cell.strategy)) else None
    return CellTask(cell=cell, train=train, work_dir=work_dir, keep_checkpoint=keep,
                    threads=threads, sample_check=sample_check)


def is_finished(out_dir: Path, cell_id: str) -> bool:
    try:
        record = json.loads((out_dir / "cells" / f"{cell_id}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and isinstance(record.get("metrics"), dict)


def check_study(cfg: AblationConfig, manifest_hash: str, write: bool) -> None:
    """Refuse to mix cells made with different result-relevant settings or data into one folder.

    The grid may grow between runs (more seeds, strategies, sample sets); results may not drift."""
    path = Path(cfg.out_dir) / "study.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{path} is not valid JSON; "
                            "delete it only if the cells beside it match this config") from None
        changed = changed_settings(old, cfg.result_settings())
        if changed:
            raise UserError(f"{cfg.out_dir} holds cells made with {'; '.join(changed)}; "
                            "use a new --out or the same settings")
        if old.get("manifest_hash") not in (None, manifest_hash):
            raise UserError(f"{cfg.out_dir} holds cells made on other prepared data (manifest hash "
                            f"{old['manifest_hash'][:12]}, now {manifest_hash[:12]}: {cfg.data_dir} "
                            "was re-prepared or edited); use a new --out")
    if write:
        atomic_write_json(path, cfg.result_settings() | {"manifest_hash": manifest_hash,
                                                         "config": cfg.to_dict()})


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The result settings that differ, in words. A key missing from an older study.json is a
    setting added since (it had its default). Sample folders may be added, so GAN arms can join
    a finished baseline grid, but a folder already used may not change."""
    out = []
    for key, value in new.items():
        before = old[key] if key in old else default_setting(key)
        if key == "samples":
            moved = {f: p for f, p in before.items() if value.get(f) != p}
            if moved:
                shown = ", ".join(f"{f}={p} (now {value.get(f, 'none')})" for f, p in moved.items())
                out.append(f"--samples {shown}")
        elif before != value:
            out.append(f"{option_name(key)} {before!r} (now {value!r})")
    return out


# The error slot of a cell result that another process is training (or has just finished).
CLAIMED_ELSEWHERE = "claimed by another process"


def execute_cell(task: CellTask, cell_fn: CellFn, out_dir: str) -> tuple[str, str, float]:
    """Claim one cell, run it and write its JSON; returns (id, error or '', seconds). Runs in
    workers too. A cell another process holds (a second `classify ablate`, another shard on the same
    folder) or finished since the plan is skipped: no cell is ever trained twice."""
    with claim(Path(out_dir) / "claims" / f"{task.cell.id}.lock",
               f"classify ablate cell {task.cell.id}") as mine:
        if not mine or is_finished(Path(out_dir), task.cell.id):
            return task.cell.id, CLAIMED_ELSEWHERE, 0.0
        return _execute_claimed(task, cell_fn, out_dir)


def _execute_claimed(task: CellTask, cell_fn: CellFn, out_dir: str) -> tuple[str, str, float]:
    cells, failed = Path(out_dir) / "cells", Path(out_dir) / "failed"
    t0 = time.perf_counter()
    try:
        out = cell_fn(task)
    except Exception as exc:  # recorded and retried next run; one bad cell must not stop a grid
        seconds = time.perf_counter() - t0
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        atomic_write_json(failed / f"{task.cell.id}.json", {
            "id": task.cell.id, "error": message, "traceback": traceback.format_exc(),
            "task": task.to_dict()})
        return task.cell.id, message, seconds
    seconds = time.perf_counter() - t0
    record = {
        "format_version": CELL_FORMAT_VERSION, "id": task.cell.id, "arm": task.cell.arm,
        "cell": task.cell.to_dict(), "train_config": task.train, "sample_check": task.sample_check,
        "generator_leak": bool(task.sample_check and task.sample_check.get("leak")),
        "metrics": out["metrics"], "train": out.get("train", {}), "wall_time_s": seconds,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
        "host": platform.node(),  # the machine that timed it: estimates use only this machine's cells
    }
    atomic_write_json(cells / f"{task.cell.id}.json", record)
    (failed / f"{task.cell.id}.json").unlink(missing_ok=True)
    return task.cell.id, "", seconds


def run_ablation(plan: Plan, *, jobs: int = 1, cell_fn: CellFn = train_and_evaluate,
                 progress: Progress | None = None) -> RunSummary:
    """Run the plan's unfinished cells; `cell_fn` must be picklable when jobs > 1."""
    say = progress or (lambda _msg: None)
    check_study(plan.config, plan.facts.manifest_hash, write=True)
    t0 = time.perf_counter()
    summary = RunSummary(ran=[], skipped=list(plan.done), failed={}, wall_time_s=0.0)
    total = len(plan.todo)
    if plan.done:
        say(f"skipping {len(plan.done)} finished cell(s) of {len(plan.mine)} in this shard")

    def record(k: int, result: tuple[str, str, float]) -> None:
        cell_id, error, seconds = result
        if error == CLAIMED_ELSEWHERE:
            summary.skipped.append(cell_id)
            say(f"[{k}/{total}] {cell_id} skipped: another process has it")
        elif error:
            summary.failed[cell_id] = error
            say(f"[{k}/{total}] {cell_id} FAILED after {seconds:.1f}s: {error}")
        else:
            summary.ran.append(cell_id)
            say(f"[{k}/{total}] {cell_id} done in {seconds:.1f}s")

    if jobs <= 1 or total <= 1:
        for k, task in enumerate(plan.todo, 1):
            record(k, execute_cell(task, cell_fn, plan.config.out_dir))
    else:
        # spawn, not fork: forking a process that already runs torch threads can deadlock.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(execute_cell, t, cell_fn, plan.config.out_dir) for t in plan.todo]
            try:
                for k, fut in enumerate(as_completed(futures), 1):
                    record(k, fut.result())
            except KeyboardInterrupt:  # start no queued cell; the with-block waits for running ones
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    summary.wall_time_s = time.perf_counter() - t0
    return summary


def load_cells(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished cell record of an ablation folder, sorted by id."""
    cells_dir = Path(out_dir) / "cells"
    if not cells_dir.is_dir():
        failed = failed_cells(out_dir)
        if failed:
            first, error = next(iter(failed.items()))
            raise UserError(f"no cell of {out_dir} finished; {len(failed)} failed (first {first}: {error}); "
                            f"tracebacks in {out_dir}/failed/")
        raise UserError(f"{out_dir} has no cells/ folder; run `classify ablate --out {out_dir}` first")
    records = []
    for path in sorted(cells_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # cannot happen with atomic writes, but a hand-edited file must not kill the report
        if isinstance(record, dict) and isinstance(record.get("metrics"), dict):
            records.append(record)
    return records


def format_plan(plan: Plan, jobs: int = 1) -> str:
    """The --dry-run text: every cell of this shard with its state, then the estimated cost."""
    lines = [f"ablation grid: {len(plan.grid)} cells; shard {plan.shard.index}/{plan.shard.count} "
             f"has {len(plan.mine)} ({len(plan.done)} finished, {len(plan.todo)} to run); minority class "
             f"{plan.minority!r} ({plan.facts.train_counts.get(plan.minority, 0)} real train images)"]
    done, failed = set(plan.done), failed_cells(plan.config.out_dir)
    lines += [f"  {_state(c.id, done, failed)}  {c.id}" for c in plan.mine]
    for key, check in sorted(plan.checks.items()):
        flag = "  LEAK (allowed by --allow-generator-leak)" if check.leak else ""
        lines.append(f"  samples for fraction {key}: {check.samples_dir} (generator saw "
                     f"{check.generator_real_minority} real minority, "
                     f"cell allows {check.allowed_real_minority}){flag}")
        lines += [f"    warning: {w}" for w in check.warnings]
    lines.append(_estimate(plan, jobs))
    return "\n".join(lines)


def _state(cell_id: str, done: set[str], failed: dict[str, str]) -> str:
    if cell_id in done:
        return "done"
    return f"todo  (failed last time: {failed[cell_id]})" if cell_id in failed else "todo"


def failed_cells(out_dir: str | Path) -> dict[str, str]:
    """Cell id -> one-line error of the cells whose last attempt failed (failed/<id>.json)."""
    out = {}
    for path in sorted((Path(out_dir) / "failed").glob("*.json")):
        try:
            out[path.stem] = str(json.loads(path.read_text()).get("error", "unknown error"))
        except (OSError, json.JSONDecodeError, AttributeError):
            out[path.stem] = "unreadable failure record"
    return out


def _estimate(plan: Plan, jobs: int) -> str:
    """Image passes to run, and a time only from cells timed on this machine and device (per
    image pass, so cells of other sizes still calibrate it); no number where none was measured."""
    if not plan.todo:
        return "estimated cost: nothing to run (every cell of this shard is finished)"
    n_train = sum(plan.facts.train_counts.values())
    epochs = plan.config.train["epochs"]
    passes = len(plan.todo) * epochs * n_train
    text = (f"{passes} real image passes ({len(plan.todo)} cells x {epochs} epochs x {n_train} "
            "real train images")
    here, device = platform.node(), plan.config.device
    rates = [r["wall_time_s"] / _image_passes(r) for r in _safe_load(plan.config.out_dir)
             if r.get("host") == here and (r.get("train_config") or {}).get("device") == device
             and _image_passes(r)]
    if not rates:
        return (f"estimated cost: {text}; GAN arms add their synthetic ones); "
                "no time estimate until a cell has finished on this machine")
    per_pass = sorted(rates)[len(rates) // 2]
    minutes = per_pass * passes / max(1, jobs) / 60
    return (f"estimated cost: ~{minutes:.1f} min at {per_pass * 1e3:.2f} ms per image pass "
            f"(median of {len(rates)} cell(s) timed on this machine), {max(1, jobs)} job(s); "
            f"{text}, plus GAN arms' synthetic ones)")


def _image_passes(record: dict[str, Any]) -> int:
    train = record.get("train") or {}
    try:
        return int(train["epochs_run"]) * (int(train["n_train_real"])
                                           + int(train.get("n_train_synthetic", 0)))
    except (KeyError, TypeError, ValueError):
        return 0


def _safe_load(out_dir: str) -> list[dict[str, Any]]:
    try:
        return load_cells(out_dir)
    except UserError:
        return []
