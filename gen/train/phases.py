"""Training phases as data: which network, which optimizer, how often, what loss term.

StyleGAN2 runs its regularisers lazily (path length every 4 G steps, R1 every 16 D steps)
and multiplies them by the interval so their average strength is unchanged. Each network's
Adam is then tuned as if its steps were `interval / (interval + 1)` as long (lr * c,
betas ** c) — the lazy-regularisation correction of the StyleGAN2 paper (the engine's
`stylegan2_ada.loss.lazy_regularization`).

The ADA feedback loop runs between the phases (`AdaController`): r_t = E[sign(D(real_aug))]
over the last `interval` D steps; above the target D is overfitting the reals, so p goes up,
below it p goes down (never under 0). With DDP the sign sums and counts are summed over ranks
first, so every rank computes the same p.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from stylegan2_ada.augment import ada_update
from stylegan2_ada.loss import lazy_regularization

from gen.train.config import GanTrainConfig

ADAM_BETAS = (0.0, 0.99)
ADAM_EPS = 1e-8


@dataclass
class Phase:
    name: str  # loss phase: Gmain, Greg, Gboth, Dmain, Dreg, Dboth
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int  # runs when batch_idx % interval == 0; its loss is multiplied by interval
    params: list[torch.nn.Parameter]  # what this phase trains (frozen D layers excluded)

    def due(self, batch_idx: int) -> bool:
        return batch_idx % self.interval == 0


def trainable_d_params(D: torch.nn.Module, freeze_d: int) -> list[torch.nn.Parameter]:
    """D's parameters minus the first `freeze_d` blocks (highest resolution first).

    Freezing the early, generic D layers is the "FreezeD" transfer trick; the block order
    comes from the state-dict names b{res}.*, largest res first.
    """
    params = dict(D.named_parameters())
    if freeze_d <= 0:
        return list(params.values())
    block_res = sorted({int(n.split(".")[0][1:]) for n in params
                        if n[:1] == "b" and n.split(".")[0][1:].isdigit()}, reverse=True)
    frozen = {f"b{r}." for r in block_res[:freeze_d]}
    return [p for n, p in params.items() if not any(n.startswith(f) for f in frozen)]


def build_phases(G: torch.nn.Module, D: torch.nn.Module, cfg: GanTrainConfig) -> list[Phase]:
    """G main (+ G reg every g_reg_interval), then D main (+ D reg every d_reg_interval).

    A regulariser with zero weight gets no phase (it would compute nothing), but the
    optimizer keeps the lazy settings so that turning it off changes only the penalty.
    """
    phases: list[Phase] = []
    for prefix, module, interval, weight, params in (
        ("G", G, cfg.g_reg_interval, cfg.pl_weight, list(G.parameters())),
        ("D", D, cfg.d_reg_interval, cfg.gamma, trainable_d_params(D, cfg.freeze_d)),
    ):
        lr, betas = lazy_regularization(cfg.lr, ADAM_BETAS, interval)
        # fused: one kernel over every tensor instead of ~10 small ops per tensor (the same
        # update to float rounding; measured x3.6 on the CPU for G's 56 tensors, 4.9 -> 1.3 ms).
        opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=ADAM_EPS, fused=True)
        if not interval:
            phases.append(Phase(prefix + "both", module, opt, 1, params))
            continue
        phases.append(Phase(prefix + "main", module, opt, 1, params))
        if weight > 0:
            phases.append(Phase(prefix + "reg", module, opt, interval, params))
    return phases


def run_phase(
    phase: Phase,
    loss,
    real: tuple[torch.Tensor, torch.Tensor],
    gen: tuple[torch.Tensor, torch.Tensor],
    grad_scale: float,
    after_backward: Callable[[Phase], bool],
) -> dict[str, float]:
    """One phase: zero grads, accumulate the loss term, hand grads to `after_backward`
    (DDP averaging, unscaling, finiteness check); step only when it returns True."""
    phase.opt.zero_grad(set_to_none=True)
    for p in phase.params:
        p.requires_grad_(True)
    try:
        stats = loss.accumulate_gradients(
            phase=phase.name, real_img=real[0], real_c=real[1], gen_z=gen[0], gen_c=gen[1],
            gain=phase.interval * grad_scale,
        )
    finally:
        for p in phase.params:
            p.requires_grad_(False)
    if after_backward(phase):
        phase.opt.step()
    return {k: float(v) for k, v in (stats or {}).items()}


class AdaController:
    def __init__(self, pipe: torch.nn.Module | None, target: float, interval: int, ada_kimg: float,
                 adaptive: bool):
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

    def maybe_update(self, batch_idx: int, global_batch: int,
                     all_reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """After D step number `batch_idx` (1-based): every `interval` steps, move p."""
        if not self.adaptive or batch_idx % self.interval != 0:
            return
        totals = all_reduce(torch.tensor([self.sign_sum, self.count], dtype=torch.float64))
        self.sign_sum = self.count = 0.0
        if totals[1] <= 0:
            return
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
