"""Replacing a run folder's run (`classify train --force`) without ever mixing two runs.

The previous run's files stay whole until the new run has written its first checkpoint: at that
moment they are moved aside into `OUT/.replaced/` (a rename: no disk space needed), the new
config.json is written, then model.pt. Once that checkpoint is on disk the old files are deleted;
if anything fails before (a full disk, a crash in between, Ctrl-C) they are moved back, and a
`.replaced/` left by a killed process is moved back when the folder is next opened. So the folder
always holds one run: the old one, or the new one (unfinished until its metrics.json).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from classify.core.fileio import atomic_write_json

# Everything a run (and `classify eval` on it) writes into its folder.
RUN_FILES = ("config.json", "model.pt", "metrics.json", "metrics.jsonl", "eval*.json", "confusion_*.png",
             "pr_*.png", "roc_*.png")
STASH = ".replaced"
DISCARD = ".replaced.discard"  # a settled stash, renamed first so that a kill mid-delete cannot restore it


class RunReplacement:
    """begin() before the new run's first file, settle() after its first checkpoint, rollback() on failure."""

    def __init__(self, out_dir: Path, config: dict) -> None:
        self.out, self.config, self.stash = Path(out_dir), config, Path(out_dir) / STASH
        restore_stash(self.out)  # a previous replacement killed half-way: that run is the folder's run

    def begin(self) -> None:
        self.stash.mkdir(exist_ok=True)
        for pattern in RUN_FILES:
            for path in self.out.glob(pattern):
                os.replace(path, self.stash / path.name)
        atomic_write_json(self.out / "config.json", self.config)

    def settle(self) -> None:
        if self.stash.is_dir():
            discard = self.out / DISCARD
            shutil.rmtree(discard, ignore_errors=True)
            os.replace(self.stash, discard)  # atomic: from here on the old run is gone, whatever happens next
            shutil.rmtree(discard, ignore_errors=True)

    def rollback(self) -> None:
        for pattern in RUN_FILES:
            for path in self.out.glob(pattern):
                path.unlink()
        restore_stash(self.out)


def restore_stash(out: Path) -> None:
    """Move a stashed previous run back into `out` (nothing when there is none); a settled one
    that a kill left half-deleted is only removed."""
    shutil.rmtree(out / DISCARD, ignore_errors=True)
    stash = out / STASH
    if not stash.is_dir():
        return
    for path in stash.iterdir():
        os.replace(path, out / path.name)
    stash.rmdir()
