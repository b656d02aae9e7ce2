"""The ADA feedback loop: watch how sure D is about the reals, adjust augmentation p.

r_t = E[sign(D(real_aug))] over the last `interval` D steps. Above the target, D is
overfitting the reals, so p goes up; below it, p goes down (never under 0). The step size
lets p go from 0 to 1 in `ada_kimg` thousand images. With DDP the sign sums and counts
are summed over ranks first, so every rank computes the same p.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class AdaController:
    def __init__(self, pipe: torch.nn.Module | None, target: float, interval: int, ada_kimg: float, adaptive: bool):
        self.pipe, self.target, self.interval, self.ada_kimg = pipe, target, interval, ada_kimg
        self.adaptive = adaptive and pipe is not None
        self.sign_sum = 0.0
        self.count = 0.0
        self.last_rt: float | None = None

    @property
    def p(self) -> float:
        return float(self.pipe.p) if self.pipe is not None else 0.0

    def observe(self, stats: dict[str, float]) -> None:
        """Accumulate the real-logit signs a D phase reported (main and R1 alike)."""
        if "real_count" in stats:
            self.sign_sum += stats["real_sign_sum"]
            self.count += stats["real_count"]

    def maybe_update(self, batch_idx: int, global_batch: int, all_reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """After D step number `batch_idx` (1-based): every `interval` steps, move p."""
        if not self.adaptive or batch_idx % self.interval != 0:
            return
        totals = all_reduce(torch.tensor([self.sign_sum, self.count], dtype=torch.float64))
        self.sign_sum = self.count = 0.0
        if totals[1] <= 0:
            return
        from stylegan2_ada.augment import ada_update

        r_t = float(totals[0] / totals[1])
        new_p = ada_update(self.p, r_t, self.target, global_batch * self.interval, ada_kimg=self.ada_kimg)
        self.pipe.p.copy_(torch.as_tensor(float(new_p)))
        self.last_rt = r_t

    def state_dict(self) -> dict[str, float | None]:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count, "last_rt": self.last_rt}

    def load_state_dict(self, d: dict) -> None:
        if self.pipe is not None:
            self.pipe.p.copy_(torch.as_tensor(float(d["p"])))
        self.sign_sum, self.count, self.last_rt = float(d["sign_sum"]), float(d["count"]), d["last_rt"]
