"""What a tick reports: metrics.jsonl rows, TensorBoard scalars, the tqdm bar.

metrics.jsonl is rewritten atomically each tick (it is small), so a kill never leaves a
torn line; on resume, rows newer than the snapshot are dropped so the file tells one
consistent history.
"""

from __future__ import annotations

import json
import math
import resource
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from classify.core.fileio import atomic_write_text


class TickStats:
    """Mean of every loss statistic reported since the last tick."""

    def __init__(self) -> None:
        self._sum: dict[str, float] = defaultdict(float)
        self._n: dict[str, int] = defaultdict(int)

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            if k in ("real_sign_sum", "real_count"):
                continue  # ADA bookkeeping, reported as r_t instead
            self._sum[k] += v
            self._n[k] += 1

    def means(self) -> dict[str, float]:
        return {k: self._sum[k] / self._n[k] for k in sorted(self._sum)}


def memory_gb(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"gpu_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30}
    # ru_maxrss is in KiB on Linux.
    return {"cpu_maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


class RunLog:
    """metrics.jsonl + TensorBoard + progress bar, on the main rank only."""

    def __init__(self, run_dir: Path, total_nimg: int, start_nimg: int, enabled: bool,
                 resume_nimg: int | None):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.rows: list[str] = []
        self.tb = None
        self.bar = None
        if not enabled:
            return
        if self.path.is_file():
            # A fresh run starts a fresh file; a resumed one keeps rows up to its snapshot.
            self.rows = [ln for ln in self.path.read_text().splitlines()
                         if resume_nimg is not None and ln.strip()
                         and json.loads(ln).get("nimg", 0) <= resume_nimg]
            atomic_write_text(self.path, "".join(r + "\n" for r in self.rows))
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 — tensorboard: optional at run time

            self.tb = SummaryWriter(log_dir=str(run_dir))
        except ImportError:  # tensorboard is a dependency, but a missing one must not stop training
            self.tb = None
        if not sys.stderr.isatty():
            return  # in a log file a bar is carriage-return noise: tick() prints one line instead
        self.bar = tqdm(total=total_nimg, initial=min(start_nimg, total_nimg), unit="img", unit_scale=True,
                        dynamic_ncols=True, leave=True)

    def step(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(min(n, self.bar.total - self.bar.n))

    def write(self, msg: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg)

    def tick(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.rows.append(json.dumps(row, allow_nan=True))
        atomic_write_text(self.path, "".join(r + "\n" for r in self.rows))
        if self.tb is not None:
            for k, v in row.items():
                if (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        and k != "kimg"):
                    self.tb.add_scalar(k, v, global_step=int(row["nimg"]))
            self.tb.flush()
        short = {k: f"{row[k]:.3g}" for k in ("sec_per_kimg", "ada_p", "loss_G", "loss_D")
                 if row.get(k) is not None}
        if self.bar is not None:
            self.bar.set_postfix(kimg=f"{row['kimg']:.2f}", **short)
        else:
            print(f"kimg {row['kimg']:.2f} " + " ".join(f"{k}={v}" for k, v in short.items()), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
