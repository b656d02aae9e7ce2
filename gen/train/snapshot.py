"""Run-folder files of `gen train`: snapshots, their retention, best.json, resume lookup.

A snapshot (`network-snapshot-NNNNNN.pt`, NNNNNN = kimg rounded down) is a plain dict of
tensors and plain values — G, D, G_ema, both optimizers, loss/ADA state, counters, RNG
states, metric history, the resolved config and `format_version` — so it loads with
`torch.load(weights_only=True)`. It is written atomically; the generator alone is also
exported as `.G_ema.safetensors` for `gen sample`. Within one kimg a newer snapshot
replaces the older one of the same name.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.core.errors import UserError
from classify.core.fileio import atomic_torch_save
from gen.core.generator_file import SUFFIX, export_generator

FORMAT_VERSION = 1
SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d{6})\.pt$")


def snapshot_path(run_dir: Path, kimg: int) -> Path:
    return run_dir / f"network-snapshot-{kimg:06d}.pt"


def list_snapshots(run_dir: Path) -> list[Path]:
    """Complete snapshots, oldest first (temporary files of interrupted writes are ignored)."""
    found = [p for p in Path(run_dir).glob("network-snapshot-*.pt") if SNAPSHOT_RE.match(p.name)]
    return sorted(found, key=lambda p: int(SNAPSHOT_RE.match(p.name).group(1)))


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors/plain values (numpy's state array becomes a tensor)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_snapshot(run_dir: Path, kimg: int, payload: dict[str, Any], G_ema: torch.nn.Module,
                  info: dict) -> Path:
    """Write the full state (atomic), then the G_ema export. Returns the .pt path.

    Order matters for a kill -9: the .pt lands complete or not at all, and the previous
    snapshot is untouched either way. A same-named export of an earlier snapshot (same kimg)
    is removed once the new .pt is on disk and just before it takes the name, so a kill
    between the two writes leaves a .pt without its export (said so by `gen sample`), never
    a .pt beside a stale export of other weights. A full disk raises UserError from
    classify.core.fileio and leaves the old pair as it was.
    """
    path = snapshot_path(run_dir, kimg)
    export = path.with_name(path.name[:-3] + SUFFIX)
    atomic_torch_save(dict(payload, format_version=FORMAT_VERSION), path,
                      before_replace=lambda: export.unlink(missing_ok=True))
    export_generator(G_ema, dict(info, kimg=kimg), export)
    return path


def load_snapshot(path: Path, device: str = "cpu") -> dict[str, Any]:
    try:
        snap = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a torn or foreign file: say which and what to do
        path = Path(path)
        older = [p.name for p in list_snapshots(path.parent) if p.name < path.name]
        way = (f"resume from an older one (--resume {path.parent / older[-1]}; "
               f"also: {', '.join(older[:-1]) or 'none'})"
               if older else "no older snapshot is left: move this file away and start a new run "
               "(or --resume-from a G_ema .safetensors export)")
        raise UserError(f"cannot read snapshot {path} ({type(exc).__name__}); {way}") from None
    if not isinstance(snap, dict) or "format_version" not in snap:
        raise UserError(f"{path} is not a gen train snapshot (no format_version)")
    if snap["format_version"] > FORMAT_VERSION:
        raise UserError(f"{path} has format_version {snap['format_version']}, "
                        "newer than this ganbalance; upgrade")
    return snap


@dataclass(frozen=True)
class ResumePoint:
    """The snapshot a run continues from: found once and read once (on the CPU; every
    `load_state_dict` it feeds copies to the training device)."""

    path: Path
    state: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.state["config"]


def load_resume_point(spec: str, out_dir: str) -> ResumePoint:
    """--resume FILE | RUN_DIR | latest, found and loaded."""
    path = find_resume_snapshot(spec, out_dir)
    return ResumePoint(path, load_snapshot(path))


def find_resume_snapshot(spec: str, out_dir: str) -> Path:
    """--resume FILE | RUN_DIR | latest (= the newest snapshot in --out)."""
    if spec == "latest" and (not out_dir or out_dir == "latest"):
        raise UserError("--resume latest needs --out RUN_DIR (the run to continue)")
    path = Path(out_dir if spec == "latest" else spec)
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"--resume {spec}: {path} does not exist; "
                        "pass a snapshot .pt, a run folder or 'latest'")
    snaps = list_snapshots(path)
    if not snaps:
        raise UserError(f"--resume {spec}: {path} holds no network-snapshot-*.pt; nothing to resume")
    return snaps[-1]


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Delete temporary files that a killed writer left (`.NAME.XXXX.tmp`, see classify.core.fileio).

    Only names our own writes produce; called when a run (re)starts, when no write of
    this run can be in flight.
    """
    ours = ("network-snapshot-", "metrics.jsonl", "fakes", "reals.png", "best.json", "training_options.json")
    removed = []
    for f in Path(run_dir).glob(".*.tmp"):
        if f.name[1:].startswith(ours):
            f.unlink(missing_ok=True)
            removed.append(f.name)
    return removed


def prune_snapshots(run_dir: Path, keep: int, protect: set[str]) -> None:
    """Delete all but the newest `keep` snapshots (and their .safetensors), sparing `protect`."""
    snaps = list_snapshots(run_dir)
    for old in snaps[:-keep] if keep > 0 else snaps:
        if old.name in protect:
            continue
        for f in (old, old.with_name(old.name[:-3] + SUFFIX)):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass


PRESERVED_PREFIX = "best-"


def preserve_best(run_dir: Path, best: dict) -> dict:
    """Keep the best snapshot's files under `best-<name>` before a newer snapshot of the
    same kimg replaces `<name>` (names are kimg rounded down, so short ticks collide).

    A hard link keeps the old content at no cost (the atomic write then swaps in a new
    file at `<name>`); where links are unsupported the files are copied.
    """
    name = best["snapshot"]
    for src_name in (name, name[:-3] + SUFFIX):
        src, dst = run_dir / src_name, run_dir / (PRESERVED_PREFIX + src_name)
        if not src.is_file():
            continue
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    return dict(best, snapshot=PRESERVED_PREFIX + name)


def drop_preserved(run_dir: Path, old_best: dict | None, new_best: dict | None) -> None:
    """Delete a preserved best copy once a different snapshot has become the best."""
    if not old_best or not old_best["snapshot"].startswith(PRESERVED_PREFIX):
        return
    if new_best and new_best["snapshot"] == old_best["snapshot"]:
        return
    name = old_best["snapshot"]
    for f in (name, name[:-3] + SUFFIX):
        (run_dir / f).unlink(missing_ok=True)


def better_best(best: dict | None, metric: str, value: float, kimg: int, snap: Path) -> dict | None:
    """The best.json record after a new measurement (lower is better for FD/FID/KD/KID)."""
    if value != value:  # NaN never wins
        return best
    if best is not None and best["metric"] == metric and best["value"] <= value:
        return best
    return {"snapshot": snap.name, "metric": metric, "value": float(value), "kimg": int(kimg)}
